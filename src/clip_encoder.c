/* clip_encoder: the activation workspace and the forward and backward
 * passes of both encoders (see include/dmnsp/clip.h). */
#include "clip_internal.h"

#include "dmnsp/error.h"
#include "dmnsp/ops.h"

#include <stdlib.h>
#include <string.h>

/* ---- workspace layout --------------------------------------------------- */

/* What one block's backward needs from its forward. The block input, the
 * adapter output and the adapter hidden activations live in
 * encoder_state.inputs and .adapter_hidden. */
typedef struct {
    float *ln_1_mean, *ln_1_rstd; /* [N] */
    float *qkv;                   /* [N, 3C] */
    float *att;                   /* [T, T] probabilities of one head, or [B, H, T] in a pooled block */
    float *x_mid;                 /* [N, C] residual stream after attention */
    float *down;                  /* [N, K] adapter down projection, before ReLU */
    float *ln_2_mean, *ln_2_rstd; /* [N] */
    float *fc;                    /* [N, 4C] before QuickGELU */
} block_saved;

typedef struct {
    clip_modality modality;
    int enabled;
    int layers, width, heads, bottleneck;
    int max_batch, max_tokens; /* tokens: vision tokens or context_length */
    int keep, recompute;

    /* per-block saved activations: one entry per block when kept without
     * recomputation, else a single entry reused by every block */
    block_saved *saved;
    /* block inputs: layers + 1 buffers when kept (the last one is the final
     * residual stream), else two used in turn */
    float **inputs;
    float **adapter_hidden; /* [N, K] per block after ReLU and dropout, always kept */
    float *adapter_out;     /* [N, C] the adapter output of the block being computed */

    /* forward scratch */
    float *ln;      /* [N, C] layernorm output; also the image pre-ln stream */
    float *attn_y;  /* [N, C] attention output before out_proj */
    float *tmp;     /* [N, C] out_proj / c_proj output */
    float *gelu;    /* [N, 4C] */
    float *patches; /* images only: [B, grid², 3·P²] */
    float *pooled, *pooled_ln, *pooled_mean, *pooled_rstd; /* [B, C], [B, C], [B], [B] */
    int *eot;                                              /* texts only: [B] end-of-text positions */

    /* backward scratch */
    float *d_x, *d_mid, *d_small; /* [N, C] */
    float *d_big1, *d_big2;       /* [N, 4C] */
    float *d_hidden1, *d_hidden2; /* [N, K] */
    float *d_pooled;              /* [B, C] */
    float *d_scores;              /* [2, T, T] attention backward scratch */

    /* the last forward */
    int have_forward;
    int batch, tokens, train;
    int pooled_last;     /* the last block ran on the pooled rows only */
    const int *pool_row; /* pooled token of every sample: NULL (token 0) or eot */
    long sample_offset;
    clip_dropout_key key;
} encoder_state;

struct clip_workspace {
    encoder_state visual, text;
    float *arena;
    int *eot_arena;
    size_t floats;
};

/* A bump allocator run twice: once with base NULL to count, once to hand
 * out pointers into the single allocation. */
typedef struct {
    float *base;
    size_t used;
} arena;

static float *take(arena *a, size_t n)
{
    float *p = a->base == NULL ? NULL : a->base + a->used;
    /* keep every buffer 64-byte aligned */
    a->used += (n + 15) & ~(size_t)15;
    return p;
}

static void layout_saved(arena *a, block_saved *s, size_t N, size_t B, size_t T, size_t C, size_t H, size_t K)
{
    s->ln_1_mean = take(a, N);
    s->ln_1_rstd = take(a, N);
    s->qkv = take(a, N * 3 * C);
    s->att = take(a, T * T > B * H * T ? T * T : B * H * T);
    s->x_mid = take(a, N * C);
    s->down = take(a, N * K);
    s->ln_2_mean = take(a, N);
    s->ln_2_rstd = take(a, N);
    s->fc = take(a, N * 4 * C);
}

static void layout_encoder(arena *a, encoder_state *e, const clip_config *c)
{
    if (!e->enabled)
        return;
    size_t B = (size_t)e->max_batch, T = (size_t)e->max_tokens, N = B * T;
    size_t C = (size_t)e->width, H = (size_t)e->heads, K = (size_t)e->bottleneck;
    int per_block = e->keep && !e->recompute;
    int saved_sets = per_block ? e->layers : 1;
    int input_count = e->keep ? e->layers + 1 : 2;

    for (int i = 0; i < saved_sets; i++)
        layout_saved(a, &e->saved[i], N, B, T, C, H, K);
    for (int i = 0; i < input_count; i++)
        e->inputs[i] = take(a, N * C);
    for (int i = 0; i < e->layers; i++)
        e->adapter_hidden[i] = take(a, N * K);
    e->adapter_out = take(a, N * C);

    e->ln = take(a, N * C);
    e->attn_y = take(a, N * C);
    e->tmp = take(a, N * C);
    /* the forward's QuickGELU output is consumed before a backward needs
     * its first [N, 4C] buffer, so kept workspaces share the two */
    e->gelu = e->keep ? NULL : take(a, N * 4 * C);
    if (e->modality == CLIP_VISUAL) {
        size_t grid = (size_t)clip_grid_size(c);
        e->patches = take(a, B * grid * grid * 3 * (size_t)c->patch_size * (size_t)c->patch_size);
    }
    e->pooled = take(a, B * C);
    e->pooled_ln = take(a, B * C);
    e->pooled_mean = take(a, B);
    e->pooled_rstd = take(a, B);

    if (e->keep) {
        e->d_x = take(a, N * C);
        e->d_mid = take(a, N * C);
        e->d_small = take(a, N * C);
        e->d_big1 = take(a, N * 4 * C);
        e->gelu = e->d_big1;
        e->d_big2 = take(a, N * 4 * C);
        e->d_hidden1 = take(a, N * K);
        e->d_hidden2 = take(a, N * K);
        e->d_pooled = take(a, B * C);
        e->d_scores = take(a, 2 * T * T);
    }
}

static int setup_encoder(encoder_state *e, const clip_config *c, clip_modality modality, int max_batch, int keep,
                         int recompute)
{
    memset(e, 0, sizeof *e);
    e->modality = modality;
    e->enabled = max_batch > 0;
    if (!e->enabled)
        return 0;
    int visual = modality == CLIP_VISUAL;
    e->layers = visual ? c->vision_layers : c->text_layers;
    e->width = visual ? c->vision_width : c->text_width;
    e->heads = visual ? c->vision_heads : c->text_heads;
    e->bottleneck = c->adapter_bottleneck;
    e->max_batch = max_batch;
    e->max_tokens = visual ? clip_vision_tokens(c) : c->context_length;
    e->keep = keep;
    e->recompute = keep && recompute;

    int saved_sets = e->keep && !e->recompute ? e->layers : 1;
    e->saved = dmnsp_calloc((size_t)saved_sets, sizeof *e->saved, "block activation pointers");
    e->inputs = dmnsp_calloc((size_t)e->layers + 1, sizeof *e->inputs, "block input pointers");
    e->adapter_hidden = dmnsp_calloc((size_t)e->layers, sizeof *e->adapter_hidden, "adapter hidden pointers");
    if (e->saved == NULL || e->inputs == NULL || e->adapter_hidden == NULL)
        return -1;
    return 0;
}

static void free_encoder(encoder_state *e)
{
    free(e->saved);
    free(e->inputs);
    free(e->adapter_hidden);
}

int clip_workspace_create(const clip_model *m, int max_images, int max_texts, int keep_for_backward,
                          int recompute_blocks, clip_workspace **out)
{
    *out = NULL;
    if (max_images < 0 || max_texts < 0 || (max_images == 0 && max_texts == 0))
        return dmnsp_fail("clip workspace: batch sizes %d images, %d texts are invalid (expected >= 0, not both 0)",
                          max_images, max_texts);
    clip_workspace *ws = dmnsp_calloc(1, sizeof *ws, "the CLIP workspace");
    if (ws == NULL)
        return -1;
    const clip_config *c = &m->config;
    if (setup_encoder(&ws->visual, c, CLIP_VISUAL, max_images, keep_for_backward, recompute_blocks) != 0 ||
        setup_encoder(&ws->text, c, CLIP_TEXT, max_texts, keep_for_backward, recompute_blocks) != 0) {
        clip_workspace_free(ws);
        return -1;
    }

    arena counter = {NULL, 0};
    layout_encoder(&counter, &ws->visual, c);
    layout_encoder(&counter, &ws->text, c);
    ws->floats = counter.used;
    ws->arena = aligned_alloc(64, ws->floats * sizeof(float));
    ws->eot_arena = dmnsp_calloc((size_t)max_texts + 1, sizeof(int), "end-of-text positions");
    if (ws->arena == NULL || ws->eot_arena == NULL) {
        size_t bytes = ws->floats * sizeof(float);
        clip_workspace_free(ws);
        return dmnsp_fail("clip workspace: out of memory allocating %zu bytes of activations for %d images and "
                          "%d texts",
                          bytes, max_images, max_texts);
    }
    arena filler = {ws->arena, 0};
    layout_encoder(&filler, &ws->visual, c);
    layout_encoder(&filler, &ws->text, c);
    ws->text.eot = ws->eot_arena;
    *out = ws;
    return 0;
}

void clip_workspace_free(clip_workspace *ws)
{
    if (ws == NULL)
        return;
    free_encoder(&ws->visual);
    free_encoder(&ws->text);
    free(ws->arena);
    free(ws->eot_arena);
    free(ws);
}

size_t clip_workspace_bytes(const clip_workspace *ws)
{
    return ws->floats * sizeof(float);
}

size_t clip_workspace_required_bytes(const clip_config *c, int max_images, int max_texts, int keep_for_backward,
                                     int recompute_blocks)
{
    if (max_images < 0 || max_texts < 0 || (max_images == 0 && max_texts == 0))
        return 0;
    encoder_state visual, text;
    memset(&visual, 0, sizeof visual);
    memset(&text, 0, sizeof text);
    size_t floats = 0;
    if (setup_encoder(&visual, c, CLIP_VISUAL, max_images, keep_for_backward, recompute_blocks) == 0 &&
        setup_encoder(&text, c, CLIP_TEXT, max_texts, keep_for_backward, recompute_blocks) == 0) {
        arena counter = {NULL, 0};
        layout_encoder(&counter, &visual, c);
        layout_encoder(&counter, &text, c);
        floats = counter.used;
    }
    free_encoder(&visual);
    free_encoder(&text);
    return floats * sizeof(float);
}

uint64_t clip_dropout_stream(clip_dropout_key key, clip_modality modality, int block)
{
    return ops_hash3(key.step, (uint64_t)modality, (uint64_t)block);
}

/* ---- one residual block ------------------------------------------------- */

static block_saved *saved_of(encoder_state *e, int block)
{
    return e->keep && !e->recompute ? &e->saved[block] : &e->saved[0];
}

static float *input_of(encoder_state *e, int block)
{
    return e->keep ? e->inputs[block] : e->inputs[block % 2];
}

static const clip_block_weights *weights_of(const clip_model *m, const encoder_state *e, int block)
{
    return e->modality == CLIP_VISUAL ? &m->visual_blocks[block] : &m->text_blocks[block];
}

/* Whether block BLOCK of the current forward runs on the pooled row of
 * every sample only: the last block, unless every token was asked for.
 * The features read nothing else from it. */
static int pooled_block(const encoder_state *e, int block)
{
    return e->pooled_last && block == e->layers - 1;
}

/* DST [B, C] = row TOKENS[b] (NULL: row 0) of sample b of SRC [B, T, C]. */
static void gather_rows(float *dst, const float *src, const int *tokens, int B, int T, int C)
{
    for (int b = 0; b < B; b++) {
        int row = tokens != NULL ? tokens[b] : 0;
        memcpy(dst + (size_t)b * C, src + ((size_t)b * T + row) * C, (size_t)C * sizeof(float));
    }
}

/* DST [B, T, C] row TOKENS[b] of sample b += SRC [B, C] row b. */
static void scatter_add_rows(float *dst, const float *src, const int *tokens, int B, int T, int C)
{
    for (int b = 0; b < B; b++) {
        float *d = dst + ((size_t)b * T + (tokens != NULL ? tokens[b] : 0)) * C;
        const float *r = src + (size_t)b * C;
        for (int i = 0; i < C; i++)
            d[i] += r[i];
    }
}

/* Computes the adapter output A [ROWS, C] = scale · (Z up_wᵀ + up_b) from
 * the hidden activations Z [ROWS, K] of an adapter. */
static void adapter_output_from_hidden(const clip_config *c, const clip_adapter_view *adapter, const float *z,
                                       int rows, float *a)
{
    linear_forward(a, z, adapter->up_w, adapter->up_b, rows, adapter->bottleneck, adapter->width);
    float scale = c->adapter_scale;
    size_t count = (size_t)rows * adapter->width;
#pragma omp parallel for simd schedule(static) if (count >= 32768)
    for (size_t i = 0; i < count; i++)
        a[i] *= scale;
}

/* The adapter and MLP half of block BLOCK, on the stream after attention
 * that s->x_mid holds (every token, or the pooled rows):
 *     a = scale · up(dropout(relu(down(x_mid))))
 *     x_out = x_mid + c_proj(quickgelu(c_fc(ln_2(x_mid)))) + a */
static void block_forward_tail(const clip_model *m, encoder_state *e, int block, float *x_out)
{
    const clip_config *c = &m->config;
    const clip_block_weights *w = weights_of(m, e, block);
    clip_adapter_view adapter;
    clip_adapter_block(c, m->adapters, e->modality, block, &adapter);

    int pooled = pooled_block(e, block);
    int B = e->batch, T = e->tokens, N = pooled ? B : B * T, C = e->width, K = e->bottleneck;
    block_saved *s = saved_of(e, block);
    float *a = e->adapter_out;
    float *z = e->adapter_hidden[block];

    linear_forward(s->down, s->x_mid, adapter.down_w, adapter.down_b, N, C, K);
    relu_forward(z, s->down, (size_t)N * K);
    if (e->train) {
        uint64_t stream = clip_dropout_stream(e->key, e->modality, block);
        if (pooled)
            dropout_tokens_forward(z, z, B, e->pool_row, K, c->adapter_dropout, e->key.seed, stream,
                                   e->sample_offset, e->max_tokens);
        else
            dropout_forward(z, z, B, T, K, c->adapter_dropout, e->key.seed, stream, e->sample_offset,
                            e->max_tokens);
    }
    adapter_output_from_hidden(c, &adapter, z, N, a);

    size_t NC = (size_t)N * C;
    layernorm_forward(e->ln, s->ln_2_mean, s->ln_2_rstd, s->x_mid, w->ln_2_w, w->ln_2_b, N, C);
    linear_forward(s->fc, e->ln, w->c_fc_w, w->c_fc_b, N, C, 4 * C);
    quickgelu_forward(e->gelu, s->fc, (size_t)N * 4 * C);
    linear_forward(e->tmp, e->gelu, w->c_proj_w, w->c_proj_b, N, 4 * C, C);
#pragma omp parallel for simd schedule(static) if (NC >= 32768)
    for (size_t i = 0; i < NC; i++)
        x_out[i] = s->x_mid[i] + e->tmp[i] + a[i];
}

/* Forward of block BLOCK on e->batch samples of e->tokens tokens: reads the
 * block input, writes X_OUT, the adapter output and the saved activations.
 * X_OUT is [N, C], or [B, C] (the pooled rows) in a pooled block, which
 * computes keys and values for every token and everything else for the
 * pooled rows only. Its saved qkv then contains k and v [N, 2C] followed by
 * the pooled queries [B, C], and att the [B, H, T] probabilities. */
static void block_forward(const clip_model *m, encoder_state *e, int block, float *x_out)
{
    const clip_block_weights *w = weights_of(m, e, block);
    int B = e->batch, T = e->tokens, N = B * T, C = e->width, H = e->heads;
    int causal = e->modality == CLIP_TEXT;
    block_saved *s = saved_of(e, block);
    const float *x = input_of(e, block);

    /* x_mid = x + out_proj(attn(ln_1(x))) */
    layernorm_forward(e->ln, s->ln_1_mean, s->ln_1_rstd, x, w->ln_1_w, w->ln_1_b, N, C);
    if (pooled_block(e, block)) {
        float *kv = s->qkv, *q = s->qkv + (size_t)N * 2 * C;
        linear_forward(kv, e->ln, w->in_proj_w + (size_t)C * C, w->in_proj_b + C, N, C, 2 * C);
        gather_rows(e->attn_y, e->ln, e->pool_row, B, T, C);
        linear_forward(q, e->attn_y, w->in_proj_w, w->in_proj_b, B, C, C);
        attention_query_forward(e->attn_y, s->att, q, kv, e->pool_row, B, T, C, H, causal);
        linear_forward(e->tmp, e->attn_y, w->out_proj_w, w->out_proj_b, B, C, C);
        gather_rows(s->x_mid, x, e->pool_row, B, T, C);
        residual_forward(s->x_mid, s->x_mid, e->tmp, (size_t)B * C);
    } else {
        linear_forward(s->qkv, e->ln, w->in_proj_w, w->in_proj_b, N, C, 3 * C);
        attention_forward(e->attn_y, s->att, s->qkv, B, T, C, H, causal);
        linear_forward(e->tmp, e->attn_y, w->out_proj_w, w->out_proj_b, N, C, C);
        residual_forward(s->x_mid, x, e->tmp, (size_t)N * C);
    }
    block_forward_tail(m, e, block, x_out);
}

/* Backward of the adapter and MLP half of block BLOCK: e->d_x holds the
 * gradient of the block output (rows as in the forward). Adds the adapter
 * gradients into GRADS and, when NEED_MID, leaves the gradient of the
 * stream after attention in e->d_mid. */
static void block_backward_tail(const clip_model *m, encoder_state *e, int block, int need_mid, float *grads)
{
    const clip_config *c = &m->config;
    const clip_block_weights *w = weights_of(m, e, block);
    clip_adapter_view adapter, d_adapter;
    clip_adapter_block(c, m->adapters, e->modality, block, &adapter);
    clip_adapter_block(c, grads, e->modality, block, &d_adapter);

    int pooled = pooled_block(e, block);
    int B = e->batch, T = e->tokens, N = pooled ? B : B * T, C = e->width, K = e->bottleneck;
    size_t NC = (size_t)N * C, NK = (size_t)N * K, N4C = 4 * NC;
    block_saved *s = saved_of(e, block);

    if (need_mid) {
        /* residual: the stream after attention gets the output gradient */
        memcpy(e->d_mid, e->d_x, NC * sizeof(float));

        /* MLP branch, frozen weights: gradients to the input only */
        memset(e->d_big1, 0, N4C * sizeof(float));
        linear_backward(e->d_big1, NULL, NULL, e->d_x, NULL, w->c_proj_w, N, 4 * C, C);
        memset(e->d_big2, 0, N4C * sizeof(float));
        quickgelu_backward(e->d_big2, e->d_big1, s->fc, N4C);
        memset(e->d_small, 0, NC * sizeof(float));
        linear_backward(e->d_small, NULL, NULL, e->d_big2, NULL, w->c_fc_w, N, C, 4 * C);
        layernorm_backward(e->d_mid, e->d_small, s->x_mid, w->ln_2_w, s->ln_2_mean, s->ln_2_rstd, N, C);
    }

    /* Adapter branch: the up and down projections with weight gradients,
     * from the hidden activation the forward kept (ReLU, then dropout). */
    float scale = c->adapter_scale;
#pragma omp parallel for simd schedule(static) if (NC >= 32768)
    for (size_t i = 0; i < NC; i++)
        e->d_small[i] = scale * e->d_x[i];
    memset(e->d_hidden1, 0, NK * sizeof(float));
    linear_backward(e->d_hidden1, d_adapter.up_w, d_adapter.up_b, e->d_small, e->adapter_hidden[block], adapter.up_w,
                    N, K, C);
    memset(e->d_hidden2, 0, NK * sizeof(float));
    uint64_t stream = clip_dropout_stream(e->key, e->modality, block);
    if (!e->train)
        memcpy(e->d_hidden2, e->d_hidden1, NK * sizeof(float));
    else if (pooled)
        dropout_tokens_backward(e->d_hidden2, e->d_hidden1, B, e->pool_row, K, c->adapter_dropout, e->key.seed, stream,
                                e->sample_offset, e->max_tokens);
    else
        dropout_backward(e->d_hidden2, e->d_hidden1, B, T, K, c->adapter_dropout, e->key.seed, stream,
                         e->sample_offset, e->max_tokens);
    memset(e->d_hidden1, 0, NK * sizeof(float));
    relu_backward(e->d_hidden1, e->d_hidden2, s->down, NK);
    linear_backward(need_mid ? e->d_mid : NULL, d_adapter.down_w, d_adapter.down_b, e->d_hidden1, s->x_mid,
                    adapter.down_w, N, C, K);
}

/* Backward of block BLOCK: e->d_x contains the gradient of the block output
 * on entry ([B, C] in a pooled block) and the gradient of the block input
 * [N, C] on return (not computed for block 0, whose input needs none).
 * Adds the adapter gradients into GRADS. */
static void block_backward(const clip_model *m, encoder_state *e, int block, float *grads)
{
    const clip_block_weights *w = weights_of(m, e, block);
    int B = e->batch, T = e->tokens, N = B * T, C = e->width, H = e->heads;
    int causal = e->modality == CLIP_TEXT;
    size_t NC = (size_t)N * C;
    block_saved *s = saved_of(e, block);
    const float *x = input_of(e, block);

    /* Recompute the block's activations from its saved input. The output
     * goes to scratch; the adapter output and hidden activations are
     * rewritten with equal values. */
    if (e->recompute)
        block_forward(m, e, block, e->d_big2);

    /* The first block's adapter weights need only the gradient of the
     * block output, so the gradient of its stream after attention (MLP
     * branch, adapter input) is computed for later blocks only. */
    int need_mid = block > 0;
    block_backward_tail(m, e, block, need_mid, grads);
    if (!need_mid)
        return;

    /* attention branch, frozen weights; the residual passes d_mid through */
    if (pooled_block(e, block)) {
        const float *kv = s->qkv, *q = s->qkv + NC * 2;
        float *d_q = e->d_pooled, *d_kv = e->d_big1;
        memset(e->d_small, 0, (size_t)B * C * sizeof(float));
        linear_backward(e->d_small, NULL, NULL, e->d_mid, NULL, w->out_proj_w, B, C, C);
        memset(d_q, 0, (size_t)B * C * sizeof(float));
        memset(d_kv, 0, 2 * NC * sizeof(float));
        attention_query_backward(d_q, d_kv, e->d_scores, e->d_small, s->att, q, kv, e->pool_row, B, T, C, H, causal);
        /* gradient of ln_1's output: every token through k and v, the
         * pooled rows through q as well */
        memset(e->d_small, 0, NC * sizeof(float));
        linear_backward(e->d_small, NULL, NULL, d_kv, NULL, w->in_proj_w + (size_t)C * C, N, C, 2 * C);
        memset(e->tmp, 0, (size_t)B * C * sizeof(float));
        linear_backward(e->tmp, NULL, NULL, d_q, NULL, w->in_proj_w, B, C, C);
        scatter_add_rows(e->d_small, e->tmp, e->pool_row, B, T, C);
        memset(e->d_x, 0, NC * sizeof(float));
        scatter_add_rows(e->d_x, e->d_mid, e->pool_row, B, T, C);
    } else {
        memcpy(e->d_x, e->d_mid, NC * sizeof(float));
        memset(e->d_small, 0, NC * sizeof(float));
        linear_backward(e->d_small, NULL, NULL, e->d_mid, NULL, w->out_proj_w, N, C, C);
        memset(e->d_big1, 0, 3 * NC * sizeof(float));
        attention_backward(e->d_big1, e->d_scores, e->d_small, s->qkv, B, T, C, H, causal);
        memset(e->d_small, 0, NC * sizeof(float));
        linear_backward(e->d_small, NULL, NULL, e->d_big1, NULL, w->in_proj_w, N, C, 3 * C);
    }
    layernorm_backward(e->d_x, e->d_small, x, w->ln_1_w, s->ln_1_mean, s->ln_1_rstd, N, C);
}

/* ---- shared encoder steps ----------------------------------------------- */

/* Runs the blocks over inputs[0] and pools row e->pool_row[b] (or token 0
 * when NULL) of every sample through the final layernorm and projection. */
static void encoder_forward_blocks(const clip_model *m, encoder_state *e, const float *ln_w, const float *ln_b,
                                   const float *proj, float *features)
{
    for (int block = 0; block < e->layers; block++) {
        float *x_out = e->keep ? e->inputs[block + 1] : e->inputs[(block + 1) % 2];
        block_forward(m, e, block, x_out);
    }
    const float *x_final = input_of(e, e->layers);

    int B = e->batch, C = e->width;
    if (e->pooled_last)
        memcpy(e->pooled, x_final, (size_t)B * C * sizeof(float));
    else
        gather_rows(e->pooled, x_final, e->pool_row, B, e->tokens, C);
    layernorm_forward(e->pooled_ln, e->pooled_mean, e->pooled_rstd, e->pooled, ln_w, ln_b, B, C);
    projection_forward(features, e->pooled_ln, proj, B, C, m->config.embed_dim);
}

static int encoder_backward(const clip_model *m, encoder_state *e, const float *ln_w, const float *proj,
                            const float *d_features, float *grads, const char *what)
{
    if (!e->enabled)
        return dmnsp_fail("clip backward (%s): the workspace was created without room for %s", what, what);
    if (!e->keep)
        return dmnsp_fail("clip backward (%s): the workspace was created without keep_for_backward", what);
    if (!e->have_forward)
        return dmnsp_fail("clip backward (%s): no forward pass to differentiate", what);

    int B = e->batch, T = e->tokens, C = e->width;
    size_t N = (size_t)B * T;

    /* through the projection and the final layernorm of the pooled rows */
    memset(e->d_small, 0, (size_t)B * C * sizeof(float));
    projection_backward(e->d_small, d_features, proj, B, C, m->config.embed_dim);
    memset(e->d_pooled, 0, (size_t)B * C * sizeof(float));
    layernorm_backward(e->d_pooled, e->d_small, e->pooled, ln_w, e->pooled_mean, e->pooled_rstd, B, C);

    /* only the pooled rows of the last residual stream get a gradient */
    if (e->pooled_last) {
        memcpy(e->d_x, e->d_pooled, (size_t)B * C * sizeof(float));
    } else {
        memset(e->d_x, 0, N * C * sizeof(float));
        scatter_add_rows(e->d_x, e->d_pooled, e->pool_row, B, T, C);
    }

    for (int block = e->layers - 1; block >= 0; block--)
        block_backward(m, e, block, grads);
    return 0;
}

/* ---- image encoder ------------------------------------------------------ */

int clip_encode_images(clip_model *m, clip_workspace *ws, const float *images, int n, long sample_offset, int flags,
                       clip_dropout_key key, float *features)
{
    encoder_state *e = &ws->visual;
    if (!e->enabled)
        return dmnsp_fail("clip image encoder: the workspace was created without room for images");
    if (n <= 0 || n > e->max_batch)
        return dmnsp_fail("clip image encoder: batch of %d images does not fit the workspace (expected 1..%d)", n,
                          e->max_batch);

    const clip_config *c = &m->config;
    int C = e->width, T = e->max_tokens, P = c->patch_size, grid = clip_grid_size(c);
    int patches = grid * grid, features_per_patch = 3 * P * P;
    e->batch = n;
    e->tokens = T;
    e->train = (flags & CLIP_ENCODE_TRAIN) != 0;
    e->pooled_last = (flags & CLIP_ENCODE_ALL_TOKENS) == 0;
    e->pool_row = NULL;
    e->sample_offset = sample_offset;
    e->key = key;
    e->have_forward = 0;

    /* patch embedding as one GEMM over unfolded patches */
    patch_unfold(e->patches, images, n, c->image_resolution, P);
    linear_forward(e->tmp, e->patches, m->conv1, NULL, n * patches, features_per_patch, C);

    /* class token first, then the patches, plus positional embeddings */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++) {
        for (int t = 0; t < T; t++) {
            float *dst = e->attn_y + ((size_t)b * T + t) * C;
            const float *src = t == 0 ? m->class_embedding : e->tmp + ((size_t)b * patches + t - 1) * C;
            const float *pos = m->visual_pos + (size_t)t * C;
            for (int i = 0; i < C; i++)
                dst[i] = src[i] + pos[i];
        }
    }
    layernorm_forward(e->inputs[0], NULL, NULL, e->attn_y, m->ln_pre_w, m->ln_pre_b, n * T, C);

    encoder_forward_blocks(m, e, m->ln_post_w, m->ln_post_b, m->visual_proj, features);
    e->have_forward = 1;
    return 0;
}

int clip_backward_images(clip_model *m, clip_workspace *ws, const float *d_features, float *grads)
{
    return encoder_backward(m, &ws->visual, m->ln_post_w, m->visual_proj, d_features, grads, "images");
}

/* ---- text encoder ------------------------------------------------------- */

int clip_encode_texts(clip_model *m, clip_workspace *ws, const int32_t *tokens, int n, int flags,
                      clip_dropout_key key, float *features)
{
    return clip_encode_texts_at(m, ws, tokens, n, 0, flags, key, features);
}

int clip_encode_texts_at(clip_model *m, clip_workspace *ws, const int32_t *tokens, int n, long sample_offset,
                         int flags, clip_dropout_key key, float *features)
{
    encoder_state *e = &ws->text;
    if (!e->enabled)
        return dmnsp_fail("clip text encoder: the workspace was created without room for texts");
    if (n <= 0 || n > e->max_batch)
        return dmnsp_fail("clip text encoder: batch of %d texts does not fit the workspace (expected 1..%d)", n,
                          e->max_batch);

    const clip_config *c = &m->config;
    int L = c->context_length, C = e->width;
    e->have_forward = 0;

    /* end-of-text = first position of the row's largest id; the batch is
     * cut after the last one */
    int T = 0;
    for (int b = 0; b < n; b++) {
        const int32_t *row = tokens + (size_t)b * L;
        int eot = 0;
        for (int t = 0; t < L; t++) {
            if (row[t] < 0 || row[t] >= c->vocab_size)
                return dmnsp_fail("clip text encoder: token id %d at row %d, position %d is out of range "
                                  "(vocabulary size %d)",
                                  (int)row[t], b, t, c->vocab_size);
            if (row[t] > row[eot])
                eot = t;
        }
        e->eot[b] = eot;
        if (eot + 1 > T)
            T = eot + 1;
    }
    e->batch = n;
    e->tokens = T;
    e->train = (flags & CLIP_ENCODE_TRAIN) != 0;
    e->pooled_last = (flags & CLIP_ENCODE_ALL_TOKENS) == 0;
    e->pool_row = e->eot;
    e->sample_offset = sample_offset;
    e->key = key;

    float *x = e->inputs[0];
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++) {
        for (int t = 0; t < T; t++) {
            const float *emb = m->token_embedding + (size_t)tokens[(size_t)b * L + t] * C;
            const float *pos = m->text_pos + (size_t)t * C;
            float *dst = x + ((size_t)b * T + t) * C;
            for (int i = 0; i < C; i++)
                dst[i] = emb[i] + pos[i];
        }
    }

    encoder_forward_blocks(m, e, m->ln_final_w, m->ln_final_b, m->text_proj, features);
    e->have_forward = 1;
    return 0;
}

int clip_backward_texts(clip_model *m, clip_workspace *ws, const float *d_features, float *grads)
{
    return encoder_backward(m, &ws->text, m->ln_final_w, m->text_proj, d_features, grads, "texts");
}

/* ---- adapter outputs ---------------------------------------------------- */

const float *clip_workspace_adapter_hidden(const clip_workspace *ws, clip_modality modality, int block, int *rows)
{
    const encoder_state *e = modality == CLIP_VISUAL ? &ws->visual : &ws->text;
    *rows = 0;
    if (!e->enabled || !e->have_forward || block < 0 || block >= e->layers || pooled_block(e, block))
        return NULL;
    *rows = e->batch * e->tokens;
    return e->adapter_hidden[block];
}

const float *clip_workspace_adapter_output(const clip_model *m, clip_workspace *ws, clip_modality modality, int block,
                                           int *rows)
{
    encoder_state *e = modality == CLIP_VISUAL ? &ws->visual : &ws->text;
    const float *z = clip_workspace_adapter_hidden(ws, modality, block, rows);
    if (z == NULL)
        return NULL;
    clip_adapter_view adapter;
    clip_adapter_block(&m->config, m->adapters, modality, block, &adapter);
    adapter_output_from_hidden(&m->config, &adapter, z, *rows, e->adapter_out);
    return e->adapter_out;
}

const float *clip_workspace_visual_adapter_output(const clip_model *m, clip_workspace *ws, int block, int *rows)
{
    return clip_workspace_adapter_output(m, ws, CLIP_VISUAL, block, rows);
}

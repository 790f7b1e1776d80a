/* Whole-model checks on small random models built in C: adapter
 * gradients against central finite differences of the float forward,
 * fresh adapters computing plain CLIP, and the random initialisation. */
#include "dmnsp/clip.h"
#include "dmnsp/ops.h"
#include "test_util.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Two blocks per encoder, two heads, 17 image tokens, context 12. */
static clip_config small_config(void)
{
    clip_config c = {
        .image_resolution = 16, .patch_size = 4, .vision_width = 16, .vision_layers = 2, .vision_heads = 2,
        .context_length = 12, .vocab_size = 40, .text_width = 16, .text_layers = 2, .text_heads = 2,
        .embed_dim = 8, .adapter_bottleneck = 4, .adapter_scale = 0.5f, .adapter_dropout = 0.2f,
    };
    return c;
}

/* Uniform values in [-scale, scale] from the counter-based hash. */
static void fill_uniform(float *x, size_t n, uint64_t seed, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = ((float)(ops_hash3(seed, 99, i) >> 40) * 0x1p-24f * 2.0f - 1.0f) * scale;
}

typedef struct {
    clip_model *model;
    clip_workspace *ws;
    const clip_config *config;
    float *images, *r_image, *r_text, *img, *txt;
    int32_t tokens[3 * 12];
    int n_images, n_texts, flags; /* encode flags */
    clip_dropout_key key;
} setup;

/* The loss sum(image_features · r_image) + sum(text_features · r_text),
 * accumulated in double. */
static double loss(setup *s)
{
    int E = s->config->embed_dim;
    CHECK_OK(clip_encode_images(s->model, s->ws, s->images, s->n_images, 3, s->flags, s->key, s->img));
    CHECK_OK(clip_encode_texts(s->model, s->ws, s->tokens, s->n_texts, s->flags, s->key, s->txt));
    double total = 0;
    for (int i = 0; i < s->n_images * E; i++)
        total += (double)s->img[i] * s->r_image[i];
    for (int i = 0; i < s->n_texts * E; i++)
        total += (double)s->txt[i] * s->r_text[i];
    return total;
}

static void init_setup(setup *s)
{
    clip_config c = small_config();
    memset(s, 0, sizeof *s);
    CHECK_OK(clip_model_create(&c, &s->model));
    s->config = clip_model_config(s->model);
    CHECK_OK(clip_model_init_random(s->model, 5));
    /* non-zero adapters everywhere, so every gradient path is live */
    fill_uniform(clip_model_adapters(s->model), clip_adapter_count(s->config), 17, 0.4f);
    s->n_images = 3;
    s->n_texts = 3;
    CHECK_OK(clip_workspace_create(s->model, s->n_images, s->n_texts, 1, 0, &s->ws));

    int E = c.embed_dim, R = c.image_resolution;
    s->images = malloc(sizeof(float) * s->n_images * 3 * R * R);
    s->r_image = malloc(sizeof(float) * s->n_images * E);
    s->r_text = malloc(sizeof(float) * s->n_texts * E);
    s->img = malloc(sizeof(float) * s->n_images * E);
    s->txt = malloc(sizeof(float) * s->n_texts * E);
    fill_uniform(s->images, (size_t)s->n_images * 3 * R * R, 1, 1.5f);
    fill_uniform(s->r_image, (size_t)s->n_images * E, 2, 1.0f);
    fill_uniform(s->r_text, (size_t)s->n_texts * E, 3, 1.0f);

    /* rows: SOT, body, EOT (the largest id), padding */
    int eot_positions[3] = {3, 8, 5};
    memset(s->tokens, 0, sizeof s->tokens);
    for (int row = 0; row < 3; row++) {
        int32_t *t = s->tokens + row * c.context_length;
        t[0] = c.vocab_size - 2;
        for (int i = 1; i < eot_positions[row]; i++)
            t[i] = 1 + (row * 7 + i * 5) % (c.vocab_size - 3);
        t[eot_positions[row]] = c.vocab_size - 1;
    }
    s->key.seed = 11;
    s->key.step = 2;
}

static void free_setup(setup *s)
{
    clip_workspace_free(s->ws);
    clip_model_free(s->model);
    free(s->images), free(s->r_image), free(s->r_text), free(s->img), free(s->txt);
}

/* Checks a few adapter gradients of every tensor of every block: the
 * largest-magnitude entries, where float finite differences are reliable. */
static void test_gradients_match_finite_differences(int flags)
{
    int train = (flags & CLIP_ENCODE_TRAIN) != 0;
    setup s;
    init_setup(&s);
    s.flags = flags;
    size_t count = clip_adapter_count(s.config);
    float *grads = calloc(count, sizeof(float));
    loss(&s);
    CHECK_OK(clip_backward_images(s.model, s.ws, s.r_image, grads));
    CHECK_OK(clip_backward_texts(s.model, s.ws, s.r_text, grads));

    float *params = clip_model_adapters(s.model);
    /* Small enough that no ReLU input crosses 0 (1e-2 moved a text bias
     * over a kink), large enough for float rounding of the loss. */
    const float eps = 3e-3f;
    int checked = 0;
    double worst = 0;
    for (int modality = 0; modality < 2; modality++) {
        for (int block = 0; block < 2; block++) {
            clip_adapter_view view;
            clip_adapter_block(s.config, params, (clip_modality)modality, block, &view);
            struct {
                float *tensor;
                size_t n;
            } tensors[4] = {
                {view.down_w, (size_t)view.bottleneck * view.width},
                {view.down_b, (size_t)view.bottleneck},
                {view.up_w, (size_t)view.width * view.bottleneck},
                {view.up_b, (size_t)view.width},
            };
            for (int t = 0; t < 4; t++) {
                /* the two largest gradients of this tensor */
                size_t base = (size_t)(tensors[t].tensor - params);
                size_t best[2] = {base, base};
                for (size_t i = base; i < base + tensors[t].n; i++) {
                    if (fabsf(grads[i]) > fabsf(grads[best[0]])) {
                        best[1] = best[0];
                        best[0] = i;
                    } else if (i != best[0] && fabsf(grads[i]) > fabsf(grads[best[1]])) {
                        best[1] = i;
                    }
                }
                for (int k = 0; k < 2; k++) {
                    size_t i = best[k];
                    float saved = params[i];
                    params[i] = saved + eps;
                    double plus = loss(&s);
                    params[i] = saved - eps;
                    double minus = loss(&s);
                    params[i] = saved;
                    double fd = (plus - minus) / (2.0 * eps);
                    double error = fabs(fd - grads[i]) / fmax(fabs(fd), 1e-2);
                    worst = fmax(worst, error);
                    checked++;
                    if (!(error < 2e-2))
                        test_report_failure(__FILE__, __LINE__,
                                            "%s adapter gradient %zu (modality %d, block %d, tensor %d): "
                                            "backward %.6g, finite difference %.6g",
                                            train ? "train" : "eval", i, modality, block, t, grads[i], fd);
                }
            }
        }
    }
    printf("%s, %s: %d adapter gradients checked, max relative error %.3g\n", train ? "train mode" : "eval mode",
           (flags & CLIP_ENCODE_ALL_TOKENS) ? "all tokens" : "pooled last block",
           checked, worst);
    free(grads);
    free_setup(&s);
}

/* Each text row encoded alone (cut at its own end-of-text) gives the same
 * features as the batch cut at the longest row, in eval and dropout mode,
 * and so does each image alone, both at their sample offsets. */
static void test_single_rows_match_batch(void)
{
    setup s;
    init_setup(&s);
    int E = s.config->embed_dim, L = s.config->context_length, R = s.config->image_resolution;
    float alone[8];
    for (int train = 0; train <= 1; train++) {
        s.flags = train;
        loss(&s);
        for (int row = 0; row < s.n_texts; row++) {
            CHECK_OK(clip_encode_texts_at(s.model, s.ws, s.tokens + row * L, 1, row, train, s.key, alone));
            char name[96];
            snprintf(name, sizeof name, "text row %d alone vs batch (%s)", row, train ? "train" : "eval");
            test_compare_floats(name, alone, s.txt + row * E, E, 1e-5, 0);
        }
        for (int image = 0; image < s.n_images; image++) {
            CHECK_OK(clip_encode_images(s.model, s.ws, s.images + (size_t)image * 3 * R * R, 1, 3 + image, train,
                                        s.key, alone));
            char name[96];
            snprintf(name, sizeof name, "image %d alone vs batch (%s)", image, train ? "train" : "eval");
            test_compare_floats(name, alone, s.img + image * E, E, 1e-5, 0);
        }
    }
    free_setup(&s);
}

/* Fresh adapters (up weights and biases zero) leave CLIP unchanged. */
static void test_fresh_adapters_compute_plain_clip(void)
{
    setup s;
    init_setup(&s);
    int E = s.config->embed_dim;
    CHECK_OK(clip_model_init_adapters(s.model, 3));
    s.flags = CLIP_ENCODE_ALL_TOKENS;
    loss(&s);
    float *with_fresh = malloc(sizeof(float) * s.n_images * E);
    memcpy(with_fresh, s.img, sizeof(float) * s.n_images * E);
    for (int block = 0; block < s.config->vision_layers; block++) {
        int rows = 0;
        const float *a = clip_workspace_visual_adapter_output(s.model, s.ws, block, &rows);
        CHECK_EQ_INT(rows, s.n_images * clip_vision_tokens(s.config));
        double largest = 0;
        for (int i = 0; a != NULL && i < rows * s.config->vision_width; i++)
            largest = fmax(largest, fabs(a[i]));
        CHECK(largest == 0.0);
    }

    /* down weights within ±1/sqrt(width), not all zero */
    clip_adapter_view view;
    clip_adapter_block(s.config, clip_model_adapters(s.model), CLIP_TEXT, 1, &view);
    float bound = 1.0f / sqrtf((float)view.width), largest = 0;
    for (int i = 0; i < view.bottleneck * view.width; i++)
        largest = fmaxf(largest, fabsf(view.down_w[i]));
    CHECK(largest > 0.5f * bound && largest <= bound);

    memset(clip_model_adapters(s.model), 0, clip_adapter_count(s.config) * sizeof(float));
    loss(&s);
    test_compare_floats("fresh adapters vs no adapters", with_fresh, s.img, (size_t)s.n_images * E, 0, 0);
    free(with_fresh);
    free_setup(&s);
}

static void test_random_init(void)
{
    clip_config c = small_config();
    clip_model *a = NULL, *b = NULL;
    CHECK_OK(clip_model_create(&c, &a));
    CHECK_OK(clip_model_create(&c, &b));
    omp_set_num_threads(1);
    CHECK_OK(clip_model_init_random(a, 42));
    omp_set_num_threads(2);
    CHECK_OK(clip_model_init_random(b, 42));
    size_t n = clip_frozen_count(&c);
    test_compare_floats("random init with 1 and 2 threads", clip_model_frozen(a), clip_model_frozen(b), n, 0, 0);
    CHECK_NEAR(clip_model_logit_scale(a), log(100.0), 1e-6);

    clip_tensor_info *table = NULL;
    int count = 0;
    CHECK_OK(clip_tensor_table(&c, &table, &count));
    int token = clip_tensor_find(table, count, "token_embedding.weight");
    int ln = clip_tensor_find(table, count, "transformer.resblocks.1.ln_2.weight");
    int bias = clip_tensor_find(table, count, "visual.transformer.resblocks.0.mlp.c_fc.bias");
    CHECK(token >= 0 && ln >= 0 && bias >= 0);
    if (token >= 0 && ln >= 0 && bias >= 0) {
        const float *emb = clip_model_frozen(a) + table[token].offset;
        double sum2 = 0;
        for (size_t i = 0; i < table[token].count; i++)
            sum2 += (double)emb[i] * emb[i];
        CHECK_NEAR(sqrt(sum2 / table[token].count), 0.02, 0.002);
        CHECK(clip_model_frozen(a)[table[ln].offset] == 1.0f);
        CHECK(clip_model_frozen(a)[table[bias].offset] == 0.0f);
    }
    free(table);
    clip_model_free(a);
    clip_model_free(b);
}

/* The tiny preset runs end to end with finite features and gradients. */
static void test_tiny_preset_runs(void)
{
    clip_config c;
    CHECK_OK(clip_preset("tiny", &c));
    clip_model *m = NULL;
    clip_workspace *ws = NULL;
    CHECK_OK(clip_model_create(&c, &m));
    if (m == NULL)
        return;
    CHECK_OK(clip_model_init_random(m, 1));
    CHECK_OK(clip_model_init_adapters(m, 2));
    CHECK_OK(clip_workspace_create(m, 2, 2, 1, 1, &ws));
    int R = c.image_resolution, E = c.embed_dim;
    float *images = malloc(sizeof(float) * 2 * 3 * R * R), img[2 * 64], d[2 * 64];
    fill_uniform(images, (size_t)2 * 3 * R * R, 4, 1.0f);
    fill_uniform(d, (size_t)2 * E, 5, 1.0f);
    int32_t tokens[2 * 77] = {0};
    tokens[0] = 512, tokens[1] = 100, tokens[2] = 513;
    tokens[77] = 512, tokens[78] = 513;
    float *grads = calloc(clip_adapter_count(&c), sizeof(float));
    clip_dropout_key key = {1, 1};
    CHECK_OK(clip_encode_images(m, ws, images, 2, 0, 1, key, img));
    CHECK_OK(clip_backward_images(m, ws, d, grads));
    CHECK_OK(clip_encode_texts(m, ws, tokens, 2, 1, key, img));
    CHECK_OK(clip_backward_texts(m, ws, d, grads));
    int finite = 1, nonzero = 0;
    for (size_t i = 0; i < clip_adapter_count(&c); i++) {
        finite &= isfinite(grads[i]) != 0;
        nonzero += grads[i] != 0.0f;
    }
    CHECK(finite);
    CHECK(nonzero > 0);
    free(images), free(grads);
    clip_workspace_free(ws);
    clip_model_free(m);
}

int main(void)
{
    test_gradients_match_finite_differences(0);
    test_gradients_match_finite_differences(CLIP_ENCODE_TRAIN);
    test_gradients_match_finite_differences(CLIP_ENCODE_ALL_TOKENS);
    test_gradients_match_finite_differences(CLIP_ENCODE_TRAIN | CLIP_ENCODE_ALL_TOKENS);
    test_single_rows_match_batch();
    test_fresh_adapters_compute_plain_clip();
    test_random_init();
    test_tiny_preset_runs();
    return test_finish("test_clip_gradcheck");
}

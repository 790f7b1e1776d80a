/* clip: model creation, parameter access and random initialisation (see
 * include/dmnsp/clip.h). The encoders are in clip_encoder.c. */
#include "clip_internal.h"

#include "dmnsp/error.h"
#include "dmnsp/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- creation ----------------------------------------------------------- */

static const float *find_tensor(const clip_model *m, const clip_tensor_info *table, int count, const char *name)
{
    int index = clip_tensor_find(table, count, name);
    /* The table is built from the same config, so a miss is a bug in the
     * layout code rather than bad input. */
    return index < 0 ? NULL : m->frozen + table[index].offset;
}

static int resolve_blocks(clip_model *m, const clip_tensor_info *table, int count, const char *prefix, int layers,
                          clip_block_weights *blocks)
{
    char name[128];
#define RESOLVE(field, suffix)                                                                     \
    do {                                                                                           \
        snprintf(name, sizeof name, "%sresblocks.%d.%s", prefix, i, suffix);                       \
        blocks[i].field = find_tensor(m, table, count, name);                                      \
        if (blocks[i].field == NULL)                                                               \
            return dmnsp_fail("clip: tensor %s is missing from the parameter layout", name);       \
    } while (0)
    for (int i = 0; i < layers; i++) {
        RESOLVE(ln_1_w, "ln_1.weight");
        RESOLVE(ln_1_b, "ln_1.bias");
        RESOLVE(in_proj_w, "attn.in_proj_weight");
        RESOLVE(in_proj_b, "attn.in_proj_bias");
        RESOLVE(out_proj_w, "attn.out_proj.weight");
        RESOLVE(out_proj_b, "attn.out_proj.bias");
        RESOLVE(ln_2_w, "ln_2.weight");
        RESOLVE(ln_2_b, "ln_2.bias");
        RESOLVE(c_fc_w, "mlp.c_fc.weight");
        RESOLVE(c_fc_b, "mlp.c_fc.bias");
        RESOLVE(c_proj_w, "mlp.c_proj.weight");
        RESOLVE(c_proj_b, "mlp.c_proj.bias");
    }
#undef RESOLVE
    return 0;
}

static int resolve_pointers(clip_model *m)
{
    clip_tensor_info *table = NULL;
    int count = 0;
    DMNSP_TRY(clip_tensor_table(&m->config, &table, &count));

    const struct {
        const float **field;
        const char *name;
    } globals[] = {
        {&m->conv1, "visual.conv1.weight"},
        {&m->class_embedding, "visual.class_embedding"},
        {&m->visual_pos, "visual.positional_embedding"},
        {&m->ln_pre_w, "visual.ln_pre.weight"},
        {&m->ln_pre_b, "visual.ln_pre.bias"},
        {&m->ln_post_w, "visual.ln_post.weight"},
        {&m->ln_post_b, "visual.ln_post.bias"},
        {&m->visual_proj, "visual.proj"},
        {&m->token_embedding, "token_embedding.weight"},
        {&m->text_pos, "positional_embedding"},
        {&m->ln_final_w, "ln_final.weight"},
        {&m->ln_final_b, "ln_final.bias"},
        {&m->text_proj, "text_projection"},
        {&m->logit_scale, "logit_scale"},
    };
    int status = 0;
    for (size_t i = 0; i < sizeof globals / sizeof globals[0] && status == 0; i++) {
        *globals[i].field = find_tensor(m, table, count, globals[i].name);
        if (*globals[i].field == NULL)
            status = dmnsp_fail("clip: tensor %s is missing from the parameter layout", globals[i].name);
    }
    if (status == 0)
        status = resolve_blocks(m, table, count, "visual.transformer.", m->config.vision_layers, m->visual_blocks);
    if (status == 0)
        status = resolve_blocks(m, table, count, "transformer.", m->config.text_layers, m->text_blocks);
    free(table);
    return status;
}

int clip_model_create(const clip_config *config, clip_model **out)
{
    *out = NULL;
    DMNSP_TRY(clip_config_validate(config));

    clip_model *m = dmnsp_calloc(1, sizeof *m, "the CLIP model");
    if (m == NULL)
        return -1;
    m->config = *config;
    size_t frozen = clip_frozen_count(config), adapters = clip_adapter_count(config);
    m->frozen = dmnsp_calloc(frozen, sizeof(float), "the frozen CLIP parameters");
    m->adapters = dmnsp_calloc(adapters, sizeof(float), "the adapter parameters");
    m->visual_blocks = dmnsp_calloc((size_t)config->vision_layers, sizeof(clip_block_weights), "block pointers");
    m->text_blocks = dmnsp_calloc((size_t)config->text_layers, sizeof(clip_block_weights), "block pointers");
    if (m->frozen == NULL || m->adapters == NULL || m->visual_blocks == NULL || m->text_blocks == NULL ||
        resolve_pointers(m) != 0) {
        clip_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void clip_model_free(clip_model *m)
{
    if (m == NULL)
        return;
    free(m->frozen);
    free(m->adapters);
    free(m->visual_blocks);
    free(m->text_blocks);
    free(m);
}

const clip_config *clip_model_config(const clip_model *m)
{
    return &m->config;
}

float *clip_model_frozen(clip_model *m)
{
    return m->frozen;
}

float *clip_model_adapters(clip_model *m)
{
    return m->adapters;
}

float clip_model_logit_scale(const clip_model *m)
{
    return *m->logit_scale;
}

/* ---- random initialisation ---------------------------------------------- */

/* Standard normal pair PAIR of stream (SEED, TENSOR): Box-Muller on two
 * 32-bit halves of one counter-based hash, both outputs used. */
static void normal_pair(uint64_t seed, uint64_t tensor, uint64_t pair, float *first, float *second)
{
    uint64_t h = ops_hash3(seed, tensor, pair);
    double u1 = ((double)(h >> 32) + 1.0) * 0x1p-32; /* (0, 1] */
    double u2 = (double)(h & 0xFFFFFFFFu) * 0x1p-32;
    double radius = sqrt(-2.0 * log(u1));
    double angle = 2.0 * M_PI * u2;
    *first = (float)(radius * cos(angle));
    *second = (float)(radius * sin(angle));
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The standard deviation for frozen tensor T, or a negative value for a
 * constant fill (then *CONSTANT is the value). */
static double init_std(const clip_config *c, const clip_tensor_info *t, float *constant)
{
    int visual = strncmp(t->name, "visual.", 7) == 0;
    double width = visual ? c->vision_width : c->text_width;
    double layers = visual ? c->vision_layers : c->text_layers;
    double residual_std = pow(width, -0.5) * pow(2.0 * layers, -0.5);

    *constant = 0.0f;
    if (strcmp(t->name, "logit_scale") == 0) {
        *constant = logf(100.0f);
        return -1;
    }
    if (strstr(t->name, "ln_") != NULL) {
        *constant = ends_with(t->name, ".weight") ? 1.0f : 0.0f;
        return -1;
    }
    if (ends_with(t->name, "bias"))
        return -1;
    if (strcmp(t->name, "token_embedding.weight") == 0)
        return 0.02;
    if (strcmp(t->name, "positional_embedding") == 0)
        return 0.01;
    if (strcmp(t->name, "visual.conv1.weight") == 0)
        return pow(3.0 * c->patch_size * c->patch_size, -0.5);
    if (ends_with(t->name, "attn.out_proj.weight") || ends_with(t->name, "mlp.c_proj.weight"))
        return residual_std;
    if (ends_with(t->name, "mlp.c_fc.weight"))
        return pow(2.0 * width, -0.5);
    /* in_proj, class and visual positional embeddings, both projections */
    return pow(width, -0.5);
}

int clip_model_init_random(clip_model *m, uint64_t seed)
{
    clip_tensor_info *table = NULL;
    int count = 0;
    DMNSP_TRY(clip_tensor_table(&m->config, &table, &count));

    for (int i = 0; i < count; i++) {
        const clip_tensor_info *t = &table[i];
        if (t->is_adapter)
            continue;
        float *dst = m->frozen + t->offset;
        float constant;
        double std = init_std(&m->config, t, &constant);
        if (std < 0) {
            for (size_t k = 0; k < t->count; k++)
                dst[k] = constant;
            continue;
        }
        float stdf = (float)std;
        size_t pairs = (t->count + 1) / 2;
#pragma omp parallel for schedule(static)
        for (size_t k = 0; k < pairs; k++) {
            float first, second;
            normal_pair(seed, (uint64_t)i, k, &first, &second);
            dst[2 * k] = stdf * first;
            if (2 * k + 1 < t->count)
                dst[2 * k + 1] = stdf * second;
        }
    }
    free(table);
    return 0;
}

int clip_model_init_adapters(clip_model *m, uint64_t seed)
{
    const clip_config *c = &m->config;
    for (int modality = 0; modality < 2; modality++) {
        int layers = modality == CLIP_VISUAL ? c->vision_layers : c->text_layers;
        for (int block = 0; block < layers; block++) {
            clip_adapter_view view;
            clip_adapter_block(c, m->adapters, (clip_modality)modality, block, &view);
            float bound = 1.0f / sqrtf((float)view.width);
            uint64_t stream = ((uint64_t)modality << 32) | (uint64_t)block;
            size_t down = (size_t)view.bottleneck * view.width;
            for (size_t k = 0; k < down; k++) {
                float u = (float)(ops_hash3(seed, stream, k) >> 40) * 0x1p-24f;
                view.down_w[k] = (2.0f * u - 1.0f) * bound;
            }
            memset(view.down_b, 0, (size_t)view.bottleneck * sizeof(float));
            memset(view.up_w, 0, (size_t)view.width * view.bottleneck * sizeof(float));
            memset(view.up_b, 0, (size_t)view.width * sizeof(float));
        }
    }
    return 0;
}

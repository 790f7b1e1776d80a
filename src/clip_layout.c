/* clip_layout: presets, shape checks and the parameter buffer layout
 * (see include/dmnsp/clip_layout.h). */
#include "dmnsp/clip_layout.h"

#include "dmnsp/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    clip_config config;
} preset;

/* Shapes of OpenAI's released models (as inferred by their build_model) and
 * the small random model dmnsp uses for its embedded default. */
static const preset presets[] = {
    {"ViT-B/16", {224, 16, 768, 12, 12, 77, 49408, 512, 12, 8, 512, 64, 0.1f, 0.1f}},
    {"ViT-B/32", {224, 32, 768, 12, 12, 77, 49408, 512, 12, 8, 512, 64, 0.1f, 0.1f}},
    {"ViT-L/14", {224, 14, 1024, 24, 16, 77, 49408, 768, 12, 12, 768, 64, 0.1f, 0.1f}},
    {"tiny", {32, 8, 128, 12, 2, 77, 514, 64, 12, 1, 64, 64, 0.1f, 0.1f}},
};

static const int preset_count = (int)(sizeof presets / sizeof presets[0]);

const char *clip_preset_names(void)
{
    return "ViT-B/16, ViT-B/32, ViT-L/14, tiny";
}

int clip_preset(const char *name, clip_config *config)
{
    for (int i = 0; i < preset_count; i++) {
        if (strcmp(name, presets[i].name) == 0) {
            *config = presets[i].config;
            return 0;
        }
    }
    return dmnsp_fail("unknown model preset '%s' (known presets: %s)", name, clip_preset_names());
}

int clip_config_validate(const clip_config *c)
{
    const struct {
        const char *name;
        int value;
    } positive[] = {
        {"image_resolution", c->image_resolution}, {"patch_size", c->patch_size},
        {"vision_width", c->vision_width},         {"vision_layers", c->vision_layers},
        {"vision_heads", c->vision_heads},         {"context_length", c->context_length},
        {"vocab_size", c->vocab_size},             {"text_width", c->text_width},
        {"text_layers", c->text_layers},           {"text_heads", c->text_heads},
        {"embed_dim", c->embed_dim},               {"adapter_bottleneck", c->adapter_bottleneck},
    };
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++) {
        if (positive[i].value <= 0)
            return dmnsp_fail("model shape %s = %d must be positive", positive[i].name, positive[i].value);
    }
    if (c->image_resolution % c->patch_size != 0)
        return dmnsp_fail("model shape: image_resolution %d is not a multiple of patch_size %d",
                          c->image_resolution, c->patch_size);
    if (c->vision_width % c->vision_heads != 0)
        return dmnsp_fail("model shape: vision_width %d is not a multiple of vision_heads %d", c->vision_width,
                          c->vision_heads);
    if (c->text_width % c->text_heads != 0)
        return dmnsp_fail("model shape: text_width %d is not a multiple of text_heads %d", c->text_width,
                          c->text_heads);
    if (c->adapter_dropout < 0 || c->adapter_dropout >= 1)
        return dmnsp_fail("adapter dropout %g must be in [0, 1)", (double)c->adapter_dropout);
    return 0;
}

int clip_grid_size(const clip_config *config)
{
    return config->image_resolution / config->patch_size;
}

int clip_vision_tokens(const clip_config *config)
{
    int grid = clip_grid_size(config);
    return grid * grid + 1;
}

/* ---- table construction ------------------------------------------------ */

typedef struct {
    clip_tensor_info *items;
    int count;
    int capacity;
    size_t frozen_offset;
    size_t adapter_offset;
} table_builder;

static int add_tensor(table_builder *b, int is_adapter, int ndim, const int *shape, const char *fmt, ...)
    DMNSP_PRINTF(5, 6);

#include <stdarg.h>

static int add_tensor(table_builder *b, int is_adapter, int ndim, const int *shape, const char *fmt, ...)
{
    if (b->count == b->capacity) {
        int capacity = b->capacity ? 2 * b->capacity : 256;
        clip_tensor_info *grown = realloc(b->items, (size_t)capacity * sizeof *grown);
        if (grown == NULL)
            return dmnsp_fail("out of memory building the CLIP tensor table");
        b->items = grown;
        b->capacity = capacity;
    }
    clip_tensor_info *t = &b->items[b->count++];
    memset(t, 0, sizeof *t);
    va_list args;
    va_start(args, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, args);
    va_end(args);
    t->ndim = ndim;
    t->count = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->count *= (size_t)shape[i];
    }
    t->is_adapter = is_adapter;
    size_t *offset = is_adapter ? &b->adapter_offset : &b->frozen_offset;
    t->offset = *offset;
    *offset += t->count;
    return 0;
}

#define SHAPE(...) ((const int[]){__VA_ARGS__})

static int add_frozen_blocks(table_builder *b, const char *prefix, int layers, int width)
{
    for (int i = 0; i < layers; i++) {
        DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(width), "%sresblocks.%d.ln_1.weight", prefix, i));
        DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(width), "%sresblocks.%d.ln_1.bias", prefix, i));
        DMNSP_TRY(add_tensor(b, 0, 2, SHAPE(3 * width, width), "%sresblocks.%d.attn.in_proj_weight", prefix, i));
        DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(3 * width), "%sresblocks.%d.attn.in_proj_bias", prefix, i));
        DMNSP_TRY(add_tensor(b, 0, 2, SHAPE(width, width), "%sresblocks.%d.attn.out_proj.weight", prefix, i));
        DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(width), "%sresblocks.%d.attn.out_proj.bias", prefix, i));
        DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(width), "%sresblocks.%d.ln_2.weight", prefix, i));
        DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(width), "%sresblocks.%d.ln_2.bias", prefix, i));
        DMNSP_TRY(add_tensor(b, 0, 2, SHAPE(4 * width, width), "%sresblocks.%d.mlp.c_fc.weight", prefix, i));
        DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(4 * width), "%sresblocks.%d.mlp.c_fc.bias", prefix, i));
        DMNSP_TRY(add_tensor(b, 0, 2, SHAPE(width, 4 * width), "%sresblocks.%d.mlp.c_proj.weight", prefix, i));
        DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(width), "%sresblocks.%d.mlp.c_proj.bias", prefix, i));
    }
    return 0;
}

static int add_adapter_blocks(table_builder *b, const char *prefix, int layers, int width, int bottleneck)
{
    for (int i = 0; i < layers; i++) {
        DMNSP_TRY(add_tensor(b, 1, 2, SHAPE(bottleneck, width), "%sresblocks.%d.adaptmlp.down_proj.weight", prefix, i));
        DMNSP_TRY(add_tensor(b, 1, 1, SHAPE(bottleneck), "%sresblocks.%d.adaptmlp.down_proj.bias", prefix, i));
        DMNSP_TRY(add_tensor(b, 1, 2, SHAPE(width, bottleneck), "%sresblocks.%d.adaptmlp.up_proj.weight", prefix, i));
        DMNSP_TRY(add_tensor(b, 1, 1, SHAPE(width), "%sresblocks.%d.adaptmlp.up_proj.bias", prefix, i));
    }
    return 0;
}

static int build_table(const clip_config *c, table_builder *b)
{
    int vw = c->vision_width, tw = c->text_width, p = c->patch_size;
    int tokens = clip_vision_tokens(c);

    DMNSP_TRY(add_tensor(b, 0, 4, SHAPE(vw, 3, p, p), "visual.conv1.weight"));
    DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(vw), "visual.class_embedding"));
    DMNSP_TRY(add_tensor(b, 0, 2, SHAPE(tokens, vw), "visual.positional_embedding"));
    DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(vw), "visual.ln_pre.weight"));
    DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(vw), "visual.ln_pre.bias"));
    DMNSP_TRY(add_frozen_blocks(b, "visual.transformer.", c->vision_layers, vw));
    DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(vw), "visual.ln_post.weight"));
    DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(vw), "visual.ln_post.bias"));
    DMNSP_TRY(add_tensor(b, 0, 2, SHAPE(vw, c->embed_dim), "visual.proj"));

    DMNSP_TRY(add_tensor(b, 0, 2, SHAPE(c->vocab_size, tw), "token_embedding.weight"));
    DMNSP_TRY(add_tensor(b, 0, 2, SHAPE(c->context_length, tw), "positional_embedding"));
    DMNSP_TRY(add_frozen_blocks(b, "transformer.", c->text_layers, tw));
    DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(tw), "ln_final.weight"));
    DMNSP_TRY(add_tensor(b, 0, 1, SHAPE(tw), "ln_final.bias"));
    DMNSP_TRY(add_tensor(b, 0, 2, SHAPE(tw, c->embed_dim), "text_projection"));
    DMNSP_TRY(add_tensor(b, 0, 0, SHAPE(0), "logit_scale"));

    DMNSP_TRY(add_adapter_blocks(b, "visual.transformer.", c->vision_layers, vw, c->adapter_bottleneck));
    DMNSP_TRY(add_adapter_blocks(b, "transformer.", c->text_layers, tw, c->adapter_bottleneck));
    return 0;
}

int clip_tensor_table(const clip_config *config, clip_tensor_info **table, int *count)
{
    table_builder b = {0};
    *table = NULL;
    *count = 0;
    DMNSP_TRY(clip_config_validate(config));
    if (build_table(config, &b) != 0) {
        free(b.items);
        return -1;
    }
    *table = b.items;
    *count = b.count;
    return 0;
}

int clip_tensor_find(const clip_tensor_info *table, int count, const char *name)
{
    for (int i = 0; i < count; i++) {
        if (strcmp(table[i].name, name) == 0)
            return i;
    }
    return -1;
}

static size_t block_frozen_count(int width)
{
    /* ln_1, in_proj, out_proj, ln_2, c_fc, c_proj */
    return 2 * (size_t)width + 3 * (size_t)width * width + 3 * (size_t)width + (size_t)width * width +
           (size_t)width + 2 * (size_t)width + 4 * (size_t)width * width + 4 * (size_t)width +
           4 * (size_t)width * width + (size_t)width;
}

size_t clip_frozen_count(const clip_config *c)
{
    size_t vw = (size_t)c->vision_width, tw = (size_t)c->text_width, p = (size_t)c->patch_size;
    size_t visual = vw * 3 * p * p + vw + (size_t)clip_vision_tokens(c) * vw + 2 * vw +
                    (size_t)c->vision_layers * block_frozen_count(c->vision_width) + 2 * vw +
                    vw * (size_t)c->embed_dim;
    size_t text = (size_t)c->vocab_size * tw + (size_t)c->context_length * tw +
                  (size_t)c->text_layers * block_frozen_count(c->text_width) + 2 * tw +
                  tw * (size_t)c->embed_dim + 1;
    return visual + text;
}

static size_t adapter_block_count(int width, int bottleneck)
{
    return 2 * (size_t)width * bottleneck + (size_t)bottleneck + (size_t)width;
}

size_t clip_adapter_modality_offset(const clip_config *c, clip_modality modality)
{
    if (modality == CLIP_VISUAL)
        return 0;
    return (size_t)c->vision_layers * adapter_block_count(c->vision_width, c->adapter_bottleneck);
}

size_t clip_adapter_modality_count(const clip_config *c, clip_modality modality)
{
    if (modality == CLIP_VISUAL)
        return (size_t)c->vision_layers * adapter_block_count(c->vision_width, c->adapter_bottleneck);
    return (size_t)c->text_layers * adapter_block_count(c->text_width, c->adapter_bottleneck);
}

size_t clip_adapter_count(const clip_config *c)
{
    return clip_adapter_modality_count(c, CLIP_VISUAL) + clip_adapter_modality_count(c, CLIP_TEXT);
}

void clip_adapter_block(const clip_config *c, float *buffer, clip_modality modality, int block,
                        clip_adapter_view *view)
{
    int width = modality == CLIP_VISUAL ? c->vision_width : c->text_width;
    int bottleneck = c->adapter_bottleneck;
    float *base = buffer + clip_adapter_modality_offset(c, modality) +
                  (size_t)block * adapter_block_count(width, bottleneck);
    view->down_w = base;
    view->down_b = view->down_w + (size_t)bottleneck * width;
    view->up_w = view->down_b + bottleneck;
    view->up_b = view->up_w + (size_t)width * bottleneck;
    view->width = width;
    view->bottleneck = bottleneck;
}

/* weights: naming-scheme detection, architecture inference and the
 * OpenAI <-> Hugging Face name mapping (see include/dmnsp/weights.h). */
#include "dmnsp/weights.h"

#include "dmnsp/error.h"
#include "dmnsp/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tensor names are built into fixed buffers; the file prefix is limited so
 * that every built name fits. */
#define PREFIX_MAX_BYTES 128
#define NAME_MAX_BYTES 512

struct weights_file {
    safetensors_file *tensors;
    weights_naming naming;
    char prefix[PREFIX_MAX_BYTES]; /* common prefix of every name, e.g. "module." */
    clip_config inferred;        /* shape fields only */
    int has_adapters;
    int adapter_bottleneck; /* from the adapter tensors, when present */
};

/* Names the architecture is inferred from, per scheme. */
typedef struct {
    const char *patch_embedding;
    const char *vision_positions;
    const char *text_projection;
    int text_projection_embed_axis; /* 1 for OpenAI's [width, embed], 0 for HF's [embed, width] */
    const char *token_embedding;
    const char *text_positions;
    const char *final_norm;
    const char *vision_blocks; /* block prefix, followed by "{i}." */
    const char *text_blocks;
    const char *block_probe; /* a tensor every block has, after "{i}." */
} naming_scheme;

static const naming_scheme schemes[2] = {
    [WEIGHTS_NAMES_OPENAI] = {"visual.conv1.weight", "visual.positional_embedding", "text_projection", 1,
                              "token_embedding.weight", "positional_embedding", "ln_final.weight",
                              "visual.transformer.resblocks.", "transformer.resblocks.", "attn.in_proj_weight"},
    [WEIGHTS_NAMES_HF] = {"vision_model.embeddings.patch_embedding.weight",
                          "vision_model.embeddings.position_embedding.weight", "text_projection.weight", 0,
                          "text_model.embeddings.token_embedding.weight",
                          "text_model.embeddings.position_embedding.weight", "text_model.final_layer_norm.weight",
                          "vision_model.encoder.layers.", "text_model.encoder.layers.", "self_attn.q_proj.weight"},
};

static const char *const adapter_suffixes[4] = {"adaptmlp.down_proj.weight", "adaptmlp.down_proj.bias",
                                                "adaptmlp.up_proj.weight", "adaptmlp.up_proj.bias"};

const char *weights_naming_name(weights_naming naming)
{
    return naming == WEIGHTS_NAMES_HF ? "Hugging Face" : "OpenAI";
}

weights_naming weights_naming_of(const weights_file *file)
{
    return file->naming;
}

int weights_has_adapters(const weights_file *file)
{
    return file->has_adapters;
}

int weights_adapter_scale(const weights_file *file, float *scale)
{
    const char *text = safetensors_metadata(file->tensors, WEIGHTS_ADAPTER_SCALE_KEY);
    if (text == NULL)
        return 0;
    char *end = NULL;
    float value = strtof(text, &end);
    if (end == text || *end != '\0' || !isfinite(value))
        return dmnsp_fail("%s: metadata %s='%s' is not a number", safetensors_path(file->tensors),
                          WEIGHTS_ADAPTER_SCALE_KEY, text);
    *scale = value;
    return 1;
}

/* ---- lookup with the file's prefix -------------------------------------- */

static const safetensors_tensor *find_tensor(const weights_file *w, const char *name)
{
    char full[2 * NAME_MAX_BYTES];
    snprintf(full, sizeof full, "%s%s", w->prefix, name);
    return safetensors_find(w->tensors, full);
}

static int require_tensor(const weights_file *w, const char *name, int ndim, const safetensors_tensor **out)
{
    const safetensors_tensor *t = find_tensor(w, name);
    if (t == NULL)
        return dmnsp_fail("tensor '%s%s' not found (%s naming)", w->prefix, name, weights_naming_name(w->naming));
    if (t->ndim != ndim) {
        char shape[160];
        return dmnsp_fail("tensor '%s%s' has shape %s, expected %d dimensions", w->prefix, name,
                          safetensors_format_shape(t->ndim, t->shape, shape, sizeof shape), ndim);
    }
    *out = t;
    return 0;
}

/* ---- detection and inference -------------------------------------------- */

/* Finds the scheme from the patch-embedding name; the part of the name
 * before it is the prefix every other name must carry too. */
static int detect_naming(weights_file *w)
{
    const char *path = safetensors_path(w->tensors);
    int count = safetensors_count(w->tensors);
    for (int i = 0; i < count; i++) {
        const char *name = safetensors_at(w->tensors, i)->name;
        size_t length = strlen(name);
        for (int s = 0; s < 2; s++) {
            const char *key = schemes[s].patch_embedding;
            size_t key_length = strlen(key);
            if (length < key_length || strcmp(name + length - key_length, key) != 0)
                continue;
            size_t prefix_length = length - key_length;
            if (prefix_length > 0 && name[prefix_length - 1] != '.')
                continue;
            if (prefix_length >= sizeof w->prefix)
                return dmnsp_fail("weights: %s: tensor name prefix of '%s' is too long", path, name);
            memcpy(w->prefix, name, prefix_length);
            w->prefix[prefix_length] = '\0';
            w->naming = (weights_naming)s;
            return 0;
        }
    }
    char resnet[2 * NAME_MAX_BYTES];
    for (int i = 0; i < count; i++) {
        const char *name = safetensors_at(w->tensors, i)->name;
        const char *hit = strstr(name, "visual.layer1.");
        if (hit != NULL) {
            snprintf(resnet, sizeof resnet, "%s", name);
            return dmnsp_fail("weights: %s: '%s' belongs to a ResNet image encoder; only ViT CLIP models are "
                              "supported",
                              path, resnet);
        }
    }
    return dmnsp_fail("weights: %s: no CLIP image encoder found: expected a tensor named '%s' (OpenAI/open_clip) or "
                      "'%s' (Hugging Face); the file has %d tensors%s%s",
                      path, schemes[0].patch_embedding, schemes[1].patch_embedding, count,
                      count > 0 ? ", the first is " : "", count > 0 ? safetensors_at(w->tensors, 0)->name : "");
}

/* Counts blocks 0..n-1 under BLOCKS and checks that no name refers to a
 * block at or past n (a gap in the numbering). */
static int count_blocks(const weights_file *w, const char *blocks, const char *probe, int *layers)
{
    char name[NAME_MAX_BYTES];
    int n = 0;
    for (;;) {
        snprintf(name, sizeof name, "%s%d.%s", blocks, n, probe);
        if (find_tensor(w, name) == NULL)
            break;
        n++;
    }

    char full_prefix[2 * NAME_MAX_BYTES];
    snprintf(full_prefix, sizeof full_prefix, "%s%s", w->prefix, blocks);
    size_t prefix_length = strlen(full_prefix);
    int count = safetensors_count(w->tensors);
    for (int i = 0; i < count; i++) {
        const char *tensor = safetensors_at(w->tensors, i)->name;
        if (strncmp(tensor, full_prefix, prefix_length) != 0)
            continue;
        char *end;
        long block = strtol(tensor + prefix_length, &end, 10);
        if (end != tensor + prefix_length && *end == '.' && block >= n)
            return dmnsp_fail("tensor '%s' belongs to block %ld, but block %d has no '%s%d.%s'", tensor, block, n,
                              full_prefix, n, probe);
    }
    *layers = n;
    return 0;
}

static int infer_shapes(weights_file *w)
{
    const naming_scheme *s = &schemes[w->naming];
    clip_config *c = &w->inferred;
    const safetensors_tensor *t;

    DMNSP_TRY(require_tensor(w, s->patch_embedding, 4, &t));
    if (t->shape[1] != 3 || t->shape[2] != t->shape[3]) {
        char shape[160];
        return dmnsp_fail("tensor '%s%s' has shape %s, expected [width, 3, patch, patch]", w->prefix,
                          s->patch_embedding, safetensors_format_shape(t->ndim, t->shape, shape, sizeof shape));
    }
    c->vision_width = (int)t->shape[0];
    c->patch_size = (int)t->shape[2];

    DMNSP_TRY(require_tensor(w, s->vision_positions, 2, &t));
    int64_t tokens = t->shape[0];
    int64_t grid = (int64_t)llround(sqrt((double)(tokens - 1)));
    if (tokens < 2 || grid * grid + 1 != tokens)
        return dmnsp_fail("tensor '%s%s' has %lld positions, expected grid*grid + 1 (a class token and a square "
                          "grid of patches)",
                          w->prefix, s->vision_positions, (long long)tokens);
    c->image_resolution = (int)(grid * c->patch_size);

    DMNSP_TRY(require_tensor(w, s->text_projection, 2, &t));
    c->embed_dim = (int)t->shape[s->text_projection_embed_axis];
    DMNSP_TRY(require_tensor(w, s->token_embedding, 2, &t));
    c->vocab_size = (int)t->shape[0];
    DMNSP_TRY(require_tensor(w, s->text_positions, 2, &t));
    c->context_length = (int)t->shape[0];
    DMNSP_TRY(require_tensor(w, s->final_norm, 1, &t));
    c->text_width = (int)t->shape[0];

    DMNSP_TRY(count_blocks(w, s->vision_blocks, s->block_probe, &c->vision_layers));
    DMNSP_TRY(count_blocks(w, s->text_blocks, s->block_probe, &c->text_layers));
    if (c->vision_layers == 0)
        return dmnsp_fail("no image encoder blocks found (expected '%s%s0.%s')", w->prefix, s->vision_blocks,
                          s->block_probe);
    if (c->text_layers == 0)
        return dmnsp_fail("no text encoder blocks found (expected '%s%s0.%s')", w->prefix, s->text_blocks,
                          s->block_probe);

    /* Head width 64, as in every released CLIP model. */
    c->vision_heads = c->vision_width / 64;
    c->text_heads = c->text_width / 64;
    if (c->vision_heads == 0 || c->text_heads == 0)
        return dmnsp_fail("encoder widths %d (image) and %d (text) must be at least 64: heads are width / 64",
                          c->vision_width, c->text_width);
    return 0;
}

/* Adapters: all 4 tensors of every block of both encoders, or none. */
static int detect_adapters(weights_file *w)
{
    const naming_scheme *s = &schemes[w->naming];
    const char *blocks[2] = {s->vision_blocks, s->text_blocks};
    int layers[2] = {w->inferred.vision_layers, w->inferred.text_layers};
    int present = 0, expected = 0;
    char missing[2 * NAME_MAX_BYTES] = "";

    for (int m = 0; m < 2; m++) {
        for (int i = 0; i < layers[m]; i++) {
            for (int k = 0; k < 4; k++) {
                char name[NAME_MAX_BYTES];
                snprintf(name, sizeof name, "%s%d.%s", blocks[m], i, adapter_suffixes[k]);
                expected++;
                if (find_tensor(w, name) != NULL)
                    present++;
                else if (missing[0] == '\0')
                    snprintf(missing, sizeof missing, "%s%s", w->prefix, name);
            }
        }
    }
    if (present == 0) {
        w->has_adapters = 0;
        return 0;
    }
    if (present != expected)
        return dmnsp_fail("has %d of the %d adapter tensors, e.g. '%s' is missing (a weights file holds the "
                          "adapters of every block or none)",
                          present, expected, missing);

    char name[NAME_MAX_BYTES];
    const safetensors_tensor *t;
    snprintf(name, sizeof name, "%s0.%s", s->vision_blocks, adapter_suffixes[0]);
    DMNSP_TRY(require_tensor(w, name, 2, &t));
    w->has_adapters = 1;
    w->adapter_bottleneck = (int)t->shape[0];
    return 0;
}

int weights_open(const char *path, weights_file **file)
{
    *file = NULL;
    weights_file *w = calloc(1, sizeof *w);
    if (w == NULL)
        return dmnsp_fail("weights: %s: out of memory", path);
    if (safetensors_open(path, &w->tensors) != 0) {
        free(w);
        return dmnsp_fail_prefix("weights");
    }
    if (detect_naming(w) != 0) {
        weights_close(w);
        return -1;
    }
    if (infer_shapes(w) != 0 || detect_adapters(w) != 0) {
        weights_close(w);
        return dmnsp_fail_prefix("weights: %s", path);
    }
    *file = w;
    return 0;
}

void weights_close(weights_file *file)
{
    if (file == NULL)
        return;
    safetensors_close(file->tensors);
    free(file);
}

int weights_infer_config(const weights_file *w, clip_config *config)
{
    clip_config c = w->inferred;
    c.adapter_bottleneck = w->has_adapters ? w->adapter_bottleneck : config->adapter_bottleneck;
    c.adapter_scale = config->adapter_scale;
    c.adapter_dropout = config->adapter_dropout;
    if (clip_config_validate(&c) != 0)
        return dmnsp_fail_prefix("weights: %s: inferred architecture", safetensors_path(w->tensors));
    *config = c;
    return 0;
}

/* One shape field: its value in the weights and in the configuration it
 * is compared with. */
typedef struct {
    const char *name;
    int in_weights;
    int in_other;
} field_pair;

int weights_check_preset(const weights_file *w, const clip_config *inferred, const char *preset_name)
{
    clip_config p;
    DMNSP_TRY(clip_preset(preset_name, &p));
    const field_pair fields[] = {
        {"image_resolution", inferred->image_resolution, p.image_resolution},
        {"patch_size", inferred->patch_size, p.patch_size},
        {"vision_width", inferred->vision_width, p.vision_width},
        {"vision_layers", inferred->vision_layers, p.vision_layers},
        {"vision_heads", inferred->vision_heads, p.vision_heads},
        {"context_length", inferred->context_length, p.context_length},
        {"vocab_size", inferred->vocab_size, p.vocab_size},
        {"text_width", inferred->text_width, p.text_width},
        {"text_layers", inferred->text_layers, p.text_layers},
        {"text_heads", inferred->text_heads, p.text_heads},
        {"embed_dim", inferred->embed_dim, p.embed_dim},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (fields[i].in_weights != fields[i].in_other)
            return dmnsp_fail("weights: %s: %s is %d in the weights but %d in model preset '%s' (set the model "
                              "name to auto, or to the preset these weights belong to)",
                              safetensors_path(w->tensors), fields[i].name, fields[i].in_weights, fields[i].in_other,
                              preset_name);
    }
    return 0;
}

/* ---- reading -------------------------------------------------------------- */

typedef enum { SOURCE_DIRECT, SOURCE_TRANSPOSE, SOURCE_STACK_QKV } source_kind;

/* Where one OpenAI-named tensor comes from in the file. */
typedef struct {
    source_kind kind;
    char names[3][NAME_MAX_BYTES]; /* one name, or q, k, v for SOURCE_STACK_QKV */
} tensor_source;

typedef struct {
    const char *openai;
    const char *hf;
} name_pair;

/* Tensors outside the blocks. */
static const name_pair hf_top_level[] = {
    {"visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"},
    {"visual.class_embedding", "vision_model.embeddings.class_embedding"},
    {"visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"},
    {"visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"},
    {"visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"},
    {"visual.ln_post.weight", "vision_model.post_layernorm.weight"},
    {"visual.ln_post.bias", "vision_model.post_layernorm.bias"},
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
    {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
    {"ln_final.weight", "text_model.final_layer_norm.weight"},
    {"ln_final.bias", "text_model.final_layer_norm.bias"},
    {"logit_scale", "logit_scale"},
};

/* Tensors inside a block, after "{i}.". */
static const name_pair hf_block[] = {
    {"ln_1.weight", "layer_norm1.weight"},
    {"ln_1.bias", "layer_norm1.bias"},
    {"attn.out_proj.weight", "self_attn.out_proj.weight"},
    {"attn.out_proj.bias", "self_attn.out_proj.bias"},
    {"ln_2.weight", "layer_norm2.weight"},
    {"ln_2.bias", "layer_norm2.bias"},
    {"mlp.c_fc.weight", "mlp.fc1.weight"},
    {"mlp.c_fc.bias", "mlp.fc1.bias"},
    {"mlp.c_proj.weight", "mlp.fc2.weight"},
    {"mlp.c_proj.bias", "mlp.fc2.bias"},
    {"adaptmlp.down_proj.weight", "adaptmlp.down_proj.weight"},
    {"adaptmlp.down_proj.bias", "adaptmlp.down_proj.bias"},
    {"adaptmlp.up_proj.weight", "adaptmlp.up_proj.weight"},
    {"adaptmlp.up_proj.bias", "adaptmlp.up_proj.bias"},
};

static int map_block_name(const weights_file *w, const char *rest, const char *hf_blocks, tensor_source *source)
{
    char *end;
    long block = strtol(rest, &end, 10);
    if (end == rest || *end != '.')
        return dmnsp_fail("weights: internal error: no block index in '%s'", rest);
    const char *suffix = end + 1;

    if (strcmp(suffix, "attn.in_proj_weight") == 0 || strcmp(suffix, "attn.in_proj_bias") == 0) {
        const char *kind = strcmp(suffix, "attn.in_proj_weight") == 0 ? "weight" : "bias";
        const char *parts[3] = {"q", "k", "v"};
        source->kind = SOURCE_STACK_QKV;
        for (int k = 0; k < 3; k++)
            snprintf(source->names[k], NAME_MAX_BYTES, "%s%s%ld.self_attn.%s_proj.%s", w->prefix, hf_blocks, block,
                     parts[k], kind);
        return 0;
    }
    for (size_t i = 0; i < sizeof hf_block / sizeof hf_block[0]; i++) {
        if (strcmp(suffix, hf_block[i].openai) == 0) {
            snprintf(source->names[0], NAME_MAX_BYTES, "%s%s%ld.%s", w->prefix, hf_blocks, block, hf_block[i].hf);
            return 0;
        }
    }
    return dmnsp_fail("weights: internal error: no Hugging Face name for block tensor '%s'", suffix);
}

static int map_name(const weights_file *w, const char *openai, tensor_source *source)
{
    memset(source, 0, sizeof *source);
    source->kind = SOURCE_DIRECT;
    if (w->naming == WEIGHTS_NAMES_OPENAI) {
        snprintf(source->names[0], NAME_MAX_BYTES, "%s%s", w->prefix, openai);
        return 0;
    }

    const naming_scheme *openai_scheme = &schemes[WEIGHTS_NAMES_OPENAI];
    const naming_scheme *hf = &schemes[WEIGHTS_NAMES_HF];
    size_t visual_length = strlen(openai_scheme->vision_blocks);
    size_t text_length = strlen(openai_scheme->text_blocks);
    if (strncmp(openai, openai_scheme->vision_blocks, visual_length) == 0)
        return map_block_name(w, openai + visual_length, hf->vision_blocks, source);
    if (strncmp(openai, openai_scheme->text_blocks, text_length) == 0)
        return map_block_name(w, openai + text_length, hf->text_blocks, source);

    /* The projections are Linear weights [out, in] in Hugging Face files. */
    if (strcmp(openai, "visual.proj") == 0 || strcmp(openai, "text_projection") == 0) {
        source->kind = SOURCE_TRANSPOSE;
        snprintf(source->names[0], NAME_MAX_BYTES, "%s%s", w->prefix,
                 openai[0] == 'v' ? "visual_projection.weight" : "text_projection.weight");
        return 0;
    }
    for (size_t i = 0; i < sizeof hf_top_level / sizeof hf_top_level[0]; i++) {
        if (strcmp(openai, hf_top_level[i].openai) == 0) {
            snprintf(source->names[0], NAME_MAX_BYTES, "%s%s", w->prefix, hf_top_level[i].hf);
            return 0;
        }
    }
    return dmnsp_fail("weights: internal error: no Hugging Face name for '%s'", openai);
}

static int read_transposed(const weights_file *w, const char *name, int rows, int columns, float *out)
{
    /* The file holds [columns, rows]; OUT is [rows, columns]. */
    int64_t stored[2] = {columns, rows};
    float *buffer = dmnsp_malloc((size_t)rows * columns * sizeof *buffer, name);
    if (buffer == NULL)
        return -1;
    int status = safetensors_read_f32_shape(w->tensors, name, 2, stored, buffer);
    if (status == 0) {
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                out[(size_t)r * columns + c] = buffer[(size_t)c * rows + r];
    }
    free(buffer);
    return status;
}

static int read_one(const weights_file *w, const clip_tensor_info *info, float *out)
{
    tensor_source source;
    DMNSP_TRY(map_name(w, info->name, &source));
    int64_t shape[4];
    for (int d = 0; d < info->ndim; d++)
        shape[d] = info->shape[d];

    switch (source.kind) {
    case SOURCE_DIRECT: {
        /* A scalar may be stored as [] or [1]. */
        const safetensors_tensor *t = safetensors_find(w->tensors, source.names[0]);
        if (info->ndim == 0 && t != NULL && t->ndim == 1 && t->shape[0] == 1)
            return safetensors_read_f32(w->tensors, source.names[0], out, 1);
        return safetensors_read_f32_shape(w->tensors, source.names[0], info->ndim, shape, out);
    }
    case SOURCE_TRANSPOSE:
        return read_transposed(w, source.names[0], info->shape[0], info->shape[1], out);
    case SOURCE_STACK_QKV: {
        /* in_proj is [3*width, width] (or [3*width] for the bias): q, k, v
         * stacked along the first axis. */
        shape[0] = info->shape[0] / 3;
        size_t part = info->count / 3;
        for (int k = 0; k < 3; k++)
            DMNSP_TRY(safetensors_read_f32_shape(w->tensors, source.names[k], info->ndim, shape, out + k * part));
        return 0;
    }
    }
    return 0;
}

static int check_config_matches(const weights_file *w, const clip_config *config)
{
    clip_config expected = w->inferred;
    expected.adapter_bottleneck = w->has_adapters ? w->adapter_bottleneck : config->adapter_bottleneck;
    const field_pair fields[] = {
        {"image_resolution", expected.image_resolution, config->image_resolution},
        {"patch_size", expected.patch_size, config->patch_size},
        {"vision_width", expected.vision_width, config->vision_width},
        {"vision_layers", expected.vision_layers, config->vision_layers},
        {"context_length", expected.context_length, config->context_length},
        {"vocab_size", expected.vocab_size, config->vocab_size},
        {"text_width", expected.text_width, config->text_width},
        {"text_layers", expected.text_layers, config->text_layers},
        {"embed_dim", expected.embed_dim, config->embed_dim},
        {"adapter_bottleneck", expected.adapter_bottleneck, config->adapter_bottleneck},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (fields[i].in_weights != fields[i].in_other)
            return dmnsp_fail("weights: %s: %s is %d in the weights but %d in the model configuration",
                              safetensors_path(w->tensors), fields[i].name, fields[i].in_weights, fields[i].in_other);
    }
    return 0;
}

int weights_read(const weights_file *w, const clip_config *config, float *frozen, float *adapters)
{
    DMNSP_TRY(check_config_matches(w, config));
    clip_tensor_info *table = NULL;
    int count = 0;
    DMNSP_TRY(clip_tensor_table(config, &table, &count));

    int status = 0;
    for (int i = 0; i < count && status == 0; i++) {
        const clip_tensor_info *info = &table[i];
        if (info->is_adapter && (!w->has_adapters || adapters == NULL))
            continue;
        float *out = (info->is_adapter ? adapters : frozen) + info->offset;
        status = read_one(w, info, out);
        if (status != 0 && w->naming == WEIGHTS_NAMES_HF)
            dmnsp_fail_prefix("weights: Hugging Face source of '%s'", info->name);
        else if (status != 0)
            dmnsp_fail_prefix("weights");
    }
    free(table);
    return status;
}

int weights_load(const char *path, const char *preset_or_null, clip_config *config, float **frozen, float **adapters,
                 int *has_adapters)
{
    *frozen = NULL;
    *adapters = NULL;
    *has_adapters = 0;
    weights_file *w;
    DMNSP_TRY(weights_open(path, &w));

    clip_config inferred = *config;
    int status = weights_infer_config(w, &inferred);
    if (status == 0 && preset_or_null != NULL && preset_or_null[0] != '\0' && strcmp(preset_or_null, "auto") != 0)
        status = weights_check_preset(w, &inferred, preset_or_null);

    float *frozen_buffer = NULL, *adapter_buffer = NULL;
    if (status == 0) {
        frozen_buffer = dmnsp_malloc(clip_frozen_count(&inferred) * sizeof(float), "the frozen CLIP weights");
        adapter_buffer = dmnsp_calloc(clip_adapter_count(&inferred), sizeof(float), "the adapter weights");
        if (frozen_buffer == NULL || adapter_buffer == NULL)
            status = -1;
    }
    if (status == 0)
        status = weights_read(w, &inferred, frozen_buffer, adapter_buffer);
    if (status == 0) {
        *config = inferred;
        *frozen = frozen_buffer;
        *adapters = adapter_buffer;
        *has_adapters = w->has_adapters;
    } else {
        free(frozen_buffer);
        free(adapter_buffer);
    }
    weights_close(w);
    return status;
}

int weights_save(const char *path, const clip_config *config, const float *frozen, const float *adapters)
{
    clip_tensor_info *table = NULL;
    int count = 0;
    DMNSP_TRY(clip_tensor_table(config, &table, &count));
    safetensors_writer *writer = NULL;
    int status = safetensors_writer_create(&writer);
    if (status == 0)
        status = safetensors_writer_add_metadata(writer, "format", "pt");
    if (status == 0 && adapters != NULL) {
        char scale[32];
        snprintf(scale, sizeof scale, "%.9g", (double)config->adapter_scale);
        status = safetensors_writer_add_metadata(writer, WEIGHTS_ADAPTER_SCALE_KEY, scale);
    }

    for (int i = 0; i < count && status == 0; i++) {
        const clip_tensor_info *info = &table[i];
        if (info->is_adapter && adapters == NULL)
            continue;
        int64_t shape[4];
        for (int d = 0; d < info->ndim; d++)
            shape[d] = info->shape[d];
        const float *data = (info->is_adapter ? adapters : frozen) + info->offset;
        status = safetensors_writer_add_f32(writer, info->name, info->ndim, shape, data);
    }
    if (status == 0)
        status = safetensors_writer_write(writer, path);
    safetensors_writer_free(writer);
    free(table);
    return status != 0 ? dmnsp_fail_prefix("weights") : 0;
}

/* weights: OpenAI round trip, a Hugging Face file (separate q/k/v,
 * transposed projections, renamed norms) loading to the same buffers,
 * architecture inference, preset disagreement, and missing, mis-shaped and
 * partial-adapter files. */
#include "dmnsp/clip_layout.h"
#include "dmnsp/error.h"
#include "dmnsp/safetensors.h"
#include "dmnsp/weights.h"
#include "test_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A small architecture: a 2x2 patch grid, two image blocks, three text
 * blocks of two heads. */
static clip_config small_config(void)
{
    clip_config c = {
        .image_resolution = 16, .patch_size = 8,  .vision_width = 64, .vision_layers = 2, .vision_heads = 1,
        .context_length = 8,    .vocab_size = 20, .text_width = 128,  .text_layers = 3,   .text_heads = 2,
        .embed_dim = 32,        .adapter_bottleneck = 4, .adapter_scale = 0.1f, .adapter_dropout = 0.1f,
    };
    return c;
}

static void fill_random(float *data, size_t n, uint32_t seed)
{
    uint32_t state = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        state = state * 1664525u + 1013904223u;
        data[i] = (float)((state >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

typedef struct {
    clip_config config;
    clip_tensor_info *table;
    int count;
    float *frozen;
    float *adapters;
} model;

static void model_create(model *m, clip_config config, uint32_t seed)
{
    m->config = config;
    CHECK_OK(clip_tensor_table(&config, &m->table, &m->count));
    m->frozen = malloc(clip_frozen_count(&config) * sizeof(float));
    m->adapters = malloc(clip_adapter_count(&config) * sizeof(float));
    fill_random(m->frozen, clip_frozen_count(&config), seed);
    fill_random(m->adapters, clip_adapter_count(&config), seed + 1);
}

static void model_free(model *m)
{
    free(m->table);
    free(m->frozen);
    free(m->adapters);
}

static const float *tensor_data(const model *m, const char *name)
{
    int i = clip_tensor_find(m->table, m->count, name);
    if (i < 0) {
        test_report_failure(__FILE__, __LINE__, "no tensor '%s' in the layout", name);
        return m->frozen;
    }
    return (m->table[i].is_adapter ? m->adapters : m->frozen) + m->table[i].offset;
}

/* ---- a Hugging Face file, spelled out by hand ---------------------------- */

typedef struct {
    safetensors_writer *writer;
    float *scratch[64];
    int scratch_count;
} hf_file;

static void hf_add(hf_file *f, const char *name, int ndim, int64_t a, int64_t b, const float *data)
{
    int64_t shape[2] = {a, b};
    CHECK_OK(safetensors_writer_add_f32(f->writer, name, ndim, shape, data));
}

/* Adds the [cols, rows] transpose of the [rows, cols] tensor DATA. */
static void hf_add_transposed(hf_file *f, const char *name, int rows, int cols, const float *data)
{
    float *t = malloc((size_t)rows * cols * sizeof *t);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            t[(size_t)c * rows + r] = data[(size_t)r * cols + c];
    f->scratch[f->scratch_count++] = t;
    hf_add(f, name, 2, cols, rows, t);
}

static void hf_add_blocks(hf_file *f, const model *m, const char *openai_prefix, const char *hf_prefix, int layers,
                          int width, int with_adapters)
{
    char openai[160], hf[160];
#define OPENAI(suffix) (snprintf(openai, sizeof openai, "%sresblocks.%d.%s", openai_prefix, i, suffix), openai)
#define HF(suffix) (snprintf(hf, sizeof hf, "%s%d.%s", hf_prefix, i, suffix), hf)
    for (int i = 0; i < layers; i++) {
        size_t ww = (size_t)width * width;
        const float *in_w = tensor_data(m, OPENAI("attn.in_proj_weight"));
        const float *in_b = tensor_data(m, OPENAI("attn.in_proj_bias"));
        hf_add(f, HF("self_attn.q_proj.weight"), 2, width, width, in_w);
        hf_add(f, HF("self_attn.k_proj.weight"), 2, width, width, in_w + ww);
        hf_add(f, HF("self_attn.v_proj.weight"), 2, width, width, in_w + 2 * ww);
        hf_add(f, HF("self_attn.q_proj.bias"), 1, width, 0, in_b);
        hf_add(f, HF("self_attn.k_proj.bias"), 1, width, 0, in_b + width);
        hf_add(f, HF("self_attn.v_proj.bias"), 1, width, 0, in_b + 2 * width);
        hf_add(f, HF("self_attn.out_proj.weight"), 2, width, width, tensor_data(m, OPENAI("attn.out_proj.weight")));
        hf_add(f, HF("self_attn.out_proj.bias"), 1, width, 0, tensor_data(m, OPENAI("attn.out_proj.bias")));
        hf_add(f, HF("layer_norm1.weight"), 1, width, 0, tensor_data(m, OPENAI("ln_1.weight")));
        hf_add(f, HF("layer_norm1.bias"), 1, width, 0, tensor_data(m, OPENAI("ln_1.bias")));
        hf_add(f, HF("layer_norm2.weight"), 1, width, 0, tensor_data(m, OPENAI("ln_2.weight")));
        hf_add(f, HF("layer_norm2.bias"), 1, width, 0, tensor_data(m, OPENAI("ln_2.bias")));
        hf_add(f, HF("mlp.fc1.weight"), 2, 4 * width, width, tensor_data(m, OPENAI("mlp.c_fc.weight")));
        hf_add(f, HF("mlp.fc1.bias"), 1, 4 * width, 0, tensor_data(m, OPENAI("mlp.c_fc.bias")));
        hf_add(f, HF("mlp.fc2.weight"), 2, width, 4 * width, tensor_data(m, OPENAI("mlp.c_proj.weight")));
        hf_add(f, HF("mlp.fc2.bias"), 1, width, 0, tensor_data(m, OPENAI("mlp.c_proj.bias")));
        if (with_adapters) {
            int b = m->config.adapter_bottleneck;
            hf_add(f, HF("adaptmlp.down_proj.weight"), 2, b, width,
                   tensor_data(m, OPENAI("adaptmlp.down_proj.weight")));
            hf_add(f, HF("adaptmlp.down_proj.bias"), 1, b, 0, tensor_data(m, OPENAI("adaptmlp.down_proj.bias")));
            hf_add(f, HF("adaptmlp.up_proj.weight"), 2, width, b, tensor_data(m, OPENAI("adaptmlp.up_proj.weight")));
            hf_add(f, HF("adaptmlp.up_proj.bias"), 1, width, 0, tensor_data(m, OPENAI("adaptmlp.up_proj.bias")));
        }
    }
#undef OPENAI
#undef HF
}

static void write_hf_file(const model *m, const char *path, int with_adapters)
{
    const clip_config *c = &m->config;
    hf_file f = {0};
    CHECK_OK(safetensors_writer_create(&f.writer));
    int tokens = clip_vision_tokens(c);
    int64_t conv_shape[4] = {c->vision_width, 3, c->patch_size, c->patch_size};
    CHECK_OK(safetensors_writer_add_f32(f.writer, "vision_model.embeddings.patch_embedding.weight", 4, conv_shape,
                                        tensor_data(m, "visual.conv1.weight")));
    hf_add(&f, "vision_model.embeddings.class_embedding", 1, c->vision_width, 0,
           tensor_data(m, "visual.class_embedding"));
    hf_add(&f, "vision_model.embeddings.position_embedding.weight", 2, tokens, c->vision_width,
           tensor_data(m, "visual.positional_embedding"));
    hf_add(&f, "vision_model.pre_layrnorm.weight", 1, c->vision_width, 0, tensor_data(m, "visual.ln_pre.weight"));
    hf_add(&f, "vision_model.pre_layrnorm.bias", 1, c->vision_width, 0, tensor_data(m, "visual.ln_pre.bias"));
    hf_add_blocks(&f, m, "visual.transformer.", "vision_model.encoder.layers.", c->vision_layers, c->vision_width,
                  with_adapters);
    hf_add(&f, "vision_model.post_layernorm.weight", 1, c->vision_width, 0, tensor_data(m, "visual.ln_post.weight"));
    hf_add(&f, "vision_model.post_layernorm.bias", 1, c->vision_width, 0, tensor_data(m, "visual.ln_post.bias"));
    hf_add_transposed(&f, "visual_projection.weight", c->vision_width, c->embed_dim, tensor_data(m, "visual.proj"));

    hf_add(&f, "text_model.embeddings.token_embedding.weight", 2, c->vocab_size, c->text_width,
           tensor_data(m, "token_embedding.weight"));
    hf_add(&f, "text_model.embeddings.position_embedding.weight", 2, c->context_length, c->text_width,
           tensor_data(m, "positional_embedding"));
    hf_add_blocks(&f, m, "transformer.", "text_model.encoder.layers.", c->text_layers, c->text_width, with_adapters);
    hf_add(&f, "text_model.final_layer_norm.weight", 1, c->text_width, 0, tensor_data(m, "ln_final.weight"));
    hf_add(&f, "text_model.final_layer_norm.bias", 1, c->text_width, 0, tensor_data(m, "ln_final.bias"));
    hf_add_transposed(&f, "text_projection.weight", c->text_width, c->embed_dim, tensor_data(m, "text_projection"));
    hf_add(&f, "logit_scale", 0, 0, 0, tensor_data(m, "logit_scale"));

    CHECK_OK(safetensors_writer_write(f.writer, path));
    safetensors_writer_free(f.writer);
    for (int i = 0; i < f.scratch_count; i++)
        free(f.scratch[i]);
}

/* ---- tests ----------------------------------------------------------------- */

static void check_same_config(const clip_config *a, const clip_config *b)
{
    CHECK_EQ_INT(a->image_resolution, b->image_resolution);
    CHECK_EQ_INT(a->patch_size, b->patch_size);
    CHECK_EQ_INT(a->vision_width, b->vision_width);
    CHECK_EQ_INT(a->vision_layers, b->vision_layers);
    CHECK_EQ_INT(a->vision_heads, b->vision_heads);
    CHECK_EQ_INT(a->context_length, b->context_length);
    CHECK_EQ_INT(a->vocab_size, b->vocab_size);
    CHECK_EQ_INT(a->text_width, b->text_width);
    CHECK_EQ_INT(a->text_layers, b->text_layers);
    CHECK_EQ_INT(a->text_heads, b->text_heads);
    CHECK_EQ_INT(a->embed_dim, b->embed_dim);
    CHECK_EQ_INT(a->adapter_bottleneck, b->adapter_bottleneck);
}

/* Loads PATH and compares it with M; WITH_ADAPTERS is whether the file
 * should carry adapters. */
static void check_loads_to(const char *path, const model *m, int with_adapters, weights_naming naming)
{
    weights_file *w = NULL;
    CHECK_OK(weights_open(path, &w));
    if (w == NULL)
        return;
    CHECK_EQ_INT(weights_naming_of(w), naming);
    CHECK_EQ_INT(weights_has_adapters(w), with_adapters);
    weights_close(w);

    /* The entry bottleneck differs from the file's, so a loaded value of 4
     * shows it came from the adapter tensors. */
    clip_config config = small_config();
    config.adapter_bottleneck = with_adapters ? 7 : 4;
    float *frozen = NULL, *adapters = NULL;
    int has_adapters = -1;
    CHECK_OK(weights_load(path, NULL, &config, &frozen, &adapters, &has_adapters));
    if (frozen == NULL)
        return;
    check_same_config(&config, &m->config);
    CHECK_EQ_INT(has_adapters, with_adapters);
    test_compare_floats(path, frozen, m->frozen, clip_frozen_count(&config), 0.0, 0.0);
    if (with_adapters) {
        test_compare_floats("adapters", adapters, m->adapters, clip_adapter_count(&config), 0.0, 0.0);
    } else {
        float largest = 0;
        for (size_t i = 0; i < clip_adapter_count(&config); i++)
            largest = adapters[i] > largest ? adapters[i] : (-adapters[i] > largest ? -adapters[i] : largest);
        CHECK(largest == 0.0f);
    }
    free(frozen);
    free(adapters);
}

static void test_openai_round_trip(void)
{
    model m;
    model_create(&m, small_config(), 1);
    CHECK_OK(weights_save("openai.safetensors", &m.config, m.frozen, m.adapters));
    check_loads_to("openai.safetensors", &m, 1, WEIGHTS_NAMES_OPENAI);

    CHECK_OK(weights_save("openai_frozen.safetensors", &m.config, m.frozen, NULL));
    check_loads_to("openai_frozen.safetensors", &m, 0, WEIGHTS_NAMES_OPENAI);
    model_free(&m);
}

static void test_hugging_face_names(void)
{
    model m;
    model_create(&m, small_config(), 2);
    write_hf_file(&m, "hf.safetensors", 0);
    check_loads_to("hf.safetensors", &m, 0, WEIGHTS_NAMES_HF);
    write_hf_file(&m, "hf_adapters.safetensors", 1);
    check_loads_to("hf_adapters.safetensors", &m, 1, WEIGHTS_NAMES_HF);
    model_free(&m);
}

/* Rewrites the OpenAI file of M with every name prefixed, one tensor
 * dropped (DROP) or one tensor given another shape (RESHAPE, as [2, n/2]). */
static void write_variant(const model *m, const char *path, const char *prefix, const char *drop, const char *reshape,
                          int with_adapters)
{
    safetensors_writer *writer;
    CHECK_OK(safetensors_writer_create(&writer));
    for (int i = 0; i < m->count; i++) {
        const clip_tensor_info *t = &m->table[i];
        if (t->is_adapter && !with_adapters)
            continue;
        if (drop != NULL && strcmp(t->name, drop) == 0)
            continue;
        char name[200];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        int64_t shape[4];
        for (int d = 0; d < t->ndim; d++)
            shape[d] = t->shape[d];
        int ndim = t->ndim;
        if (reshape != NULL && strcmp(t->name, reshape) == 0) {
            ndim = 2;
            shape[0] = 2;
            shape[1] = (int64_t)t->count / 2;
        }
        CHECK_OK(safetensors_writer_add_f32(writer, name, ndim, shape,
                                            (t->is_adapter ? m->adapters : m->frozen) + t->offset));
    }
    CHECK_OK(safetensors_writer_write(writer, path));
    safetensors_writer_free(writer);
}

static void check_load_fails(const char *path, const char *preset, const char *needle)
{
    clip_config config = small_config();
    float *frozen = NULL, *adapters = NULL;
    int has_adapters = 0;
    CHECK_FAILS_WITH(weights_load(path, preset, &config, &frozen, &adapters, &has_adapters), needle);
    CHECK(frozen == NULL);
    CHECK(adapters == NULL);
}

static void test_bad_weights(void)
{
    model m;
    model_create(&m, small_config(), 3);

    write_variant(&m, "prefixed.safetensors", "module.", NULL, NULL, 1);
    check_loads_to("prefixed.safetensors", &m, 1, WEIGHTS_NAMES_OPENAI);

    write_variant(&m, "missing.safetensors", "", "transformer.resblocks.1.mlp.c_fc.bias", NULL, 0);
    check_load_fails("missing.safetensors", NULL, "tensor 'transformer.resblocks.1.mlp.c_fc.bias' not found");

    write_variant(&m, "reshaped.safetensors", "", "visual.transformer.resblocks.0.attn.out_proj.weight", NULL, 0);
    write_variant(&m, "reshaped.safetensors", "", NULL, "visual.transformer.resblocks.0.attn.out_proj.weight", 0);
    check_load_fails("reshaped.safetensors", NULL,
                     "tensor 'visual.transformer.resblocks.0.attn.out_proj.weight' has shape [2, 2048], expected "
                     "[64, 64]");

    write_variant(&m, "partial.safetensors", "", "transformer.resblocks.2.adaptmlp.up_proj.bias", NULL, 1);
    check_load_fails("partial.safetensors", NULL, "has 19 of the 20 adapter tensors");
    check_load_fails("partial.safetensors", NULL, "'transformer.resblocks.2.adaptmlp.up_proj.bias' is missing");

    /* A block missing its probe tensor while a later block exists. */
    write_variant(&m, "gap.safetensors", "", "transformer.resblocks.1.attn.in_proj_weight", NULL, 0);
    check_load_fails("gap.safetensors", NULL, "belongs to block 1, but block 1 has no");

    write_variant(&m, "no_conv.safetensors", "", "visual.conv1.weight", NULL, 0);
    check_load_fails("no_conv.safetensors", NULL, "expected a tensor named 'visual.conv1.weight'");

    /* Weights that disagree with a preset name the field and both values. */
    check_load_fails("openai.safetensors", "ViT-B/16", "image_resolution is 16 in the weights but 224 in model "
                                                        "preset 'ViT-B/16'");
    check_load_fails("openai.safetensors", "no-such-model", "unknown model preset 'no-such-model'");
    model_free(&m);
}

static void test_preset_tiny(void)
{
    clip_config tiny;
    CHECK_OK(clip_preset("tiny", &tiny));
    model m;
    model_create(&m, tiny, 4);
    CHECK_OK(weights_save("tiny.safetensors", &tiny, m.frozen, NULL));

    clip_config config = tiny;
    float *frozen = NULL, *adapters = NULL;
    int has_adapters = 0;
    CHECK_OK(weights_load("tiny.safetensors", "tiny", &config, &frozen, &adapters, &has_adapters));
    check_same_config(&config, &tiny);
    CHECK_EQ_INT(config.vision_heads, 2);
    CHECK_EQ_INT(config.text_heads, 1);
    free(frozen);
    free(adapters);
    model_free(&m);
}

int main(void)
{
    test_openai_round_trip();
    test_hugging_face_names();
    test_bad_weights();
    test_preset_tiny();
    return test_finish("test_weights");
}

/* clip_fixture: readers for the PyTorch-generated CLIP test fixtures. */
#include "clip_fixture.h"

#include "dmnsp/error.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *metadata_value(const safetensors_file *file, const char *key)
{
    const char *value = safetensors_metadata(file, key);
    if (value == NULL)
        test_report_failure(__FILE__, __LINE__, "%s: fixture metadata has no key %s", safetensors_path(file), key);
    return value;
}

int clip_fixture_metadata_int(const safetensors_file *file, const char *key)
{
    const char *value = metadata_value(file, key);
    return value != NULL ? atoi(value) : 0;
}

static float metadata_float(const safetensors_file *file, const char *key)
{
    const char *value = metadata_value(file, key);
    return value != NULL ? strtof(value, NULL) : 0;
}

clip_config clip_fixture_config(const safetensors_file *file)
{
    clip_config c;
    c.image_resolution = clip_fixture_metadata_int(file, "image_resolution");
    c.patch_size = clip_fixture_metadata_int(file, "patch_size");
    c.vision_width = clip_fixture_metadata_int(file, "vision_width");
    c.vision_layers = clip_fixture_metadata_int(file, "vision_layers");
    c.vision_heads = clip_fixture_metadata_int(file, "vision_heads");
    c.context_length = clip_fixture_metadata_int(file, "context_length");
    c.vocab_size = clip_fixture_metadata_int(file, "vocab_size");
    c.text_width = clip_fixture_metadata_int(file, "text_width");
    c.text_layers = clip_fixture_metadata_int(file, "text_layers");
    c.text_heads = clip_fixture_metadata_int(file, "text_heads");
    c.embed_dim = clip_fixture_metadata_int(file, "embed_dim");
    c.adapter_bottleneck = clip_fixture_metadata_int(file, "adapter_bottleneck");
    c.adapter_scale = metadata_float(file, "adapter_scale");
    c.adapter_dropout = metadata_float(file, "adapter_dropout");
    return c;
}

int clip_fixture_read_tensors(const safetensors_file *file, const clip_config *config, const char *adapter_prefix,
                              float *frozen, float *adapters)
{
    clip_tensor_info *table = NULL;
    int count = 0;
    DMNSP_TRY(clip_tensor_table(config, &table, &count));
    int status = 0;
    for (int i = 0; i < count && status == 0; i++) {
        if (!table[i].is_adapter && frozen == NULL)
            continue;
        int64_t shape[4];
        for (int d = 0; d < table[i].ndim; d++)
            shape[d] = table[i].shape[d];
        const char *name = table[i].name;
        float *base = frozen;
        char prefixed[160];
        if (table[i].is_adapter) {
            snprintf(prefixed, sizeof prefixed, "%s%s", adapter_prefix, table[i].name);
            name = prefixed;
            base = adapters;
        }
        status = safetensors_read_f32_shape(file, name, table[i].ndim, shape, base + table[i].offset);
    }
    free(table);
    return status;
}

int clip_fixture_create_model(const safetensors_file *file, const clip_config *config, clip_model **model)
{
    *model = NULL;
    DMNSP_TRY(clip_model_create(config, model));
    int status = clip_fixture_read_tensors(file, config, "", clip_model_frozen(*model), clip_model_adapters(*model));
    if (status != 0) {
        clip_model_free(*model);
        *model = NULL;
    }
    return status;
}

/* Reads the inputs and expected adapters of FIXTURE->file. */
static int read_training_step(train_fixture *fixture)
{
    const char *path = safetensors_path(fixture->file);
    const safetensors_tensor *labels = safetensors_find(fixture->file, "input.labels");
    const safetensors_tensor *tokens = safetensors_find(fixture->file, "input.tokens");
    if (labels == NULL || tokens == NULL)
        return dmnsp_fail("%s: input.labels or input.tokens is missing; regenerate the fixture with its generator "
                          "under tests/train",
                          path);
    fixture->config = clip_fixture_config(fixture->file);
    fixture->image_floats = (size_t)3 * fixture->config.image_resolution * fixture->config.image_resolution;
    fixture->n_images = (int)labels->count;
    fixture->n_classes = (int)tokens->shape[0];

    size_t n = (size_t)fixture->n_images, adapter_count = clip_adapter_count(&fixture->config);
    fixture->images = dmnsp_malloc(n * fixture->image_floats * sizeof(float), "fixture images");
    fixture->labels = dmnsp_malloc(n * sizeof(int), "fixture labels");
    fixture->tokens = dmnsp_malloc(tokens->count * sizeof(int32_t), "fixture tokens");
    fixture->expected_gradients = dmnsp_malloc(adapter_count * sizeof(float), "expected gradients");
    fixture->expected_adapters = dmnsp_malloc(adapter_count * sizeof(float), "expected adapters");
    int32_t *labels32 = dmnsp_malloc(n * sizeof *labels32, "fixture labels");
    if (fixture->images == NULL || fixture->labels == NULL || fixture->tokens == NULL ||
        fixture->expected_gradients == NULL || fixture->expected_adapters == NULL || labels32 == NULL) {
        free(labels32);
        return -1;
    }

    int status = safetensors_read_f32(fixture->file, "input.images", fixture->images, n * fixture->image_floats);
    if (status == 0)
        status = safetensors_read_i32(fixture->file, "input.labels", labels32, n);
    if (status == 0)
        status = safetensors_read_i32(fixture->file, "input.tokens", fixture->tokens, tokens->count);
    if (status == 0)
        status = clip_fixture_read_tensors(fixture->file, &fixture->config, "grad0.", NULL,
                                           fixture->expected_gradients);
    if (status == 0)
        status = clip_fixture_read_tensors(fixture->file, &fixture->config, "final.", NULL,
                                           fixture->expected_adapters);
    for (size_t i = 0; i < n && status == 0; i++)
        fixture->labels[i] = labels32[i];
    free(labels32);
    return status;
}

int train_fixture_open(const char *path, train_fixture *fixture)
{
    memset(fixture, 0, sizeof *fixture);
    DMNSP_TRY(safetensors_open(path, &fixture->file));
    int status = read_training_step(fixture);
    if (status != 0)
        train_fixture_close(fixture);
    return status;
}

void train_fixture_close(train_fixture *fixture)
{
    safetensors_close(fixture->file);
    free(fixture->images);
    free(fixture->labels);
    free(fixture->tokens);
    free(fixture->expected_gradients);
    free(fixture->expected_adapters);
    memset(fixture, 0, sizeof *fixture);
}

static float max_abs(const float *x, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

void train_fixture_compare_gradients(const train_fixture *fixture, const char *label, const float *actual)
{
    /* Per tensor, relative to at least 1% of the largest adapter gradient
     * of the model, because float32 rounding scales with the magnitudes
     * summed into a gradient, not with the values of one small tensor. An
     * 8-value bias differed by 1.4e-8 absolute in a -O2 sanitizer build.
     * On the model of tests/train/train_fixture.safetensors, PyTorch's own
     * float32 gradients differ from its float64 ones by up to 2.5e-4
     * relative to 0.1% of the largest, so a tighter floor would test float
     * rounding. */
    double floor = 1e-2 * max_abs(fixture->expected_gradients, clip_adapter_count(&fixture->config));
    clip_tensor_info *table = NULL;
    int count = 0;
    CHECK_OK(clip_tensor_table(&fixture->config, &table, &count));
    for (int i = 0; i < count; i++) {
        if (!table[i].is_adapter)
            continue;
        char name[192];
        snprintf(name, sizeof name, "%s of %s", label, table[i].name);
        test_compare_floats(name, actual + table[i].offset, fixture->expected_gradients + table[i].offset,
                            table[i].count, 1e-4, floor);
    }
    free(table);
}

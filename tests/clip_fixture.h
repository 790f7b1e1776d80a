/* clip_fixture: reads the small random CLIP models that the PyTorch
 * generators (tests/model/gen_fixtures.py, tests/train/gen_*.py) write into
 * safetensors fixtures.
 *
 * A fixture stores the model's shapes as metadata, one key per clip_config
 * field, and its tensors under their OpenAI names. A training-step fixture
 * (tests/train) adds the inputs "input.images", "input.labels" and
 * "input.tokens", the adapter gradients of the first step under
 * "grad0.<name>" and the adapters after the last step under "final.<name>".
 *
 * A missing metadata key counts as a test failure. The readers return 0 or
 * a non-zero status with the message in dmnsp_last_error().
 */
#ifndef DMNSP_TEST_CLIP_FIXTURE_H
#define DMNSP_TEST_CLIP_FIXTURE_H

#include "dmnsp/clip.h"
#include "dmnsp/safetensors.h"

#include <stddef.h>
#include <stdint.h>

/* Integer metadata value KEY, or 0 after a test failure when it is missing. */
int clip_fixture_metadata_int(const safetensors_file *file, const char *key);

/* The model shapes and adapter settings stored in FILE's metadata. */
clip_config clip_fixture_config(const safetensors_file *file);

/* Reads every tensor of CONFIG's layout, checking its shape, into FROZEN
 * and ADAPTERS at the clip_tensor_table offsets. Adapter tensors are read
 * from ADAPTER_PREFIX followed by the layout name ("" for the model's own,
 * "grad0." for gradients). FROZEN may be NULL to read the adapters only. */
int clip_fixture_read_tensors(const safetensors_file *file, const clip_config *config, const char *adapter_prefix,
                              float *frozen, float *adapters);

/* Creates *MODEL with CONFIG and FILE's frozen weights and adapters. The
 * caller frees it with clip_model_free. */
int clip_fixture_create_model(const safetensors_file *file, const clip_config *config, clip_model **model);

/* A training-step fixture, read whole on every rank. */
typedef struct {
    safetensors_file *file;
    clip_config config;
    size_t image_floats; /* floats per image: 3 × image_resolution² */
    int n_images;
    int n_classes;
    float *images;             /* [n_images, 3, resolution, resolution] */
    int *labels;               /* [n_images], 0..n_classes-1 */
    int32_t *tokens;           /* [n_classes, context_length] prompt ids */
    float *expected_gradients; /* adapter layout, from "grad0.<name>" */
    float *expected_adapters;  /* adapter layout, from "final.<name>" */
} train_fixture;

/* Opens the training-step fixture at PATH and reads the parts above. On
 * failure nothing is left to free. */
int train_fixture_open(const char *path, train_fixture *fixture);
void train_fixture_close(train_fixture *fixture);

/* Compares ACTUAL (adapter layout) with the fixture's expected gradients
 * tensor by tensor, printing each as "LABEL of <tensor name>". */
void train_fixture_compare_gradients(const train_fixture *fixture, const char *label, const float *actual);

#endif

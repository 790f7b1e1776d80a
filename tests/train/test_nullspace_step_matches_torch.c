/* One DMNSP-projected training step against PyTorch: the random adapters
 * of nullspace_step_fixture.safetensors (written by
 * gen_nullspace_step_fixture.py in float64) are used as the adapters after
 * task 0. The test builds the visual null-space bases from dmnsp's own
 * eval-mode adapter outputs of the basis images (top_select 1, concat
 * union, DMNSP-fixed with lambda_scale s), takes the first step of task 1
 * with nullspace_project_buffer as the gradient hook, and compares:
 *   - each block's projector u u^T with the one from PyTorch's top
 *     eigenvector (u itself has an arbitrary sign),
 *   - the projected gradients seen by AdamW, and
 *   - every adapter (visual and text) after the step, within 1e-4
 *     relative.
 * Runs on 1 and 2 ranks (each rank adds and trains on its shard). */
#include "dmnsp/clip.h"
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/nullspace.h"
#include "dmnsp/safetensors.h"
#include "dmnsp/train.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SETTINGS = 6 };

static int metadata_int(const safetensors_file *file, const char *key)
{
    const char *value = safetensors_metadata(file, key);
    if (value == NULL) {
        test_report_failure(__FILE__, __LINE__, "fixture metadata has no key %s", key);
        return 0;
    }
    return atoi(value);
}

static float metadata_float(const safetensors_file *file, const char *key)
{
    const char *value = safetensors_metadata(file, key);
    if (value == NULL) {
        test_report_failure(__FILE__, __LINE__, "fixture metadata has no key %s", key);
        return 0;
    }
    return (float)atof(value);
}

static clip_config fixture_config(const safetensors_file *file)
{
    clip_config c;
    c.image_resolution = metadata_int(file, "image_resolution");
    c.patch_size = metadata_int(file, "patch_size");
    c.vision_width = metadata_int(file, "vision_width");
    c.vision_layers = metadata_int(file, "vision_layers");
    c.vision_heads = metadata_int(file, "vision_heads");
    c.context_length = metadata_int(file, "context_length");
    c.vocab_size = metadata_int(file, "vocab_size");
    c.text_width = metadata_int(file, "text_width");
    c.text_layers = metadata_int(file, "text_layers");
    c.text_heads = metadata_int(file, "text_heads");
    c.embed_dim = metadata_int(file, "embed_dim");
    c.adapter_bottleneck = metadata_int(file, "adapter_bottleneck");
    c.adapter_scale = metadata_float(file, "adapter_scale");
    c.adapter_dropout = metadata_float(file, "adapter_dropout");
    return c;
}

/* Reads every tensor of the layout, with PREFIX in front of adapter names,
 * into FROZEN and ADAPTERS (FROZEN may be NULL to read adapters only). */
static int read_layout(const safetensors_file *file, const clip_config *config, const char *prefix, float *frozen,
                       float *adapters)
{
    clip_tensor_info *table = NULL;
    int count = 0;
    DMNSP_TRY(clip_tensor_table(config, &table, &count));
    int status = 0;
    for (int i = 0; i < count && status == 0; i++) {
        char name[160];
        if (table[i].is_adapter) {
            snprintf(name, sizeof name, "%s%s", prefix, table[i].name);
            status = safetensors_read_f32(file, name, adapters + table[i].offset, table[i].count);
        } else if (frozen != NULL) {
            status = safetensors_read_f32(file, table[i].name, frozen + table[i].offset, table[i].count);
        }
    }
    free(table);
    return status;
}

typedef struct {
    nullspace_state *state;
    const clip_config *config;
    float *copy; /* copy of the projected gradients of the step */
    size_t count;
} projection_hook;

static int project_gradients(void *context, float *gradients, int step)
{
    projection_hook *hook = context;
    long nonfinite = 0;
    DMNSP_TRY(nullspace_project_buffer(hook->state, hook->config, gradients, CLIP_VISUAL, &nonfinite));
    if (nonfinite != 0)
        return dmnsp_fail("%ld non-finite projected gradients at step %d", nonfinite, step);
    memcpy(hook->copy, gradients, hook->count * sizeof *gradients);
    return 0;
}

static float max_abs(const float *x, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* Largest |u u^T - v v^T| entry for unit vectors U and V of length D. */
static double projector_difference(const float *u, const float *v, int d)
{
    double worst = 0;
    for (int r = 0; r < d; r++)
        for (int c = 0; c < d; c++) {
            double diff = fabs((double)u[r] * u[c] - (double)v[r] * v[c]);
            worst = diff > worst ? diff : worst;
        }
    return worst;
}

int main(int argc, char **argv)
{
    CHECK_OK(dist_init(argv[0], 0, NULL));
    int rank = dist_rank(), size = dist_size();

    char path[4096];
    snprintf(path, sizeof path, "%s/tests/train/nullspace_step_fixture.safetensors",
             test_env("DMNSP_SOURCE_DIR", "."));
    safetensors_file *file = NULL;
    if (safetensors_open(path, &file) != 0)
        dist_abort(dmnsp_last_error());
    clip_config config = fixture_config(file);

    const safetensors_tensor *label_info = safetensors_find(file, "input.labels");
    const safetensors_tensor *token_info = safetensors_find(file, "input.tokens");
    const safetensors_tensor *basis_info = safetensors_find(file, "input.basis_images");
    if (label_info == NULL || token_info == NULL || basis_info == NULL)
        dist_abort("nullspace step fixture: input.labels, input.tokens or input.basis_images is missing; "
                   "regenerate it with tests/train/gen_nullspace_step_fixture.py");
    size_t image_floats = (size_t)3 * config.image_resolution * config.image_resolution;
    int n = (int)label_info->count, classes = (int)token_info->shape[0];
    int n_basis = (int)(basis_info->count / image_floats);
    float *images = malloc((size_t)n * image_floats * sizeof *images);
    float *basis_images = malloc((size_t)n_basis * image_floats * sizeof *basis_images);
    int32_t *labels32 = malloc((size_t)n * sizeof *labels32);
    int *labels = malloc((size_t)n * sizeof *labels);
    int32_t *tokens = malloc(token_info->count * sizeof *tokens);
    float settings[SETTINGS], loss;
    CHECK_OK(safetensors_read_f32(file, "input.images", images, (size_t)n * image_floats));
    CHECK_OK(safetensors_read_f32(file, "input.basis_images", basis_images, (size_t)n_basis * image_floats));
    CHECK_OK(safetensors_read_i32(file, "input.labels", labels32, (size_t)n));
    CHECK_OK(safetensors_read_i32(file, "input.tokens", tokens, token_info->count));
    CHECK_OK(safetensors_read_f32(file, "input.settings", settings, SETTINGS));
    CHECK_OK(safetensors_read_f32(file, "loss", &loss, 1));
    for (int i = 0; i < n; i++)
        labels[i] = labels32[i];

    size_t adapter_count = clip_adapter_count(&config);
    float *expected_gradients = malloc(adapter_count * sizeof(float));
    float *expected_adapters = malloc(adapter_count * sizeof(float));
    CHECK_OK(read_layout(file, &config, "grad0.", NULL, expected_gradients));
    CHECK_OK(read_layout(file, &config, "final.", NULL, expected_adapters));

    clip_model *model = NULL;
    if (clip_model_create(&config, &model) != 0 ||
        read_layout(file, &config, "", clip_model_frozen(model), clip_model_adapters(model)) != 0)
        dist_abort(dmnsp_last_error());
    long begin = 0, count = 0, basis_begin = 0, basis_count = 0;
    dist_shard(n, rank, size, &begin, &count);
    dist_shard(n_basis, rank, size, &basis_begin, &basis_count);
    int local_max = (n + size - 1) / size, basis_max = (n_basis + size - 1) / size;
    train_config train = train_default_config();
    train.max_local_images = local_max > basis_max ? local_max : basis_max;
    train.max_classes = classes;
    train.label_smoothing = settings[4];
    train.adamw.weight_decay = settings[3];
    trainer *t = NULL;
    if (trainer_create(model, &train, &t) != 0)
        dist_abort(dmnsp_last_error());

    /* Bases of "task 0": this rank's basis images in eval mode. */
    nullspace_options options;
    nullspace_options_default(&options, config.vision_layers, config.vision_width, config.adapter_bottleneck);
    options.variant = NULLSPACE_FIXED;
    options.lambda_scale = settings[5];
    nullspace_state *state = NULL;
    nullspace_collector *collector = NULL;
    int grid = config.image_resolution / config.patch_size, tokens_per_image = grid * grid + 1;
    if (nullspace_state_create(&options, &state) != 0 ||
        nullspace_collector_create(&options, nullspace_solver_needs_rows(&options, size),
                                   (long)basis_max * tokens_per_image, &collector) != 0)
        dist_abort(dmnsp_last_error());
    float *features = malloc((size_t)train.max_local_images * config.embed_dim * sizeof *features);
    clip_dropout_key key = {0, 0};
    CHECK_OK(clip_encode_images(model, trainer_workspace(t), basis_images + basis_begin * image_floats,
                                (int)basis_count, basis_begin, 0, key, features));
    for (int block = 0; block < config.vision_layers; block++) {
        int rows = 0;
        const float *outputs = clip_workspace_visual_adapter_output(trainer_workspace(t), block, &rows);
        CHECK_OK(nullspace_collector_add(collector, block, outputs, rows));
    }
    CHECK_OK(nullspace_build_bases(state, collector));
    CHECK_OK(nullspace_compute_lambda(state, NULL));

    if (rank == 0) {
        float *u = malloc((size_t)config.vision_width * sizeof *u);
        for (int block = 0; block < config.vision_layers; block++) {
            char name[64];
            snprintf(name, sizeof name, "basis.top.%d", block);
            const float *top = NULL;
            CHECK_OK(safetensors_read_f32(file, name, u, (size_t)config.vision_width));
            CHECK_OK(nullspace_task_block(state, 0, block, NULL, NULL, &top));
            double diff = projector_difference(top, u, config.vision_width);
            printf("block %d: max |u u^T - torch| %.3g\n", block, diff);
            CHECK(diff < 1e-5);
        }
        free(u);
    }

    /* The first step of task 1 with the projection hook. */
    projection_hook hook = {state, &config, malloc(adapter_count * sizeof(float)), adapter_count};
    train_step_result result;
    CHECK_OK(trainer_begin_task(t, 1, settings[0], (long)settings[1], (long)settings[2]));
    CHECK_OK(train_step(t, images + begin * image_floats, labels + begin, (int)count, begin, n, tokens, classes, 0,
                        project_gradients, &hook, &result));
    if (rank == 0)
        printf("loss %.7f (torch %.7f), lr %g\n", result.loss, loss, result.learning_rate);
    CHECK_NEAR(result.loss, loss, 1e-5 * loss);

    if (rank == 0) {
        /* Gradients per tensor, relative to at least 1% of the largest (the
         * floor test_train_matches_torch.c explains). */
        double floor = 1e-2 * max_abs(expected_gradients, adapter_count);
        clip_tensor_info *table = NULL;
        int table_count = 0;
        CHECK_OK(clip_tensor_table(&config, &table, &table_count));
        for (int i = 0; i < table_count; i++) {
            if (!table[i].is_adapter)
                continue;
            char name[160];
            snprintf(name, sizeof name, "projected gradient of %s", table[i].name);
            test_compare_floats(name, hook.copy + table[i].offset, expected_gradients + table[i].offset,
                                table[i].count, 1e-4, floor);
        }
        free(table);
        test_compare_floats("adapters after the projected step", clip_model_adapters(model), expected_adapters,
                            adapter_count, 1e-4, 1e-2);
    }

    trainer_free(t);
    nullspace_collector_destroy(collector);
    nullspace_state_destroy(state);
    clip_model_free(model);
    safetensors_close(file);
    free(features);
    free(hook.copy);
    free(images);
    free(basis_images);
    free(labels32);
    free(labels);
    free(tokens);
    free(expected_gradients);
    free(expected_adapters);

    int failures = test_failures, all_failures = 0;
    MPI_Allreduce(&failures, &all_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    test_failures = all_failures;
    dist_finalize();
    return test_finish("test_nullspace_step_matches_torch");
}

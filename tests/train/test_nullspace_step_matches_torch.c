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
#include "clip_fixture.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SETTINGS = 6 };

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
    train_fixture fixture;
    if (train_fixture_open(path, &fixture) != 0)
        dist_abort(dmnsp_last_error());
    const clip_config config = fixture.config;
    int n = fixture.n_images, classes = fixture.n_classes;
    size_t image_floats = fixture.image_floats;

    const safetensors_tensor *basis_info = safetensors_find(fixture.file, "input.basis_images");
    if (basis_info == NULL)
        dist_abort("nullspace step fixture: input.basis_images is missing; "
                   "regenerate it with tests/train/gen_nullspace_step_fixture.py");
    int n_basis = (int)(basis_info->count / image_floats);
    float *basis_images = malloc((size_t)n_basis * image_floats * sizeof *basis_images);
    float settings[SETTINGS], loss;
    CHECK_OK(safetensors_read_f32(fixture.file, "input.basis_images", basis_images, (size_t)n_basis * image_floats));
    CHECK_OK(safetensors_read_f32(fixture.file, "input.settings", settings, SETTINGS));
    CHECK_OK(safetensors_read_f32(fixture.file, "loss", &loss, 1));

    size_t adapter_count = clip_adapter_count(&config);
    clip_model *model = NULL;
    if (clip_fixture_create_model(fixture.file, &config, &model) != 0)
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
                                (int)basis_count, basis_begin, CLIP_ENCODE_ALL_TOKENS, key, features));
    for (int block = 0; block < config.vision_layers; block++) {
        int rows = 0;
        const float *outputs = clip_workspace_visual_adapter_output(model, trainer_workspace(t), block, &rows);
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
            CHECK_OK(safetensors_read_f32(fixture.file, name, u, (size_t)config.vision_width));
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
    CHECK_OK(train_step(t, fixture.images + begin * image_floats, fixture.labels + begin, (int)count, begin, n,
                        fixture.tokens, classes, 0, project_gradients, &hook, &result));
    if (rank == 0)
        printf("loss %.7f (torch %.7f), lr %g\n", result.loss, loss, result.learning_rate);
    CHECK_NEAR(result.loss, loss, 1e-5 * loss);

    if (rank == 0) {
        train_fixture_compare_gradients(&fixture, "projected gradient", hook.copy);
        test_compare_floats("adapters after the projected step", clip_model_adapters(model), fixture.expected_adapters,
                            adapter_count, 1e-4, 1e-2);
    }

    trainer_free(t);
    nullspace_collector_destroy(collector);
    nullspace_state_destroy(state);
    clip_model_free(model);
    train_fixture_close(&fixture);
    free(features);
    free(hook.copy);
    free(basis_images);

    test_sum_failures_over_ranks();
    dist_finalize();
    return test_finish("test_nullspace_step_matches_torch");
}

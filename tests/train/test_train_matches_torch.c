/* Training-step parity with PyTorch: a small random CLIP (adapter dropout
 * 0) trains for three steps on train_fixture.safetensors, written by
 * gen_train_fixtures.py in float64 with torch.optim.AdamW. The loss of
 * every step, the adapter gradients of the first step (seen by the hook,
 * after the allreduce) and the adapters after the last step must match.
 * Runs on 1 and 2 ranks (each rank trains on its shard of the batch),
 * with stored activations and with block recomputation. */
#include "dmnsp/clip.h"
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/safetensors.h"
#include "dmnsp/train.h"
#include "clip_fixture.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STEPS = 3 };

typedef struct {
    float *copy;
    size_t count;
} gradient_capture;

static int capture_gradients(void *context, float *gradients, int step)
{
    gradient_capture *capture = context;
    if (step == 0)
        memcpy(capture->copy, gradients, capture->count * sizeof *gradients);
    return 0;
}

int main(int argc, char **argv)
{
    CHECK_OK(dist_init(argv[0], 0, NULL));
    int rank = dist_rank(), size = dist_size();

    char path[4096];
    snprintf(path, sizeof path, "%s/tests/train/train_fixture.safetensors", test_env("DMNSP_SOURCE_DIR", "."));
    train_fixture fixture;
    if (train_fixture_open(path, &fixture) != 0)
        dist_abort(dmnsp_last_error());
    const clip_config config = fixture.config;
    int n = fixture.n_images, classes = fixture.n_classes;
    size_t image_floats = fixture.image_floats;
    float settings[5], losses[STEPS];
    CHECK_OK(safetensors_read_f32(fixture.file, "input.settings", settings, 5));
    CHECK_OK(safetensors_read_f32(fixture.file, "losses", losses, STEPS));

    size_t adapter_count = clip_adapter_count(&config);
    gradient_capture capture = {malloc(adapter_count * sizeof(float)), adapter_count};
    long begin = 0, count = 0;
    dist_shard(n, rank, size, &begin, &count);

    /* The same run with stored activations and with block recomputation. */
    for (int recompute = 0; recompute < 2; recompute++) {
        clip_model *model = NULL;
        if (clip_fixture_create_model(fixture.file, &config, &model) != 0)
            dist_abort(dmnsp_last_error());
        train_config train = train_default_config();
        train.max_local_images = (n + size - 1) / size;
        train.max_classes = classes;
        train.label_smoothing = settings[4];
        train.adamw.weight_decay = settings[3];
        train.recompute_blocks = recompute;
        trainer *t = NULL;
        if (trainer_create(model, &train, &t) != 0 ||
            trainer_begin_task(t, 0, settings[0], (long)settings[1], (long)settings[2]) != 0)
            dist_abort(dmnsp_last_error());

        for (int step = 0; step < STEPS; step++) {
            train_step_result result;
            CHECK_OK(train_step(t, fixture.images + begin * image_floats, fixture.labels + begin, (int)count, begin,
                                n, fixture.tokens, classes, step, capture_gradients, &capture, &result));
            if (rank == 0)
                printf("recompute %d, step %d: loss %.7f (torch %.7f), lr %g\n", recompute, step, result.loss,
                       losses[step], result.learning_rate);
            CHECK_NEAR(result.loss, losses[step], 1e-5 * losses[step]);
        }

        if (rank == 0) {
            char label[64];
            snprintf(label, sizeof label, "recompute %d, step 0 gradient", recompute);
            train_fixture_compare_gradients(&fixture, label, capture.copy);
            test_compare_floats("adapters after 3 steps", clip_model_adapters(model), fixture.expected_adapters,
                                adapter_count, 1e-4, 1e-2);
        }

        trainer_free(t);
        clip_model_free(model);
    }
    train_fixture_close(&fixture);
    free(capture.copy);

    test_sum_failures_over_ranks();
    dist_finalize();
    return test_finish("test_train_matches_torch");
}

/* Data-parallel training agrees with one-process training: every rank
 * trains a small random CLIP (adapter dropout on) on its shard of each
 * global batch, while rank 0 also trains an identical model alone on
 * MPI_COMM_SELF with the whole batches. Losses, correct counts and the
 * adapters after several steps must agree, including a step in which one
 * rank has no images. Also checks that the hook sees the same gradient on
 * every rank, that update factors of 0 freeze a range, that a failure on
 * one rank fails the step everywhere without a hang, that non-finite
 * gradients are counted per step and per task, and the evaluation
 * helpers. */
#include "dmnsp/clip.h"
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/loss.h"
#include "dmnsp/train.h"
#include "test_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CLASSES = 5, MAX_BATCH = 7, STEPS = 5, EVAL_IMAGES = 9 };

static const int batch_sizes[STEPS] = {7, 6, 2, 7, 5};

static double uniform(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*state >> 11) / (double)(1ULL << 53) * 2.0 - 1.0;
}

static clip_config small_config(void)
{
    clip_config c;
    memset(&c, 0, sizeof c);
    c.image_resolution = 16;
    c.patch_size = 8;
    c.vision_width = 64;
    c.vision_layers = 2;
    c.vision_heads = 1;
    c.context_length = 12;
    c.vocab_size = 100;
    c.text_width = 64;
    c.text_layers = 2;
    c.text_heads = 1;
    c.embed_dim = 32;
    c.adapter_bottleneck = 8;
    c.adapter_scale = 0.1f;
    c.adapter_dropout = 0.1f;
    return c;
}

/* A random model whose up projections are non-zero too, so that every
 * adapter tensor gets a gradient from the first step. */
static clip_model *make_model(void)
{
    clip_config config = small_config();
    clip_model *m = NULL;
    if (clip_model_create(&config, &m) != 0 || clip_model_init_random(m, 5) != 0 ||
        clip_model_init_adapters(m, 6) != 0) {
        test_report_failure(__FILE__, __LINE__, "model creation failed: %s", dmnsp_last_error());
        return NULL;
    }
    uint64_t state = 42;
    for (int modality = 0; modality < 2; modality++) {
        int layers = modality == CLIP_VISUAL ? config.vision_layers : config.text_layers;
        for (int block = 0; block < layers; block++) {
            clip_adapter_view view;
            clip_adapter_block(&config, clip_model_adapters(m), (clip_modality)modality, block, &view);
            for (int i = 0; i < view.width * view.bottleneck; i++)
                view.up_w[i] = (float)(0.2 * uniform(&state));
            for (int i = 0; i < view.width; i++)
                view.up_b[i] = (float)(0.05 * uniform(&state));
        }
    }
    return m;
}

static trainer *make_trainer(clip_model *m, MPI_Comm comm, int max_images)
{
    train_config config = train_default_config();
    config.max_local_images = max_images;
    config.max_classes = CLASSES;
    config.label_smoothing = 0.1f;
    config.adamw.weight_decay = 0.01;
    config.dropout_seed = 17;
    config.comm = comm;
    trainer *t = NULL;
    CHECK_OK(trainer_create(m, &config, &t));
    if (t != NULL)
        CHECK_OK(trainer_begin_task(t, 0, 1e-3, 2, STEPS));
    return t;
}

/* Prompt rows: start token 98, a few word tokens, end token 99 (the
 * largest id, as the end-of-text token is), zero padding. */
static void make_prompts(int32_t *tokens, int context)
{
    memset(tokens, 0, (size_t)CLASSES * context * sizeof *tokens);
    for (int c = 0; c < CLASSES; c++) {
        int32_t *row = tokens + (size_t)c * context;
        int length = 2 + c % 3;
        row[0] = 98;
        for (int k = 1; k <= length; k++)
            row[k] = (int32_t)(3 + (c * 11 + k * 7) % 90);
        row[length + 1] = 99;
    }
}

typedef struct {
    size_t count;    /* floats in the gradient buffer */
    float *gradients; /* copy of the last gradient seen */
    int calls;
    int last_step;
    double checksum;
} hook_record;

static int record_gradient(void *context, float *gradients, int step)
{
    hook_record *record = context;
    record->calls++;
    record->last_step = step;
    double sum = 0;
    for (size_t i = 0; i < record->count; i++)
        sum += (double)gradients[i] * (i % 7 + 1);
    record->checksum = sum;
    memcpy(record->gradients, gradients, record->count * sizeof *gradients);
    return 0;
}

static int poison_gradient(void *context, float *gradients, int step)
{
    gradients[0] = INFINITY;
    gradients[1] = NAN;
    return 0;
}

/* Fails on the last rank only, as a projection error on one rank would. */
static int failing_hook(void *context, float *gradients, int step)
{
    if (dist_rank() != dist_size() - 1)
        return 0;
    return dmnsp_fail("projection refused step %d", step);
}

int main(int argc, char **argv)
{
    CHECK_OK(dist_init(argv[0], 0, NULL));
    int rank = dist_rank(), size = dist_size();
    clip_config config = small_config();
    size_t image_floats = (size_t)3 * config.image_resolution * config.image_resolution;
    size_t adapter_count = clip_adapter_count(&config);

    /* All ranks hold every batch; each trains on its shard. */
    float *images = malloc((size_t)STEPS * MAX_BATCH * image_floats * sizeof *images);
    int labels[STEPS * MAX_BATCH];
    uint64_t state = 1234;
    for (size_t i = 0; i < (size_t)STEPS * MAX_BATCH * image_floats; i++)
        images[i] = (float)uniform(&state);
    for (int i = 0; i < STEPS * MAX_BATCH; i++)
        labels[i] = (i * 3 + 1) % CLASSES;
    int32_t *prompts = malloc((size_t)CLASSES * config.context_length * sizeof *prompts);
    make_prompts(prompts, config.context_length);

    clip_model *model = make_model();
    trainer *shared = model ? make_trainer(model, MPI_COMM_WORLD, (MAX_BATCH + size - 1) / size) : NULL;
    clip_model *alone_model = NULL;
    trainer *alone = NULL;
    if (rank == 0) {
        alone_model = make_model();
        alone = alone_model ? make_trainer(alone_model, MPI_COMM_SELF, MAX_BATCH) : NULL;
    }
    if (shared == NULL || (rank == 0 && alone == NULL)) {
        dist_abort("test_train_ranks: setup failed");
    }

    float *step_gradients = malloc(adapter_count * sizeof *step_gradients);
    float *alone_gradients = malloc(adapter_count * sizeof *alone_gradients);
    for (int step = 0; step < STEPS; step++) {
        const float *batch = images + (size_t)step * MAX_BATCH * image_floats;
        const int *batch_labels = labels + step * MAX_BATCH;
        long begin = 0, count = 0;
        dist_shard(batch_sizes[step], rank, size, &begin, &count);

        hook_record record = {adapter_count, step_gradients, 0, -1, 0};
        train_step_result result;
        CHECK_OK(train_step(shared, batch + begin * image_floats, batch_labels + begin, (int)count, begin,
                            batch_sizes[step], prompts, CLASSES, step, record_gradient, &record, &result));
        CHECK_EQ_INT(record.calls, 1);
        CHECK_EQ_INT(record.last_step, step);
        CHECK(isfinite(result.loss));
        CHECK(result.loss > 0);
        CHECK_EQ_INT(result.nonfinite.gradient_nonfinite + result.nonfinite.moment_nonfinite +
                         result.nonfinite.parameter_nonfinite,
                     0);

        /* The hook saw the same gradient on every rank. */
        double low = record.checksum, high = record.checksum;
        MPI_Allreduce(MPI_IN_PLACE, &low, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, &high, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        CHECK(low == high);

        if (rank == 0) {
            hook_record alone_record = {adapter_count, alone_gradients, 0, -1, 0};
            train_step_result expected;
            CHECK_OK(train_step(alone, batch, batch_labels, batch_sizes[step], 0, batch_sizes[step], prompts,
                                CLASSES, step, record_gradient, &alone_record, &expected));
            printf("step %d: batch %d, loss %.7f (one process %.7f), correct %ld (%ld), lr %g\n", step,
                   batch_sizes[step], result.loss, expected.loss, result.correct, expected.correct,
                   result.learning_rate);
            CHECK_NEAR(result.loss, expected.loss, 1e-5 * expected.loss);
            CHECK_EQ_INT(result.correct, expected.correct);
            CHECK_NEAR(result.learning_rate, expected.learning_rate, 0);
            float largest = 0;
            for (size_t i = 0; i < adapter_count; i++)
                largest = fabsf(alone_gradients[i]) > largest ? fabsf(alone_gradients[i]) : largest;
            test_compare_floats("gradients, sharded vs one process", step_gradients, alone_gradients, adapter_count,
                                1e-4, 1e-2 * largest);
        }
    }

    /* Adapters after all steps: identical across ranks, and equal to the
     * one-process run within float reduction order. */
    float *adapters = clip_model_adapters(model);
    float *rank0_adapters = malloc(adapter_count * sizeof *rank0_adapters);
    memcpy(rank0_adapters, adapters, adapter_count * sizeof *adapters);
    MPI_Bcast(rank0_adapters, (int)adapter_count, MPI_FLOAT, 0, MPI_COMM_WORLD);
    CHECK(memcmp(rank0_adapters, adapters, adapter_count * sizeof *adapters) == 0);
    if (rank == 0) {
        clip_model *initial = make_model();
        size_t moved = 0;
        for (size_t i = 0; initial != NULL && i < adapter_count; i++)
            moved += adapters[i] != clip_model_adapters(initial)[i];
        CHECK(moved > adapter_count / 2);
        clip_model_free(initial);
        test_compare_floats("adapters after training, sharded vs one process", adapters,
                            clip_model_adapters(alone_model), adapter_count, 1e-5, 1e-2);
    }
    free(rank0_adapters);

    /* Evaluation: unit-norm text features, predictions equal to the
     * one-process trainer's (checked on rank 0), and chunked prediction (9
     * images in chunks of max_local_images) equal to image by image. */
    float *text_features = malloc((size_t)CLASSES * config.embed_dim * sizeof *text_features);
    CHECK_OK(train_encode_class_texts(shared, prompts, CLASSES, text_features));
    double norm = 0;
    for (int k = 0; k < config.embed_dim; k++)
        norm += (double)text_features[k] * text_features[k];
    CHECK_NEAR(norm, 1.0, 1e-5);
    int predictions[EVAL_IMAGES], one_by_one[EVAL_IMAGES];
    CHECK_OK(train_predict(shared, images, EVAL_IMAGES, text_features, CLASSES, predictions));
    for (int i = 0; i < EVAL_IMAGES; i++)
        CHECK_OK(train_predict(shared, images + (size_t)i * image_floats, 1, text_features, CLASSES, &one_by_one[i]));
    CHECK(memcmp(predictions, one_by_one, sizeof predictions) == 0);
    if (rank == 0) {
        float *alone_text = malloc((size_t)CLASSES * config.embed_dim * sizeof *alone_text);
        int alone_predictions[EVAL_IMAGES];
        CHECK_OK(train_encode_class_texts(alone, prompts, CLASSES, alone_text));
        test_compare_floats("text features, sharded vs one process", text_features, alone_text,
                            (size_t)CLASSES * config.embed_dim, 1e-4, 1e-2);
        CHECK_OK(train_predict(alone, images, EVAL_IMAGES, alone_text, CLASSES, alone_predictions));
        CHECK(memcmp(predictions, alone_predictions, sizeof predictions) == 0);
        free(alone_text);
    }

    /* Update factors: 0 on all visual adapters freezes them while the
     * text adapters move; per-block factors {0, 1} freeze only visual
     * block 0. */
    size_t visual_offset = clip_adapter_modality_offset(&config, CLIP_VISUAL);
    size_t visual_count = clip_adapter_modality_count(&config, CLIP_VISUAL);
    size_t text_offset = clip_adapter_modality_offset(&config, CLIP_TEXT);
    size_t text_count = clip_adapter_modality_count(&config, CLIP_TEXT);
    size_t block_count = visual_count / (size_t)config.vision_layers;
    float *before = malloc(adapter_count * sizeof *before);
    memcpy(before, adapters, adapter_count * sizeof *adapters);
    CHECK_OK(trainer_begin_task(shared, 1, 1e-2, 0, 3));
    const adamw_range_factor freeze_visual[1] = {{visual_offset, visual_count, 0.0f}};
    CHECK_OK(trainer_set_update_factors(shared, freeze_visual, 1));
    long begin = 0, count = 0;
    dist_shard(MAX_BATCH, rank, size, &begin, &count);
    train_step_result result;
    CHECK_OK(train_step(shared, images + begin * image_floats, labels + begin, (int)count, begin, MAX_BATCH, prompts,
                        CLASSES, 0, NULL, NULL, &result));
    CHECK(memcmp(before + visual_offset, adapters + visual_offset, visual_count * sizeof *adapters) == 0);
    CHECK(memcmp(before + text_offset, adapters + text_offset, text_count * sizeof *adapters) != 0);

    const double block_factors[2] = {0.0, 1.0};
    CHECK_OK(trainer_set_block_factors(shared, CLIP_VISUAL, block_factors));
    memcpy(before, adapters, adapter_count * sizeof *adapters);
    CHECK_OK(train_step(shared, images + begin * image_floats, labels + begin, (int)count, begin, MAX_BATCH, prompts,
                        CLASSES, 1, NULL, NULL, &result));
    CHECK(memcmp(before + visual_offset, adapters + visual_offset, block_count * sizeof *adapters) == 0);
    size_t changed = 0;
    for (size_t i = visual_offset + block_count; i < visual_offset + 2 * block_count; i++)
        changed += before[i] != adapters[i];
    CHECK(changed > block_count / 2);
    const adamw_range_factor outside[1] = {{adapter_count - 1, 2, 1.0f}};
    CHECK_FAILS_WITH(trainer_set_update_factors(shared, outside, 1), "lies outside the");

    /* A bad label on the last rank fails the step on every rank, and so
     * does a hook that fails on the last rank. Neither changes the
     * adapters on any rank. */
    memcpy(before, adapters, adapter_count * sizeof *adapters);
    int bad_labels[MAX_BATCH];
    memcpy(bad_labels, labels, sizeof bad_labels);
    if (rank == size - 1)
        bad_labels[begin] = CLASSES + 3;
    int status = train_step(shared, images + begin * image_floats, bad_labels + begin, (int)count, begin, MAX_BATCH,
                            prompts, CLASSES, 1, NULL, NULL, &result);
    CHECK(status != 0);
    if (rank == size - 1)
        CHECK_STR_CONTAINS(dmnsp_last_error(), "label 8 of image 0 is outside 0..4");
    else
        CHECK_STR_CONTAINS(dmnsp_last_error(), "failed on 1 other rank(s)");
    status = train_step(shared, images + begin * image_floats, labels + begin, (int)count, begin, MAX_BATCH, prompts,
                        CLASSES, 1, failing_hook, NULL, &result);
    CHECK(status != 0);
    if (rank == size - 1)
        CHECK_STR_CONTAINS(dmnsp_last_error(), "gradient hook: projection refused step 1");
    else
        CHECK_STR_CONTAINS(dmnsp_last_error(), "the gradient hook failed on another rank");
    CHECK(memcmp(before, adapters, adapter_count * sizeof *adapters) == 0);

    /* Local batches that do not add up to the global size are an error on
     * every rank. */
    CHECK_FAILS_WITH(train_step(shared, images + begin * image_floats, labels + begin, (int)count, begin,
                                MAX_BATCH + 1, prompts, CLASSES, 1, NULL, NULL, &result),
                     "local batches sum to 7 images, but the global batch size is 8");

    /* Invalid arguments fail the step on every rank with a message that
     * names the value and the limit. */
    int max_local = (MAX_BATCH + size - 1) / size;
    CHECK_FAILS_WITH(train_step(shared, images, labels, max_local + 1, 0, MAX_BATCH + size, prompts, CLASSES, 1, NULL,
                                NULL, &result),
                     "local images (expected 0..");
    CHECK_FAILS_WITH(train_step(shared, images + begin * image_floats, labels + begin, (int)count, begin, MAX_BATCH,
                                prompts, CLASSES + 1, 1, NULL, NULL, &result),
                     "6 classes (expected 1..5, the trainer's max_classes)");
    CHECK_FAILS_WITH(train_step(shared, images + begin * image_floats, labels + begin, (int)count, begin, MAX_BATCH,
                                prompts, CLASSES, -1, NULL, NULL, &result),
                     "negative step index -1");
    trainer *unstarted = NULL;
    train_config unstarted_config = train_default_config();
    unstarted_config.max_local_images = MAX_BATCH;
    unstarted_config.max_classes = CLASSES;
    CHECK_OK(trainer_create(model, &unstarted_config, &unstarted));
    CHECK_FAILS_WITH(train_step(unstarted, images + begin * image_floats, labels + begin, (int)count, begin, MAX_BATCH,
                                prompts, CLASSES, 0, NULL, NULL, &result),
                     "no task started (call trainer_begin_task first)");
    trainer_free(unstarted);
    unstarted_config.max_local_images = 0;
    CHECK_FAILS_WITH(trainer_create(model, &unstarted_config, &unstarted), "invalid sizes (max_local_images 0");
    CHECK(memcmp(before, adapters, adapter_count * sizeof *adapters) == 0);

    /* Non-finite gradients (here put in by the hook) are counted per step
     * and summed over the task. */
    CHECK_OK(trainer_begin_task(shared, 2, 1e-3, 0, 4));
    for (int step = 0; step < 2; step++) {
        CHECK_OK(train_step(shared, images + begin * image_floats, labels + begin, (int)count, begin, MAX_BATCH,
                            prompts, CLASSES, step, poison_gradient, NULL, &result));
        CHECK_EQ_INT(result.nonfinite.gradient_nonfinite, 2);
        CHECK_EQ_INT(result.nonfinite.parameter_nonfinite, 2);
    }
    adamw_step_stats task_counts = trainer_task_nonfinite(shared);
    CHECK_EQ_INT(task_counts.gradient_nonfinite, 4);
    CHECK_EQ_INT(task_counts.parameter_nonfinite, 4);
    CHECK(isnan(adapters[0]));
    CHECK(isfinite(adapters[2]));
    CHECK_OK(trainer_begin_task(shared, 3, 1e-3, 0, 4));
    CHECK_EQ_INT(trainer_task_nonfinite(shared).gradient_nonfinite, 0);

    trainer_free(shared);
    trainer_free(alone);
    clip_model_free(model);
    clip_model_free(alone_model);
    free(images);
    free(prompts);
    free(text_features);
    free(before);
    free(step_gradients);
    free(alone_gradients);

    test_sum_failures_over_ranks();
    dist_finalize();
    return test_finish("test_train_ranks");
}

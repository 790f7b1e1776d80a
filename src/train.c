/* train: the data-parallel training step and evaluation helpers (see
 * include/dmnsp/train.h). */
#include "dmnsp/train.h"

#include "dmnsp/error.h"
#include "dmnsp/loss.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

struct trainer {
    clip_model *model; /* borrowed */
    train_config config;
    int embed_dim;
    int context_length;
    size_t adapter_count;

    clip_workspace *workspace;
    loss_workspace *loss;
    adamw optimizer;

    float *gradients;        /* [adapter_count], adapter layout */
    float *image_features;   /* [max_local_images, embed_dim] */
    float *text_features;    /* [max_classes, embed_dim] */
    float *d_image_features; /* [max_local_images, embed_dim] */
    float *d_text_features;  /* [max_classes, embed_dim] */

    /* the current task */
    int task_started;
    uint64_t task_dropout_seed;
    lr_schedule schedule;
    adamw_range_factor *factors;
    int n_factors;
    adamw_step_stats task_nonfinite; /* summed over the task's steps */
};

train_config train_default_config(void)
{
    train_config config;
    memset(&config, 0, sizeof config);
    config.label_smoothing = 0.0f;
    config.adamw = adamw_default_config();
    config.dropout_seed = 0;
    config.recompute_blocks = 0;
    config.comm = MPI_COMM_WORLD;
    return config;
}

/* splitmix64's finaliser: distinct tasks get unrelated dropout seeds. */
static uint64_t mix_seed(uint64_t seed, uint64_t task)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (task + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int trainer_create(clip_model *model, const train_config *config, trainer **out)
{
    *out = NULL;
    int mpi_started = 0;
    MPI_Initialized(&mpi_started);
    if (!mpi_started)
        return dmnsp_fail("trainer: MPI is not initialised (start it with dist_init before creating a trainer)");
    if (config->max_local_images < 1 || config->max_classes < 1)
        return dmnsp_fail("trainer: invalid sizes (max_local_images %d, max_classes %d; expected both >= 1)",
                          config->max_local_images, config->max_classes);
    if (!(config->label_smoothing >= 0 && config->label_smoothing <= 1))
        return dmnsp_fail("trainer: label smoothing %g outside [0, 1]", (double)config->label_smoothing);

    trainer *t = dmnsp_calloc(1, sizeof *t, "trainer");
    if (t == NULL)
        return -1;
    const clip_config *shape = clip_model_config(model);
    t->model = model;
    t->config = *config;
    t->embed_dim = shape->embed_dim;
    t->context_length = shape->context_length;
    t->adapter_count = clip_adapter_count(shape);
    if (t->adapter_count > (size_t)INT_MAX) {
        free(t);
        return dmnsp_fail("trainer: %zu adapter parameters exceed one MPI_Allreduce's int count", clip_adapter_count(shape));
    }

    if (clip_workspace_create(model, config->max_local_images, config->max_classes, 1, config->recompute_blocks,
                              &t->workspace) != 0 ||
        loss_workspace_create(config->max_local_images, config->max_classes, t->embed_dim, &t->loss) != 0 ||
        adamw_create(t->adapter_count, &config->adamw, &t->optimizer) != 0) {
        trainer_free(t);
        return dmnsp_fail_prefix("trainer");
    }

    size_t images = (size_t)config->max_local_images * t->embed_dim;
    size_t texts = (size_t)config->max_classes * t->embed_dim;
    t->gradients = dmnsp_malloc(t->adapter_count * sizeof(float), "adapter gradients");
    t->image_features = dmnsp_malloc(images * sizeof(float), "image features");
    t->text_features = dmnsp_malloc(texts * sizeof(float), "text features");
    t->d_image_features = dmnsp_malloc(images * sizeof(float), "image feature gradients");
    t->d_text_features = dmnsp_malloc(texts * sizeof(float), "text feature gradients");
    if (!t->gradients || !t->image_features || !t->text_features || !t->d_image_features || !t->d_text_features) {
        trainer_free(t);
        return dmnsp_fail_prefix("trainer");
    }
    *out = t;
    return 0;
}

void trainer_free(trainer *t)
{
    if (t == NULL)
        return;
    clip_workspace_free(t->workspace);
    loss_workspace_free(t->loss);
    adamw_free(&t->optimizer);
    free(t->gradients);
    free(t->image_features);
    free(t->text_features);
    free(t->d_image_features);
    free(t->d_text_features);
    free(t->factors);
    free(t);
}

int trainer_begin_task(trainer *t, int task, double base_lr, long warmup_steps, long total_steps)
{
    if (task < 0)
        return dmnsp_fail("trainer: task index %d must be >= 0", task);
    if (lr_schedule_init(&t->schedule, base_lr, warmup_steps, total_steps) != 0)
        return dmnsp_fail_prefix("trainer: task %d", task);
    adamw_reset(&t->optimizer);
    free(t->factors);
    t->factors = NULL;
    t->n_factors = 0;
    t->task_dropout_seed = mix_seed(t->config.dropout_seed, (uint64_t)task);
    memset(&t->task_nonfinite, 0, sizeof t->task_nonfinite);
    t->task_started = 1;
    return 0;
}

int trainer_set_update_factors(trainer *t, const adamw_range_factor *factors, int n)
{
    if (n < 0 || (n > 0 && factors == NULL))
        return dmnsp_fail("trainer: %d update factors given without a factor array", n);
    for (int i = 0; i < n; i++) {
        if (factors[i].offset > t->adapter_count || factors[i].count > t->adapter_count - factors[i].offset)
            return dmnsp_fail("trainer: update factor range [%zu, %zu) lies outside the %zu adapter parameters",
                              factors[i].offset, factors[i].offset + factors[i].count, t->adapter_count);
    }
    adamw_range_factor *copy = NULL;
    if (n > 0) {
        copy = dmnsp_malloc((size_t)n * sizeof *copy, "update factor ranges");
        if (copy == NULL)
            return -1;
        memcpy(copy, factors, (size_t)n * sizeof *copy);
    }
    free(t->factors);
    t->factors = copy;
    t->n_factors = n;
    return 0;
}

int trainer_set_block_factors(trainer *t, clip_modality modality, const double *factors)
{
    const clip_config *shape = clip_model_config(t->model);
    int layers = modality == CLIP_VISUAL ? shape->vision_layers : shape->text_layers;
    adamw_range_factor *ranges = dmnsp_malloc((size_t)layers * sizeof *ranges, "block update factors");
    if (ranges == NULL)
        return -1;

    /* A block's four tensors are contiguous in the adapter layout, from
     * down_w to the end of up_b. */
    float *base = clip_model_adapters(t->model);
    for (int block = 0; block < layers; block++) {
        clip_adapter_view view;
        clip_adapter_block(shape, base, modality, block, &view);
        ranges[block].offset = (size_t)(view.down_w - base);
        ranges[block].count = (size_t)(view.up_b + view.width - view.down_w);
        ranges[block].factor = (float)factors[block];
    }
    int status = trainer_set_update_factors(t, ranges, layers);
    free(ranges);
    return status;
}

/* Steps 1-4 on this rank: encoders, loss, backward into t->gradients
 * (zeroed first). A rank without images contributes a zero gradient and
 * skips both encoders. */
static int forward_backward_local(trainer *t, const float *images, const int *labels, int n, long global_offset,
                                  int n_global, const int32_t *prompt_tokens, int n_classes, int step,
                                  loss_result *result)
{
    clip_model *m = t->model;
    clip_dropout_key key = {t->task_dropout_seed, (uint64_t)step};
    memset(t->gradients, 0, t->adapter_count * sizeof(float));
    result->loss = 0;
    result->correct = 0;
    if (n == 0)
        return 0;

    if (clip_encode_texts(m, t->workspace, prompt_tokens, n_classes, 1, key, t->text_features) != 0)
        return dmnsp_fail_prefix("class prompts");
    if (clip_encode_images(m, t->workspace, images, n, global_offset, 1, key, t->image_features) != 0)
        return dmnsp_fail_prefix("images");

    DMNSP_TRY(loss_clip_forward(t->loss, t->image_features, n, t->text_features, n_classes,
                                clip_model_logit_scale(m), labels, t->config.label_smoothing, n_global, result));
    DMNSP_TRY(loss_clip_backward(t->loss, t->d_image_features, t->d_text_features));

    if (clip_backward_images(m, t->workspace, t->d_image_features, t->gradients) != 0)
        return dmnsp_fail_prefix("image encoder backward");
    if (clip_backward_texts(m, t->workspace, t->d_text_features, t->gradients) != 0)
        return dmnsp_fail_prefix("text encoder backward");
    return 0;
}

static int check_step_arguments(const trainer *t, int n_local, int n_global, int n_classes, int step)
{
    if (!t->task_started)
        return dmnsp_fail("no task started (call trainer_begin_task first)");
    if (n_local < 0 || n_local > t->config.max_local_images)
        return dmnsp_fail("%d local images (expected 0..%d, the trainer's max_local_images)", n_local,
                          t->config.max_local_images);
    if (n_global < 1 || n_global < n_local)
        return dmnsp_fail("global batch size %d is below 1 or below the local batch %d", n_global, n_local);
    if (n_classes < 1 || n_classes > t->config.max_classes)
        return dmnsp_fail("%d classes (expected 1..%d, the trainer's max_classes)", n_classes,
                          t->config.max_classes);
    if (step < 0)
        return dmnsp_fail("negative step index %d", step);
    return 0;
}

int train_step(trainer *t, const float *images_local, const int *labels_local, int n_local, long global_offset,
               int n_global, const int32_t *prompt_tokens, int n_classes, int step, train_gradient_hook hook,
               void *hook_context, train_step_result *out)
{
    double start = MPI_Wtime();
    memset(out, 0, sizeof *out);

    loss_result local = {0, 0};
    int status = check_step_arguments(t, n_local, n_global, n_classes, step);
    if (status == 0)
        status = forward_backward_local(t, images_local, labels_local, n_local, global_offset, n_global,
                                        prompt_tokens, n_classes, step, &local);
    if (status != 0)
        dmnsp_fail_prefix("train step %d", step);

    /* Loss, correct count, local image count and failure flag in one small
     * allreduce, so that a failing rank never leaves the others blocked
     * in the gradient allreduce. */
    double summary[4] = {local.loss, (double)local.correct, (double)n_local, status != 0 ? 1.0 : 0.0};
    int mpi_status = MPI_Allreduce(MPI_IN_PLACE, summary, 4, MPI_DOUBLE, MPI_SUM, t->config.comm);
    if (mpi_status != MPI_SUCCESS)
        return dmnsp_fail("train step %d: MPI_Allreduce of the loss failed (MPI error %d)", step, mpi_status);
    if (status != 0)
        return status;
    if (summary[3] > 0)
        return dmnsp_fail("train step %d: failed on %.0f other rank(s)", step, summary[3]);
    if ((long)summary[2] != n_global)
        return dmnsp_fail("train step %d: the ranks' local batches sum to %.0f images, but the global batch size "
                          "is %d",
                          step, summary[2], n_global);

    /* Step 5: the gradient of the global mean loss on every rank. */
    mpi_status = MPI_Allreduce(MPI_IN_PLACE, t->gradients, (int)t->adapter_count, MPI_FLOAT, MPI_SUM,
                               t->config.comm);
    if (mpi_status != MPI_SUCCESS)
        return dmnsp_fail("train step %d: MPI_Allreduce of %zu adapter gradients failed (MPI error %d)", step,
                          t->adapter_count, mpi_status);

    /* The hook runs on every rank's copy; when it fails anywhere, no rank
     * takes the AdamW step, so the adapters stay identical across ranks. */
    if (hook != NULL) {
        int hook_failed = hook(hook_context, t->gradients, step) != 0;
        if (hook_failed)
            dmnsp_fail_prefix("train step %d: gradient hook", step);
        int any_failed = hook_failed;
        mpi_status = MPI_Allreduce(MPI_IN_PLACE, &any_failed, 1, MPI_INT, MPI_MAX, t->config.comm);
        if (mpi_status != MPI_SUCCESS)
            return dmnsp_fail("train step %d: MPI_Allreduce of the hook status failed (MPI error %d)", step,
                              mpi_status);
        if (hook_failed)
            return -1;
        if (any_failed)
            return dmnsp_fail("train step %d: the gradient hook failed on another rank", step);
    }

    double lr = lr_schedule_at(&t->schedule, step);
    if (adamw_step(&t->optimizer, clip_model_adapters(t->model), t->gradients, lr, t->factors, t->n_factors,
                   &out->nonfinite) != 0)
        return dmnsp_fail_prefix("train step %d", step);
    t->task_nonfinite.gradient_nonfinite += out->nonfinite.gradient_nonfinite;
    t->task_nonfinite.moment_nonfinite += out->nonfinite.moment_nonfinite;
    t->task_nonfinite.parameter_nonfinite += out->nonfinite.parameter_nonfinite;

    out->loss = summary[0];
    out->correct = (long)summary[1];
    out->learning_rate = lr;
    out->seconds = MPI_Wtime() - start;
    return 0;
}

int train_encode_class_texts(trainer *t, const int32_t *prompt_tokens, int n_classes, float *features)
{
    clip_dropout_key key = {t->task_dropout_seed, 0};
    int chunk = t->config.max_classes;
    for (int begin = 0; begin < n_classes; begin += chunk) {
        int count = n_classes - begin < chunk ? n_classes - begin : chunk;
        float *out = features + (size_t)begin * t->embed_dim;
        if (clip_encode_texts(t->model, t->workspace, prompt_tokens + (size_t)begin * t->context_length, count, 0,
                              key, out) != 0)
            return dmnsp_fail_prefix("class prompts %d..%d", begin, begin + count - 1);
        if (loss_normalize_rows(out, count, t->embed_dim) != 0)
            return dmnsp_fail_prefix("class prompts %d..%d", begin, begin + count - 1);
    }
    return 0;
}

int train_predict(trainer *t, const float *images, int n, const float *text_features, int n_classes,
                  int *predictions)
{
    const clip_config *shape = clip_model_config(t->model);
    size_t image_floats = (size_t)3 * shape->image_resolution * shape->image_resolution;
    clip_dropout_key key = {t->task_dropout_seed, 0};
    int chunk = t->config.max_local_images;
    for (int begin = 0; begin < n; begin += chunk) {
        int count = n - begin < chunk ? n - begin : chunk;
        if (clip_encode_images(t->model, t->workspace, images + (size_t)begin * image_floats, count, begin, 0, key,
                               t->image_features) != 0)
            return dmnsp_fail_prefix("evaluation images %d..%d", begin, begin + count - 1);
        loss_predict(t->image_features, count, text_features, n_classes, t->embed_dim, predictions + begin);
    }
    return 0;
}

adamw_step_stats trainer_task_nonfinite(const trainer *t)
{
    return t->task_nonfinite;
}

clip_model *trainer_model(trainer *t)
{
    return t->model;
}

clip_workspace *trainer_workspace(trainer *t)
{
    return t->workspace;
}

adamw *trainer_optimizer(trainer *t)
{
    return &t->optimizer;
}

const float *trainer_gradients(const trainer *t)
{
    return t->gradients;
}

/* experiment_bases: DMNSP's per-task work around training — lambda from
 * the first batch of a task, the projection hook of every step, and the
 * null-space bases of a finished task. */
#include "experiment_internal.h"

#include "dmnsp/batching.h"
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/log.h"

#include <stdlib.h>

/* Covariances need the adapter activations of every token of every
 * block, the last one included. */
static int encode_flags(int train)
{
    return (train ? CLIP_ENCODE_TRAIN : 0) | CLIP_ENCODE_ALL_TOKENS;
}

/* Adds the adapter outputs of the last forward of MODALITY to COLLECTOR in
 * factored form (hidden activations and up projection). That costs about
 * 1/50 of the CPU time of a covariance of the outputs themselves, as
 * measured by bench/bench_nullspace.c. */
static int collect_adapter_outputs(experiment *e, nullspace_collector *collector, clip_modality modality)
{
    clip_workspace *ws = trainer_workspace(e->trainer);
    const clip_config *mc = &e->model_config;
    float *adapters = clip_model_adapters(e->model);
    int blocks = modality == CLIP_VISUAL ? mc->vision_layers : mc->text_layers;
    for (int block = 0; block < blocks; block++) {
        int rows = 0;
        const float *hidden = clip_workspace_adapter_hidden(ws, modality, block, &rows);
        if (hidden == NULL)
            return dmnsp_fail("no adapter activations of block %d to build a covariance from", block);
        clip_adapter_view view;
        clip_adapter_block(mc, adapters, modality, block, &view);
        DMNSP_TRY(nullspace_collector_add_factored(collector, block, hidden, rows, mc->adapter_bottleneck, view.up_w,
                                                   view.up_b, mc->adapter_scale));
    }
    return 0;
}

/* Encodes the local shard of global batch BATCH of the epoch ORDER of TASK
 * in chunks, adding every chunk's visual adapter outputs to COLLECTOR. */
static int collect_visual_batch(experiment *e, int task, const long *order, long batch_begin, long batch_size,
                                int train, clip_dropout_key key)
{
    const scenario_samples *samples = &e->train_samples[task];
    long offset = 0, count = 0;
    batching_shard(batch_size, e->rank, e->ranks, &offset, &count);

    int size = e->model_config.image_resolution;
    for (long done = 0; done < count; done += e->max_local_images) {
        int n = (int)(count - done < e->max_local_images ? count - done : e->max_local_images);
        for (int i = 0; i < n; i++)
            e->indices[i] = samples->indices[order[batch_begin + offset + done + i]];
        DMNSP_TRY(dataset_load_batch(e->train_set, e->indices, n, size, e->images));
        DMNSP_TRY(clip_encode_images(e->model, trainer_workspace(e->trainer), e->images, n,
                                     batch_begin + offset + done, encode_flags(train), key, e->image_features));
        DMNSP_TRY(collect_adapter_outputs(e, e->visual_collector, CLIP_VISUAL));
    }
    return 0;
}

/* Text adapter outputs of TASK's prompts (DMNSP-both). Every rank would
 * compute the same rows, so rank 0 alone adds them to the covariance. */
static int collect_text_prompts(experiment *e, int task, int train, clip_dropout_key key)
{
    if (e->rank != 0)
        return 0;
    int begin = e->sc.task_begin[task], end = e->sc.task_begin[task + 1];
    const int32_t *tokens = e->prompt_tokens + (size_t)begin * (size_t)e->model_config.context_length;
    DMNSP_TRY(clip_encode_texts(e->model, trainer_workspace(e->trainer), tokens, end - begin, encode_flags(train),
                                key, e->text_features));
    return collect_adapter_outputs(e, e->text_collector, CLIP_TEXT);
}

static clip_dropout_key task_key(const experiment *e, int task)
{
    clip_dropout_key key = {e->seed, (uint64_t)task << 32};
    return key;
}

/* Sets the AdamW update factors of lambda_apply=step: one per block, over
 * the block's whole adapter (weights and biases). */
static int set_step_factors(experiment *e)
{
    const nullspace_options *options = nullspace_state_options(e->visual_state);
    if (options->lambda_apply != NULLSPACE_LAMBDA_STEP)
        return trainer_set_update_factors(e->trainer, NULL, 0);

    int blocks = e->model_config.vision_layers;
    double *factors = dmnsp_malloc((size_t)blocks * sizeof *factors, "update factors");
    adamw_range_factor *ranges = dmnsp_malloc((size_t)blocks * sizeof *ranges, "update factor ranges");
    if (factors == NULL || ranges == NULL) {
        free(factors);
        free(ranges);
        return -1;
    }
    nullspace_step_factors(e->visual_state, factors);
    float *base = clip_model_adapters(e->model);
    for (int block = 0; block < blocks; block++) {
        clip_adapter_view view;
        clip_adapter_block(&e->model_config, base, CLIP_VISUAL, block, &view);
        ranges[block].offset = (size_t)(view.down_w - base);
        ranges[block].count = (size_t)(view.up_b + view.width - view.down_w);
        ranges[block].factor = (float)factors[block];
    }
    int status = trainer_set_update_factors(e->trainer, ranges, blocks);
    free(factors);
    free(ranges);
    return status;
}

int experiment_compute_lambda(experiment *e, int task)
{
    if (!e->method.projects_visual || task == 0)
        return 0;

    /* lambda comes from the task's first training batch in training mode. */
    const scenario_samples *samples = &e->train_samples[task];
    long *order = dmnsp_malloc((size_t)samples->count * sizeof *order, "the epoch order");
    int status = order == NULL ? -1 : 0;
    if (status == 0) {
        batching_epoch_order(samples->count, e->seed, task, 0, config_get_bool(e->cfg, "shuffle"), order);
        long begin = 0, size = 0;
        batching_batch_range(samples->count, (int)config_get_int(e->cfg, "batch_size"), 0, &begin, &size);
        nullspace_collector_reset(e->visual_collector);
        status = collect_visual_batch(e, task, order, begin, size, 1, task_key(e, task));
    }
    free(order);
    if (dist_any_failed(status) != 0)
        return -1;
    DMNSP_TRY(nullspace_compute_lambda(e->visual_state, e->visual_collector));
    nullspace_log_lambda(e->visual_state, task);

    if (e->method.projects_text) {
        nullspace_collector_reset(e->text_collector);
        status = collect_text_prompts(e, task, 1, task_key(e, task));
        if (dist_any_failed(status) != 0)
            return -1;
        DMNSP_TRY(nullspace_compute_lambda(e->text_state, e->text_collector));
    }
    return dist_any_failed(set_step_factors(e));
}

int experiment_restore_lambda(experiment *e, int task, const double *lambda, const double *text_lambda)
{
    if (!e->method.projects_visual || task == 0)
        return 0;
    if (lambda == NULL || (e->method.projects_text && text_lambda == NULL))
        return dmnsp_fail("resume: task %d needs the lambda saved with it, but none was given", task);
    DMNSP_TRY(nullspace_set_lambda(e->visual_state, lambda));
    nullspace_log_lambda(e->visual_state, task);
    if (e->method.projects_text)
        DMNSP_TRY(nullspace_set_lambda(e->text_state, text_lambda));
    return set_step_factors(e);
}

int experiment_projection_hook(void *context, float *gradients, int step)
{
    (void)step;
    experiment *e = context;
    if (!e->method.projects_visual || nullspace_task_count(e->visual_state) == 0)
        return 0;

    clip_adapter_view views[256];
    int blocks = e->model_config.vision_layers;
    if (blocks > 256 || e->model_config.text_layers > 256)
        return dmnsp_fail("the projection hook supports at most 256 blocks");
    for (int block = 0; block < blocks; block++)
        clip_adapter_block(&e->model_config, gradients, CLIP_VISUAL, block, &views[block]);
    DMNSP_TRY(nullspace_project_views(e->visual_state, views, &e->projection_nonfinite));

    if (e->method.projects_text && nullspace_task_count(e->text_state) > 0) {
        for (int block = 0; block < e->model_config.text_layers; block++)
            clip_adapter_block(&e->model_config, gradients, CLIP_TEXT, block, &views[block]);
        DMNSP_TRY(nullspace_project_views(e->text_state, views, &e->projection_nonfinite));
    }
    return 0;
}

int experiment_build_bases(experiment *e, int task)
{
    if (!e->method.projects_visual)
        return 0;
    double start = log_now();

    /* Eval mode, the first basis_batches batches of the task's first epoch. */
    const scenario_samples *samples = &e->train_samples[task];
    long basis_batch = config_get_int(e->cfg, "nullspace.basis_batch_size");
    long batches = config_get_int(e->cfg, "nullspace.basis_batches");
    long *order = dmnsp_malloc((size_t)samples->count * sizeof *order, "the epoch order");
    int status = order == NULL ? -1 : 0;
    long images = 0;
    clip_dropout_key no_dropout = {0, 0};
    if (status == 0) {
        batching_epoch_order(samples->count, e->seed, task, 0, config_get_bool(e->cfg, "shuffle"), order);
        nullspace_collector_reset(e->visual_collector);
        long available = batching_batch_count(samples->count, (int)basis_batch);
        for (long batch = 0; batch < batches && batch < available && status == 0; batch++) {
            long begin = 0, size = 0;
            batching_batch_range(samples->count, (int)basis_batch, batch, &begin, &size);
            status = collect_visual_batch(e, task, order, begin, size, 0, no_dropout);
            images += size;
        }
    }
    free(order);
    if (dist_any_failed(status) != 0)
        return -1;
    DMNSP_TRY(nullspace_build_bases(e->visual_state, e->visual_collector));

    if (e->method.projects_text) {
        nullspace_collector_reset(e->text_collector);
        status = collect_text_prompts(e, task, 0, no_dropout);
        if (dist_any_failed(status) != 0)
            return -1;
        DMNSP_TRY(nullspace_build_bases(e->text_state, e->text_collector));
    }
    log_info("task %d: null-space bases from %ld images x %d tokens in %.2f s", task, images,
             clip_vision_tokens(&e->model_config), log_now() - start);
    return 0;
}

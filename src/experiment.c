/* experiment: the task loop of `dmnsp train` and `dmnsp eval` (see
 * include/dmnsp/experiment.h). Checkpoints and resuming are in
 * experiment_checkpoint.c. */
#include "dmnsp/experiment.h"

#include "experiment_internal.h"

#include "dmnsp/batching.h"
#include "dmnsp/checkpoint.h"
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/log.h"
#include "dmnsp/rundir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- one task -------------------------------------------------------- */

static void describe_task(const experiment *e, int task, long steps, long batches)
{
    int begin = e->sc.task_begin[task], end = e->sc.task_begin[task + 1];
    char names[1024] = "";
    size_t used = 0;
    for (int label = begin; label < end && used + 64 < sizeof names; label++) {
        const char *name = dataset_class_name(e->train_set, e->sc.class_order[label]);
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", label > begin ? ", " : "", name);
    }
    if (used + 64 >= sizeof names)
        snprintf(names + used, sizeof names - used, ", ...");
    long epochs = config_get_int(e->cfg, "epochs");
    log_info("=== task %d of 0..%d: %d classes (labels %d..%d: %s), %ld training images, %ld steps (%ld epoch%s x %ld "
             "batch%s)",
             task, e->sc.task_count - 1, end - begin, begin, end - 1, names, e->train_samples[task].count, steps,
             epochs, epochs == 1 ? "" : "s", batches, batches == 1 ? "" : "es");
}

/* Loads this rank's shard of global batch [BEGIN, BEGIN + SIZE) of ORDER.
 * Returns the local count in *N and the global offset of its first image. */
static int load_train_shard(experiment *e, int task, const long *order, long begin, long size, int *n,
                            long *global_offset)
{
    const scenario_samples *samples = &e->train_samples[task];
    long offset = 0, count = 0;
    batching_shard(size, e->rank, e->ranks, &offset, &count);
    int first_label = e->sc.task_begin[task];
    for (long i = 0; i < count; i++) {
        long position = order[begin + offset + i];
        e->indices[i] = samples->indices[position];
        e->labels[i] = samples->labels[position] - first_label;
    }
    *n = (int)count;
    *global_offset = begin + offset;
    if (count == 0)
        return 0;
    return dataset_load_batch(e->train_set, e->indices, (int)count, e->model_config.image_resolution, e->images);
}

static int train_task(experiment *e, int task, long *nonfinite)
{
    const config *cfg = e->cfg;
    const scenario_samples *samples = &e->train_samples[task];
    int batch_size = (int)config_get_int(cfg, "batch_size");
    long epochs = config_get_int(cfg, "epochs");
    long batches = batching_batch_count(samples->count, batch_size);
    long steps = epochs * batches;
    if (!e->method.trains) {
        int begin = e->sc.task_begin[task], end = e->sc.task_begin[task + 1];
        log_info("=== task %d of 0..%d: %d classes (labels %d..%d), no training (zeroshot)", task, e->sc.task_count - 1,
                 end - begin, begin, end - 1);
        return 0;
    }
    describe_task(e, task, steps, batches);
    long warmup = config_get_int(cfg, "warmup_steps");
    if (warmup >= steps && steps > 0)
        log_warn("task %d: warmup_steps=%ld is at least the task's %ld steps, so the whole task is warm-up "
                 "below lr=%g and the cosine decay never starts; lower warmup_steps for short tasks",
                 task, warmup, steps, config_get_float(cfg, "lr"));
    if (steps == 0)
        return 0;

    DMNSP_TRY(trainer_begin_task(e->trainer, task, config_get_float(cfg, "lr"), config_get_int(cfg, "warmup_steps"),
                                 steps));
    e->projection_nonfinite = 0;

    /* A task resumed in the middle keeps the lambda it started with: the
     * adapters have moved since its first batch, so computing it again
     * would give other coefficients. */
    long first_step = 0;
    if (e->resumed.active && e->resumed.task == task)
        DMNSP_TRY(experiment_continue_task(e, &first_step, nonfinite));
    else
        DMNSP_TRY(experiment_compute_lambda(e, task));

    long *order = dmnsp_malloc((size_t)samples->count * sizeof *order, "the epoch order");
    if (dist_any_failed(order == NULL ? -1 : 0) != 0) {
        free(order);
        return -1;
    }
    int first_label = e->sc.task_begin[task];
    int n_classes = e->sc.task_begin[task + 1] - first_label;
    const int32_t *prompts = e->prompt_tokens + (size_t)first_label * (size_t)e->model_config.context_length;
    long interval = config_get_int(cfg, "log_interval");
    int shuffle = config_get_bool(cfg, "shuffle");

    log_progress progress;
    char label[64];
    snprintf(label, sizeof label, "task %d step", task);
    log_progress_begin(&progress, label, steps, 0);
    log_progress_skip(&progress, first_step);
    double window_start = log_now(), loss_sum = 0;
    long window_images = 0, window_steps = 0, window_correct = 0, step = first_step;
    int status = 0;

    /* Step s is batch s % batches of epoch s / batches. Epoch orders
     * depend only on seed, task and epoch, so a resumed task trains on the
     * same batches as an uninterrupted one. */
    for (long epoch = first_step / batches; epoch < epochs && status == 0; epoch++) {
        batching_epoch_order(samples->count, e->seed, task, (int)epoch, shuffle, order);
        long first_batch = epoch == first_step / batches ? first_step % batches : 0;
        for (long batch = first_batch; batch < batches && status == 0; batch++, step++) {
            long begin = 0, size = 0, global_offset = 0;
            int n_local = 0;
            batching_batch_range(samples->count, batch_size, batch, &begin, &size);
            status = dist_any_failed(load_train_shard(e, task, order, begin, size, &n_local, &global_offset));
            if (status != 0)
                break;

            train_step_result result;
            status = train_step(e->trainer, e->images, e->labels, n_local, global_offset, (int)size, prompts,
                                n_classes, (int)step, experiment_projection_hook, e, &result);
            if (status != 0)
                break;
            *nonfinite += result.nonfinite.gradient_nonfinite + result.nonfinite.moment_nonfinite +
                          result.nonfinite.parameter_nonfinite;
            loss_sum += result.loss;
            window_images += size;
            window_correct += result.correct;
            window_steps++;

            if (window_steps == interval || step + 1 == steps) {
                double now = log_now();
                char detail[256];
                snprintf(detail, sizeof detail, "epoch %ld loss %.4f acc %.1f%% lr %.2e %.1f img/s%s", epoch + 1,
                         loss_sum / (double)window_steps, 100.0 * (double)window_correct / (double)window_images,
                         result.learning_rate, (double)window_images / (now - window_start),
                         *nonfinite + e->projection_nonfinite > 0 ? " (non-finite values seen)" : "");
                log_progress_update(&progress, step + 1, detail);
                window_start = now;
                loss_sum = 0;
                window_images = window_steps = window_correct = 0;
            }

            /* The save's time is left out of the next progress line's rate. */
            double save_start = log_now();
            status = experiment_save_progress_if_due(e, task, step + 1, steps, *nonfinite + e->projection_nonfinite);
            window_start += log_now() - save_start;
        }
    }
    free(order);
    if (status != 0)
        return -1;
    log_progress_done(&progress, NULL);
    *nonfinite += e->projection_nonfinite;
    if (*nonfinite > 0)
        log_warn("task %d: %ld non-finite gradient, optimizer or projection values (the reference's fp32 "
                 "overflow; projection_normalize=true keeps the update finite)",
                 task, *nonfinite);
    return 0;
}

/* Records forward transfer: task TASK (> 0) evaluated before training it,
 * classified among all classes up to its end, in row TASK-1. */
static int evaluate_before_training(experiment *e, int task)
{
    int seen = e->sc.task_begin[task + 1];
    long correct = 0, total = 0;
    DMNSP_TRY(experiment_text_features(e, seen));
    DMNSP_TRY(experiment_evaluate_task(e, task, seen, &correct, &total));
    return metrics_record(&e->metrics, task - 1, task, correct, total);
}

static int evaluate_after_task(experiment *e, int task)
{
    int seen = e->sc.task_begin[task + 1];
    DMNSP_TRY(experiment_text_features(e, seen));
    for (int j = 0; j <= task; j++) {
        long correct = 0, total = 0;
        DMNSP_TRY(experiment_evaluate_task(e, j, seen, &correct, &total));
        DMNSP_TRY(metrics_record(&e->metrics, task, j, correct, total));
    }
    if (task + 1 < e->sc.task_count)
        DMNSP_TRY(evaluate_before_training(e, task + 1));
    return 0;
}

/* Measures the forward transfer of TASK when the resumed run never did.
 * That happens when a run is extended beyond the one it resumes (a larger
 * max_tasks). The adapters are still those after task TASK-1. */
static int measure_missing_forward_transfer(experiment *e, int task)
{
    if (task == 0 || task >= e->sc.task_count || e->resumed.active ||
        !isnan(metrics_accuracy(&e->metrics, task - 1, task)))
        return 0;
    DMNSP_TRY(evaluate_before_training(e, task));
    log_info("resume: task %d before training it: %.2f (forward transfer, which the resumed run did not measure)",
             task, metrics_accuracy(&e->metrics, task - 1, task));
    return 0;
}

/* ---- the run -------------------------------------------------------------- */

static int prepare_folder(const config *cfg, rundir_plan *plan)
{
    int status = 0;
    if (dist_rank() == 0)
        status = rundir_prepare(config_get_string(cfg, "output_dir"), config_get_string(cfg, "resume"),
                                config_get_bool(cfg, "overwrite"), plan);
    if (dist_any_failed(status) != 0)
        return -1;
    if (MPI_Bcast(plan, (int)sizeof *plan, MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        return dmnsp_fail("MPI_Bcast of the run plan failed");
    return 0;
}

static int write_run_files(experiment *e)
{
    int status = 0;
    if (e->rank == 0) {
        char path[4300];
        char *yaml = config_to_yaml(e->cfg);
        snprintf(path, sizeof path, "%s/config.yaml", e->output_dir);
        status = yaml == NULL ? -1 : rundir_write_atomic(path, yaml, strlen(yaml));
        free(yaml);
    }
    return dist_any_failed(status);
}

/* Opens the log file on rank 0 before anything else is logged, so that it
 * contains the whole run, the thread and model lines included. */
static int open_log(const config *cfg)
{
    const char *log_path = config_get_string(cfg, "log_path");
    int status = 0;
    if (dist_rank() == 0 && log_path[0] != '\0')
        status = log_open_file(log_path);
    DMNSP_TRY(dist_any_failed(status));
    log_info("threads per rank: %s", dist_thread_summary());
    if (dist_threads_may_spin())
        log_warn("OpenMP and OpenBLAS both run several threads: set OMP_WAIT_POLICY=passive, or one of them to 1 "
                 "thread, or their idle threads slow each other down");
    return 0;
}

int experiment_train(const config *cfg)
{
    log_level level = LOG_INFO;
    log_parse_level(config_get_string(cfg, "log_level"), &level);
    log_set_level(level);

    rundir_plan plan;
    DMNSP_TRY(prepare_folder(cfg, &plan));
    DMNSP_TRY(open_log(cfg));

    experiment *e = calloc(1, sizeof *e);
    if (dist_any_failed(e == NULL ? dmnsp_fail("out of memory") : 0) != 0) {
        free(e);
        return -1;
    }
    int status = dist_any_failed(experiment_open(cfg, e));
    if (status == 0) {
        snprintf(e->output_dir, sizeof e->output_dir, "%s", config_get_string(cfg, "output_dir"));
        snprintf(e->metrics_path, sizeof e->metrics_path, "%s/metrics.json", e->output_dir);
        snprintf(e->checkpoint_path, sizeof e->checkpoint_path, "%s/checkpoint.h5", e->output_dir);
        status = write_run_files(e);
    }
    if (status == 0) {
        log_note_interruptions();
        experiment_save_on_sigusr1();
        int minutes_set = strcmp(config_source(cfg, "checkpoint.interval_minutes"), "defaults") != 0;
        if (!config_get_bool(cfg, "checkpoint.every_task") &&
            (minutes_set || config_get_int(cfg, "checkpoint.interval_steps") > 0))
            log_warn("checkpoint.every_task is false, so checkpoint.h5 is written only at the end of the run and "
                     "checkpoint.interval_minutes and checkpoint.interval_steps have no effect");
    }
    if (status == 0 && plan.start == RUNDIR_RESUME)
        status = dist_any_failed(experiment_resume_from(e, plan.resume_path));
    e->last_checkpoint_time = log_now();
    if (status == 0)
        log_info("run: %s, method %s, %d task%s over %d classes, %d rank%s, output %s",
                 config_get_string(cfg, "dataset"), config_get_string(cfg, "method"), e->sc.task_count,
                 e->sc.task_count == 1 ? "" : "s", e->sc.class_count, e->ranks, e->ranks == 1 ? "" : "s",
                 e->output_dir);

    int task = e->first_task;
    if (status == 0)
        status = measure_missing_forward_transfer(e, task);
    for (; status == 0 && task < e->sc.task_count; task++) {
        long nonfinite = 0;
        double task_start = log_now();
        status = train_task(e, task, &nonfinite);
        if (status == 0)
            status = experiment_build_bases(e, task);
        if (status == 0)
            status = metrics_set_nonfinite(&e->metrics, task, nonfinite);
        if (status == 0)
            status = evaluate_after_task(e, task);
        if (status == 0)
            status = experiment_save_task(e, task);
        if (status == 0) {
            experiment_log_task_result(e, task);
            char took[32];
            log_format_duration(log_now() - task_start, took, sizeof took);
            log_info("task %d finished in %s", task, took);
        }
    }
    if (status == 0)
        status = experiment_write_summary(e, task);
    if (status == 0)
        experiment_log_summary(e, task);

    experiment_close(e);
    free(e);
    return status;
}

int experiment_eval(const config *cfg, const char *checkpoint_path)
{
    experiment *e = calloc(1, sizeof *e);
    if (dist_any_failed(e == NULL ? dmnsp_fail("out of memory") : 0) != 0) {
        free(e);
        return -1;
    }
    /* The config is checked against the checkpoint's before the model and
     * data are loaded, so that a mismatch is named as such. */
    checkpoint_reader *reader = NULL;
    int status = checkpoint_open(checkpoint_path, &reader);
    if (status == 0)
        status = experiment_check_model_config(cfg, checkpoint_config_text(reader), checkpoint_path, "eval");
    status = dist_any_failed(status);
    if (status == 0)
        status = dist_any_failed(experiment_open(cfg, e));

    int tasks = 0;
    if (status == 0) {
        status = checkpoint_check_config(reader, &e->model_config);
        if (status == 0) {
            tasks = checkpoint_task_count(reader);
            if (tasks > e->sc.task_count)
                status = dmnsp_fail("%s finished %d tasks but the scenario of this config has %d (check max_tasks)",
                                    checkpoint_path, tasks, e->sc.task_count);
        }
        if (status == 0 && tasks == 0)
            status = dmnsp_fail("%s holds no finished task to evaluate", checkpoint_path);
        /* Inside a task (/optimizer present) /model is partly trained on the
         * next task, so the snapshot of the last finished one is evaluated. */
        if (status == 0 && checkpoint_has_optimizer(reader)) {
            log_info("eval: %s was saved inside task %d; evaluating the adapters saved after task %d",
                     checkpoint_path, tasks, tasks - 1);
            status = checkpoint_read_task_adapters(reader, &e->model_config, tasks - 1, clip_model_adapters(e->model));
        } else if (status == 0) {
            status = checkpoint_read_model(reader, &e->model_config, clip_model_adapters(e->model));
        }
        status = dist_any_failed(status);
    }
    checkpoint_close(reader);

    if (status == 0) {
        int seen = e->sc.task_begin[tasks];
        status = experiment_text_features(e, seen);
        long all_correct = 0, all_total = 0;
        log_info("eval: %s after %d tasks, classifier over %d classes", checkpoint_path, tasks, seen);
        for (int j = 0; j < tasks && status == 0; j++) {
            long correct = 0, total = 0;
            status = experiment_evaluate_task(e, j, seen, &correct, &total);
            if (status == 0) {
                log_info("task %d: %.2f%% (%ld of %ld test images)", j,
                         total ? 100.0 * (double)correct / (double)total : 0.0, correct, total);
                all_correct += correct;
                all_total += total;
            }
        }
        if (status == 0)
            log_info("all seen tasks: %.2f%% (%ld of %ld test images)",
                     all_total ? 100.0 * (double)all_correct / (double)all_total : 0.0, all_correct, all_total);
    }
    experiment_close(e);
    free(e);
    return status;
}

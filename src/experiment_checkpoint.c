/* experiment_checkpoint: the run's files after every task (metrics.json,
 * checkpoint.h5) and resuming a run from its checkpoint. */
#include "experiment_internal.h"

#include "dmnsp/batching.h"
#include "dmnsp/checkpoint.h"
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/log.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- files ------------------------------------------------------------- */

/* Pointer arrays to the bases of one task, one entry per block. */
typedef struct {
    const double **eigvals;
    const float **eigvecs;
    const float **top;
} task_bases;

static int task_bases_create(int blocks, task_bases *bases)
{
    size_t count = (size_t)(blocks > 0 ? blocks : 1);
    bases->eigvals = calloc(count, sizeof *bases->eigvals);
    bases->eigvecs = calloc(count, sizeof *bases->eigvecs);
    bases->top = calloc(count, sizeof *bases->top);
    if (!bases->eigvals || !bases->eigvecs || !bases->top)
        return dmnsp_fail("out of memory preparing the checkpoint");
    return 0;
}

static void task_bases_free(task_bases *bases)
{
    free(bases->eigvals);
    free(bases->eigvecs);
    free(bases->top);
}

/* Points BASES at STATE's bases of TASK for every block; eigvecs stay NULL
 * unless KEEP_BASES. */
static int point_task_bases(const nullspace_state *state, int task, int blocks, int keep_bases, task_bases *bases)
{
    for (int block = 0; block < blocks; block++)
        DMNSP_TRY(nullspace_task_block(state, task, block, &bases->eigvals[block],
                                       keep_bases ? &bases->eigvecs[block] : NULL, &bases->top[block]));
    return 0;
}

static int write_checkpoint(experiment *e, int task)
{
    const clip_config *mc = &e->model_config;
    int blocks = e->method.projects_visual ? mc->vision_layers : 0;
    int text_blocks = e->method.projects_text ? mc->text_layers : 0;
    int begin = e->sc.task_begin[task], end = e->sc.task_begin[task + 1];

    int *classes = malloc((size_t)(end - begin) * sizeof *classes);
    double *row = malloc((size_t)(task + 1) * sizeof *row);
    float *lambda = malloc((size_t)mc->vision_layers * (size_t)mc->vision_layers * sizeof *lambda);
    char *yaml = config_to_yaml(e->cfg);
    task_bases visual = {0}, text = {0};
    int status = 0;
    if (!classes || !row || !lambda || !yaml)
        status = dmnsp_fail("out of memory preparing the checkpoint of task %d", task);
    if (status == 0)
        status = task_bases_create(blocks, &visual);
    if (status == 0)
        status = task_bases_create(text_blocks, &text);

    int keep_bases = config_get_bool(e->cfg, "checkpoint.keep_bases");
    if (status == 0 && blocks > 0)
        status = point_task_bases(e->visual_state, task, blocks, keep_bases, &visual);
    if (status == 0 && text_blocks > 0)
        status = point_task_bases(e->text_state, task, text_blocks, keep_bases, &text);
    const double *state_lambda = blocks > 0 && task > 0 ? nullspace_lambda(e->visual_state) : NULL;
    for (int i = 0; state_lambda != NULL && i < mc->vision_layers * mc->vision_layers; i++)
        lambda[i] = (float)state_lambda[i];

    if (status == 0) {
        for (int label = begin; label < end; label++)
            classes[label - begin] = label;
        for (int j = 0; j <= task; j++)
            row[j] = metrics_accuracy(&e->metrics, task, j);
        metrics_step step;
        status = metrics_compute(&e->metrics, task, &step);

        checkpoint_header header = {yaml, NULL, e->ranks};
        checkpoint_task_record record = {0};
        record.task = task;
        record.classes = classes;
        record.n_classes = end - begin;
        record.adapters = clip_model_adapters(e->model);
        record.blocks = blocks;
        record.d = mc->vision_width;
        record.k = (int)config_get_int(e->cfg, "top_select");
        record.eigvals = visual.eigvals;
        record.eigvecs = keep_bases ? visual.eigvecs : NULL;
        record.top = visual.top;
        record.text_blocks = text_blocks;
        record.text_d = mc->text_width;
        record.text_eigvals = text.eigvals;
        record.text_eigvecs = keep_bases ? text.eigvecs : NULL;
        record.text_top = text.top;
        record.lambda = state_lambda != NULL ? lambda : NULL;
        record.accuracy_row = row;
        record.row_length = task + 1;
        record.accuracy = step.acc;
        record.forward_accuracy = task > 0 ? metrics_accuracy(&e->metrics, task - 1, task) : NAN;
        record.nonfinite_count = e->metrics.nonfinite[task];
        if (status == 0)
            status = checkpoint_append_task(e->checkpoint_path, &header, mc, clip_model_adapters(e->model), NULL,
                                            &record);
    }
    free(classes);
    free(row);
    task_bases_free(&visual);
    task_bases_free(&text);
    free(lambda);
    free(yaml);
    return status;
}

/* Rank 0 writes metrics.json first, then the checkpoint: a run killed in
 * between resumes from the checkpoint and redoes that task, ignoring the
 * extra metrics line. */
int experiment_save_task(experiment *e, int task)
{
    int status = 0;
    if (e->rank == 0) {
        status = metrics_write_json(e->metrics_path, &e->metrics, task + 1, NULL);
        if (status == 0 && config_get_bool(e->cfg, "checkpoint.every_task"))
            status = write_checkpoint(e, task);
    }
    e->last_checkpoint_time = log_now();
    return dist_any_failed(status);
}

/* ---- progress inside a task ---------------------------------------------- */

/* Set by SIGUSR1: save a progress checkpoint after the next step. */
static volatile sig_atomic_t save_requested = 0;

static void request_save(int signal_number)
{
    (void)signal_number;
    save_requested = 1;
}

void experiment_save_on_sigusr1(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = request_save;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &action, NULL);
}

/* Decides on rank 0 whether a progress checkpoint is due after STEPS_TAKEN
 * steps of the task, and broadcasts the decision. */
static int progress_save_due(experiment *e, long steps_taken, int *due)
{
    const config *cfg = e->cfg;
    *due = 0;
    if (!config_get_bool(cfg, "checkpoint.every_task")) {
        /* no task-end checkpoints to continue from */
        if (save_requested && e->rank == 0)
            log_warn("checkpoint: SIGUSR1 ignored, because checkpoint.every_task is false");
        save_requested = 0;
        return 0;
    }

    long interval_steps = config_get_int(cfg, "checkpoint.interval_steps");
    if (interval_steps > 0 && steps_taken % interval_steps == 0)
        *due = 1;

    /* Only rank 0's clock and rank 0's SIGUSR1 count, so every rank saves
     * at the same step. */
    double interval_seconds = 60.0 * config_get_float(cfg, "checkpoint.interval_minutes");
    int late = e->rank == 0 && interval_seconds > 0 && log_now() - e->last_checkpoint_time >= interval_seconds;
    int requested = e->rank == 0 && save_requested;
    int decision[2] = {late, requested};
    if (MPI_Bcast(decision, 2, MPI_INT, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
        return dmnsp_fail("MPI_Bcast of the progress checkpoint decision failed");
    if (decision[1]) {
        save_requested = 0;
        log_info("checkpoint: saving after this step, as SIGUSR1 requested");
    }
    *due = *due || decision[0] || decision[1];
    return 0;
}

static int write_progress(experiment *e, int task, long steps_taken, long nonfinite)
{
    const adamw *optimizer = trainer_optimizer(e->trainer);
    if (optimizer->step != steps_taken)
        return dmnsp_fail("checkpoint: AdamW counts %ld steps in task %d but the training loop has taken %ld, so a "
                          "progress checkpoint would resume at the wrong step",
                          optimizer->step, task, steps_taken);
    char *yaml = config_to_yaml(e->cfg);
    if (yaml == NULL)
        return -1;

    checkpoint_header header = {yaml, NULL, e->ranks};
    checkpoint_optimizer progress = {0};
    progress.task = task;
    progress.step = steps_taken;
    progress.m = optimizer->m;
    progress.v = optimizer->v;
    progress.lambda = e->method.projects_visual && task > 0 ? nullspace_lambda(e->visual_state) : NULL;
    progress.text_lambda = e->method.projects_text && task > 0 ? nullspace_lambda(e->text_state) : NULL;
    progress.nonfinite_count = nonfinite;
    int status = checkpoint_save_progress(e->checkpoint_path, &header, &e->model_config,
                                          clip_model_adapters(e->model), &progress);
    free(yaml);
    return status;
}

int experiment_save_progress_if_due(experiment *e, int task, long steps_taken, long steps, long nonfinite)
{
    int due = 0;
    DMNSP_TRY(dist_any_failed(progress_save_due(e, steps_taken, &due)));
    if (!due)
        return 0;

    double start = log_now();
    int status = 0;
    if (e->rank == 0)
        status = write_progress(e, task, steps_taken, nonfinite);
    DMNSP_TRY(dist_any_failed(status));
    e->last_checkpoint_time = log_now();
    log_info("checkpoint: task %d step %ld/%ld saved to %s in %.2f s", task, steps_taken, steps, e->checkpoint_path,
             e->last_checkpoint_time - start);
    return 0;
}

int experiment_continue_task(experiment *e, long *first_step, long *nonfinite)
{
    experiment_progress *resumed = &e->resumed;
    adamw *optimizer = trainer_optimizer(e->trainer);
    memcpy(optimizer->m, resumed->m, optimizer->count * sizeof *optimizer->m);
    memcpy(optimizer->v, resumed->v, optimizer->count * sizeof *optimizer->v);
    optimizer->step = resumed->step;
    *first_step = resumed->step;
    *nonfinite = resumed->nonfinite;
    int status = experiment_restore_lambda(e, resumed->task, resumed->lambda, resumed->text_lambda);
    experiment_progress_free(resumed);
    return dist_any_failed(status);
}

void experiment_progress_free(experiment_progress *progress)
{
    free(progress->m);
    free(progress->v);
    free(progress->lambda);
    free(progress->text_lambda);
    memset(progress, 0, sizeof *progress);
}

int experiment_write_summary(experiment *e, int tasks_done)
{
    int status = 0;
    if (e->rank == 0) {
        metrics_run_info info = {config_get_string(e->cfg, "dataset"), config_get_string(e->cfg, "method"),
                                 log_now() - e->start_time, e->ranks};
        status = metrics_write_json(e->metrics_path, &e->metrics, tasks_done, &info);
        if (status == 0 && !config_get_bool(e->cfg, "checkpoint.every_task") && tasks_done > 0)
            status = write_checkpoint(e, tasks_done - 1);
    }
    return dist_any_failed(status);
}

/* ---- resume -------------------------------------------------------------- */

/* Keys that may differ between the run that wrote a checkpoint and the run
 * that resumes it: where files live, how the run reports and when it saves,
 * not what it computes. */
static const char *resume_free_keys[] = {
    "dataset_root", "output_dir", "log_path", "log_level", "log_interval", "resume", "overwrite",
    "eval_batch_size", "recompute_activations", "nullspace.solver", "checkpoint.every_task", "max_tasks",
    "checkpoint.interval_minutes", "checkpoint.interval_steps",
};

static int is_resume_free(const char *key)
{
    for (size_t i = 0; i < sizeof resume_free_keys / sizeof resume_free_keys[0]; i++) {
        if (strcmp(key, resume_free_keys[i]) == 0)
            return 1;
    }
    return 0;
}

/* Finds "KEY: value" in YAML text written by config_to_yaml. */
static int yaml_value_of(const char *yaml, const char *key, char *value, size_t size)
{
    char section[64] = "";
    const char *line = yaml;
    while (line != NULL && *line != '\0') {
        const char *end = strchr(line, '\n');
        size_t length = end ? (size_t)(end - line) : strlen(line);
        char text[1024];
        snprintf(text, sizeof text, "%.*s", (int)(length < sizeof text ? length : sizeof text - 1), line);
        char *colon = strstr(text, ": ");
        int nested = text[0] == ' ';
        if (!nested && length > 0 && text[length - 1] == ':' && colon == NULL) {
            snprintf(section, sizeof section, "%.*s", (int)length - 1, text);
        } else if (colon != NULL && text[0] != '#') {
            *colon = '\0';
            char name[1100];
            const char *bare = text;
            while (*bare == ' ')
                bare++;
            if (nested)
                snprintf(name, sizeof name, "%s.%s", section, bare);
            else
                snprintf(name, sizeof name, "%s", bare);
            if (strcmp(name, key) == 0) {
                snprintf(value, size, "%s", colon + 2);
                return 0;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return -1;
}

/* Keys that decide what an evaluation computes: the model and the
 * classifier's classes. The rest of a run's settings (training, output)
 * do not change the accuracy of stored adapters. Path keys are compared by
 * file name only, so that a run folder copied to another machine still
 * evaluates. NOTE: a different file under the same name is not detected. */
static const char *eval_bound_keys[] = {
    "dataset", "class_order", "class_names", "initial_increment", "increment", "model_name", "weights", "vocab",
    "seed", "prompt_template", "adapter.bottleneck", "adapter.scale",
};

static int is_eval_bound(const char *key)
{
    for (size_t i = 0; i < sizeof eval_bound_keys / sizeof eval_bound_keys[0]; i++) {
        if (strcmp(key, eval_bound_keys[i]) == 0)
            return 1;
    }
    return 0;
}

/* Returns the file name part of a quoted YAML path value. The closing
 * quote stays, which is harmless because both compared values keep it. */
static const char *file_name_of(const char *value)
{
    const char *slash = strrchr(value, '/');
    return slash != NULL ? slash + 1 : value;
}

/* Finds the first key for which CHECKED returns 1 whose value differs
 * between STORED_YAML and the config CFG; with SAME_FILE_NAME, path keys
 * agree when their file names do (a moved or copied file). Returns 1 with
 * the key and both values, 0 when all agree, -1 on an allocation failure. */
static int find_changed_key(const config *cfg, const char *stored_yaml, int (*checked)(const char *key),
                            int same_file_name, const char **key, char *was, char *now, size_t size)
{
    char *current = config_to_yaml(cfg);
    if (current == NULL)
        return -1;
    int count = 0, found = 0;
    const config_key *schema = config_schema(&count);
    for (int i = 0; i < count && !found; i++) {
        if (!checked(schema[i].key))
            continue;
        if (yaml_value_of(stored_yaml, schema[i].key, was, size) != 0)
            continue; /* a key newer than the checkpoint */
        yaml_value_of(current, schema[i].key, now, size);
        int path = same_file_name && schema[i].type == CONFIG_PATH;
        if (path ? strcmp(file_name_of(was), file_name_of(now)) != 0 : strcmp(was, now) != 0) {
            *key = schema[i].key;
            found = 1;
        }
    }
    free(current);
    return found;
}

static int is_resume_bound(const char *key) { return !is_resume_free(key); }

static int check_resume_config(const experiment *e, const char *stored_yaml, const char *path)
{
    const char *key = NULL;
    char was[1024], now[1024];
    int found = find_changed_key(e->cfg, stored_yaml, is_resume_bound, 0, &key, was, now, sizeof was);
    if (found < 0)
        return -1;
    if (found)
        return dmnsp_fail("resume: %s was written with %s = %s, but this run has %s = %s; resume with the "
                          "same settings, or start a new run without resume=",
                          path, key, was, key, now);
    return 0;
}

int experiment_check_model_config(const config *cfg, const char *stored_yaml, const char *path, const char *command)
{
    const char *key = NULL;
    char was[1024], now[1024];
    int found = find_changed_key(cfg, stored_yaml, is_eval_bound, 1, &key, was, now, sizeof was);
    if (found < 0)
        return -1;
    if (found)
        return dmnsp_fail("%s: %s was trained with %s = %s, but this config has %s = %s, which describes "
                          "another model or other classes; pass the run's own config.yaml (in its output_dir) "
                          "or %s=%s",
                          command, path, key, was, key, now, key, was);
    return 0;
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (in == NULL)
        return dmnsp_fail("resume: cannot read %s", from);
    char temporary[4300];
    snprintf(temporary, sizeof temporary, "%s.tmp", to);
    FILE *out = fopen(temporary, "wb");
    if (out == NULL) {
        fclose(in);
        return dmnsp_fail("resume: cannot write %s", temporary);
    }
    char buffer[1 << 16];
    size_t n;
    int status = 0;
    while ((n = fread(buffer, 1, sizeof buffer, in)) > 0) {
        if (fwrite(buffer, 1, n, out) != n) {
            status = dmnsp_fail("resume: writing %s failed", temporary);
            break;
        }
    }
    fclose(in);
    /* Flushed to disk before the rename, like rundir_write_atomic. */
    if (status == 0 && (fflush(out) != 0 || fsync(fileno(out)) != 0))
        status = dmnsp_fail("resume: flushing %s failed", temporary);
    if (fclose(out) != 0 && status == 0)
        status = dmnsp_fail("resume: writing %s failed", temporary);
    if (status == 0 && rename(temporary, to) != 0)
        status = dmnsp_fail("resume: cannot rename %s to %s", temporary, to);
    return status;
}

/* Adds the bases of tasks 0..TASKS-1 of MODALITY in READER to that
 * modality's null-space state. */
static int restore_bases(experiment *e, checkpoint_reader *reader, int tasks, clip_modality modality)
{
    const clip_config *mc = &e->model_config;
    int text = modality == CLIP_TEXT;
    nullspace_state *state = text ? e->text_state : e->visual_state;
    int blocks = text ? mc->text_layers : mc->vision_layers;
    int d = text ? mc->text_width : mc->vision_width;
    int k = (int)config_get_int(e->cfg, "top_select");
    size_t per_block = (size_t)d * d;
    double *eigvals = malloc((size_t)blocks * d * sizeof *eigvals);
    float *eigvecs = malloc((size_t)blocks * per_block * sizeof *eigvecs);
    float *top = malloc((size_t)blocks * d * k * sizeof *top);
    const double **eigvals_p = malloc((size_t)blocks * sizeof *eigvals_p);
    const float **eigvecs_p = malloc((size_t)blocks * sizeof *eigvecs_p);
    const float **top_p = malloc((size_t)blocks * sizeof *top_p);
    int status = 0;
    if (!eigvals || !eigvecs || !top || !eigvals_p || !eigvecs_p || !top_p)
        status = dmnsp_fail("resume: out of memory for the null-space bases");

    for (int task = 0; task < tasks && status == 0; task++) {
        checkpoint_nullspace_info info;
        status = checkpoint_read_nullspace_info(reader, task, modality, &info);
        if (status == 0 && text && info.blocks == 0)
            status = dmnsp_fail("resume: %s task %d has no text null spaces (group /tasks/task_%02d/nullspace_text "
                                "is missing), which DMNSP-both needs. The file comes from an older dmnsp build: "
                                "start the run again with overwrite=true",
                                checkpoint_path(reader), task, task);
        if (status == 0 && (info.blocks != blocks || info.d != d || info.k != k))
            status = dmnsp_fail("resume: %s task %d has %s null spaces of %d blocks x %d x %d, this run needs %d x "
                                "%d x %d",
                                checkpoint_path(reader), task, text ? "text" : "visual", info.blocks, info.d, info.k,
                                blocks, d, k);
        if (status == 0 && !info.has_eigvecs && e->method.variant != NULLSPACE_FIXED)
            status = dmnsp_fail("resume: %s holds no eigenvectors (written with checkpoint.keep_bases=false), which "
                                "%s needs for lambda",
                                checkpoint_path(reader), config_get_string(e->cfg, "method"));
        for (int block = 0; block < blocks && status == 0; block++) {
            eigvals_p[block] = eigvals + (size_t)block * d;
            eigvecs_p[block] = eigvecs + (size_t)block * per_block;
            top_p[block] = top + (size_t)block * d * k;
            status = checkpoint_read_nullspace(reader, task, modality, block, eigvals + (size_t)block * d,
                                               info.has_eigvecs ? eigvecs + (size_t)block * per_block : NULL,
                                               top + (size_t)block * d * k);
        }
        if (status == 0)
            status = nullspace_add_task(state, eigvals_p, info.has_eigvecs ? eigvecs_p : NULL, top_p);
    }
    free(eigvals);
    free(eigvecs);
    free(top);
    free(eigvals_p);
    free(eigvecs_p);
    free(top_p);
    return status;
}

static int restore_metrics(experiment *e, const char *resume_path, int tasks)
{
    /* A run stopped inside its first task has no metrics yet, and its
     * metrics.json may not exist. */
    if (tasks == 0)
        return 0;
    char path[4300];
    const char *slash = strrchr(resume_path, '/');
    if (slash == NULL)
        snprintf(path, sizeof path, "metrics.json");
    else
        snprintf(path, sizeof path, "%.*s/metrics.json", (int)(slash - resume_path), resume_path);

    metrics_file file;
    DMNSP_TRY(metrics_read_json(path, &file));
    int status = 0;
    int line_count = file.line_count;
    if (file.line_count < tasks)
        status = dmnsp_fail("resume: %s has %d task lines but the checkpoint finished %d tasks", path,
                            file.line_count, tasks);
    if (status == 0) {
        file.line_count = tasks; /* a line past the checkpoint belongs to a task that is redone */
        status = metrics_restore(&e->metrics, e->sc.task_count, &file);
        file.line_count = line_count;
    }
    metrics_file_free(&file);
    return status;
}

static long task_batches(const experiment *e, int task)
{
    return batching_batch_count(e->train_samples[task].count, (int)config_get_int(e->cfg, "batch_size"));
}

static long task_steps(const experiment *e, int task)
{
    return config_get_int(e->cfg, "epochs") * task_batches(e, task);
}

/* Reads /optimizer and /model of a checkpoint that stopped inside task
 * TASK into e->resumed and the model's adapters. */
static int restore_progress(experiment *e, checkpoint_reader *reader, int task)
{
    const clip_config *mc = &e->model_config;
    const char *path = checkpoint_path(reader);
    checkpoint_optimizer_info info;
    DMNSP_TRY(checkpoint_read_optimizer(reader, mc, &info, NULL, NULL, NULL, NULL));

    long steps = task_steps(e, task);
    if (info.task != task)
        return dmnsp_fail("resume: %s: /optimizer belongs to task %d, but the file finished %d tasks, so only task "
                          "%d can be in progress. The file is inconsistent: resume from an intact copy",
                          path, info.task, task, task);
    if (info.step < 1 || info.step > steps)
        return dmnsp_fail("resume: %s: attribute step of /optimizer is %ld, but task %d has steps 1..%ld with this "
                          "config",
                          path, info.step, task, steps);
    if (info.nonfinite_count < 0)
        return dmnsp_fail("resume: %s: attribute nonfinite_count of /optimizer is %ld, expected a count >= 0", path,
                          info.nonfinite_count);
    int needs_lambda = e->method.projects_visual && task > 0;
    if (needs_lambda && !info.has_lambda)
        return dmnsp_fail("resume: %s: dataset /optimizer/lambda is missing, which task %d of %s needs", path, task,
                          config_get_string(e->cfg, "method"));
    if (needs_lambda && e->method.projects_text && !info.has_text_lambda)
        return dmnsp_fail("resume: %s: dataset /optimizer/lambda_text is missing, which task %d of DMNSP-both needs",
                          path, task);

    experiment_progress *resumed = &e->resumed;
    size_t count = clip_adapter_count(mc);
    resumed->m = dmnsp_malloc(count * sizeof *resumed->m, "the saved AdamW first moments");
    resumed->v = dmnsp_malloc(count * sizeof *resumed->v, "the saved AdamW second moments");
    if (resumed->m == NULL || resumed->v == NULL)
        return -1;
    if (needs_lambda) {
        resumed->lambda = dmnsp_malloc((size_t)mc->vision_layers * mc->vision_layers * sizeof *resumed->lambda,
                                       "the saved lambda");
        if (resumed->lambda == NULL)
            return -1;
    }
    if (needs_lambda && e->method.projects_text) {
        resumed->text_lambda = dmnsp_malloc((size_t)mc->text_layers * mc->text_layers * sizeof *resumed->text_lambda,
                                            "the saved text lambda");
        if (resumed->text_lambda == NULL)
            return -1;
    }
    DMNSP_TRY(checkpoint_read_optimizer(reader, mc, &info, resumed->m, resumed->v, resumed->lambda,
                                        resumed->text_lambda));
    DMNSP_TRY(checkpoint_read_model(reader, mc, clip_model_adapters(e->model)));
    resumed->active = 1;
    resumed->task = task;
    resumed->step = info.step;
    resumed->nonfinite = info.nonfinite_count;
    return 0;
}

int experiment_resume_from(experiment *e, const char *resume_path)
{
    checkpoint_reader *reader = NULL;
    DMNSP_TRY(checkpoint_open(resume_path, &reader));
    int tasks = checkpoint_task_count(reader);
    int status = check_resume_config(e, checkpoint_config_text(reader), resume_path);
    if (status == 0)
        status = checkpoint_check_config(reader, &e->model_config);
    if (status == 0 && tasks > e->sc.task_count)
        status = dmnsp_fail("resume: %s finished %d tasks but this scenario has only %d", resume_path, tasks,
                            e->sc.task_count);
    int written_ranks = checkpoint_ranks(reader);
    if (status == 0 && written_ranks > 0 && written_ranks != e->ranks)
        log_warn("resume: %s was written by a run on %d rank%s and this run has %d; the results equal an "
                 "uninterrupted run's only on the same number of ranks (reduction order differs)",
                 resume_path, written_ranks, written_ranks == 1 ? "" : "s", e->ranks);
    /* /model contains the adapters of the latest save: after task tasks-1,
     * or inside task tasks when /optimizer exists. */
    int in_progress = status == 0 && checkpoint_has_optimizer(reader);
    int continues = in_progress && tasks < e->sc.task_count && e->method.trains;
    if (status == 0 && continues)
        status = restore_progress(e, reader, tasks);
    else if (status == 0 && in_progress && tasks > 0)
        status = checkpoint_read_task_adapters(reader, &e->model_config, tasks - 1, clip_model_adapters(e->model));
    else if (status == 0 && tasks > 0)
        status = checkpoint_read_model(reader, &e->model_config, clip_model_adapters(e->model));
    if (status == 0 && e->method.projects_visual)
        status = restore_bases(e, reader, tasks, CLIP_VISUAL);
    if (status == 0 && e->method.projects_text)
        status = restore_bases(e, reader, tasks, CLIP_TEXT);
    checkpoint_close(reader);
    if (status == 0)
        status = restore_metrics(e, resume_path, tasks);
    if (status == 0 && e->rank == 0 && strcmp(resume_path, e->checkpoint_path) != 0)
        status = copy_file(resume_path, e->checkpoint_path);
    if (status != 0) {
        experiment_progress_free(&e->resumed);
        return status;
    }

    e->first_task = tasks;
    if (continues) {
        long batches = task_batches(e, tasks);
        if (e->resumed.step >= task_steps(e, tasks))
            log_info("resume: %s finished %d of %d tasks and stopped inside task %d after its last training step; "
                     "continuing with its null-space bases and evaluation",
                     resume_path, tasks, e->sc.task_count, tasks);
        else
            log_info("resume: %s finished %d of %d tasks and stopped inside task %d; continuing task %d after step "
                     "%ld of %ld (next: epoch %ld, batch %ld)",
                     resume_path, tasks, e->sc.task_count, tasks, tasks, e->resumed.step, task_steps(e, tasks),
                     e->resumed.step / batches + 1, e->resumed.step % batches + 1);
    } else {
        log_info("resume: %s finished %d of %d tasks; continuing with task %d", resume_path, tasks,
                 e->sc.task_count, tasks);
    }
    if (in_progress && !continues)
        log_info("resume: ignoring the progress saved inside task %d, which this run does not train (max_tasks=%ld, "
                 "method %s)",
                 tasks, config_get_int(e->cfg, "max_tasks"), config_get_string(e->cfg, "method"));
    return 0;
}

/* checkpoint_write: builds PATH.tmp from the finished tasks in PATH plus the
 * new state, then renames it over PATH. */
#include "checkpoint_internal.h"

#include "dmnsp/error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef DMNSP_VERSION
#define DMNSP_VERSION "unknown"
#endif
#ifndef DMNSP_GIT_DESCRIBE
#define DMNSP_GIT_DESCRIBE "unknown"
#endif

static const char *const modality_names[2] = {"visual", "text"};

/* The null space of one encoder inside a task record. */
typedef struct {
    const char *modality; /* "visual" or "text" */
    const char *group;    /* group name under /tasks/task_TT */
    int blocks, d, k;
    const double *const *eigvals;
    const float *const *eigvecs;
    const float *const *top;
} nullspace_view;

static void visual_nullspace(const checkpoint_task_record *rec, nullspace_view *view)
{
    nullspace_view visual = {"visual", "nullspace", rec->blocks, rec->d, rec->k, rec->eigvals, rec->eigvecs, rec->top};
    *view = visual;
}

static void text_nullspace(const checkpoint_task_record *rec, nullspace_view *view)
{
    nullspace_view text = {"text",    "nullspace_text",  rec->text_blocks, rec->text_d,
                           rec->k,    rec->text_eigvals, rec->text_eigvecs, rec->text_top};
    *view = text;
}

/* ---------------------------------------------------------------------------
 * Argument checks, before any file is touched
 * ------------------------------------------------------------------------- */
static int check_nullspace(const char *path, int task, const nullspace_view *view, int layers, int width)
{
    if (view->blocks != layers || view->d != width)
        return dmnsp_fail("checkpoint: %s: task %d: %s null space has %d blocks of width %d, expected %d blocks of "
                          "width %d (the %s encoder)",
                          path, task, view->modality, view->blocks, view->d, layers, width, view->modality);
    if (view->k < 1 || view->k > view->d)
        return dmnsp_fail("checkpoint: %s: task %d: top-k size %d is not in 1..%d", path, task, view->k, view->d);
    if (view->eigvals == NULL || view->top == NULL)
        return dmnsp_fail("checkpoint: %s: task %d: %s null space needs eigvals and top for every block", path, task,
                          view->modality);
    for (int b = 0; b < view->blocks; b++) {
        if (view->eigvals[b] == NULL || view->top[b] == NULL)
            return dmnsp_fail("checkpoint: %s: task %d: %s null space block %d has no eigvals or top", path, task,
                              view->modality, b);
        if (view->eigvecs != NULL && view->eigvecs[b] == NULL)
            return dmnsp_fail("checkpoint: %s: task %d: %s null space block %d has no eigvecs while others have",
                              path, task, view->modality, b);
    }
    return 0;
}

static int check_record(const char *path, const clip_config *config, const checkpoint_task_record *rec)
{
    if (rec->task < 0)
        return dmnsp_fail("checkpoint: %s: task %d is negative", path, rec->task);
    if (rec->n_classes < 0 || (rec->n_classes > 0 && rec->classes == NULL))
        return dmnsp_fail("checkpoint: %s: task %d: %d classes given without a class list", path, rec->task,
                          rec->n_classes);
    if (rec->adapters == NULL)
        return dmnsp_fail("checkpoint: %s: task %d: adapter snapshot is missing", path, rec->task);
    if (rec->row_length < 0 || (rec->row_length > 0 && rec->accuracy_row == NULL))
        return dmnsp_fail("checkpoint: %s: task %d: accuracy row of length %d is missing", path, rec->task,
                          rec->row_length);
    if (rec->blocks == 0 && rec->text_blocks > 0)
        return dmnsp_fail("checkpoint: %s: task %d: text null spaces given without visual ones", path, rec->task);
    if (rec->blocks == 0)
        return 0;

    nullspace_view visual, text;
    visual_nullspace(rec, &visual);
    text_nullspace(rec, &text);
    DMNSP_TRY(check_nullspace(path, rec->task, &visual, config->vision_layers, config->vision_width));
    if (text.blocks > 0)
        DMNSP_TRY(check_nullspace(path, rec->task, &text, config->text_layers, config->text_width));
    return 0;
}

static int check_optimizer(const char *path, const checkpoint_optimizer *opt)
{
    if (opt->m == NULL || opt->v == NULL)
        return dmnsp_fail("checkpoint: %s: optimizer state of task %d lacks its moments", path, opt->task);
    if (opt->task < 0 || opt->step < 0)
        return dmnsp_fail("checkpoint: %s: optimizer task %d / step %ld is negative", path, opt->task, opt->step);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Pieces of the new file
 * ------------------------------------------------------------------------- */
static int write_root(const char *path, hid_t file, const checkpoint_header *header, int tasks_completed)
{
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    if (root < 0)
        return ck_fail_h5(path, "cannot open group", "/");
    const char *config = header != NULL && header->config_yaml != NULL ? header->config_yaml : "";
    const char *git = header != NULL && header->git_describe != NULL ? header->git_describe : DMNSP_GIT_DESCRIBE;
    int status = ck_write_attr_long(path, root, "format_version", CHECKPOINT_FORMAT_VERSION);
    if (status == 0)
        status = ck_write_attr_string(path, root, "config", config);
    if (status == 0)
        status = ck_write_attr_string(path, root, "git_describe", git);
    if (status == 0)
        status = ck_write_attr_long(path, root, "ranks", header != NULL ? header->ranks : 1);
    if (status == 0)
        status = ck_write_attr_string(path, root, "dmnsp_version", DMNSP_VERSION);
    if (status == 0)
        status = ck_write_attr_long(path, root, "tasks_completed", tasks_completed);
    if (status == 0)
        status = ck_write_attr_string(path, root, "description",
                                      "dmnsp checkpoint: CLIP adapters, per-task null-space bases, lambda, "
                                      "parameter statistics and accuracy rows");
    H5Gclose(root);
    return status;
}

static int write_model(const char *path, hid_t file, const clip_config *config, const float *adapters)
{
    hid_t model = ck_create_group(path, file, "model");
    if (model < 0)
        return -1;
    int status = ck_write_attr_long(path, model, "vision_width", config->vision_width);
    status = status ? status : ck_write_attr_long(path, model, "vision_layers", config->vision_layers);
    status = status ? status : ck_write_attr_long(path, model, "text_width", config->text_width);
    status = status ? status : ck_write_attr_long(path, model, "text_layers", config->text_layers);
    status = status ? status : ck_write_attr_long(path, model, "adapter_bottleneck", config->adapter_bottleneck);
    status = status ? status : ck_write_adapters(path, model, config, adapters, "current");
    H5Gclose(model);
    return status;
}

static int write_optimizer(const char *path, hid_t file, const clip_config *config, const checkpoint_optimizer *opt)
{
    hid_t group = ck_create_group(path, file, "optimizer");
    if (group < 0)
        return -1;
    hsize_t count[1] = {clip_adapter_count(config)};
    hsize_t square[2] = {(hsize_t)config->vision_layers, (hsize_t)config->vision_layers};
    hsize_t text_square[2] = {(hsize_t)config->text_layers, (hsize_t)config->text_layers};
    int status = ck_write_attr_long(path, group, "task", opt->task);
    status = status ? status : ck_write_attr_long(path, group, "step", opt->step);
    status = status ? status : ck_write_attr_long(path, group, "nonfinite_count", opt->nonfinite_count);
    status = status ? status
                    : ck_write_attr_string(path, group, "description",
                                           "AdamW state of the task in progress; attribute step counts the "
                                           "optimizer steps already taken in that task");
    status = status ? status
                    : ck_write_dataset(path, group, "m", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, count, opt->m,
                                       "AdamW first moment, flat adapter layout: visual blocks then text blocks, "
                                       "each down_w, down_b, up_w, up_b");
    status = status ? status
                    : ck_write_dataset(path, group, "v", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, count, opt->v,
                                       "AdamW second moment, same layout as m");
    if (status == 0 && opt->lambda != NULL)
        status = ck_write_dataset(path, group, "lambda", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, square, opt->lambda,
                                  "lambda [L, L] of the task in progress: row l scales the projection of "
                                  "visual block l by each block's null space");
    if (status == 0 && opt->text_lambda != NULL)
        status = ck_write_dataset(path, group, "lambda_text", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, text_square,
                                  opt->text_lambda,
                                  "lambda of the text blocks (DMNSP-both) for the task in progress: row l "
                                  "scales the projection of text block l by each text block's null space");
    H5Gclose(group);
    return status;
}

static int write_nullspace(const char *path, hid_t task_group, const nullspace_view *view)
{
    hid_t group = ck_create_group(path, task_group, view->group);
    if (group < 0)
        return -1;
    char eigvals_text[256];
    snprintf(eigvals_text, sizeof eigvals_text,
             "eigenvalues of the adapter-output feature covariance sum_tokens a a^T of this %s block over the "
             "task's %s, descending",
             view->modality, strcmp(view->modality, "text") == 0 ? "class prompts" : "basis batches");
    int status = ck_write_attr_long(path, group, "top_select", view->k);
    for (int b = 0; status == 0 && b < view->blocks; b++) {
        char name[32];
        ck_block_name(name, sizeof name, b);
        hid_t block = ck_create_group(path, group, name);
        if (block < 0) {
            status = -1;
            break;
        }
        hsize_t d1[1] = {(hsize_t)view->d};
        hsize_t dd[2] = {(hsize_t)view->d, (hsize_t)view->d};
        hsize_t dk[2] = {(hsize_t)view->d, (hsize_t)view->k};
        status = ck_write_dataset(path, block, "eigvals", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d1, view->eigvals[b],
                                  eigvals_text);
        if (status == 0 && view->eigvecs != NULL)
            status = ck_write_dataset(path, block, "eigvecs", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dd,
                                      view->eigvecs[b],
                                      "eigenvectors [d, d]: column j belongs to eigvals[j]; columns top_select.. "
                                      "span this task's null space");
        if (status == 0)
            status = ck_write_dataset(path, block, "top", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dk, view->top[b],
                                      "top eigenvectors [d, k] (the first k columns of eigvecs), used to apply "
                                      "the projector implicitly");
        H5Gclose(block);
    }
    H5Gclose(group);
    return status;
}

static int write_stats(const char *path, hid_t group, const param_stats *s)
{
    hsize_t bins[1] = {PARAM_STATS_BINS};
    hsize_t edges[1] = {PARAM_STATS_BINS + 1};
    long long histogram[PARAM_STATS_BINS];
    long long nonfinite = s->nonfinite_count;
    for (int i = 0; i < PARAM_STATS_BINS; i++)
        histogram[i] = s->histogram[i];
    const struct {
        const char *name;
        const double *value;
        const char *description;
    } scalars[] = {
        {"mean", &s->mean, "mean of the finite values"},
        {"std", &s->std, "population standard deviation of the finite values"},
        {"min", &s->min, "smallest finite value"},
        {"max", &s->max, "largest finite value"},
        {"norm", &s->norm, "Frobenius norm of the finite values"},
        {"delta_norm", &s->delta_norm,
         "Frobenius norm of the change since the previous task's snapshot (0 for task 0)"},
    };
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        DMNSP_TRY(ck_write_dataset(path, group, scalars[i].name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL,
                                   scalars[i].value, scalars[i].description));
    DMNSP_TRY(ck_write_dataset(path, group, "nonfinite_count", H5T_STD_I64LE, H5T_NATIVE_LLONG, 0, NULL, &nonfinite,
                               "number of NaN or infinite values (left out of the other statistics)"));
    DMNSP_TRY(ck_write_dataset(path, group, "histogram", H5T_STD_I64LE, H5T_NATIVE_LLONG, 1, bins, histogram,
                               "counts of finite values in 64 equal bins over [min, max]; the last bin "
                               "includes max"));
    DMNSP_TRY(ck_write_dataset(path, group, "edges", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, edges, s->edges,
                               "65 bin edges of histogram (min - 0.5 .. max + 0.5 when min == max)"));
    return 0;
}

/* Statistics of down_w and up_w of every block of both modalities. */
static int write_all_stats(const char *path, hid_t task_group, const clip_config *config, const float *snapshot,
                           const float *previous)
{
    hid_t stats = ck_create_group(path, task_group, "stats");
    if (stats < 0)
        return -1;
    int status = 0;
    for (int modality = 0; status == 0 && modality < 2; modality++) {
        int layers = modality == CLIP_VISUAL ? config->vision_layers : config->text_layers;
        hid_t modality_group = ck_create_group(path, stats, modality_names[modality]);
        if (modality_group < 0) {
            status = -1;
            break;
        }
        for (int block = 0; status == 0 && block < layers; block++) {
            clip_adapter_view now, before;
            clip_adapter_block(config, (float *)snapshot, (clip_modality)modality, block, &now);
            if (previous != NULL)
                clip_adapter_block(config, (float *)previous, (clip_modality)modality, block, &before);
            size_t count = (size_t)now.width * now.bottleneck;
            const float *tensors[2] = {now.down_w, now.up_w};
            const float *previous_tensors[2] = {previous ? before.down_w : NULL, previous ? before.up_w : NULL};
            const char *names[2] = {"down_w", "up_w"};

            char name[32];
            ck_block_name(name, sizeof name, block);
            hid_t block_group = ck_create_group(path, modality_group, name);
            if (block_group < 0) {
                status = -1;
                break;
            }
            for (int t = 0; status == 0 && t < 2; t++) {
                param_stats s;
                param_stats_compute(tensors[t], previous_tensors[t], count, &s);
                hid_t tensor_group = ck_create_group(path, block_group, names[t]);
                if (tensor_group < 0) {
                    status = -1;
                    break;
                }
                status = write_stats(path, tensor_group, &s);
                H5Gclose(tensor_group);
            }
            H5Gclose(block_group);
        }
        H5Gclose(modality_group);
    }
    H5Gclose(stats);
    return status;
}

static int write_metrics(const char *path, hid_t task_group, const checkpoint_task_record *rec)
{
    hid_t group = ck_create_group(path, task_group, "metrics");
    if (group < 0)
        return -1;
    hsize_t row[1] = {(hsize_t)rec->row_length};
    long long nonfinite = rec->nonfinite_count;
    int status = ck_write_dataset(path, group, "accuracy_row", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, row,
                                  rec->row_length > 0 ? rec->accuracy_row : NULL,
                                  "R[t][j]: accuracy in percent on task j's test set after training this task t");
    status = status ? status
                    : ck_write_dataset(path, group, "accuracy", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL,
                                       &rec->accuracy,
                                       "accuracy in percent over all test samples of tasks 0..t (sample-weighted)");
    status = status ? status
                    : ck_write_dataset(path, group, "forward_accuracy", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL,
                                       &rec->forward_accuracy,
                                       "accuracy in percent on this task's test set before training it (NaN if "
                                       "not measured)");
    status = status ? status
                    : ck_write_dataset(path, group, "nonfinite_count", H5T_STD_I64LE, H5T_NATIVE_LLONG, 0, NULL,
                                       &nonfinite,
                                       "non-finite gradient or AdamW state events during the task (fp32 overflow)");
    H5Gclose(group);
    return status;
}

static int write_task(const char *path, hid_t tasks, const clip_config *config, const checkpoint_task_record *rec,
                      const float *previous)
{
    char name[32];
    ck_task_name(name, sizeof name, rec->task);
    hid_t group = ck_create_group(path, tasks, name);
    if (group < 0)
        return -1;

    hsize_t n_classes[1] = {(hsize_t)rec->n_classes};
    hsize_t square[2] = {(hsize_t)config->vision_layers, (hsize_t)config->vision_layers};
    int status = ck_write_dataset(path, group, "classes", H5T_STD_I32LE, H5T_NATIVE_INT, 1, n_classes,
                                  rec->n_classes > 0 ? rec->classes : NULL,
                                  "labels of this task's classes in ordered space (label k is class_order[k])");

    hid_t adapters = status == 0 ? ck_create_group(path, group, "adapters") : -1;
    if (adapters >= 0) {
        status = ck_write_adapters(path, adapters, config, rec->adapters, "snapshot after this task");
        H5Gclose(adapters);
    } else {
        status = -1;
    }

    nullspace_view visual, text;
    visual_nullspace(rec, &visual);
    text_nullspace(rec, &text);
    if (status == 0 && visual.blocks > 0)
        status = write_nullspace(path, group, &visual);
    if (status == 0 && text.blocks > 0)
        status = write_nullspace(path, group, &text);
    if (status == 0 && rec->lambda != NULL)
        status = ck_write_dataset(path, group, "lambda", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, square, rec->lambda,
                                  "lambda [L, L]: entry [l][i] scales visual block l's gradient projection by "
                                  "block i's null space during this task");
    if (status == 0)
        status = write_all_stats(path, group, config, rec->adapters, previous);
    if (status == 0)
        status = write_metrics(path, group, rec);
    H5Gclose(group);
    return status;
}

/* ---------------------------------------------------------------------------
 * Durable rename
 * ------------------------------------------------------------------------- */
static int fsync_path(const char *path, int directory)
{
    int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0)
        return dmnsp_fail("checkpoint: %s: cannot open for fsync: %s", path, strerror(errno));
    int status = fsync(fd);
    int saved = errno;
    close(fd);
    /* Some file systems do not support fsync on directories (EINVAL). */
    if (status != 0 && !(directory && saved == EINVAL))
        return dmnsp_fail("checkpoint: %s: fsync failed: %s", path, strerror(saved));
    return 0;
}

static int commit_file(const char *tmp, const char *path)
{
    DMNSP_TRY(fsync_path(tmp, 0));
    if (rename(tmp, path) != 0)
        return dmnsp_fail("checkpoint: cannot rename %s to %s: %s", tmp, path, strerror(errno));
    char *copy = strdup(path);
    if (copy == NULL)
        return dmnsp_fail("checkpoint: out of memory");
    int status = fsync_path(dirname(copy), 1);
    free(copy);
    return status;
}

/* ---------------------------------------------------------------------------
 * The whole write
 * ------------------------------------------------------------------------- */
static int write_checkpoint(const char *path, const checkpoint_header *header, const clip_config *config,
                            const float *current, const checkpoint_optimizer *opt, const checkpoint_task_record *rec)
{
    ck_silence_hdf5();
    if (path == NULL || config == NULL || current == NULL)
        return dmnsp_fail("checkpoint: path, config and current adapters are required");
    if (rec != NULL)
        DMNSP_TRY(check_record(path, config, rec));
    if (opt != NULL)
        DMNSP_TRY(check_optimizer(path, opt));

    /* The finished tasks come from the existing checkpoint, if any. */
    checkpoint_reader *old = NULL;
    struct stat info;
    if (stat(path, &info) == 0) {
        if (checkpoint_open(path, &old) != 0)
            return dmnsp_fail_prefix("cannot extend the existing checkpoint");
        if (checkpoint_check_config(old, config) != 0) {
            checkpoint_close(old);
            return -1;
        }
    } else if (errno != ENOENT) {
        return dmnsp_fail("checkpoint: %s: cannot inspect: %s", path, strerror(errno));
    }
    int finished = old != NULL ? old->task_count : 0;
    if (rec != NULL && rec->task < finished) {
        checkpoint_close(old);
        return dmnsp_fail("checkpoint: %s: contains %d completed tasks, so the next task to append is %d or later, "
                          "not %d",
                          path, finished, finished, rec->task);
    }

    /* The previous task's snapshot gives the change statistics (delta_norm);
     * without it (task 0, or task t-1 not stored) delta_norm is 0. */
    float *previous = NULL;
    if (rec != NULL && rec->task > 0 && old != NULL && checkpoint_task_stored(old, rec->task - 1)) {
        previous = dmnsp_malloc(clip_adapter_count(config) * sizeof(float), "previous adapter snapshot");
        if (previous == NULL || checkpoint_read_task_adapters(old, config, rec->task - 1, previous) != 0) {
            free(previous);
            checkpoint_close(old);
            return -1;
        }
    }

    size_t tmp_size = strlen(path) + 5;
    char *tmp = dmnsp_malloc(tmp_size, "checkpoint temporary name");
    if (tmp == NULL) {
        free(previous);
        checkpoint_close(old);
        return -1;
    }
    snprintf(tmp, tmp_size, "%s.tmp", path);

    hid_t fapl = ck_file_access();
    hid_t file = fapl >= 0 ? H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl) : -1;
    int status = 0;
    if (file < 0)
        status = ck_fail_h5(path, "cannot create the temporary file", tmp);
    if (fapl >= 0)
        H5Pclose(fapl);

    /* Root attributes, the copied tasks, the new task, /model, /optimizer. */
    if (status == 0)
        status = write_root(path, file, header, rec != NULL ? rec->task + 1 : finished);
    hid_t tasks = status == 0 ? ck_create_group(path, file, "tasks") : -1;
    if (status == 0 && tasks < 0)
        status = -1;
    if (status == 0)
        status = ck_write_attr_string(path, tasks, "description",
                                      "one group per stored task (attribute stored_tasks lists them)");
    long *stored = dmnsp_malloc((size_t)(finished + 1) * sizeof *stored, "checkpoint task list");
    int stored_count = 0;
    if (stored == NULL)
        status = -1;
    for (int t = 0; status == 0 && t < finished; t++) {
        if (!checkpoint_task_stored(old, t))
            continue;
        char name[32], source[64];
        ck_task_name(name, sizeof name, t);
        snprintf(source, sizeof source, "/tasks/%s", name);
        if (H5Ocopy(old->file, source, tasks, name, H5P_DEFAULT, H5P_DEFAULT) < 0)
            status = ck_fail_h5(path, "cannot copy", source);
        stored[stored_count++] = t;
    }
    if (status == 0 && rec != NULL) {
        status = write_task(path, tasks, config, rec, previous);
        stored[stored_count++] = rec->task;
    }
    if (status == 0 && stored_count > 0)
        status = ck_write_attr_longs(path, tasks, "stored_tasks", stored, stored_count);
    free(stored);
    if (tasks >= 0)
        H5Gclose(tasks);
    if (status == 0)
        status = write_model(path, file, config, current);
    if (status == 0 && opt != NULL)
        status = write_optimizer(path, file, config, opt);

    if (file >= 0 && H5Fclose(file) < 0 && status == 0)
        status = ck_fail_h5(path, "cannot close the temporary file", tmp);
    checkpoint_close(old);
    free(previous);

    if (status == 0)
        status = commit_file(tmp, path);
    if (status != 0 && file >= 0)
        unlink(tmp);
    free(tmp);
    return status;
}

int checkpoint_append_task(const char *path, const checkpoint_header *header, const clip_config *config,
                           const float *current_adapters, const checkpoint_optimizer *opt,
                           const checkpoint_task_record *rec)
{
    if (rec == NULL)
        return dmnsp_fail("checkpoint: %s: no task record given", path != NULL ? path : "(null)");
    return write_checkpoint(path, header, config, current_adapters, opt, rec);
}

int checkpoint_save_progress(const char *path, const checkpoint_header *header, const clip_config *config,
                             const float *current_adapters, const checkpoint_optimizer *opt)
{
    if (opt == NULL)
        return dmnsp_fail("checkpoint: %s: no optimizer state given", path != NULL ? path : "(null)");
    return write_checkpoint(path, header, config, current_adapters, opt, NULL);
}

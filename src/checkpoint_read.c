/* checkpoint_read: opening, validating and reading checkpoint.h5. */
#include "checkpoint_internal.h"

#include "dmnsp/error.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const modality_names[2] = {"visual", "text"};

/* ---------------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------------- */
static int read_shape(checkpoint_reader *r)
{
    if (!ck_exists(r->file, "/model"))
        return dmnsp_fail("checkpoint: %s: group /model is missing", r->path);
    hid_t model = H5Gopen2(r->file, "/model", H5P_DEFAULT);
    if (model < 0)
        return ck_fail_h5(r->path, "cannot open group", "/model");
    const char *names[5] = {"vision_width", "vision_layers", "text_width", "text_layers", "adapter_bottleneck"};
    int *fields[5] = {&r->shape.vision_width, &r->shape.vision_layers, &r->shape.text_width, &r->shape.text_layers,
                      &r->shape.adapter_bottleneck};
    int status = 0;
    for (int i = 0; status == 0 && i < 5; i++) {
        long value = 0;
        status = ck_read_attr_long(r->path, model, "/model", names[i], &value);
        if (status == 0 && (value < 1 || value > 1 << 20))
            status = dmnsp_fail("checkpoint: %s: attribute '%s' of /model is %ld, expected a positive size", r->path,
                                names[i], value);
        *fields[i] = (int)value;
    }
    H5Gclose(model);
    return status;
}

/* Reads which tasks have a group (the /tasks attribute stored_tasks) and
 * checks that exactly those groups exist. Tasks are completed up to the
 * root attribute tasks_completed; a writer that appends only some tasks
 * leaves the others without a group. */
static int read_stored_tasks(checkpoint_reader *r, long tasks_completed)
{
    if (tasks_completed < 0 || tasks_completed > 100000)
        return dmnsp_fail("checkpoint: %s: root attribute tasks_completed is %ld, expected 0..100000", r->path,
                          tasks_completed);
    r->task_count = (int)tasks_completed;
    r->stored = dmnsp_calloc(tasks_completed > 0 ? (size_t)tasks_completed : 1, sizeof(int), "checkpoint tasks");
    if (r->stored == NULL)
        return -1;
    if (!ck_exists(r->file, "/tasks"))
        return dmnsp_fail("checkpoint: %s: group /tasks is missing", r->path);
    hid_t tasks = H5Gopen2(r->file, "/tasks", H5P_DEFAULT);
    if (tasks < 0)
        return ck_fail_h5(r->path, "cannot open group", "/tasks");

    long *list = NULL;
    int count = 0, status = 0;
    if (H5Aexists(tasks, "stored_tasks") > 0)
        status = ck_read_attr_longs(r->path, tasks, "/tasks", "stored_tasks", &list, &count);
    for (int i = 0; status == 0 && i < count; i++) {
        char name[32];
        ck_task_name(name, sizeof name, (int)list[i]);
        if (list[i] < 0 || list[i] >= tasks_completed || r->stored[list[i]])
            status = dmnsp_fail("checkpoint: %s: /tasks lists task %ld as stored, but %ld tasks are completed "
                                "(or the task is listed twice)",
                                r->path, list[i], tasks_completed);
        else if (H5Lexists(tasks, name, H5P_DEFAULT) <= 0)
            status = dmnsp_fail("checkpoint: %s: group /tasks/%s is missing (the file lists it as stored)", r->path,
                                name);
        else
            r->stored[list[i]] = 1;
    }
    H5G_info_t info;
    if (status == 0 && H5Gget_info(tasks, &info) < 0)
        status = ck_fail_h5(r->path, "cannot list group", "/tasks");
    if (status == 0 && info.nlinks != (hsize_t)count)
        status = dmnsp_fail("checkpoint: %s: /tasks has %llu members, but %d tasks are listed as stored", r->path,
                            (unsigned long long)info.nlinks, count);
    r->stored_count = count;
    free(list);
    H5Gclose(tasks);
    return status;
}

static int read_root(checkpoint_reader *r)
{
    hid_t root = H5Gopen2(r->file, "/", H5P_DEFAULT);
    if (root < 0)
        return ck_fail_h5(r->path, "cannot open group", "/");
    long version = 0, ranks = 0;
    int status = 0;
    if (H5Aexists(root, "format_version") <= 0)
        status = dmnsp_fail("checkpoint: %s: root attribute 'format_version' is missing (not a dmnsp checkpoint?)",
                            r->path);
    if (status == 0)
        status = ck_read_attr_long(r->path, root, "/", "format_version", &version);
    if (status == 0 && version != CHECKPOINT_FORMAT_VERSION)
        status = dmnsp_fail("checkpoint: %s: format_version %ld is not supported (this dmnsp reads version %d)",
                            r->path, version, CHECKPOINT_FORMAT_VERSION);
    if (status == 0)
        status = ck_read_attr_string(r->path, root, "/", "config", &r->config_text);
    if (status == 0)
        status = ck_read_attr_string(r->path, root, "/", "git_describe", &r->git_describe);
    if (status == 0)
        status = ck_read_attr_long(r->path, root, "/", "ranks", &ranks);
    r->ranks = (int)ranks;
    long tasks_completed = 0;
    if (status == 0)
        status = ck_read_attr_long(r->path, root, "/", "tasks_completed", &tasks_completed);
    H5Gclose(root);
    if (status == 0)
        status = read_stored_tasks(r, tasks_completed);
    return status;
}

int checkpoint_open(const char *path, checkpoint_reader **reader)
{
    *reader = NULL;
    ck_silence_hdf5();
    if (access(path, R_OK) != 0)
        return dmnsp_fail("checkpoint: %s: cannot read: %s", path, strerror(errno));
    struct stat info;
    if (stat(path, &info) == 0 && S_ISDIR(info.st_mode))
        return dmnsp_fail("checkpoint: %s is a folder; pass the checkpoint.h5 file inside it", path);
    htri_t is_hdf5 = H5Fis_hdf5(path);
    if (is_hdf5 == 0)
        return dmnsp_fail("checkpoint: %s: not an HDF5 file (no HDF5 signature found)", path);
    if (is_hdf5 < 0)
        return ck_fail_h5(path, "cannot inspect", "the file");

    checkpoint_reader *r = dmnsp_calloc(1, sizeof *r, "checkpoint reader");
    if (r == NULL)
        return -1;
    r->file = -1;
    r->path = strdup(path);
    if (r->path == NULL) {
        free(r);
        return dmnsp_fail("checkpoint: out of memory");
    }
    hid_t fapl = ck_file_access();
    r->file = fapl >= 0 ? H5Fopen(path, H5F_ACC_RDONLY, fapl) : -1;
    int status = 0;
    if (r->file < 0)
        status = ck_fail_h5(path, "cannot open", "as HDF5 (truncated or corrupt file?)");
    if (fapl >= 0)
        H5Pclose(fapl);

    if (status == 0)
        status = read_root(r);
    if (status == 0)
        status = read_shape(r);
    if (status == 0)
        r->has_optimizer = ck_exists(r->file, "/optimizer");
    if (status != 0) {
        checkpoint_close(r);
        return -1;
    }
    *reader = r;
    return 0;
}

void checkpoint_close(checkpoint_reader *r)
{
    if (r == NULL)
        return;
    if (r->file >= 0)
        H5Fclose(r->file);
    free(r->path);
    free(r->config_text);
    free(r->git_describe);
    free(r->stored);
    free(r);
}

const char *checkpoint_path(const checkpoint_reader *r) { return r->path; }
const char *checkpoint_config_text(const checkpoint_reader *r) { return r->config_text; }
const char *checkpoint_git_describe(const checkpoint_reader *r) { return r->git_describe; }
int checkpoint_ranks(const checkpoint_reader *r) { return r->ranks; }
int checkpoint_task_count(const checkpoint_reader *r) { return r->task_count; }
int checkpoint_task_stored(const checkpoint_reader *r, int task)
{
    return task >= 0 && task < r->task_count && r->stored[task];
}
const checkpoint_shape *checkpoint_get_shape(const checkpoint_reader *r) { return &r->shape; }
int checkpoint_has_optimizer(const checkpoint_reader *r) { return r->has_optimizer; }

int checkpoint_check_config(const checkpoint_reader *r, const clip_config *c)
{
    const struct {
        const char *name;
        int file;
        int config;
    } fields[5] = {{"vision_width", r->shape.vision_width, c->vision_width},
                   {"vision_layers", r->shape.vision_layers, c->vision_layers},
                   {"text_width", r->shape.text_width, c->text_width},
                   {"text_layers", r->shape.text_layers, c->text_layers},
                   {"adapter_bottleneck", r->shape.adapter_bottleneck, c->adapter_bottleneck}};
    for (int i = 0; i < 5; i++) {
        if (fields[i].file != fields[i].config)
            return dmnsp_fail("checkpoint: %s: %s is %d in the checkpoint but %d in the model config", r->path,
                              fields[i].name, fields[i].file, fields[i].config);
    }
    return 0;
}

static int check_task(const checkpoint_reader *r, int task)
{
    if (task < 0 || task >= r->task_count)
        return dmnsp_fail("checkpoint: %s: task %d requested, but the file contains tasks 0..%d", r->path, task,
                          r->task_count - 1);
    if (!r->stored[task])
        return dmnsp_fail("checkpoint: %s: task %d was completed but not stored (the writer appended only later "
                          "tasks)",
                          r->path, task);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Adapters and classes
 * ------------------------------------------------------------------------- */
int checkpoint_read_model(checkpoint_reader *r, const clip_config *config, float *adapters)
{
    DMNSP_TRY(checkpoint_check_config(r, config));
    return ck_read_adapters(r->path, r->file, "/model", config, adapters);
}

int checkpoint_read_task_adapters(checkpoint_reader *r, const clip_config *config, int task, float *adapters)
{
    DMNSP_TRY(check_task(r, task));
    DMNSP_TRY(checkpoint_check_config(r, config));
    char group[64];
    snprintf(group, sizeof group, "/tasks/task_%02d/adapters", task);
    return ck_read_adapters(r->path, r->file, group, config, adapters);
}

int checkpoint_read_classes(checkpoint_reader *r, int task, int **classes, int *count)
{
    DMNSP_TRY(check_task(r, task));
    char object[64];
    snprintf(object, sizeof object, "/tasks/task_%02d/classes", task);
    void *values = NULL;
    DMNSP_TRY(ck_read_vector(r->path, r->file, object, H5T_NATIVE_INT, sizeof(int), &values, count));
    *classes = values;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Null space and lambda
 * ------------------------------------------------------------------------- */
/* The group of MODALITY's null space under /tasks/task_TT. */
static const char *nullspace_group(clip_modality modality)
{
    return modality == CLIP_TEXT ? "nullspace_text" : "nullspace";
}

int checkpoint_read_nullspace_info(checkpoint_reader *r, int task, clip_modality modality,
                                   checkpoint_nullspace_info *info)
{
    memset(info, 0, sizeof *info);
    DMNSP_TRY(check_task(r, task));
    const char *group = nullspace_group(modality);
    int width = modality == CLIP_TEXT ? r->shape.text_width : r->shape.vision_width;
    int layers = modality == CLIP_TEXT ? r->shape.text_layers : r->shape.vision_layers;
    char object[96];
    snprintf(object, sizeof object, "/tasks/task_%02d/%s", task, group);
    if (!ck_exists(r->file, object))
        return 0;

    /* The shape comes from block 0's top [d, k]; every block is read with it. */
    snprintf(object, sizeof object, "/tasks/task_%02d/%s/block_00/top", task, group);
    hid_t dataset = ck_exists(r->file, object) ? H5Dopen2(r->file, object, H5P_DEFAULT) : -1;
    if (dataset < 0)
        return dmnsp_fail("checkpoint: %s: dataset %s is missing or unreadable", r->path, object);
    hid_t space = H5Dget_space(dataset);
    hsize_t dims[2] = {0, 0};
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (rank == 2)
        H5Sget_simple_extent_dims(space, dims, NULL);
    if (space >= 0)
        H5Sclose(space);
    H5Dclose(dataset);
    if (rank != 2 || dims[0] != (hsize_t)width || dims[1] < 1 || dims[1] > dims[0])
        return dmnsp_fail("checkpoint: %s: dataset %s should be [%d, k] with 1 <= k <= %d", r->path, object, width,
                          width);
    info->blocks = layers;
    info->d = (int)dims[0];
    info->k = (int)dims[1];
    snprintf(object, sizeof object, "/tasks/task_%02d/%s/block_00/eigvecs", task, group);
    info->has_eigvecs = ck_exists(r->file, object);
    return 0;
}

int checkpoint_read_nullspace(checkpoint_reader *r, int task, clip_modality modality, int block, double *eigvals,
                              float *eigvecs, float *top)
{
    checkpoint_nullspace_info info;
    DMNSP_TRY(checkpoint_read_nullspace_info(r, task, modality, &info));
    const char *group = nullspace_group(modality);
    if (info.blocks == 0)
        return dmnsp_fail("checkpoint: %s: task %d has no %s null space (group /tasks/task_%02d/%s is missing)",
                          r->path, task, modality_names[modality], task, group);
    if (block < 0 || block >= info.blocks)
        return dmnsp_fail("checkpoint: %s: %s null-space block %d requested, but there are %d blocks", r->path,
                          modality_names[modality], block, info.blocks);
    if (eigvecs != NULL && !info.has_eigvecs)
        return dmnsp_fail("checkpoint: %s: task %d keeps no full eigenvectors (only top)", r->path, task);

    char object[128];
    hsize_t d1[1] = {(hsize_t)info.d};
    hsize_t dd[2] = {(hsize_t)info.d, (hsize_t)info.d};
    hsize_t dk[2] = {(hsize_t)info.d, (hsize_t)info.k};
    if (eigvals != NULL) {
        snprintf(object, sizeof object, "/tasks/task_%02d/%s/block_%02d/eigvals", task, group, block);
        DMNSP_TRY(ck_read_dataset(r->path, r->file, object, H5T_NATIVE_DOUBLE, 1, d1, eigvals));
    }
    if (eigvecs != NULL) {
        snprintf(object, sizeof object, "/tasks/task_%02d/%s/block_%02d/eigvecs", task, group, block);
        DMNSP_TRY(ck_read_dataset(r->path, r->file, object, H5T_NATIVE_FLOAT, 2, dd, eigvecs));
    }
    if (top != NULL) {
        snprintf(object, sizeof object, "/tasks/task_%02d/%s/block_%02d/top", task, group, block);
        DMNSP_TRY(ck_read_dataset(r->path, r->file, object, H5T_NATIVE_FLOAT, 2, dk, top));
    }
    return 0;
}

int checkpoint_read_lambda(checkpoint_reader *r, int task, float *lambda, int *present)
{
    *present = 0;
    DMNSP_TRY(check_task(r, task));
    char object[64];
    snprintf(object, sizeof object, "/tasks/task_%02d/lambda", task);
    if (!ck_exists(r->file, object))
        return 0;
    hsize_t square[2] = {(hsize_t)r->shape.vision_layers, (hsize_t)r->shape.vision_layers};
    DMNSP_TRY(ck_read_dataset(r->path, r->file, object, H5T_NATIVE_FLOAT, 2, square, lambda));
    *present = 1;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Metrics and statistics
 * ------------------------------------------------------------------------- */
static int read_scalar(checkpoint_reader *r, const char *object, hid_t mem_type, void *out)
{
    return ck_read_dataset(r->path, r->file, object, mem_type, 0, NULL, out);
}

int checkpoint_read_metrics(checkpoint_reader *r, int task, checkpoint_task_metrics *m)
{
    memset(m, 0, sizeof *m);
    DMNSP_TRY(check_task(r, task));
    char object[96];
    long long nonfinite = 0;
    snprintf(object, sizeof object, "/tasks/task_%02d/metrics/accuracy", task);
    DMNSP_TRY(read_scalar(r, object, H5T_NATIVE_DOUBLE, &m->accuracy));
    snprintf(object, sizeof object, "/tasks/task_%02d/metrics/forward_accuracy", task);
    DMNSP_TRY(read_scalar(r, object, H5T_NATIVE_DOUBLE, &m->forward_accuracy));
    snprintf(object, sizeof object, "/tasks/task_%02d/metrics/nonfinite_count", task);
    DMNSP_TRY(read_scalar(r, object, H5T_NATIVE_LLONG, &nonfinite));
    m->nonfinite_count = (long)nonfinite;
    snprintf(object, sizeof object, "/tasks/task_%02d/metrics/accuracy_row", task);
    void *row = NULL;
    DMNSP_TRY(ck_read_vector(r->path, r->file, object, H5T_NATIVE_DOUBLE, sizeof(double), &row, &m->row_length));
    m->accuracy_row = row;
    return 0;
}

int checkpoint_read_stats(checkpoint_reader *r, int task, clip_modality modality, int block, const char *tensor,
                          param_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    DMNSP_TRY(check_task(r, task));
    int layers = modality == CLIP_VISUAL ? r->shape.vision_layers : r->shape.text_layers;
    if (block < 0 || block >= layers)
        return dmnsp_fail("checkpoint: %s: %s block %d requested, but there are %d blocks", r->path,
                          modality_names[modality], block, layers);
    if (strcmp(tensor, "down_w") != 0 && strcmp(tensor, "up_w") != 0)
        return dmnsp_fail("checkpoint: %s: statistics exist for down_w and up_w, not '%s'", r->path, tensor);

    char base[128], object[160];
    snprintf(base, sizeof base, "/tasks/task_%02d/stats/%s/block_%02d/%s", task, modality_names[modality], block,
             tensor);
    const struct {
        const char *name;
        double *out;
    } scalars[6] = {{"mean", &stats->mean}, {"std", &stats->std},   {"min", &stats->min},
                    {"max", &stats->max},   {"norm", &stats->norm}, {"delta_norm", &stats->delta_norm}};
    for (int i = 0; i < 6; i++) {
        snprintf(object, sizeof object, "%s/%s", base, scalars[i].name);
        DMNSP_TRY(read_scalar(r, object, H5T_NATIVE_DOUBLE, scalars[i].out));
    }

    long long nonfinite = 0, histogram[PARAM_STATS_BINS];
    hsize_t bins[1] = {PARAM_STATS_BINS}, edges[1] = {PARAM_STATS_BINS + 1};
    snprintf(object, sizeof object, "%s/nonfinite_count", base);
    DMNSP_TRY(read_scalar(r, object, H5T_NATIVE_LLONG, &nonfinite));
    snprintf(object, sizeof object, "%s/histogram", base);
    DMNSP_TRY(ck_read_dataset(r->path, r->file, object, H5T_NATIVE_LLONG, 1, bins, histogram));
    snprintf(object, sizeof object, "%s/edges", base);
    DMNSP_TRY(ck_read_dataset(r->path, r->file, object, H5T_NATIVE_DOUBLE, 1, edges, stats->edges));

    stats->nonfinite_count = (long)nonfinite;
    stats->finite_count = 0;
    for (int i = 0; i < PARAM_STATS_BINS; i++) {
        stats->histogram[i] = (long)histogram[i];
        stats->finite_count += (long)histogram[i];
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Optimizer
 * ------------------------------------------------------------------------- */
int checkpoint_read_optimizer(checkpoint_reader *r, const clip_config *config, checkpoint_optimizer_info *info,
                              float *m, float *v, double *lambda, double *text_lambda)
{
    memset(info, 0, sizeof *info);
    if (!r->has_optimizer)
        return dmnsp_fail("checkpoint: %s: no /optimizer group (no task was in progress when it was written)",
                          r->path);
    DMNSP_TRY(checkpoint_check_config(r, config));
    hid_t group = H5Gopen2(r->file, "/optimizer", H5P_DEFAULT);
    if (group < 0)
        return ck_fail_h5(r->path, "cannot open group", "/optimizer");
    long task = 0, step = 0, nonfinite = 0;
    int status = ck_read_attr_long(r->path, group, "/optimizer", "task", &task);
    status = status ? status : ck_read_attr_long(r->path, group, "/optimizer", "step", &step);
    status = status ? status : ck_read_attr_long(r->path, group, "/optimizer", "nonfinite_count", &nonfinite);
    H5Gclose(group);
    DMNSP_TRY(status);
    info->task = (int)task;
    info->step = step;
    info->nonfinite_count = nonfinite;
    info->has_lambda = ck_exists(r->file, "/optimizer/lambda");
    info->has_text_lambda = ck_exists(r->file, "/optimizer/lambda_text");

    hsize_t count[1] = {clip_adapter_count(config)};
    hsize_t square[2] = {(hsize_t)r->shape.vision_layers, (hsize_t)r->shape.vision_layers};
    hsize_t text_square[2] = {(hsize_t)r->shape.text_layers, (hsize_t)r->shape.text_layers};
    if (m != NULL)
        DMNSP_TRY(ck_read_dataset(r->path, r->file, "/optimizer/m", H5T_NATIVE_FLOAT, 1, count, m));
    if (v != NULL)
        DMNSP_TRY(ck_read_dataset(r->path, r->file, "/optimizer/v", H5T_NATIVE_FLOAT, 1, count, v));
    if (lambda != NULL && info->has_lambda)
        DMNSP_TRY(ck_read_dataset(r->path, r->file, "/optimizer/lambda", H5T_NATIVE_DOUBLE, 2, square, lambda));
    if (text_lambda != NULL && info->has_text_lambda)
        DMNSP_TRY(ck_read_dataset(r->path, r->file, "/optimizer/lambda_text", H5T_NATIVE_DOUBLE, 2, text_square,
                                  text_lambda));
    return 0;
}

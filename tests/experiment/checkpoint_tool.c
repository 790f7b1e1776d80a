/* Test helper for the resume tests: compares two checkpoints, reports the
 * task in progress, and damages /optimizer on purpose.
 *   checkpoint_tool compare A.h5 B.h5 TOLERANCE
 *       compares the current adapters and, for every task stored in both
 *       files, the adapter snapshot, lambda, null spaces of both encoders
 *       and accuracy row. Prints the largest absolute difference of each
 *       and exits 1 when one exceeds TOLERANCE or the files differ in
 *       layout.
 *   checkpoint_tool progress FILE.h5
 *       prints "tasks T in-progress TASK step S", or "tasks T" when the
 *       file has no /optimizer.
 *   checkpoint_tool shorten FILE.h5 DATASET
 *       replaces the 1-D float dataset DATASET with its first n-1 values. */
#include "dmnsp/checkpoint.h"
#include "dmnsp/error.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

/* Prints and checks the largest |A - B| over N values; NaN equals NaN. */
static void compare_values(const char *label, const double *a, const double *b, size_t n, double tolerance)
{
    double largest = 0;
    size_t where = 0;
    for (size_t i = 0; i < n; i++) {
        int both_nan = isnan(a[i]) && isnan(b[i]);
        double difference = both_nan ? 0 : fabs(a[i] - b[i]);
        if (isnan(difference))
            difference = INFINITY;
        if (difference > largest) {
            largest = difference;
            where = i;
        }
    }
    printf("%s: %zu values, largest difference %.3g", label, n, largest);
    if (largest > tolerance) {
        printf(" at index %zu (%.9g vs %.9g) > tolerance %.3g: FAIL\n", where, a[where], b[where], tolerance);
        failures++;
    } else {
        printf("\n");
    }
}

static void compare_floats(const char *label, const float *a, const float *b, size_t n, double tolerance)
{
    double *wide_a = malloc((n > 0 ? n : 1) * sizeof *wide_a);
    double *wide_b = malloc((n > 0 ? n : 1) * sizeof *wide_b);
    if (wide_a == NULL || wide_b == NULL) {
        printf("%s: out of memory\n", label);
        failures++;
    } else {
        for (size_t i = 0; i < n; i++) {
            wide_a[i] = a[i];
            wide_b[i] = b[i];
        }
        compare_values(label, wide_a, wide_b, n, tolerance);
    }
    free(wide_a);
    free(wide_b);
}

static void config_of(const checkpoint_reader *reader, clip_config *config)
{
    const checkpoint_shape *shape = checkpoint_get_shape(reader);
    memset(config, 0, sizeof *config);
    config->vision_width = shape->vision_width;
    config->vision_layers = shape->vision_layers;
    config->text_width = shape->text_width;
    config->text_layers = shape->text_layers;
    config->adapter_bottleneck = shape->adapter_bottleneck;
    config->vision_heads = 1;
    config->text_heads = 1;
}

static int compare_nullspaces(checkpoint_reader *a, checkpoint_reader *b, int task, clip_modality modality,
                              double tolerance)
{
    const char *name = modality == CLIP_TEXT ? "text" : "visual";
    checkpoint_nullspace_info info_a, info_b;
    DMNSP_TRY(checkpoint_read_nullspace_info(a, task, modality, &info_a));
    DMNSP_TRY(checkpoint_read_nullspace_info(b, task, modality, &info_b));
    if (memcmp(&info_a, &info_b, sizeof info_a) != 0) {
        printf("task %d %s null space: %d blocks x %d x %d vs %d x %d x %d: FAIL\n", task, name, info_a.blocks,
               info_a.d, info_a.k, info_b.blocks, info_b.d, info_b.k);
        failures++;
        return 0;
    }
    size_t d = (size_t)info_a.d, k = (size_t)info_a.k;
    double *eigvals[2] = {malloc(d * sizeof(double)), malloc(d * sizeof(double))};
    float *top[2] = {malloc(d * k * sizeof(float)), malloc(d * k * sizeof(float))};
    int status = eigvals[0] && eigvals[1] && top[0] && top[1] ? 0 : dmnsp_fail("out of memory");
    for (int block = 0; block < info_a.blocks && status == 0; block++) {
        status = checkpoint_read_nullspace(a, task, modality, block, eigvals[0], NULL, top[0]);
        if (status == 0)
            status = checkpoint_read_nullspace(b, task, modality, block, eigvals[1], NULL, top[1]);
        char label[96];
        snprintf(label, sizeof label, "task %d %s block %d eigvals", task, name, block);
        if (status == 0)
            compare_values(label, eigvals[0], eigvals[1], d, tolerance);
        snprintf(label, sizeof label, "task %d %s block %d top", task, name, block);
        if (status == 0)
            compare_floats(label, top[0], top[1], d * k, tolerance);
    }
    for (int i = 0; i < 2; i++) {
        free(eigvals[i]);
        free(top[i]);
    }
    return status;
}

static int compare_task(checkpoint_reader *a, checkpoint_reader *b, const clip_config *config, int task,
                        float *adapters_a, float *adapters_b, double tolerance)
{
    char label[96];
    DMNSP_TRY(checkpoint_read_task_adapters(a, config, task, adapters_a));
    DMNSP_TRY(checkpoint_read_task_adapters(b, config, task, adapters_b));
    snprintf(label, sizeof label, "task %d adapter snapshot", task);
    compare_floats(label, adapters_a, adapters_b, clip_adapter_count(config), tolerance);

    size_t square = (size_t)config->vision_layers * config->vision_layers;
    float *lambda_a = malloc(square * sizeof *lambda_a), *lambda_b = malloc(square * sizeof *lambda_b);
    int present_a = 0, present_b = 0;
    int status = lambda_a && lambda_b ? 0 : dmnsp_fail("out of memory");
    if (status == 0)
        status = checkpoint_read_lambda(a, task, lambda_a, &present_a);
    if (status == 0)
        status = checkpoint_read_lambda(b, task, lambda_b, &present_b);
    snprintf(label, sizeof label, "task %d lambda", task);
    if (status == 0 && present_a != present_b) {
        printf("%s: present in one file only: FAIL\n", label);
        failures++;
    } else if (status == 0 && present_a) {
        compare_floats(label, lambda_a, lambda_b, square, tolerance);
    }
    free(lambda_a);
    free(lambda_b);
    DMNSP_TRY(status);

    DMNSP_TRY(compare_nullspaces(a, b, task, CLIP_VISUAL, tolerance));
    DMNSP_TRY(compare_nullspaces(a, b, task, CLIP_TEXT, tolerance));

    checkpoint_task_metrics metrics_a, metrics_b;
    status = checkpoint_read_metrics(a, task, &metrics_a);
    if (status == 0)
        status = checkpoint_read_metrics(b, task, &metrics_b);
    if (status == 0 && metrics_a.row_length == metrics_b.row_length) {
        snprintf(label, sizeof label, "task %d accuracy row", task);
        compare_values(label, metrics_a.accuracy_row, metrics_b.accuracy_row, (size_t)metrics_a.row_length, 0.0);
    } else if (status == 0) {
        printf("task %d accuracy row: %d vs %d values: FAIL\n", task, metrics_a.row_length, metrics_b.row_length);
        failures++;
    }
    free(metrics_a.accuracy_row);
    if (status == 0)
        free(metrics_b.accuracy_row);
    return status;
}

static int compare_files(const char *path_a, const char *path_b, double tolerance)
{
    checkpoint_reader *a = NULL, *b = NULL;
    DMNSP_TRY(checkpoint_open(path_a, &a));
    if (checkpoint_open(path_b, &b) != 0) {
        checkpoint_close(a);
        return -1;
    }
    clip_config config;
    config_of(a, &config);
    size_t count = clip_adapter_count(&config);
    float *adapters_a = malloc(count * sizeof *adapters_a), *adapters_b = malloc(count * sizeof *adapters_b);
    int status = adapters_a && adapters_b ? 0 : dmnsp_fail("out of memory");
    if (status == 0 && checkpoint_task_count(a) != checkpoint_task_count(b)) {
        printf("finished tasks: %d vs %d: FAIL\n", checkpoint_task_count(a), checkpoint_task_count(b));
        failures++;
    }
    if (status == 0 && checkpoint_has_optimizer(a) != checkpoint_has_optimizer(b)) {
        printf("/optimizer: present in one file only: FAIL\n");
        failures++;
    }
    if (status == 0)
        status = checkpoint_read_model(a, &config, adapters_a);
    if (status == 0)
        status = checkpoint_read_model(b, &config, adapters_b);
    if (status == 0)
        compare_floats("current adapters", adapters_a, adapters_b, count, tolerance);

    int tasks = checkpoint_task_count(a) < checkpoint_task_count(b) ? checkpoint_task_count(a)
                                                                    : checkpoint_task_count(b);
    for (int task = 0; task < tasks && status == 0; task++) {
        if (checkpoint_task_stored(a, task) && checkpoint_task_stored(b, task))
            status = compare_task(a, b, &config, task, adapters_a, adapters_b, tolerance);
    }
    free(adapters_a);
    free(adapters_b);
    checkpoint_close(a);
    checkpoint_close(b);
    return status;
}

static int print_progress(const char *path)
{
    checkpoint_reader *reader = NULL;
    DMNSP_TRY(checkpoint_open(path, &reader));
    int status = 0;
    if (checkpoint_has_optimizer(reader)) {
        clip_config config;
        config_of(reader, &config);
        checkpoint_optimizer_info info;
        status = checkpoint_read_optimizer(reader, &config, &info, NULL, NULL, NULL, NULL);
        if (status == 0)
            printf("tasks %d in-progress %d step %ld\n", checkpoint_task_count(reader), info.task, info.step);
    } else {
        printf("tasks %d\n", checkpoint_task_count(reader));
    }
    checkpoint_close(reader);
    return status;
}

static int shorten_dataset(const char *path, const char *object)
{
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0)
        return dmnsp_fail("%s: cannot open for writing", path);
    hid_t dataset = H5Dopen2(file, object, H5P_DEFAULT);
    hid_t space = dataset >= 0 ? H5Dget_space(dataset) : -1;
    hsize_t dims[1] = {0};
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (rank == 1)
        H5Sget_simple_extent_dims(space, dims, NULL);
    float *values = rank == 1 && dims[0] > 1 ? malloc(dims[0] * sizeof *values) : NULL;
    int status = values != NULL && H5Dread(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0
                     ? 0
                     : dmnsp_fail("%s: %s is not a readable 1-D dataset of at least 2 values", path, object);
    if (space >= 0)
        H5Sclose(space);
    if (dataset >= 0)
        H5Dclose(dataset);

    if (status == 0 && H5Ldelete(file, object, H5P_DEFAULT) < 0)
        status = dmnsp_fail("%s: cannot delete %s", path, object);
    hsize_t shorter[1] = {dims[0] - 1};
    space = status == 0 ? H5Screate_simple(1, shorter, NULL) : -1;
    dataset = space >= 0 ? H5Dcreate2(file, object, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    if (status == 0 && (dataset < 0 || H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0))
        status = dmnsp_fail("%s: cannot write the shortened %s", path, object);
    if (dataset >= 0)
        H5Dclose(dataset);
    if (space >= 0)
        H5Sclose(space);
    free(values);
    if (H5Fclose(file) < 0 && status == 0)
        status = dmnsp_fail("%s: cannot close", path);
    return status;
}

int main(int argc, char **argv)
{
    int status = -1;
    if (argc == 5 && strcmp(argv[1], "compare") == 0)
        status = compare_files(argv[2], argv[3], strtod(argv[4], NULL));
    else if (argc == 3 && strcmp(argv[1], "progress") == 0)
        status = print_progress(argv[2]);
    else if (argc == 4 && strcmp(argv[1], "shorten") == 0)
        status = shorten_dataset(argv[2], argv[3]);
    else {
        fprintf(stderr, "usage: checkpoint_tool compare A.h5 B.h5 TOLERANCE | progress FILE.h5 | shorten FILE.h5 "
                        "DATASET\n");
        return 2;
    }
    if (status != 0) {
        fprintf(stderr, "checkpoint_tool: %s\n", dmnsp_last_error());
        return 1;
    }
    if (failures > 0) {
        printf("%d comparison(s) failed\n", failures);
        return 1;
    }
    return 0;
}

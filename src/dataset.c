/* dataset: handle, accessors, sample loading and the shared file helpers
 * (see include/dmnsp/dataset.h). The readers live in src/dataset_*.c. */
#define _GNU_SOURCE
#include "dataset_internal.h"

#include "dmnsp/error.h"
#include "dmnsp/image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * File helpers
 * ------------------------------------------------------------------------ */

char *dataset_format(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *text = NULL;
    int length = vasprintf(&text, fmt, args);
    va_end(args);
    if (length < 0) {
        dmnsp_fail("out of memory formatting a path");
        return NULL;
    }
    return text;
}

int dataset_is_directory(const char *path)
{
    struct stat info;
    return stat(path, &info) == 0 && S_ISDIR(info.st_mode);
}

int dataset_is_file(const char *path)
{
    struct stat info;
    return stat(path, &info) == 0 && S_ISREG(info.st_mode);
}

void dataset_free_strings(char **strings, long count)
{
    if (strings == NULL)
        return;
    for (long i = 0; i < count; i++)
        free(strings[i]);
    free(strings);
}

int dataset_read_lines(const char *path, char ***lines, int *count)
{
    *lines = NULL;
    *count = 0;
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return dmnsp_fail("%s: cannot open: %s", path, strerror(errno));

    char **list = NULL;
    int used = 0, capacity = 0;
    char *line = NULL;
    size_t line_capacity = 0;
    ssize_t length;
    while ((length = getline(&line, &line_capacity, file)) >= 0) {
        while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r'))
            line[--length] = '\0';
        if (used == capacity) {
            capacity = capacity ? capacity * 2 : 64;
            char **bigger = realloc(list, sizeof(char *) * (size_t)capacity);
            if (bigger == NULL) {
                free(line);
                fclose(file);
                dataset_free_strings(list, used);
                return dmnsp_fail("%s: out of memory reading lines", path);
            }
            list = bigger;
        }
        list[used] = strdup(line);
        if (list[used] == NULL) {
            free(line);
            fclose(file);
            dataset_free_strings(list, used);
            return dmnsp_fail("%s: out of memory reading lines", path);
        }
        used++;
    }
    int failed = ferror(file);
    free(line);
    fclose(file);
    if (failed) {
        dataset_free_strings(list, used);
        return dmnsp_fail("%s: read error", path);
    }

    /* Blank lines at the end (a trailing newline, an editor's extra line)
     * are not entries. */
    while (used > 0 && list[used - 1][0] == '\0')
        free(list[--used]);
    *lines = list;
    *count = used;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int dataset_list_folder(const char *path, int directories, char ***names, int *count)
{
    *names = NULL;
    *count = 0;
    DIR *folder = opendir(path);
    if (folder == NULL)
        return dmnsp_fail("%s: cannot open folder: %s", path, strerror(errno));

    char **list = NULL;
    int used = 0, capacity = 0;
    struct dirent *entry;
    while ((entry = readdir(folder)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char *full = dataset_format("%s/%s", path, entry->d_name);
        if (full == NULL)
            break;
        int keep = directories ? dataset_is_directory(full) : dataset_is_file(full);
        free(full);
        if (!keep)
            continue;
        if (used == capacity) {
            capacity = capacity ? capacity * 2 : 64;
            char **bigger = realloc(list, sizeof(char *) * (size_t)capacity);
            if (bigger == NULL) {
                closedir(folder);
                dataset_free_strings(list, used);
                return dmnsp_fail("%s: out of memory listing the folder", path);
            }
            list = bigger;
        }
        list[used] = strdup(entry->d_name);
        if (list[used] == NULL) {
            closedir(folder);
            dataset_free_strings(list, used);
            return dmnsp_fail("%s: out of memory listing the folder", path);
        }
        used++;
    }
    closedir(folder);
    if (used > 1)
        qsort(list, (size_t)used, sizeof(char *), compare_names);
    *names = list;
    *count = used;
    return 0;
}

/* ------------------------------------------------------------------------
 * Handle
 * ------------------------------------------------------------------------ */

static int apply_class_names_file(dataset *ds, const char *path)
{
    char **names = NULL;
    int count = 0;
    if (dataset_read_lines(path, &names, &count) != 0)
        return dmnsp_fail_prefix("%s: class names", ds->kind);
    if (count != ds->class_count) {
        dataset_free_strings(names, count);
        return dmnsp_fail("%s: class names: %s has %d lines (expected one name for each of the %d classes)", ds->kind,
                          path, count, ds->class_count);
    }
    for (int i = 0; i < count; i++) {
        if (names[i][0] == '\0') {
            dataset_free_strings(names, count);
            return dmnsp_fail("%s: class names: %s: line %d is empty (expected the name of class %d)", ds->kind, path,
                              i + 1, i);
        }
    }
    dataset_free_strings(ds->class_names, ds->class_count);
    ds->class_names = names;
    return 0;
}

int dataset_open(const char *kind, const char *root, int train, const char *class_names_path, dataset **out)
{
    *out = NULL;
    if (kind == NULL)
        return dmnsp_fail("dataset: no kind given (expected cifar100, tinyimagenet, imagefolder, fashionmnist or mnist)");
    if (root == NULL || root[0] == '\0') {
        if (strcmp(kind, "fashionmnist") != 0)
            return dmnsp_fail("%s: no dataset root folder given (set dataset_root)", kind);
        root = DATASET_FASHION_MNIST_DEFAULT_ROOT;
    }

    dataset *ds = dmnsp_calloc(1, sizeof *ds, "dataset handle");
    if (ds == NULL)
        return -1;
    snprintf(ds->kind, sizeof ds->kind, "%s", kind);
    ds->train = train ? 1 : 0;
    ds->record_fd = -1;

    int status;
    if (strcmp(kind, "cifar100") == 0)
        status = dataset_open_cifar100(ds, root);
    else if (strcmp(kind, "fashionmnist") == 0 || strcmp(kind, "mnist") == 0)
        status = dataset_open_idx(ds, root);
    else if (strcmp(kind, "tinyimagenet") == 0)
        status = dataset_open_tinyimagenet(ds, root);
    else if (strcmp(kind, "imagefolder") == 0)
        status = dataset_open_imagefolder(ds, root);
    else
        status = dmnsp_fail("dataset: unknown kind '%s' (expected cifar100, tinyimagenet, imagefolder, fashionmnist "
                            "or mnist)",
                            kind);

    if (status == 0 && class_names_path != NULL && class_names_path[0] != '\0')
        status = apply_class_names_file(ds, class_names_path);
    if (status != 0) {
        dataset_close(ds);
        return -1;
    }
    *out = ds;
    return 0;
}

void dataset_close(dataset *ds)
{
    if (ds == NULL)
        return;
    free(ds->root);
    free(ds->labels);
    dataset_free_strings(ds->class_names, ds->class_count);
    free(ds->memory);
    free(ds->record_path);
    if (ds->record_fd >= 0)
        close(ds->record_fd);
    dataset_free_strings(ds->paths, ds->paths ? ds->count : 0);
    free(ds);
}

const char *dataset_kind(const dataset *ds) { return ds->kind; }
const char *dataset_root(const dataset *ds) { return ds->root; }
long dataset_size(const dataset *ds) { return ds->count; }
int dataset_class_count(const dataset *ds) { return ds->class_count; }
const int *dataset_labels(const dataset *ds) { return ds->labels; }
const char *const *dataset_class_names(const dataset *ds) { return (const char *const *)ds->class_names; }

const char *dataset_class_name(const dataset *ds, int class_id)
{
    if (class_id < 0 || class_id >= ds->class_count)
        return NULL;
    return ds->class_names[class_id];
}

int dataset_label(const dataset *ds, long index)
{
    if (index < 0 || index >= ds->count)
        return -1;
    return ds->labels[index];
}

/* ------------------------------------------------------------------------
 * Samples
 * ------------------------------------------------------------------------ */

/* Reads sample INDEX as 8-bit HWC pixels with CHANNELS 1 or 3. For MEMORY
 * storage *PIXELS points into the handle and *OWNED is 0; otherwise the
 * caller frees *PIXELS. */
static int read_sample(const dataset *ds, long index, const unsigned char **pixels, int *width, int *height,
                       int *channels, int *owned)
{
    if (index < 0 || index >= ds->count)
        return dmnsp_fail("%s: sample index %ld is out of range (the %s split has %ld samples)", ds->kind, index,
                          ds->train ? "train" : "test", ds->count);

    if (ds->storage == DATASET_STORAGE_MEMORY) {
        *pixels = ds->memory + (size_t)index * (size_t)ds->width * (size_t)ds->height;
        *width = ds->width;
        *height = ds->height;
        *channels = 1;
        *owned = 0;
        return 0;
    }

    if (ds->storage == DATASET_STORAGE_RECORDS) {
        size_t plane = (size_t)ds->width * (size_t)ds->height;
        unsigned char *record = dmnsp_malloc((size_t)ds->record_bytes + plane * 3, "dataset record");
        if (record == NULL)
            return -1;
        off_t offset = (off_t)index * ds->record_bytes;
        ssize_t got = pread(ds->record_fd, record, (size_t)ds->record_bytes, offset);
        if (got != (ssize_t)ds->record_bytes) {
            free(record);
            return dmnsp_fail("%s: %s: reading record %ld failed (%s)", ds->kind, ds->record_path, index,
                              got < 0 ? strerror(errno) : "file shorter than when it was opened");
        }
        /* Planar R, G, B to interleaved RGB, after the record's bytes. */
        const unsigned char *planes = record + ds->record_pixel_offset;
        unsigned char *rgb = record + ds->record_bytes;
        for (size_t i = 0; i < plane; i++)
            for (int c = 0; c < 3; c++)
                rgb[3 * i + (size_t)c] = planes[(size_t)c * plane + i];
        memmove(record, rgb, plane * 3);
        *pixels = record;
        *width = ds->width;
        *height = ds->height;
        *channels = 3;
        *owned = 1;
        return 0;
    }

    image_rgb image;
    if (image_decode_file(ds->paths[index], &image) != 0)
        return dmnsp_fail_prefix("%s: sample %ld", ds->kind, index);
    *pixels = image.pixels;
    *width = image.width;
    *height = image.height;
    *channels = 3;
    *owned = 1;
    return 0;
}

int dataset_load(const dataset *ds, long index, image_rgb *out)
{
    memset(out, 0, sizeof *out);
    const unsigned char *pixels = NULL;
    int width = 0, height = 0, channels = 0, owned = 0;
    DMNSP_TRY(read_sample(ds, index, &pixels, &width, &height, &channels, &owned));

    if (channels == 3 && owned) {
        out->pixels = (unsigned char *)pixels;
    } else {
        size_t count = (size_t)width * (size_t)height;
        out->pixels = dmnsp_malloc(count * 3, "dataset sample");
        if (out->pixels == NULL) {
            if (owned)
                free((void *)pixels);
            return -1;
        }
        for (size_t i = 0; i < count; i++)
            for (int c = 0; c < 3; c++)
                out->pixels[3 * i + (size_t)c] = pixels[channels == 1 ? i : 3 * i + (size_t)c];
        if (owned)
            free((void *)pixels);
    }
    out->width = width;
    out->height = height;
    return 0;
}

int dataset_load_batch(const dataset *ds, const long *indices, int n, int size, float *out)
{
    if (n < 0 || size <= 0)
        return dmnsp_fail("%s: invalid batch of %d images at size %d", ds->kind, n, size);

    /* Error messages are per thread, so the first failure's message is
     * copied out of the worker that hit it. */
    char first_error[1024] = "";
    long first_failed = -1;
    size_t image_floats = (size_t)3 * (size_t)size * (size_t)size;

#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < n; i++) {
        const unsigned char *pixels = NULL;
        int width = 0, height = 0, channels = 0, owned = 0;
        int status = read_sample(ds, indices[i], &pixels, &width, &height, &channels, &owned);
        if (status == 0) {
            status = image_preprocess(pixels, width, height, channels, size, out + (size_t)i * image_floats);
            if (status != 0)
                dmnsp_fail_prefix("%s: sample %ld", ds->kind, indices[i]);
            if (owned)
                free((void *)pixels);
        }
        if (status != 0) {
#pragma omp critical(dataset_batch_error)
            {
                if (first_failed < 0 || i < first_failed) {
                    first_failed = i;
                    snprintf(first_error, sizeof first_error, "%s", dmnsp_last_error());
                }
            }
        }
    }

    if (first_failed >= 0)
        return dmnsp_fail("%s", first_error);
    return 0;
}

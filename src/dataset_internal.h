/* dataset internals shared by the readers in src/dataset_*.c. */
#ifndef DMNSP_DATASET_INTERNAL_H
#define DMNSP_DATASET_INTERNAL_H

#include "dmnsp/dataset.h"
#include "dmnsp/error.h"

#include <stddef.h>

/* Where a sample's pixels come from. */
typedef enum {
    DATASET_STORAGE_MEMORY,  /* grayscale pixels in memory (IDX) */
    DATASET_STORAGE_RECORDS, /* fixed-size planar RGB records in one file (CIFAR) */
    DATASET_STORAGE_FILES,   /* one JPEG or PNG file per sample */
} dataset_storage;

struct dataset {
    char kind[32];
    char *root;
    int train;
    long count;
    int *labels;
    int class_count;
    char **class_names;

    dataset_storage storage;
    int width;  /* sample size for MEMORY and RECORDS storage */
    int height;

    unsigned char *memory; /* MEMORY: count × height × width bytes */

    char *record_path; /* RECORDS: file, descriptor, record layout */
    int record_fd;
    long record_bytes;
    long record_pixel_offset;

    char **paths; /* FILES: count paths */
};

int dataset_open_cifar100(dataset *ds, const char *root);
int dataset_open_idx(dataset *ds, const char *root);
int dataset_open_tinyimagenet(dataset *ds, const char *root);
int dataset_open_imagefolder(dataset *ds, const char *root);

/* malloc'd copy of the printf-formatted string, or NULL with a message. */
char *dataset_format(const char *fmt, ...) DMNSP_PRINTF(1, 2);
/* 1 when PATH is a directory, 0 otherwise. */
int dataset_is_directory(const char *path);
/* 1 when PATH is a regular file, 0 otherwise. */
int dataset_is_file(const char *path);

/* Reads the lines of the text file PATH, without line ends, trailing
 * carriage returns or trailing blank lines. *LINES is malloc'd (free with
 * dataset_free_strings). */
int dataset_read_lines(const char *path, char ***lines, int *count);
void dataset_free_strings(char **strings, long count);

/* Sorted (strcmp order) names in folder PATH, skipping names that start
 * with '.'. DIRECTORIES: 1 only folders, 0 only regular files. */
int dataset_list_folder(const char *path, int directories, char ***names, int *count);

#endif

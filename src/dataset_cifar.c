/* dataset: the CIFAR-100 binary reader. Each record is a coarse label byte,
 * a fine label byte and 3072 pixel bytes (R, G and B planes of 32 × 32). */
#define _GNU_SOURCE
#include "dataset_internal.h"

#include "dmnsp/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CIFAR_SIDE 32
#define CIFAR_RECORD_BYTES (2 + 3 * CIFAR_SIDE * CIFAR_SIDE)
#define CIFAR_CLASSES 100

/* The folder with train.bin: ROOT/cifar-100-binary or ROOT itself. */
static char *find_cifar_folder(const char *root)
{
    char *nested = dataset_format("%s/cifar-100-binary", root);
    if (nested != NULL && dataset_is_directory(nested))
        return nested;
    free(nested);
    char *probe = dataset_format("%s/train.bin", root);
    int direct = probe != NULL && dataset_is_file(probe);
    free(probe);
    if (direct)
        return strdup(root);
    dmnsp_fail("cifar100: %s: neither %s/cifar-100-binary/ nor %s/train.bin exists (expected the CIFAR-100 binary "
               "version, cifar-100-binary.tar.gz, unpacked there)",
               root, root, root);
    return NULL;
}

int dataset_open_cifar100(dataset *ds, const char *root)
{
    ds->root = find_cifar_folder(root);
    if (ds->root == NULL)
        return -1;

    /* Class names, one per line. */
    char *names_path = dataset_format("%s/fine_label_names.txt", ds->root);
    if (names_path == NULL)
        return -1;
    int name_count = 0;
    if (dataset_read_lines(names_path, &ds->class_names, &name_count) != 0) {
        free(names_path);
        return dmnsp_fail_prefix("cifar100");
    }
    ds->class_count = name_count;
    if (name_count != CIFAR_CLASSES) {
        dmnsp_fail("cifar100: %s: %d class names (expected %d)", names_path, name_count, CIFAR_CLASSES);
        free(names_path);
        return -1;
    }
    free(names_path);
    for (int i = 0; i < name_count; i++)
        for (char *p = ds->class_names[i]; *p; p++)
            if (*p == '_')
                *p = ' ';

    /* The file size fixes the record count. Every fine label is checked now,
     * so a bad file fails at open and not in the middle of training. */
    ds->record_path = dataset_format("%s/%s", ds->root, ds->train ? "train.bin" : "test.bin");
    if (ds->record_path == NULL)
        return -1;
    ds->record_fd = open(ds->record_path, O_RDONLY | O_CLOEXEC);
    if (ds->record_fd < 0)
        return dmnsp_fail("cifar100: %s: cannot open: %s", ds->record_path, strerror(errno));
    struct stat info;
    if (fstat(ds->record_fd, &info) != 0)
        return dmnsp_fail("cifar100: %s: cannot read its size: %s", ds->record_path, strerror(errno));
    long bytes = (long)info.st_size;
    if (bytes == 0 || bytes % CIFAR_RECORD_BYTES != 0)
        return dmnsp_fail("cifar100: %s: size %ld is not a positive multiple of %d-byte records (file truncated or not "
                          "CIFAR-100 binary)",
                          ds->record_path, bytes, CIFAR_RECORD_BYTES);
    ds->count = bytes / CIFAR_RECORD_BYTES;
    ds->record_bytes = CIFAR_RECORD_BYTES;
    ds->record_pixel_offset = 2;
    ds->width = CIFAR_SIDE;
    ds->height = CIFAR_SIDE;
    ds->storage = DATASET_STORAGE_RECORDS;

    ds->labels = dmnsp_malloc(sizeof(int) * (size_t)ds->count, "cifar100 labels");
    if (ds->labels == NULL)
        return -1;
    enum { RECORDS_PER_READ = 1024 };
    unsigned char *chunk = dmnsp_malloc((size_t)RECORDS_PER_READ * CIFAR_RECORD_BYTES, "cifar100 label scan");
    if (chunk == NULL)
        return -1;
    for (long first = 0; first < ds->count; first += RECORDS_PER_READ) {
        long records = ds->count - first < RECORDS_PER_READ ? ds->count - first : RECORDS_PER_READ;
        size_t want = (size_t)records * CIFAR_RECORD_BYTES;
        ssize_t got = pread(ds->record_fd, chunk, want, (off_t)first * CIFAR_RECORD_BYTES);
        if (got != (ssize_t)want) {
            free(chunk);
            return dmnsp_fail("cifar100: %s: reading records %ld.. failed: %s", ds->record_path, first,
                              got < 0 ? strerror(errno) : "short read");
        }
        for (long r = 0; r < records; r++) {
            int fine = chunk[(size_t)r * CIFAR_RECORD_BYTES + 1];
            if (fine >= CIFAR_CLASSES) {
                free(chunk);
                return dmnsp_fail("cifar100: %s: record %ld has fine label %d (expected 0..%d)", ds->record_path,
                                  first + r, fine, CIFAR_CLASSES - 1);
            }
            ds->labels[first + r] = fine;
        }
    }
    free(chunk);
    return 0;
}

/* dataset: the IDX reader for MNIST and Fashion-MNIST. Files are read
 * through zlib, which also reads uncompressed files unchanged, and kept in
 * memory as raw uint8 pixels. */
#include "dataset_internal.h"

#include "dmnsp/error.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
#define IDX_CLASSES 10

static const char *fashion_mnist_names[IDX_CLASSES] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                       "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
static const char *mnist_names[IDX_CLASSES] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

/* ROOT/NAME.gz when it exists, else ROOT/NAME; NULL with a message when
 * neither does. */
static char *find_idx_file(const dataset *ds, const char *root, const char *name)
{
    char *path = dataset_format("%s/%s.gz", root, name);
    if (path != NULL && dataset_is_file(path))
        return path;
    free(path);
    path = dataset_format("%s/%s", root, name);
    if (path != NULL && dataset_is_file(path))
        return path;
    free(path);
    if (strcmp(ds->kind, "fashionmnist") == 0)
        dmnsp_fail("fashionmnist: %s: missing %s.gz (or %s): install the Debian package dataset-fashion-mnist "
                   "(files in %s) or set dataset_root to a folder with the IDX files",
                   root, name, name, DATASET_FASHION_MNIST_DEFAULT_ROOT);
    else
        dmnsp_fail("%s: %s: missing %s.gz (or %s): expected the IDX files of the dataset in this folder", ds->kind,
                   root, name, name);
    return NULL;
}

static uint32_t read_big_endian(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Reads an IDX file: checks MAGIC and the dimension count it implies,
 * returns the dimensions and the payload (malloc'd) after the header. */
static int read_idx(const char *kind, const char *path, uint32_t magic, uint32_t dims[3], unsigned char **payload,
                    size_t *payload_bytes)
{
    *payload = NULL;
    gzFile file = gzopen(path, "rb");
    if (file == NULL)
        return dmnsp_fail("%s: %s: cannot open: %s", kind, path, strerror(errno));
    gzbuffer(file, 1 << 20);

    int dim_count = (int)(magic & 0xff);
    unsigned char header[16];
    int header_bytes = 4 + 4 * dim_count;
    int got = gzread(file, header, (unsigned)header_bytes);
    if (got != header_bytes) {
        gzclose(file);
        return dmnsp_fail("%s: %s: truncated IDX header (%d of %d bytes)", kind, path, got < 0 ? 0 : got,
                          header_bytes);
    }
    uint32_t found = read_big_endian(header);
    if (found != magic) {
        gzclose(file);
        return dmnsp_fail("%s: %s: wrong IDX magic number 0x%08x (expected 0x%08x, %s)", kind, path, found, magic,
                          magic == IDX_IMAGES_MAGIC ? "unsigned byte images of 3 dimensions"
                                                    : "unsigned byte labels of 1 dimension");
    }
    size_t expected = 1;
    for (int d = 0; d < dim_count; d++) {
        dims[d] = read_big_endian(header + 4 + 4 * d);
        if (dims[d] == 0 || dims[d] > (1u << 24)) {
            gzclose(file);
            return dmnsp_fail("%s: %s: invalid IDX dimension %d of size %u", kind, path, d, dims[d]);
        }
        expected *= dims[d];
    }

    unsigned char *data = dmnsp_malloc(expected + 1, "IDX payload");
    if (data == NULL) {
        gzclose(file);
        return dmnsp_fail_prefix("%s: %s", kind, path);
    }
    size_t total = 0;
    while (total < expected + 1) {
        size_t want = expected + 1 - total;
        unsigned chunk = want > (1u << 30) ? (1u << 30) : (unsigned)want;
        int n = gzread(file, data + total, chunk);
        if (n < 0) {
            int code;
            const char *message = gzerror(file, &code);
            dmnsp_fail("%s: %s: decompression failed: %s", kind, path, message);
            free(data);
            gzclose(file);
            return -1;
        }
        if (n == 0)
            break;
        total += (size_t)n;
    }
    gzclose(file);
    if (total != expected) {
        free(data);
        if (total < expected)
            return dmnsp_fail("%s: %s: truncated: %zu data bytes after the header (expected %zu from its dimensions)",
                              kind, path, total, expected);
        return dmnsp_fail("%s: %s: more data than its header's dimensions give (expected %zu bytes)", kind, path,
                          expected);
    }
    *payload = data;
    *payload_bytes = expected;
    return 0;
}

int dataset_open_idx(dataset *ds, const char *root)
{
    if (!dataset_is_directory(root)) {
        if (strcmp(ds->kind, "fashionmnist") == 0)
            return dmnsp_fail("fashionmnist: %s: folder not found: install the Debian package dataset-fashion-mnist "
                              "(files in %s) or set dataset_root to a folder with the IDX files",
                              root, DATASET_FASHION_MNIST_DEFAULT_ROOT);
        return dmnsp_fail("%s: %s: folder not found (expected the IDX files train-images-idx3-ubyte.gz ... there)",
                          ds->kind, root);
    }
    ds->root = strdup(root);
    if (ds->root == NULL)
        return dmnsp_fail("out of memory");

    const char *prefix = ds->train ? "train" : "t10k";
    char images_name[64], labels_name[64];
    snprintf(images_name, sizeof images_name, "%s-images-idx3-ubyte", prefix);
    snprintf(labels_name, sizeof labels_name, "%s-labels-idx1-ubyte", prefix);
    char *images_path = find_idx_file(ds, root, images_name);
    char *labels_path = images_path ? find_idx_file(ds, root, labels_name) : NULL;
    if (images_path == NULL || labels_path == NULL) {
        free(images_path);
        return -1;
    }

    uint32_t image_dims[3] = {0, 0, 0}, label_dims[3] = {0, 0, 0};
    unsigned char *labels = NULL;
    size_t image_bytes = 0, label_bytes = 0;
    int status = read_idx(ds->kind, images_path, IDX_IMAGES_MAGIC, image_dims, &ds->memory, &image_bytes);
    if (status == 0)
        status = read_idx(ds->kind, labels_path, IDX_LABELS_MAGIC, label_dims, &labels, &label_bytes);
    if (status == 0 && label_dims[0] != image_dims[0])
        status = dmnsp_fail("%s: %s has %u labels but %s has %u images (expected equal counts)", ds->kind,
                            labels_path, label_dims[0], images_path, image_dims[0]);
    if (status != 0) {
        free(images_path);
        free(labels_path);
        free(labels);
        return -1;
    }

    ds->count = (long)image_dims[0];
    ds->height = (int)image_dims[1];
    ds->width = (int)image_dims[2];
    ds->storage = DATASET_STORAGE_MEMORY;
    ds->labels = dmnsp_malloc(sizeof(int) * (size_t)ds->count, "IDX labels");
    if (ds->labels == NULL)
        status = -1;
    for (long i = 0; status == 0 && i < ds->count; i++) {
        if (labels[i] >= IDX_CLASSES)
            status = dmnsp_fail("%s: %s: label %ld is %d (expected 0..%d)", ds->kind, labels_path, i, labels[i],
                                IDX_CLASSES - 1);
        else
            ds->labels[i] = labels[i];
    }
    free(labels);
    free(images_path);
    free(labels_path);
    if (status != 0)
        return -1;

    const char **names = strcmp(ds->kind, "mnist") == 0 ? mnist_names : fashion_mnist_names;
    ds->class_names = dmnsp_calloc(IDX_CLASSES, sizeof(char *), "class names");
    if (ds->class_names == NULL)
        return -1;
    ds->class_count = IDX_CLASSES;
    for (int i = 0; i < IDX_CLASSES; i++) {
        ds->class_names[i] = strdup(names[i]);
        if (ds->class_names[i] == NULL)
            return dmnsp_fail("out of memory copying class names");
    }
    return 0;
}

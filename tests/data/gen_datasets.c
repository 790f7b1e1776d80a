/* dmnsp_gen_datasets: writes small synthetic datasets in every on-disk
 * format dmnsp reads, for tests and demos. Every class has its own colour
 * and stripe pattern plus seeded noise, so a model can learn the classes.
 * Run with --help for the command line. */
#include "dmnsp/error.h"
#include "dmnsp/image.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static const char *usage_text =
    "usage: dmnsp_gen_datasets OUTPUT_DIR [options]\n"
    "\n"
    "Writes small synthetic datasets into OUTPUT_DIR (created when missing):\n"
    "  cifar-100-binary/   train.bin, test.bin, fine_label_names.txt (all 100 classes)\n"
    "  tiny-imagenet-200/  wnids.txt, words.txt, train/<wnid>/images/*.JPEG,\n"
    "                      val/images/*.JPEG, val/val_annotations.txt\n"
    "  imagefolder/        train/<class>/*.png, test/<class>/*.png, class_names.txt\n"
    "  mnist/              IDX files, gzip-compressed (10 classes, 28 x 28 gray)\n"
    "  fashion-mnist/      IDX files, uncompressed (10 classes, 28 x 28 gray)\n"
    "Open them with dataset kinds cifar100, tinyimagenet, imagefolder, mnist and\n"
    "fashionmnist, with OUTPUT_DIR (or OUTPUT_DIR/imagefolder, OUTPUT_DIR/mnist,\n"
    "OUTPUT_DIR/fashion-mnist) as the dataset root.\n"
    "\n"
    "options:\n"
    "  --classes N           classes of the TinyImageNet and ImageFolder trees (default 4)\n"
    "  --train-per-class N   training images per class in every format (default 5)\n"
    "  --test-per-class N    test images per class in every format (default 2)\n"
    "  --size PX             side of the TinyImageNet and ImageFolder images (default 32;\n"
    "                        ImageFolder images are PX + 8 wide, to exercise the crop)\n"
    "  --seed S              seed of the noise (default 1)\n"
    "  --only LIST           comma-separated subset of cifar100,tinyimagenet,imagefolder,\n"
    "                        mnist,fashionmnist (default: all)\n"
    "  -h, --help            print this help\n";

typedef struct {
    int classes;
    int train_per_class;
    int test_per_class;
    int size;
    uint64_t seed;
    const char *only;
} generator_options;

/* splitmix64: a small seeded generator for the noise. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Fills a height × width × channels image of class CLASS_ID: a class colour
 * on stripes whose period and direction depend on the class, plus noise. */
static void draw_class_image(unsigned char *pixels, int width, int height, int channels, int class_id,
                             uint64_t *random)
{
    int period = 3 + class_id % 5;
    int direction = (class_id / 5) % 4;
    unsigned char colour[3] = {(unsigned char)(40 + (class_id * 67) % 176), (unsigned char)(40 + (class_id * 113) % 176),
                               (unsigned char)(40 + (class_id * 29) % 176)};
    for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
            int coordinate = y;
            if (direction == 1)
                coordinate = x;
            else if (direction == 2)
                coordinate = x + y;
            else if (direction == 3)
                coordinate = x - y + height;
            int on = (coordinate / period) % 2;
            for (int c = 0; c < channels; c++) {
                int base = channels == 1 ? 60 + 18 * (class_id % 10) : colour[c];
                int value = on ? base + 50 : base - 30;
                value += (int)(next_random(random) % 31) - 15;
                if (value < 0)
                    value = 0;
                if (value > 255)
                    value = 255;
                pixels[((size_t)y * (size_t)width + (size_t)x) * (size_t)channels + (size_t)c] = (unsigned char)value;
            }
        }
    }
}

static int make_folder(const char *path)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return dmnsp_fail("%s: cannot create folder: %s", path, strerror(errno));
    return 0;
}

static int write_text(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");
    if (file == NULL)
        return dmnsp_fail("%s: cannot create file: %s", path, strerror(errno));
    fputs(text, file);
    if (fclose(file) != 0)
        return dmnsp_fail("%s: write failed: %s", path, strerror(errno));
    return 0;
}

static int selected(const generator_options *options, const char *format)
{
    if (options->only == NULL)
        return 1;
    size_t length = strlen(format);
    for (const char *p = options->only; *p;) {
        const char *end = strchr(p, ',');
        size_t item = end ? (size_t)(end - p) : strlen(p);
        if (item == length && strncmp(p, format, length) == 0)
            return 1;
        p += item + (end ? 1 : 0);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * CIFAR-100 binary
 * ------------------------------------------------------------------------ */

static int write_cifar_split(const char *path, int per_class, uint64_t *random)
{
    FILE *file = fopen(path, "wb");
    if (file == NULL)
        return dmnsp_fail("%s: cannot create file: %s", path, strerror(errno));
    unsigned char pixels[32 * 32 * 3], record[3074];
    /* Classes interleaved, as in the real files. */
    for (int i = 0; i < per_class; i++) {
        for (int class_id = 0; class_id < 100; class_id++) {
            draw_class_image(pixels, 32, 32, 3, class_id, random);
            record[0] = (unsigned char)(class_id / 5);
            record[1] = (unsigned char)class_id;
            for (int p = 0; p < 32 * 32; p++)
                for (int c = 0; c < 3; c++)
                    record[2 + c * 1024 + p] = pixels[3 * p + c];
            fwrite(record, 1, sizeof record, file);
        }
    }
    if (fclose(file) != 0)
        return dmnsp_fail("%s: write failed: %s", path, strerror(errno));
    return 0;
}

static int write_cifar100(const char *output, const generator_options *options, uint64_t *random)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/cifar-100-binary", output);
    DMNSP_TRY(make_folder(path));
    char names[100 * 24] = "";
    for (int c = 0; c < 100; c++) {
        char line[24];
        snprintf(line, sizeof line, "class_%02d\n", c);
        strcat(names, line);
    }
    snprintf(path, sizeof path, "%s/cifar-100-binary/fine_label_names.txt", output);
    DMNSP_TRY(write_text(path, names));
    snprintf(path, sizeof path, "%s/cifar-100-binary/train.bin", output);
    DMNSP_TRY(write_cifar_split(path, options->train_per_class, random));
    snprintf(path, sizeof path, "%s/cifar-100-binary/test.bin", output);
    return write_cifar_split(path, options->test_per_class, random);
}

/* ------------------------------------------------------------------------
 * TinyImageNet
 * ------------------------------------------------------------------------ */

static int write_tinyimagenet(const char *output, const generator_options *options, uint64_t *random)
{
    char path[8192], folder[4096];
    int side = options->size;
    unsigned char *pixels = malloc((size_t)side * (size_t)side * 3);
    if (pixels == NULL)
        return dmnsp_fail("out of memory");
    snprintf(folder, sizeof folder, "%s/tiny-imagenet-200", output);
    int status = make_folder(folder);
    FILE *wnids = NULL, *words = NULL, *annotations = NULL;
    if (status == 0) {
        snprintf(path, sizeof path, "%s/train", folder);
        status = make_folder(path);
    }
    if (status == 0) {
        snprintf(path, sizeof path, "%s/val", folder);
        status = make_folder(path);
    }
    if (status == 0) {
        snprintf(path, sizeof path, "%s/val/images", folder);
        status = make_folder(path);
    }
    if (status == 0) {
        snprintf(path, sizeof path, "%s/wnids.txt", folder);
        wnids = fopen(path, "w");
        snprintf(path, sizeof path, "%s/words.txt", folder);
        words = fopen(path, "w");
        snprintf(path, sizeof path, "%s/val/val_annotations.txt", folder);
        annotations = fopen(path, "w");
        if (wnids == NULL || words == NULL || annotations == NULL)
            status = dmnsp_fail("%s: cannot create the class lists: %s", folder, strerror(errno));
    }
    if (status == 0) {
        /* words.txt lists more wnids than wnids.txt, as the real one does. */
        fprintf(words, "n09999999\tunused class, not in wnids\n");
    }
    int val_index = 0;
    for (int c = 0; status == 0 && c < options->classes; c++) {
        char wnid[16];
        snprintf(wnid, sizeof wnid, "n%08d", 1000 + 7 * c);
        fprintf(wnids, "%s\n", wnid);
        fprintf(words, "%s\tthing %d, other name %d\n", wnid, c, c);
        snprintf(path, sizeof path, "%s/train/%s", folder, wnid);
        status = make_folder(path);
        snprintf(path, sizeof path, "%s/train/%s/images", folder, wnid);
        if (status == 0)
            status = make_folder(path);
        for (int i = 0; status == 0 && i < options->train_per_class; i++) {
            draw_class_image(pixels, side, side, 3, c, random);
            snprintf(path, sizeof path, "%s/train/%s/images/%s_%d.JPEG", folder, wnid, wnid, i);
            status = image_write_jpeg(path, pixels, side, side, 3, 90);
        }
        for (int i = 0; status == 0 && i < options->test_per_class; i++) {
            draw_class_image(pixels, side, side, 3, c, random);
            snprintf(path, sizeof path, "%s/val/images/val_%d.JPEG", folder, val_index);
            status = image_write_jpeg(path, pixels, side, side, 3, 90);
            fprintf(annotations, "val_%d.JPEG\t%s\t0\t0\t%d\t%d\n", val_index, wnid, side - 1, side - 1);
            val_index++;
        }
    }
    if (wnids != NULL && fclose(wnids) != 0 && status == 0)
        status = dmnsp_fail("%s: write failed", folder);
    if (words != NULL && fclose(words) != 0 && status == 0)
        status = dmnsp_fail("%s: write failed", folder);
    if (annotations != NULL && fclose(annotations) != 0 && status == 0)
        status = dmnsp_fail("%s: write failed", folder);
    free(pixels);
    return status;
}

/* ------------------------------------------------------------------------
 * ImageFolder
 * ------------------------------------------------------------------------ */

static int write_imagefolder(const char *output, const generator_options *options, uint64_t *random)
{
    char path[4096];
    int width = options->size + 8, height = options->size;
    unsigned char *pixels = malloc((size_t)width * (size_t)height * 3);
    if (pixels == NULL)
        return dmnsp_fail("out of memory");
    const char *splits[2] = {"train", "test"};
    int counts[2] = {options->train_per_class, options->test_per_class};
    snprintf(path, sizeof path, "%s/imagefolder", output);
    int status = make_folder(path);
    /* Zero-padded to the widest index, so that sorted folder names keep
     * class order (the reader sorts them). */
    int digits = 2;
    if (options->classes > 100)
        digits = 3;
    if (options->classes > 1000)
        digits = 4;
    for (int s = 0; status == 0 && s < 2; s++) {
        snprintf(path, sizeof path, "%s/imagefolder/%s", output, splits[s]);
        status = make_folder(path);
        for (int c = 0; status == 0 && c < options->classes; c++) {
            snprintf(path, sizeof path, "%s/imagefolder/%s/class_%0*d", output, splits[s], digits, c);
            status = make_folder(path);
            for (int i = 0; status == 0 && i < counts[s]; i++) {
                draw_class_image(pixels, width, height, 3, c, random);
                snprintf(path, sizeof path, "%s/imagefolder/%s/class_%0*d/image_%03d.png", output, splits[s], digits,
                         c, i);
                status = image_write_png(path, pixels, width, height, 3);
            }
        }
    }
    if (status == 0) {
        FILE *names = NULL;
        snprintf(path, sizeof path, "%s/imagefolder/class_names.txt", output);
        names = fopen(path, "w");
        if (names == NULL)
            status = dmnsp_fail("%s: cannot create file: %s", path, strerror(errno));
        for (int c = 0; status == 0 && c < options->classes; c++)
            fprintf(names, "pattern %d\n", c);
        if (names != NULL && fclose(names) != 0)
            status = dmnsp_fail("%s: write failed", path);
    }
    free(pixels);
    return status;
}

/* ------------------------------------------------------------------------
 * IDX (MNIST, Fashion-MNIST)
 * ------------------------------------------------------------------------ */

static void put_big_endian(unsigned char *p, uint32_t value)
{
    p[0] = (unsigned char)(value >> 24);
    p[1] = (unsigned char)(value >> 16);
    p[2] = (unsigned char)(value >> 8);
    p[3] = (unsigned char)value;
}

/* Writes BYTES bytes to PATH, gzip-compressed when COMPRESS. */
static int write_bytes(const char *path, const unsigned char *data, size_t bytes, int compress)
{
    if (compress) {
        gzFile file = gzopen(path, "wb");
        if (file == NULL)
            return dmnsp_fail("%s: cannot create file", path);
        int written = gzwrite(file, data, (unsigned)bytes);
        int closed = gzclose(file);
        if (written != (int)bytes || closed != Z_OK)
            return dmnsp_fail("%s: write failed", path);
        return 0;
    }
    FILE *file = fopen(path, "wb");
    if (file == NULL)
        return dmnsp_fail("%s: cannot create file: %s", path, strerror(errno));
    size_t written = fwrite(data, 1, bytes, file);
    if (fclose(file) != 0 || written != bytes)
        return dmnsp_fail("%s: write failed", path);
    return 0;
}

static int write_idx_split(const char *folder, const char *prefix, int per_class, int compress, uint64_t *random)
{
    int count = 10 * per_class;
    size_t image_bytes = 16 + (size_t)count * 28 * 28;
    unsigned char *images = malloc(image_bytes);
    unsigned char *labels = malloc(8 + (size_t)count);
    if (images == NULL || labels == NULL) {
        free(images);
        free(labels);
        return dmnsp_fail("out of memory");
    }
    put_big_endian(images, 0x00000803u);
    put_big_endian(images + 4, (uint32_t)count);
    put_big_endian(images + 8, 28);
    put_big_endian(images + 12, 28);
    put_big_endian(labels, 0x00000801u);
    put_big_endian(labels + 4, (uint32_t)count);
    for (int i = 0; i < count; i++) {
        int class_id = i % 10;
        labels[8 + i] = (unsigned char)class_id;
        draw_class_image(images + 16 + (size_t)i * 28 * 28, 28, 28, 1, class_id, random);
    }
    char path[4096];
    const char *suffix = compress ? ".gz" : "";
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", folder, prefix, suffix);
    int status = write_bytes(path, images, image_bytes, compress);
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", folder, prefix, suffix);
    if (status == 0)
        status = write_bytes(path, labels, 8 + (size_t)count, compress);
    free(images);
    free(labels);
    return status;
}

static int write_idx(const char *output, const char *name, const generator_options *options, int compress,
                     uint64_t *random)
{
    char folder[4096];
    snprintf(folder, sizeof folder, "%s/%s", output, name);
    DMNSP_TRY(make_folder(folder));
    DMNSP_TRY(write_idx_split(folder, "train", options->train_per_class, compress, random));
    return write_idx_split(folder, "t10k", options->test_per_class, compress, random);
}

/* ------------------------------------------------------------------------
 * Command line
 * ------------------------------------------------------------------------ */

static int parse_count(const char *option, const char *text, int minimum, int *value)
{
    char *end = NULL;
    long parsed = text ? strtol(text, &end, 10) : 0;
    if (text == NULL || *text == '\0' || *end != '\0' || parsed < minimum || parsed > 100000) {
        fprintf(stderr, "dmnsp_gen_datasets: %s expects an integer from %d to 100000 (found '%s')\n", option, minimum,
                text ? text : "");
        return -1;
    }
    *value = (int)parsed;
    return 0;
}

int main(int argc, char **argv)
{
    generator_options options = {4, 5, 2, 32, 1, NULL};
    const char *output = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        int status = 0;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        } else if (strcmp(arg, "--classes") == 0) {
            status = parse_count(arg, value, 1, &options.classes);
            i++;
        } else if (strcmp(arg, "--train-per-class") == 0) {
            status = parse_count(arg, value, 1, &options.train_per_class);
            i++;
        } else if (strcmp(arg, "--test-per-class") == 0) {
            status = parse_count(arg, value, 1, &options.test_per_class);
            i++;
        } else if (strcmp(arg, "--size") == 0) {
            status = parse_count(arg, value, 1, &options.size);
            i++;
        } else if (strcmp(arg, "--seed") == 0) {
            int seed = 0;
            status = parse_count(arg, value, 0, &seed);
            options.seed = (uint64_t)seed;
            i++;
        } else if (strcmp(arg, "--only") == 0 && value != NULL) {
            options.only = value;
            i++;
        } else if (arg[0] == '-' || output != NULL) {
            fprintf(stderr, "dmnsp_gen_datasets: unexpected argument '%s'\n\n%s", arg, usage_text);
            return 2;
        } else {
            output = arg;
        }
        if (status != 0)
            return 2;
    }
    if (output == NULL) {
        fputs(usage_text, stderr);
        return 2;
    }

    uint64_t random = options.seed;
    int status = make_folder(output);
    if (status == 0 && selected(&options, "cifar100"))
        status = write_cifar100(output, &options, &random);
    if (status == 0 && selected(&options, "tinyimagenet"))
        status = write_tinyimagenet(output, &options, &random);
    if (status == 0 && selected(&options, "imagefolder"))
        status = write_imagefolder(output, &options, &random);
    if (status == 0 && selected(&options, "mnist"))
        status = write_idx(output, "mnist", &options, 1, &random);
    if (status == 0 && selected(&options, "fashionmnist"))
        status = write_idx(output, "fashion-mnist", &options, 0, &random);
    if (status != 0) {
        fprintf(stderr, "dmnsp_gen_datasets: %s\n", dmnsp_last_error());
        return 1;
    }
    return 0;
}

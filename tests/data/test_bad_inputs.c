/* Reader errors for broken dataset files: each fails with a message that
 * names the file and states what is wrong. Broken copies are made from files
 * written by dmnsp_gen_datasets (its path is the first argument). */
#include "dmnsp/dataset.h"
#include "dmnsp/error.h"
#include "test_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void run(const char *command)
{
    char *output = NULL;
    int status = test_run_command(command, &output);
    if (status != 0)
        printf("command failed (%d): %s\n%s\n", status, command, output ? output : "");
    free(output);
    CHECK_EQ_INT(status, 0);
}

static void put_big_endian(unsigned char *p, uint32_t value)
{
    p[0] = (unsigned char)(value >> 24);
    p[1] = (unsigned char)(value >> 16);
    p[2] = (unsigned char)(value >> 8);
    p[3] = (unsigned char)value;
}

/* Writes an uncompressed IDX pair into FOLDER with the given header fields
 * and PAYLOAD_IMAGES images of 28 × 28 actually present. */
static void write_idx_pair(const char *folder, uint32_t image_magic, uint32_t images, uint32_t payload_images,
                           uint32_t labels)
{
    char command[512];
    snprintf(command, sizeof command, "rm -rf %s && mkdir -p %s", folder, folder);
    run(command);
    size_t image_bytes = 16 + (size_t)payload_images * 28 * 28;
    unsigned char *data = calloc(image_bytes, 1);
    put_big_endian(data, image_magic);
    put_big_endian(data + 4, images);
    put_big_endian(data + 8, 28);
    put_big_endian(data + 12, 28);
    char path[512];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", folder);
    CHECK_OK(test_write_file(path, data, image_bytes));
    free(data);

    unsigned char *label_data = calloc(8 + labels, 1);
    put_big_endian(label_data, 0x00000801u);
    put_big_endian(label_data + 4, labels);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", folder);
    CHECK_OK(test_write_file(path, label_data, 8 + labels));
    free(label_data);
}

static void test_cifar_errors(void)
{
    dataset *ds = NULL;
    /* Truncated record file: one record minus 100 bytes. */
    run("rm -rf cifar_truncated && mkdir -p cifar_truncated && cp generated/cifar-100-binary/* cifar_truncated/ && "
        "head -c 304226 generated/cifar-100-binary/train.bin > cifar_truncated/train.bin");
    CHECK_FAILS_WITH(dataset_open("cifar100", "cifar_truncated", 1, NULL, &ds),
                     "cifar_truncated/train.bin: size 304226 is not a positive multiple of 3074-byte records");
    CHECK(ds == NULL);

    /* Fine label byte 100 in record 2 (offset 2 * 3074 + 1). */
    run("rm -rf cifar_label && mkdir -p cifar_label && cp generated/cifar-100-binary/* cifar_label/ && "
        "printf '\\144' | dd of=cifar_label/train.bin bs=1 seek=6149 conv=notrunc status=none");
    CHECK_FAILS_WITH(dataset_open("cifar100", "cifar_label", 1, NULL, &ds),
                     "cifar_label/train.bin: record 2 has fine label 100 (expected 0..99)");

    CHECK_FAILS_WITH(dataset_open("cifar100", "no_such_folder", 1, NULL, &ds),
                     "no_such_folder/cifar-100-binary/ nor no_such_folder/train.bin exists");

    /* fine_label_names.txt with 99 lines. */
    run("rm -rf cifar_names && mkdir -p cifar_names && cp generated/cifar-100-binary/* cifar_names/ && "
        "head -n 99 generated/cifar-100-binary/fine_label_names.txt > cifar_names/fine_label_names.txt");
    CHECK_FAILS_WITH(dataset_open("cifar100", "cifar_names", 1, NULL, &ds),
                     "cifar_names/fine_label_names.txt: 99 class names (expected 100)");
}

static void test_idx_errors(void)
{
    dataset *ds = NULL;
    write_idx_pair("idx_magic", 0x00000804u, 4, 4, 4);
    CHECK_FAILS_WITH(dataset_open("mnist", "idx_magic", 1, NULL, &ds),
                     "idx_magic/train-images-idx3-ubyte: wrong IDX magic number 0x00000804 (expected 0x00000803");

    write_idx_pair("idx_short", 0x00000803u, 10, 5, 10);
    CHECK_FAILS_WITH(dataset_open("mnist", "idx_short", 1, NULL, &ds),
                     "idx_short/train-images-idx3-ubyte: truncated: 3920 data bytes after the header (expected 7840");

    write_idx_pair("idx_counts", 0x00000803u, 4, 4, 3);
    CHECK_FAILS_WITH(dataset_open("mnist", "idx_counts", 1, NULL, &ds),
                     "idx_counts/train-labels-idx1-ubyte has 3 labels but idx_counts/train-images-idx3-ubyte has 4");

    write_idx_pair("idx_extra", 0x00000803u, 3, 4, 3);
    CHECK_FAILS_WITH(dataset_open("mnist", "idx_extra", 1, NULL, &ds),
                     "idx_extra/train-images-idx3-ubyte: more data than its header's dimensions give");

    /* A label of 10 in an otherwise valid pair. */
    write_idx_pair("idx_label", 0x00000803u, 2, 2, 2);
    run("printf '\\012' | dd of=idx_label/train-labels-idx1-ubyte bs=1 seek=9 conv=notrunc status=none");
    CHECK_FAILS_WITH(dataset_open("mnist", "idx_label", 1, NULL, &ds),
                     "idx_label/train-labels-idx1-ubyte: label 1 is 10 (expected 0..9)");

    /* A gzip file cut in the middle. */
    run("rm -rf idx_gzip && mkdir -p idx_gzip && cp generated/mnist/* idx_gzip/ && "
        "head -c 1000 generated/mnist/train-images-idx3-ubyte.gz > idx_gzip/train-images-idx3-ubyte.gz");
    CHECK_FAILS_WITH(dataset_open("mnist", "idx_gzip", 1, NULL, &ds), "idx_gzip/train-images-idx3-ubyte.gz");

    CHECK_FAILS_WITH(dataset_open("fashionmnist", "no_fashion_here", 1, NULL, &ds),
                     "install the Debian package dataset-fashion-mnist");
    run("mkdir -p empty_folder");
    CHECK_FAILS_WITH(dataset_open("fashionmnist", "empty_folder", 0, NULL, &ds),
                     "empty_folder: missing t10k-images-idx3-ubyte.gz (or t10k-images-idx3-ubyte)");
}

static void test_tinyimagenet_errors(void)
{
    dataset *ds = NULL;
    run("rm -rf tiny_nownids && cp -r generated/tiny-imagenet-200 tiny_nownids && rm tiny_nownids/wnids.txt");
    CHECK_FAILS_WITH(dataset_open("tinyimagenet", "tiny_nownids", 1, NULL, &ds), "tiny_nownids/wnids.txt: missing");

    /* A .JPEG file that contains text: open succeeds, loading names it. */
    run("rm -rf tiny_text && cp -r generated/tiny-imagenet-200 tiny_text && "
        "echo 'not an image' > tiny_text/train/n00001000/images/n00001000_1.JPEG");
    CHECK_OK(dataset_open("tinyimagenet", "tiny_text", 1, NULL, &ds));
    if (ds != NULL) {
        image_rgb image;
        CHECK_FAILS_WITH(dataset_load(ds, 1, &image), "tiny_text/train/n00001000/images/n00001000_1.JPEG: not a JPEG "
                                                      "or PNG file");
        long indices[4] = {0, 2, 1, 3};
        float out[4 * 3 * 8 * 8];
        CHECK_FAILS_WITH(dataset_load_batch(ds, indices, 4, 8, out), "n00001000_1.JPEG: not a JPEG or PNG file");
        CHECK_STR_CONTAINS(dmnsp_last_error(), "sample 1");
        dataset_close(ds);
        ds = NULL;
    }

    run("rm -rf tiny_val && cp -r generated/tiny-imagenet-200 tiny_val && "
        "printf 'val_0.JPEG\\tn12345678\\t0\\t0\\t1\\t1\\n' > tiny_val/val/val_annotations.txt");
    CHECK_FAILS_WITH(dataset_open("tinyimagenet", "tiny_val", 0, NULL, &ds),
                     "tiny_val/val/val_annotations.txt: line 1 names wnid 'n12345678', which is not in wnids.txt");
}

static void test_imagefolder_errors(void)
{
    dataset *ds = NULL;
    run("rm -rf folder_empty && cp -r generated/imagefolder folder_empty && rm folder_empty/train/class_02/*");
    CHECK_FAILS_WITH(dataset_open("imagefolder", "folder_empty", 1, NULL, &ds),
                     "folder_empty/train/class_02: class folder contains no JPEG or PNG images");

    run("rm -rf folder_bmp && cp -r generated/imagefolder folder_bmp && touch folder_bmp/train/class_01/extra.bmp");
    CHECK_FAILS_WITH(dataset_open("imagefolder", "folder_bmp", 1, NULL, &ds),
                     "folder_bmp/train/class_01/extra.bmp: unsupported image format");

    run("rm -rf folder_class && cp -r generated/imagefolder folder_class && mkdir folder_class/test/class_99");
    CHECK_FAILS_WITH(dataset_open("imagefolder", "folder_class", 0, NULL, &ds),
                     "folder_class/test/class_99: class folder not present in train/");

    CHECK_FAILS_WITH(dataset_open("imagefolder", "generated/imagefolder", 1, "generated/cifar-100-binary/"
                                                                            "fine_label_names.txt",
                                  &ds),
                     "fine_label_names.txt has 100 lines (expected one name for each of the 4 classes)");

    CHECK_FAILS_WITH(dataset_open("imagefolder", "generated", 1, NULL, &ds), "generated/train: folder not found");
    CHECK_FAILS_WITH(dataset_open("svhn", "generated", 1, NULL, &ds), "unknown kind 'svhn'");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_bad_inputs PATH_TO_dmnsp_gen_datasets\n");
        return 1;
    }
    char command[4096];
    snprintf(command, sizeof command, "rm -rf generated && '%s' generated --only cifar100,tinyimagenet,imagefolder,mnist",
             argv[1]);
    run(command);

    test_cifar_errors();
    test_idx_errors();
    test_tinyimagenet_errors();
    test_imagefolder_errors();
    return test_finish("test_bad_inputs");
}

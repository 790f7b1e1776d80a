/* Dataset reader tests on files written by dmnsp_gen_datasets (its path is
 * the first argument) and on Debian's Fashion-MNIST when it is installed. */
#include "dmnsp/dataset.h"
#include "dmnsp/error.h"
#include "dmnsp/image.h"
#include "dmnsp/log.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* dataset_load_batch() must equal image_preprocess() of dataset_load(). */
static void check_batch_matches_single(const dataset *ds, int size)
{
    long count = dataset_size(ds) < 6 ? dataset_size(ds) : 6;
    long indices[6];
    for (long i = 0; i < count; i++)
        indices[i] = dataset_size(ds) - 1 - i * 3 < 0 ? i : dataset_size(ds) - 1 - i * 3;
    size_t floats = (size_t)3 * size * size;
    float *batch = malloc(sizeof(float) * floats * (size_t)count);
    float *single = malloc(sizeof(float) * floats);
    CHECK_OK(dataset_load_batch(ds, indices, (int)count, size, batch));
    for (long i = 0; i < count; i++) {
        image_rgb image;
        CHECK_OK(dataset_load(ds, indices[i], &image));
        CHECK_OK(image_preprocess(image.pixels, image.width, image.height, 3, size, single));
        char name[128];
        snprintf(name, sizeof name, "%s sample %ld batch vs single", dataset_kind(ds), indices[i]);
        test_compare_floats(name, batch + (size_t)i * floats, single, floats, 0.0, 0);
        image_free(&image);
    }
    free(batch);
    free(single);
}

/* Every class has COUNT samples among the labels. */
static void check_class_counts(const dataset *ds, long per_class)
{
    long *counts = calloc((size_t)dataset_class_count(ds), sizeof(long));
    for (long i = 0; i < dataset_size(ds); i++) {
        int label = dataset_label(ds, i);
        CHECK(label >= 0);
        CHECK(label < dataset_class_count(ds));
        if (label >= 0 && label < dataset_class_count(ds))
            counts[label]++;
    }
    for (int c = 0; c < dataset_class_count(ds); c++)
        CHECK_EQ_INT(counts[c], per_class);
    free(counts);
}

static void test_cifar100_reads_generated(void)
{
    dataset *ds = NULL;
    CHECK_OK(dataset_open("cifar100", "generated", 1, NULL, &ds));
    if (ds == NULL)
        return;
    CHECK_EQ_INT(dataset_size(ds), 500);
    CHECK_EQ_INT(dataset_class_count(ds), 100);
    CHECK(strcmp(dataset_class_name(ds, 7), "class 07") == 0);
    CHECK(strcmp(dataset_class_names(ds)[99], "class 99") == 0);
    CHECK_EQ_INT(dataset_label(ds, 0), 0);
    CHECK_EQ_INT(dataset_label(ds, 101), 1);
    check_class_counts(ds, 5);
    image_rgb image;
    CHECK_OK(dataset_load(ds, 3, &image));
    CHECK_EQ_INT(image.width, 32);
    CHECK_EQ_INT(image.height, 32);
    image_free(&image);
    check_batch_matches_single(ds, 24);
    dataset_close(ds);

    /* The root may also be the cifar-100-binary folder itself. */
    CHECK_OK(dataset_open("cifar100", "generated/cifar-100-binary", 0, NULL, &ds));
    if (ds != NULL)
        CHECK_EQ_INT(dataset_size(ds), 200);
    dataset_close(ds);
}

static void test_tinyimagenet_reads_generated(void)
{
    dataset *ds = NULL;
    CHECK_OK(dataset_open("tinyimagenet", "generated", 1, NULL, &ds));
    if (ds == NULL)
        return;
    CHECK_EQ_INT(dataset_size(ds), 20);
    CHECK_EQ_INT(dataset_class_count(ds), 4);
    CHECK(strcmp(dataset_class_name(ds, 2), "thing 2") == 0);
    check_class_counts(ds, 5);
    check_batch_matches_single(ds, 16);
    dataset_close(ds);

    CHECK_OK(dataset_open("tinyimagenet", "generated/tiny-imagenet-200", 0, NULL, &ds));
    if (ds == NULL)
        return;
    CHECK_EQ_INT(dataset_size(ds), 8);
    /* val_annotations.txt order: two images of class 0, then class 1, ... */
    CHECK_EQ_INT(dataset_label(ds, 0), 0);
    CHECK_EQ_INT(dataset_label(ds, 3), 1);
    CHECK_EQ_INT(dataset_label(ds, 7), 3);
    image_rgb image;
    CHECK_OK(dataset_load(ds, 5, &image));
    CHECK_EQ_INT(image.width, 32);
    image_free(&image);
    dataset_close(ds);
}

static void test_imagefolder_reads_generated(void)
{
    dataset *ds = NULL;
    CHECK_OK(dataset_open("imagefolder", "generated/imagefolder", 1, NULL, &ds));
    if (ds == NULL)
        return;
    CHECK_EQ_INT(dataset_size(ds), 20);
    CHECK(strcmp(dataset_class_name(ds, 1), "class_01") == 0);
    check_class_counts(ds, 5);
    image_rgb image;
    CHECK_OK(dataset_load(ds, 0, &image));
    CHECK_EQ_INT(image.width, 40);
    CHECK_EQ_INT(image.height, 32);
    image_free(&image);
    check_batch_matches_single(ds, 24);
    dataset_close(ds);

    CHECK_OK(dataset_open("imagefolder", "generated/imagefolder", 0, "generated/imagefolder/class_names.txt", &ds));
    if (ds == NULL)
        return;
    CHECK_EQ_INT(dataset_size(ds), 8);
    CHECK(strcmp(dataset_class_name(ds, 3), "pattern 3") == 0);
    dataset_close(ds);
}

static void test_idx_reads_gzip_and_plain(void)
{
    dataset *gz = NULL, *plain = NULL;
    CHECK_OK(dataset_open("mnist", "generated/mnist", 1, NULL, &gz));
    CHECK_OK(dataset_open("fashionmnist", "generated/fashion-mnist", 1, NULL, &plain));
    if (gz == NULL || plain == NULL) {
        dataset_close(gz);
        dataset_close(plain);
        return;
    }
    CHECK_EQ_INT(dataset_size(gz), 50);
    CHECK_EQ_INT(dataset_size(plain), 50);
    CHECK(strcmp(dataset_class_name(gz, 3), "3") == 0);
    CHECK(strcmp(dataset_class_name(plain, 9), "Ankle boot") == 0);
    CHECK(strcmp(dataset_class_name(plain, 0), "T-shirt/top") == 0);
    check_class_counts(gz, 5);
    image_rgb image;
    CHECK_OK(dataset_load(gz, 7, &image));
    CHECK_EQ_INT(image.width, 28);
    /* Grayscale is replicated to three equal channels. */
    if (image.pixels != NULL) {
        CHECK_EQ_INT(image.pixels[3 * 100 + 1], image.pixels[3 * 100]);
        CHECK_EQ_INT(image.pixels[3 * 100 + 2], image.pixels[3 * 100]);
    }
    image_free(&image);
    check_batch_matches_single(plain, 32);
    dataset_close(gz);
    dataset_close(plain);

    CHECK_OK(dataset_open("mnist", "generated/mnist", 0, NULL, &gz));
    if (gz != NULL)
        CHECK_EQ_INT(dataset_size(gz), 20);
    dataset_close(gz);
}

/* Debian's dataset-fashion-mnist, checked against values computed with
 * numpy and PIL (Resize(32, BICUBIC) + CenterCrop + normalisation). */
static void test_real_fashion_mnist(void)
{
    dataset *ds = NULL;
    if (dataset_open("fashionmnist", "", 1, NULL, &ds) != 0) {
        printf("skipping the real Fashion-MNIST checks: %s\n", dmnsp_last_error());
        return;
    }
    CHECK_EQ_INT(dataset_size(ds), 60000);
    static const int first_labels[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(dataset_label(ds, i), first_labels[i]);
    check_class_counts(ds, 6000);

    long indices[2] = {0, 59999};
    float out[2 * 3 * 32 * 32];
    CHECK_OK(dataset_load_batch(ds, indices, 2, 32, out));
    double sums[2] = {0.0, 0.0};
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 3 * 32 * 32; i++)
            sums[b] += out[b * 3 * 32 * 32 + i];
    CHECK_NEAR(sums[0], -757.2841282467125, 1e-3);
    CHECK_NEAR(sums[1], -4175.031279306044, 1e-3);
    CHECK_NEAR(out[1 * 32 * 32 + 16 * 32 + 16], 1.5195963382720947, 1e-6);
    CHECK_NEAR(out[3 * 32 * 32 + 2 * 32 * 32 + 5 * 32 + 20], -1.480219841003418, 1e-6);

    /* Throughput: a 2000-image slice, reported, not asserted. */
    long slice[2000];
    for (int i = 0; i < 2000; i++)
        slice[i] = i * 29L;
    float *batch = malloc(sizeof(float) * 2000 * 3 * 32 * 32);
    double start = log_now();
    CHECK_OK(dataset_load_batch(ds, slice, 2000, 32, batch));
    double seconds = log_now() - start;
    printf("fashion-mnist: 2000 images preprocessed to 32 px in %.3f s (%.0f images/s)\n", seconds,
           2000.0 / seconds);
    free(batch);
    dataset_close(ds);

    CHECK_OK(dataset_open("fashionmnist", DATASET_FASHION_MNIST_DEFAULT_ROOT, 0, NULL, &ds));
    if (ds != NULL) {
        CHECK_EQ_INT(dataset_size(ds), 10000);
        CHECK_EQ_INT(dataset_label(ds, 1), 2);
    }
    dataset_close(ds);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_datasets PATH_TO_dmnsp_gen_datasets\n");
        return 1;
    }
    char command[4096];
    snprintf(command, sizeof command, "rm -rf generated && '%s' generated", argv[1]);
    char *output = NULL;
    int status = test_run_command(command, &output);
    if (status != 0)
        printf("generator failed (%d): %s\n", status, output ? output : "");
    free(output);
    CHECK_EQ_INT(status, 0);

    test_cifar100_reads_generated();
    test_tinyimagenet_reads_generated();
    test_imagefolder_reads_generated();
    test_idx_reads_gzip_and_plain();
    test_real_fashion_mnist();
    return test_finish("test_datasets");
}

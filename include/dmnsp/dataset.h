/* dataset: readers for image classification datasets on disk.
 *
 * A dataset handle is one split (train or test) of one dataset. It stores the
 * number of samples, each sample's label (the dataset's class index), the
 * class count and the class names. It decodes a sample only on request, so
 * nothing preprocessed is kept in memory. IDX files (MNIST, Fashion-MNIST)
 * are decompressed into memory once, as raw uint8 pixels; CIFAR-100 records
 * are read from the file on demand; TinyImageNet and ImageFolder keep one
 * path per sample.
 *
 * Kinds and the files each expects under ROOT:
 *   cifar100      cifar-100-binary/{train.bin,test.bin,fine_label_names.txt}
 *                 (or ROOT is that folder). Class names get spaces for
 *                 underscores ("aquarium_fish" -> "aquarium fish").
 *   tinyimagenet  tiny-imagenet-200/ (or ROOT is that folder): wnids.txt
 *                 (class index = line), words.txt (name = first
 *                 comma-separated entry for the wnid),
 *                 train/<wnid>/images/<name>.JPEG (sorted by name),
 *                 val/images/ + val/val_annotations.txt (in file order).
 *   imagefolder   train/<class>/<image> and test/<class>/ or val/<class>/;
 *                 JPEG or PNG; classes are the sorted train folder names.
 *   mnist, fashionmnist
 *                 {train,t10k}-{images-idx3,labels-idx1}-ubyte, gzip
 *                 (.gz) or plain. MNIST class names are "0" .. "9".
 *                 An empty ROOT means /usr/share/datasets/fashion-mnist for
 *                 fashionmnist (Debian's dataset-fashion-mnist package).
 * A class_names file (one name per line, one line per class) replaces the
 * built-in names of any kind.
 *
 * Reading samples (dataset_load, dataset_load_batch) is thread-safe.
 * Errors name the file and what was expected (dmnsp/error.h).
 */
#ifndef DMNSP_DATASET_H
#define DMNSP_DATASET_H

#include "dmnsp/image.h"

#define DATASET_FASHION_MNIST_DEFAULT_ROOT "/usr/share/datasets/fashion-mnist"

typedef struct dataset dataset;

/* Opens split TRAIN (1 train, 0 test) of dataset KIND ("cifar100",
 * "tinyimagenet", "imagefolder", "fashionmnist", "mnist") under ROOT.
 * CLASS_NAMES_PATH may be NULL or "". On success *OUT is a new handle that
 * the caller frees with dataset_close(). */
int dataset_open(const char *kind, const char *root, int train, const char *class_names_path, dataset **out);

/* Frees the handle; NULL is allowed. */
void dataset_close(dataset *ds);

/* The kind passed to dataset_open() ("cifar100", ...). */
const char *dataset_kind(const dataset *ds);
/* The folder the files were read from (after resolving ROOT). */
const char *dataset_root(const dataset *ds);
long dataset_size(const dataset *ds);
int dataset_class_count(const dataset *ds);
/* Name of class CLASS_ID (0 .. class_count - 1); owned by the handle. */
const char *dataset_class_name(const dataset *ds, int class_id);
/* Array of dataset_class_count() names indexed by class id, owned by the
 * handle (the form scenario_prompts() takes). */
const char *const *dataset_class_names(const dataset *ds);
/* Array of dataset_size() labels, owned by the handle. */
const int *dataset_labels(const dataset *ds);
int dataset_label(const dataset *ds, long index);

/* Decodes sample INDEX into OUT (8-bit RGB, HWC; OUT->pixels malloc'd,
 * free with image_free). */
int dataset_load(const dataset *ds, long index, image_rgb *out);

/* Decodes and preprocesses N samples INDICES[0..N-1] for CLIP at SIZE pixels
 * (shorter side resized to SIZE with PIL's BICUBIC filter, centre crop,
 * normalisation) into OUT, a buffer of N × 3 × SIZE × SIZE floats (NCHW).
 * Runs the images in parallel with OpenMP. Fails with the first failing
 * sample's message (its index and file). */
int dataset_load_batch(const dataset *ds, const long *indices, int n, int size, float *out);

#endif

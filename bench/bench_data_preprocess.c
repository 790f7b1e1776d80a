/* Measures reading and preprocessing a whole dataset split:
 *   bench_data_preprocess [KIND [ROOT [SIZE [BATCH]]]]
 * Defaults: fashionmnist, its Debian folder, 32 pixels, batches of 1000.
 * Prints the time to open the split (decompression included), the time to
 * preprocess every sample and the images per second, with OMP_NUM_THREADS
 * threads. */
#include "dmnsp/dataset.h"
#include "dmnsp/error.h"
#include "dmnsp/log.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    const char *kind = argc > 1 ? argv[1] : "fashionmnist";
    const char *root = argc > 2 ? argv[2] : "";
    int size = argc > 3 ? atoi(argv[3]) : 32;
    int batch = argc > 4 ? atoi(argv[4]) : 1000;

    double start = log_now();
    dataset *ds = NULL;
    if (dataset_open(kind, root, 1, NULL, &ds) != 0) {
        fprintf(stderr, "bench_data_preprocess: %s\n", dmnsp_last_error());
        return 1;
    }
    double opened = log_now();

    long count = dataset_size(ds);
    float *out = malloc(sizeof(float) * (size_t)batch * 3 * (size_t)size * (size_t)size);
    long *indices = malloc(sizeof(long) * (size_t)batch);
    double checksum = 0.0;
    for (long first = 0; first < count; first += batch) {
        int n = (int)(count - first < batch ? count - first : batch);
        for (int i = 0; i < n; i++)
            indices[i] = first + i;
        if (dataset_load_batch(ds, indices, n, size, out) != 0) {
            fprintf(stderr, "bench_data_preprocess: %s\n", dmnsp_last_error());
            return 1;
        }
        checksum += out[0];
    }
    double done = log_now();

    printf("%s train: %ld images, open %.2f s, preprocess to %d px %.2f s (%.0f images/s, %d threads), "
           "checksum %.4f\n",
           kind, count, opened - start, size, done - opened, (double)count / (done - opened), omp_get_max_threads(),
           checksum);
    free(out);
    free(indices);
    dataset_close(ds);
    return 0;
}

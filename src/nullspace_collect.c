/* nullspace collector: per-block feature covariances (and rows for SLEPc). */
#include "nullspace_internal.h"

#include "dmnsp/error.h"

#include <cblas.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

/* Rows converted to double per dsyrk call: large enough for BLAS to run at
 * full speed, small enough to stay in cache (256 x 768 doubles = 1.5 MB). */
#define COLLECT_CHUNK_ROWS 256

int nullspace_collector_create(const nullspace_options *options, int keep_rows, long rows_hint,
                               nullspace_collector **collector)
{
    *collector = NULL;
    DMNSP_TRY(nullspace_options_validate(options));
    if (rows_hint < 0)
        return dmnsp_fail("nullspace: collector rows_hint %ld is negative", rows_hint);

    int blocks = options->blocks, d = options->width;
    nullspace_collector *c = dmnsp_calloc(1, sizeof *c, "nullspace collector");
    if (c == NULL)
        return -1;
    c->blocks = blocks;
    c->width = d;
    c->top_select = options->top_select;
    c->keep_rows = keep_rows != 0;
    c->covariance = dmnsp_calloc((size_t)blocks * d * d, sizeof(double), "nullspace covariances");
    c->chunk = dmnsp_malloc((size_t)COLLECT_CHUNK_ROWS * d * sizeof(double), "nullspace row chunk");
    c->row_count = dmnsp_calloc((size_t)blocks, sizeof(long), "nullspace row counts");
    if (c->covariance == NULL || c->chunk == NULL || c->row_count == NULL) {
        nullspace_collector_destroy(c);
        return -1;
    }

    if (c->keep_rows) {
        c->rows = dmnsp_calloc((size_t)blocks, sizeof(float *), "nullspace row pointers");
        c->row_capacity = dmnsp_calloc((size_t)blocks, sizeof(long), "nullspace row capacities");
        if (c->rows == NULL || c->row_capacity == NULL) {
            nullspace_collector_destroy(c);
            return -1;
        }
        for (int l = 0; l < blocks && rows_hint > 0; l++) {
            c->rows[l] = dmnsp_malloc((size_t)rows_hint * d * sizeof(float), "nullspace kept rows");
            if (c->rows[l] == NULL) {
                nullspace_collector_destroy(c);
                return -1;
            }
            c->row_capacity[l] = rows_hint;
        }
    }
    *collector = c;
    return 0;
}

void nullspace_collector_destroy(nullspace_collector *c)
{
    if (c == NULL)
        return;
    if (c->rows != NULL) {
        for (int l = 0; l < c->blocks; l++)
            free(c->rows[l]);
    }
    free(c->rows);
    free(c->row_capacity);
    free(c->row_count);
    free(c->chunk);
    free(c->covariance);
    free(c);
}

void nullspace_collector_reset(nullspace_collector *c)
{
    size_t d = (size_t)c->width;
    memset(c->covariance, 0, (size_t)c->blocks * d * d * sizeof(double));
    memset(c->row_count, 0, (size_t)c->blocks * sizeof(long));
}

static int keep_rows(nullspace_collector *c, int block, const float *rows, long count)
{
    size_t d = (size_t)c->width;
    long needed = c->row_count[block] + count;
    if (needed > c->row_capacity[block]) {
        long capacity = c->row_capacity[block] * 2;
        if (capacity < needed)
            capacity = needed;
        float *grown = realloc(c->rows[block], (size_t)capacity * d * sizeof(float));
        if (grown == NULL)
            return dmnsp_fail("nullspace: out of memory keeping %ld rows of width %zu for block %d", capacity, d,
                              block);
        c->rows[block] = grown;
        c->row_capacity[block] = capacity;
    }
    memcpy(c->rows[block] + (size_t)c->row_count[block] * d, rows, (size_t)count * d * sizeof(float));
    return 0;
}

/* C (d x d, upper triangle) += rows^T rows for ROWS (count x d floats). */
int nullspace_collector_add(nullspace_collector *c, int block, const float *rows, long count)
{
    if (block < 0 || block >= c->blocks)
        return dmnsp_fail("nullspace: block %d is out of range (expected 0..%d)", block, c->blocks - 1);
    if (count < 0 || (count > 0 && rows == NULL))
        return dmnsp_fail("nullspace: invalid rows for block %d (count %ld)", block, count);
    if (count == 0)
        return 0;
    if (c->keep_rows)
        DMNSP_TRY(keep_rows(c, block, rows, count));

    int d = c->width;
    double *covariance = c->covariance + (size_t)block * d * d;
    for (long start = 0; start < count; start += COLLECT_CHUNK_ROWS) {
        long n = count - start < COLLECT_CHUNK_ROWS ? count - start : COLLECT_CHUNK_ROWS;
        const float *source = rows + (size_t)start * d;
        size_t values = (size_t)n * d;
#pragma omp parallel for schedule(static) if (values > 65536)
        for (size_t i = 0; i < values; i++)
            c->chunk[i] = source[i];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, (int)n, 1.0, c->chunk, d, 1.0, covariance, d);
    }
    c->row_count[block] += count;
    return 0;
}

long nullspace_collector_rows(const nullspace_collector *c, int block)
{
    if (block < 0 || block >= c->blocks)
        return 0;
    return c->row_count[block];
}

/* Copies the upper triangle of A (d x d row-major) to the lower one. */
void nullspace_symmetrize_upper(double *a, int d)
{
    for (int r = 0; r < d; r++)
        for (int col = 0; col < r; col++)
            a[(size_t)r * d + col] = a[(size_t)col * d + r];
}

int nullspace_collector_allreduce(const nullspace_collector *c, int block, double *covariance)
{
    if (block < 0 || block >= c->blocks)
        return dmnsp_fail("nullspace: block %d is out of range (expected 0..%d)", block, c->blocks - 1);
    int d = c->width;
    const double *local = c->covariance + (size_t)block * d * d;
    if (MPI_Allreduce(local, covariance, d * d, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return dmnsp_fail("nullspace: MPI_Allreduce of the block %d covariance failed", block);
    nullspace_symmetrize_upper(covariance, d);
    return 0;
}

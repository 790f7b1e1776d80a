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
    c->covered_rows = dmnsp_calloc((size_t)blocks, sizeof(long), "nullspace covered row counts");
    if (c->covariance == NULL || c->chunk == NULL || c->row_count == NULL || c->covered_rows == NULL) {
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
    free(c->covered_rows);
    free(c->chunk);
    free(c->covariance);
    free(c->hidden_gram);
    free(c->hidden_chunk);
    free(c->up_matrix);
    free(c->up_times_gram);
    free(c);
}

void nullspace_collector_reset(nullspace_collector *c)
{
    size_t d = (size_t)c->width;
    memset(c->covariance, 0, (size_t)c->blocks * d * d * sizeof(double));
    memset(c->row_count, 0, (size_t)c->blocks * sizeof(long));
    memset(c->covered_rows, 0, (size_t)c->blocks * sizeof(long));
}

/* Appends COUNT rows to the kept rows of BLOCK, growing the storage; with
 * ROWS NULL it only makes room for them. */
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
    if (rows != NULL)
        memcpy(c->rows[block] + (size_t)c->row_count[block] * d, rows, (size_t)count * d * sizeof(float));
    return 0;
}

/* C (d x d, upper triangle) += rows^T rows for ROWS (count x d floats). */
static void accumulate_rows(nullspace_collector *c, int block, const float *rows, long count)
{
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
}

void nullspace_collector_update_covariance(nullspace_collector *c)
{
    if (!c->keep_rows)
        return;
    size_t d = (size_t)c->width;
    for (int l = 0; l < c->blocks; l++) {
        long pending = c->row_count[l] - c->covered_rows[l];
        if (pending > 0)
            accumulate_rows(c, l, c->rows[l] + (size_t)c->covered_rows[l] * d, pending);
        c->covered_rows[l] = c->row_count[l];
    }
}

int nullspace_collector_add(nullspace_collector *c, int block, const float *rows, long count)
{
    if (block < 0 || block >= c->blocks)
        return dmnsp_fail("nullspace: block %d is out of range (expected 0..%d)", block, c->blocks - 1);
    if (count < 0 || (count > 0 && rows == NULL))
        return dmnsp_fail("nullspace: invalid rows for block %d (count %ld)", block, count);
    if (count == 0)
        return 0;
    /* Kept rows enter the covariance only when a dense solver needs it, so
     * a top-k SLEPc solve never pays for the d x d products. */
    if (c->keep_rows)
        DMNSP_TRY(keep_rows(c, block, rows, count));
    else
        accumulate_rows(c, block, rows, count);
    c->row_count[block] += count;
    return 0;
}

/* Sizes the factored-input buffers for BOTTLENECK (grown, never shrunk). */
static int reserve_factored(nullspace_collector *c, int bottleneck)
{
    if (bottleneck <= c->factored_bottleneck)
        return 0;
    size_t h = (size_t)bottleneck + 1, d = (size_t)c->width;
    free(c->hidden_gram);
    free(c->hidden_chunk);
    free(c->up_matrix);
    free(c->up_times_gram);
    c->hidden_gram = dmnsp_malloc(h * h * sizeof(double), "nullspace hidden Gram matrix");
    c->hidden_chunk = dmnsp_malloc((size_t)COLLECT_CHUNK_ROWS * h * sizeof(double), "nullspace hidden rows");
    c->up_matrix = dmnsp_malloc(d * h * sizeof(double), "nullspace up projection");
    c->up_times_gram = dmnsp_malloc(d * h * sizeof(double), "nullspace up projection times Gram");
    if (c->hidden_gram == NULL || c->hidden_chunk == NULL || c->up_matrix == NULL || c->up_times_gram == NULL) {
        c->factored_bottleneck = 0;
        return -1;
    }
    c->factored_bottleneck = bottleneck;
    return 0;
}

/* Forms the adapter outputs a = scale (z up_w^T + up_b) of COUNT hidden
 * rows and appends them to the kept rows of BLOCK. */
static int keep_factored_rows(nullspace_collector *c, int block, const float *hidden, long count, int bottleneck,
                              const float *up_w, const float *up_b, float scale)
{
    size_t d = (size_t)c->width;
    DMNSP_TRY(keep_rows(c, block, NULL, count));
    float *rows = c->rows[block] + (size_t)(c->row_count[block]) * d;
    for (long r = 0; r < count; r++)
        for (size_t col = 0; col < d; col++)
            rows[(size_t)r * d + col] = scale * up_b[col];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)count, (int)d, bottleneck, scale, hidden, bottleneck,
                up_w, bottleneck, 1.0f, rows, (int)d);
    return 0;
}

int nullspace_collector_add_factored(nullspace_collector *c, int block, const float *hidden, long count,
                                     int bottleneck, const float *up_w, const float *up_b, float scale)
{
    if (block < 0 || block >= c->blocks)
        return dmnsp_fail("nullspace: block %d is out of range (expected 0..%d)", block, c->blocks - 1);
    if (count < 0 || bottleneck < 1 || (count > 0 && (hidden == NULL || up_w == NULL || up_b == NULL)))
        return dmnsp_fail("nullspace: invalid factored rows for block %d (count %ld, bottleneck %d)", block, count,
                          bottleneck);
    if (count == 0)
        return 0;
    DMNSP_TRY(reserve_factored(c, bottleneck));
    if (c->keep_rows) {
        /* Kept raw rows before these enter the covariance now; these rows
         * are covered by the factored product below. */
        DMNSP_TRY(keep_factored_rows(c, block, hidden, count, bottleneck, up_w, up_b, scale));
        long pending = c->row_count[block] - c->covered_rows[block];
        if (pending > 0)
            accumulate_rows(c, block, c->rows[block] + (size_t)c->covered_rows[block] * c->width, pending);
    }

    /* Gram matrix of the hidden rows extended by a constant 1 (for the
     * bias), upper triangle, accumulated in double. */
    int h = bottleneck + 1, d = c->width;
    memset(c->hidden_gram, 0, (size_t)h * h * sizeof(double));
    for (long start = 0; start < count; start += COLLECT_CHUNK_ROWS) {
        long n = count - start < COLLECT_CHUNK_ROWS ? count - start : COLLECT_CHUNK_ROWS;
        for (long r = 0; r < n; r++) {
            const float *source = hidden + (size_t)(start + r) * bottleneck;
            double *target = c->hidden_chunk + (size_t)r * h;
            for (int x = 0; x < bottleneck; x++)
                target[x] = source[x];
            target[bottleneck] = 1.0;
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, h, (int)n, 1.0, c->hidden_chunk, h, 1.0, c->hidden_gram,
                    h);
    }
    nullspace_symmetrize_upper(c->hidden_gram, h);

    /* C += scale^2 M G M^T with M = [up_w | up_b] (d x h). */
    for (int r = 0; r < d; r++) {
        for (int x = 0; x < bottleneck; x++)
            c->up_matrix[(size_t)r * h + x] = up_w[(size_t)r * bottleneck + x];
        c->up_matrix[(size_t)r * h + bottleneck] = up_b[r];
    }
    double *covariance = c->covariance + (size_t)block * d * d;
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, d, h, 1.0, c->hidden_gram, h, c->up_matrix, h, 0.0,
                c->up_times_gram, h);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, h, (double)scale * scale, c->up_times_gram, h,
                c->up_matrix, h, 1.0, covariance, d);
    c->row_count[block] += count;
    if (c->keep_rows)
        c->covered_rows[block] = c->row_count[block];
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

int nullspace_collector_allreduce(nullspace_collector *c, int block, double *covariance)
{
    if (block < 0 || block >= c->blocks)
        return dmnsp_fail("nullspace: block %d is out of range (expected 0..%d)", block, c->blocks - 1);
    nullspace_collector_update_covariance(c);
    int d = c->width;
    const double *local = c->covariance + (size_t)block * d * d;
    if (MPI_Allreduce(local, covariance, d * d, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return dmnsp_fail("nullspace: MPI_Allreduce of the block %d covariance failed", block);
    nullspace_symmetrize_upper(covariance, d);
    return 0;
}

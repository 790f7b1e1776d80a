/* paramstats: distribution statistics of one adapter tensor, as stored in
 * checkpoints after every task and read by `dmnsp analyze`.
 *
 * Everything is accumulated in double. Non-finite values (NaN, +-inf, which
 * appear when fp32 AdamW state overflows) are counted and left out of every
 * other statistic, so the numbers stay finite.
 */
#ifndef DMNSP_PARAMSTATS_H
#define DMNSP_PARAMSTATS_H

#include <stddef.h>

#define PARAM_STATS_BINS 64

typedef struct {
    double mean;
    double std;        /* population standard deviation (divides by the count) */
    double min;
    double max;
    double norm;       /* Frobenius norm of the finite values */
    double delta_norm; /* Frobenius norm of (values - previous); 0 without a previous tensor */
    long finite_count;
    long nonfinite_count;
    /* Histogram over [min, max] in PARAM_STATS_BINS equal bins; the last bin
     * includes max. When min == max the range is [min - 0.5, max + 0.5],
     * as numpy.histogram does. */
    long histogram[PARAM_STATS_BINS];
    double edges[PARAM_STATS_BINS + 1];
} param_stats;

/* Computes the statistics of the N floats VALUES. PREVIOUS is the same
 * tensor at the previous task (N floats) or NULL; pairs where either value
 * is non-finite are left out of delta_norm. With no finite value, mean, std,
 * min, max and the edges are 0 and the histogram is empty. */
void param_stats_compute(const float *values, const float *previous, size_t n, param_stats *stats);

#endif

/* paramstats: distribution statistics of one adapter tensor. */
#include "dmnsp/paramstats.h"

#include <math.h>
#include <string.h>

void param_stats_compute(const float *values, const float *previous, size_t n, param_stats *stats)
{
    memset(stats, 0, sizeof *stats);

    /* First pass: count, range, sum and norm of the finite values. */
    double sum = 0, sum_squares = 0, min = INFINITY, max = -INFINITY, delta_squares = 0;
    long finite = 0;
    for (size_t i = 0; i < n; i++) {
        double x = values[i];
        if (!isfinite(x))
            continue;
        finite++;
        sum += x;
        sum_squares += x * x;
        if (x < min)
            min = x;
        if (x > max)
            max = x;
        if (previous != NULL && isfinite(previous[i])) {
            double d = x - (double)previous[i];
            delta_squares += d * d;
        }
    }
    stats->finite_count = finite;
    stats->nonfinite_count = (long)n - finite;
    stats->delta_norm = sqrt(delta_squares);
    stats->norm = sqrt(sum_squares);
    if (finite == 0)
        return;

    /* Second pass for the variance: the centred sum avoids the cancellation
     * of E[x^2] - E[x]^2 when the spread is tiny compared to the mean. */
    double mean = sum / (double)finite, centred = 0;
    for (size_t i = 0; i < n; i++) {
        double x = values[i];
        if (isfinite(x))
            centred += (x - mean) * (x - mean);
    }
    stats->mean = mean;
    stats->std = sqrt(centred / (double)finite);
    stats->min = min;
    stats->max = max;

    double low = min, high = max;
    if (low == high) {
        low -= 0.5;
        high += 0.5;
    }
    double width = (high - low) / PARAM_STATS_BINS;
    for (int b = 0; b <= PARAM_STATS_BINS; b++)
        stats->edges[b] = low + width * b;
    stats->edges[PARAM_STATS_BINS] = high;
    for (size_t i = 0; i < n; i++) {
        double x = values[i];
        if (!isfinite(x))
            continue;
        int bin = (int)((x - low) / (high - low) * PARAM_STATS_BINS);
        if (bin < 0)
            bin = 0;
        if (bin >= PARAM_STATS_BINS)
            bin = PARAM_STATS_BINS - 1;
        stats->histogram[bin]++;
    }
}

/* param_stats_compute on hand-checked inputs: moments, histogram bins,
 * non-finite values, a constant tensor and the change norm. */
#include "dmnsp/paramstats.h"
#include "test_util.h"

#include <math.h>

int main(void)
{
    param_stats s;

    /* 1, 2, 3, 4 and a NaN: the NaN is counted and ignored. */
    const float values[5] = {1, 2, 3, 4, NAN};
    const float previous[5] = {0, 0, 0, 0, 0};
    param_stats_compute(values, previous, 5, &s);
    CHECK_EQ_INT(s.finite_count, 4);
    CHECK_EQ_INT(s.nonfinite_count, 1);
    CHECK_NEAR(s.mean, 2.5, 1e-15);
    CHECK_NEAR(s.std, sqrt(1.25), 1e-15);
    CHECK_NEAR(s.min, 1.0, 0.0);
    CHECK_NEAR(s.max, 4.0, 0.0);
    CHECK_NEAR(s.norm, sqrt(30.0), 1e-14);
    CHECK_NEAR(s.delta_norm, sqrt(30.0), 1e-14);
    CHECK_NEAR(s.edges[0], 1.0, 0.0);
    CHECK_NEAR(s.edges[PARAM_STATS_BINS], 4.0, 0.0);
    CHECK_NEAR(s.edges[32], 2.5, 1e-15);
    /* Bins over [1, 4] of width 3/64: 2 -> 21, 3 -> 42, and max in the last bin. */
    CHECK_EQ_INT(s.histogram[0], 1);
    CHECK_EQ_INT(s.histogram[21], 1);
    CHECK_EQ_INT(s.histogram[42], 1);
    CHECK_EQ_INT(s.histogram[63], 1);
    long total = 0;
    for (int i = 0; i < PARAM_STATS_BINS; i++)
        total += s.histogram[i];
    CHECK_EQ_INT(total, 4);

    /* A constant tensor gets the range [c - 0.5, c + 0.5], like numpy. */
    const float zeros[3] = {0, 0, 0};
    param_stats_compute(zeros, NULL, 3, &s);
    CHECK_NEAR(s.std, 0.0, 0.0);
    CHECK_NEAR(s.edges[0], -0.5, 0.0);
    CHECK_NEAR(s.edges[PARAM_STATS_BINS], 0.5, 0.0);
    CHECK_EQ_INT(s.histogram[32], 3);
    CHECK_NEAR(s.delta_norm, 0.0, 0.0);

    /* Only infinities: everything but the count stays 0. */
    const float infinite[2] = {INFINITY, -INFINITY};
    param_stats_compute(infinite, NULL, 2, &s);
    CHECK_EQ_INT(s.nonfinite_count, 2);
    CHECK_EQ_INT(s.finite_count, 0);
    CHECK_NEAR(s.mean, 0.0, 0.0);
    CHECK_NEAR(s.max, 0.0, 0.0);

    /* A large offset with a tiny spread keeps its variance. */
    const float offset[4] = {1000.0f, 1000.5f, 1001.0f, 1001.5f};
    param_stats_compute(offset, NULL, 4, &s);
    CHECK_NEAR(s.std, sqrt(0.3125), 1e-12);

    return test_finish("test_paramstats_known_values");
}

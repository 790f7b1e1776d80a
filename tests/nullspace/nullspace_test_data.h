/* Shared helpers of the nullspace tests: a deterministic random generator,
 * random orthogonal matrices and low-rank feature rows. */
#ifndef NULLSPACE_TEST_DATA_H
#define NULLSPACE_TEST_DATA_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t state;
} test_random;

static inline double test_uniform(test_random *g)
{
    /* splitmix64 */
    uint64_t z = (g->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

static inline double test_normal(test_random *g)
{
    double u1 = test_uniform(g), u2 = test_uniform(g);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Random orthogonal D x D matrix (row-major, orthonormal columns) by
 * modified Gram-Schmidt on Gaussian columns. */
static inline void test_random_orthogonal(test_random *g, int d, double *q)
{
    for (int i = 0; i < d * d; i++)
        q[i] = test_normal(g);
    for (int c = 0; c < d; c++) {
        for (int p = 0; p < c; p++) {
            double dot = 0;
            for (int r = 0; r < d; r++)
                dot += q[r * d + c] * q[r * d + p];
            for (int r = 0; r < d; r++)
                q[r * d + c] -= dot * q[r * d + p];
        }
        double norm = 0;
        for (int r = 0; r < d; r++)
            norm += q[r * d + c] * q[r * d + c];
        norm = sqrt(norm);
        for (int r = 0; r < d; r++)
            q[r * d + c] /= norm;
    }
}

/* Row I of a low-rank-plus-noise feature matrix: a sum of RANK fixed
 * directions (DIRECTIONS, rank x d) with decaying Gaussian weights, plus
 * noise of size NOISE. The row depends only on (SEED, I), so any rank can
 * produce any row. */
static inline void test_feature_row(uint64_t seed, long i, const double *directions, int rank, int d, double noise,
                                    float *row)
{
    test_random g = {seed * 1000003ull + (uint64_t)i * 7919ull + 1};
    double values[d];
    for (int c = 0; c < d; c++)
        values[c] = noise * test_normal(&g);
    for (int p = 0; p < rank; p++) {
        double weight = test_normal(&g) * 4.0 / (1.0 + p);
        for (int c = 0; c < d; c++)
            values[c] += weight * directions[p * d + c];
    }
    for (int c = 0; c < d; c++)
        row[c] = (float)values[c];
}

#endif

/* Collective nullspace tests, run on 1, 2 and 3 ranks: covariance
 * reduction against the one-rank covariance, lambda on hand-built
 * full-rank cases, and agreement of the LAPACK, ScaLAPACK and SLEPc
 * solvers (eigenvalues and top-k subspace, in double). Every rank adds the
 * rows i with i mod ranks == rank, so shards are uneven on 3 ranks. */
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/nullspace.h"
#include "nullspace_test_data.h"
#include "test_util.h"

#include <stdio.h>

static int rank, size;

/* Adds rows 0..COUNT-1 of ROWS (COUNT x d) that belong to this rank. */
static void add_shard(nullspace_collector *collector, int block, const float *rows, int count, int d)
{
    for (int i = rank; i < count; i += size)
        CHECK_OK(nullspace_collector_add(collector, block, rows + (size_t)i * d, 1));
}

static void test_covariance_reduction_matches_one_rank(void)
{
    enum { D = 12, ROWS = 37 };
    nullspace_options o;
    nullspace_options_default(&o, 2, D, 4);
    nullspace_collector *collector = NULL;
    CHECK_OK(nullspace_collector_create(&o, 0, 16, &collector));
    if (collector == NULL)
        return;
    test_random g = {3};
    float rows[ROWS * D];
    for (int x = 0; x < ROWS * D; x++)
        rows[x] = (float)test_normal(&g);

    /* Rows added one at a time and in a block of several must agree. */
    add_shard(collector, 1, rows, ROWS, D);
    long begin = 0, count = 0;
    dist_shard(ROWS, rank, size, &begin, &count);
    CHECK_OK(nullspace_collector_add(collector, 0, rows + begin * D, count));
    CHECK_EQ_INT(nullspace_collector_rows(collector, 0), count);

    double expected[D * D], reduced[D * D];
    for (int r = 0; r < D; r++)
        for (int c = 0; c < D; c++) {
            double sum = 0;
            for (int i = 0; i < ROWS; i++)
                sum += (double)rows[i * D + r] * rows[i * D + c];
            expected[r * D + c] = sum;
        }
    for (int block = 0; block < 2; block++) {
        CHECK_OK(nullspace_collector_allreduce(collector, block, reduced));
        test_compare_doubles(block ? "covariance, rows one by one" : "covariance, contiguous shard", reduced, expected,
                             D * D, 1e-12, 1.0);
    }

    nullspace_collector_reset(collector);
    CHECK_EQ_INT(nullspace_collector_rows(collector, 0), 0);
    CHECK_OK(nullspace_collector_allreduce(collector, 0, reduced));
    CHECK_NEAR(reduced[5], 0.0, 0.0);
    CHECK_FAILS_WITH(nullspace_collector_add(collector, 2, rows, 1), "block 2 is out of range");
    nullspace_collector_destroy(collector);
}

/* Rows whose covariance is sum_p weight_p^2 w_p w_p^T for orthonormal w_p
 * (rounded to float, so hand values hold to about 1e-7 relative):
 * full rank, eigenvectors w_p, eigenvalues weight_p^2. */
static void add_weighted_rows(nullspace_collector *collector, int block, const double *directions,
                              const double *weights, int count, int d)
{
    float rows[count * d];
    for (int p = 0; p < count; p++)
        for (int c = 0; c < d; c++)
            rows[p * d + c] = (float)(weights[p] * directions[p * d + c]);
    add_shard(collector, block, rows, count, d);
}

/* Stores one task whose block eigenvectors are the given d x d matrices. */
static void add_task_with_eigenvectors(nullspace_state *state, int blocks, int d, int k, const float *const *eigvecs)
{
    double eigvals[blocks][d];
    float top[blocks][d * k];
    const double *eigvals_p[blocks];
    const float *top_p[blocks];
    for (int l = 0; l < blocks; l++) {
        for (int c = 0; c < d; c++)
            eigvals[l][c] = d - c;
        for (int r = 0; r < d; r++)
            for (int q = 0; q < k; q++)
                top[l][r * k + q] = eigvecs[l][r * d + q];
        eigvals_p[l] = eigvals[l];
        top_p[l] = top[l];
    }
    CHECK_OK(nullspace_add_task(state, eigvals_p, eigvecs, top_p));
}

/* Lambda by hand, k = 1, d = 3, two blocks, rho = 0.5 (m = 1 of n = 2).
 * Task 0 eigenvectors: block 0 columns (e0, e1, e2), block 1 (e2, e0, e1).
 * Current top directions: u0 = (1, 1, 0)/sqrt2, u1 = (0.6, 0, 0.8).
 *   lambda[0][0]: trailing e1, e2 -> |u0.e1| = 1/sqrt2, 0 -> s exp(-1/sqrt2)
 *   lambda[0][1]: trailing e0, e1 -> 1/sqrt2, 1/sqrt2    -> s exp(-1/sqrt2)
 *   lambda[1][0]: trailing e1, e2 -> 0, 0.8              -> s exp(-0.8)
 *   lambda[1][1]: trailing e0, e1 -> 0.6, 0              -> s exp(-0.6)
 * A second task (block 0: (e1, e2, e0), block 1: (e0, e1, e2)) gives n = 4
 * and m = 2 (mean of the two largest):
 *   lambda[0][0]: 1/sqrt2, 0, 0, 1/sqrt2 -> s exp(-1/sqrt2)
 *   lambda[1][0]: 0, 0.8, 0.8, 0.6       -> s exp(-0.8)
 *   lambda[1][1]: 0.6, 0, 0, 0.8         -> s exp(-0.7)
 *   lambda[0][1]: 1/sqrt2, 1/sqrt2, 1/sqrt2, 0 -> s exp(-1/sqrt2) */
static void test_lambda_hand_built_k1(nullspace_solver solver)
{
    enum { D = 3, BLOCKS = 2 };
    const double s = 30.0, h = 1.0 / sqrt(2.0);
    nullspace_options o;
    nullspace_options_default(&o, BLOCKS, D, 2);
    o.top_k_ratio = 0.5;
    o.lambda_scale = s;
    o.solver = solver;
    nullspace_state *state = NULL;
    nullspace_collector *collector = NULL;
    CHECK_OK(nullspace_state_create(&o, &state));
    CHECK_OK(nullspace_collector_create(&o, solver == NULLSPACE_SOLVER_SLEPC, 8, &collector));
    if (state == NULL || collector == NULL)
        return;

    const float identity[D * D] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    const float rotated[D * D] = {0, 1, 0, 0, 0, 1, 1, 0, 0};  /* columns e2, e0, e1 */
    const float rotated2[D * D] = {0, 0, 1, 1, 0, 0, 0, 1, 0}; /* columns e1, e2, e0 */
    const float *task0[BLOCKS] = {identity, rotated};
    add_task_with_eigenvectors(state, BLOCKS, D, 1, task0);

    const double directions0[D * D] = {h, h, 0, h, -h, 0, 0, 0, 1};
    const double directions1[D * D] = {0.6, 0, 0.8, 0, 1, 0, 0.8, 0, -0.6};
    const double weights[D] = {3.0, 1.0, 0.5};
    add_weighted_rows(collector, 0, directions0, weights, D, D);
    add_weighted_rows(collector, 1, directions1, weights, D, D);
    CHECK_OK(nullspace_compute_lambda(state, collector));
    const double *lambda = nullspace_lambda(state);
    CHECK(lambda != NULL);
    if (lambda == NULL)
        return;
    double expected[BLOCKS * BLOCKS] = {s * exp(-h), s * exp(-h), s * exp(-0.8), s * exp(-0.6)};
    test_compare_doubles("lambda, one task", lambda, expected, 4, 2e-7, 1.0);

    const float *task1[BLOCKS] = {rotated2, identity};
    add_task_with_eigenvectors(state, BLOCKS, D, 1, task1);
    CHECK_OK(nullspace_compute_lambda(state, collector));
    lambda = nullspace_lambda(state);
    double expected2[BLOCKS * BLOCKS] = {s * exp(-h), s * exp(-h), s * exp(-0.8), s * exp(-0.7)};
    test_compare_doubles("lambda, two tasks", lambda, expected2, 4, 2e-7, 1.0);

    double factors[BLOCKS];
    nullspace_step_factors(state, factors);
    CHECK_NEAR(factors[1], exp(-0.75), 1e-7);

    nullspace_collector_destroy(collector);
    nullspace_state_destroy(state);
}

/* k = 2, d = 4, one block, rho = 1 (m = n = 2). The covariance's top-2
 * span is {e0, (e1 + e2)/sqrt2}; task 0's trailing eigenvectors are e2 and
 * e3, with ||u^T e2|| = 1/sqrt2 and ||u^T e3|| = 0, so lambda =
 * s exp(-1/(2 sqrt2)). */
static void test_lambda_hand_built_k2(void)
{
    enum { D = 4 };
    const double s = 10.0, h = 1.0 / sqrt(2.0);
    nullspace_options o;
    nullspace_options_default(&o, 1, D, 2);
    o.top_select = 2;
    o.top_k_ratio = 1.0;
    o.lambda_scale = s;
    nullspace_state *state = NULL;
    nullspace_collector *collector = NULL;
    CHECK_OK(nullspace_state_create(&o, &state));
    CHECK_OK(nullspace_collector_create(&o, 0, 0, &collector));
    if (state == NULL || collector == NULL)
        return;
    const float identity[D * D] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    const float *task0[1] = {identity};
    add_task_with_eigenvectors(state, 1, D, 2, task0);

    const double directions[D * D] = {1, 0, 0, 0, 0, h, h, 0, 0, h, -h, 0, 0, 0, 0, 1};
    const double weights[D] = {3.0, 2.0, 1.0, 0.5};
    add_weighted_rows(collector, 0, directions, weights, D, D);
    CHECK_OK(nullspace_compute_lambda(state, collector));
    const double *lambda = nullspace_lambda(state);
    CHECK(lambda != NULL);
    if (lambda != NULL)
        CHECK_NEAR(lambda[0], s * exp(-h / 2), 1e-6);
    nullspace_collector_destroy(collector);
    nullspace_state_destroy(state);
}

/* ||B - A A^T B||_F for orthonormal columns A, B (d x k): the sine of the
 * subspace angles, accurate for tiny angles. */
static double subspace_distance(const double *a, const double *b, int d, int k)
{
    double worst = 0;
    for (int q = 0; q < k; q++) {
        double coefficients[k];
        for (int p = 0; p < k; p++) {
            double dot = 0;
            for (int r = 0; r < d; r++)
                dot += a[r * k + p] * b[r * k + q];
            coefficients[p] = dot;
        }
        double residual = 0;
        for (int r = 0; r < d; r++) {
            double x = b[r * k + q];
            for (int p = 0; p < k; p++)
                x -= a[r * k + p] * coefficients[p];
            residual += x * x;
        }
        worst += residual;
    }
    return sqrt(worst);
}

/* Two blocks of width 48, low rank (10) plus noise, top_select 3. On 3
 * ranks block 0's group has two ranks, so ScaLAPACK runs on a 1 x 2 grid. */
static void test_solvers_agree(void)
{
    enum { D = 48, BLOCKS = 2, K = 3, ROWS = 300, RANK = 10 };
    nullspace_options o;
    nullspace_options_default(&o, BLOCKS, D, 4);
    o.top_select = K;
    nullspace_collector *collector = NULL;
    CHECK_OK(nullspace_collector_create(&o, 1, ROWS, &collector));
    if (collector == NULL)
        return;
    test_random g = {17};
    double directions[RANK * D];
    float row[D];
    for (int l = 0; l < BLOCKS; l++) {
        for (int x = 0; x < RANK * D; x++)
            directions[x] = test_normal(&g);
        for (long i = rank; i < ROWS; i += size) {
            test_feature_row(500 + l, i, directions, RANK, D, 0.01, row);
            CHECK_OK(nullspace_collector_add(collector, l, row, 1));
        }
    }

    nullspace_decomposition lapack_full, scalapack_full, lapack_top, slepc_top;
    CHECK_OK(nullspace_decompose(collector, NULLSPACE_SOLVER_LAPACK, 1, &lapack_full));
    CHECK_OK(nullspace_decompose(collector, NULLSPACE_SOLVER_SCALAPACK, 1, &scalapack_full));
    CHECK_OK(nullspace_decompose(collector, NULLSPACE_SOLVER_LAPACK, 0, &lapack_top));
    CHECK_OK(nullspace_decompose(collector, NULLSPACE_SOLVER_SLEPC, 0, &slepc_top));
    if (lapack_full.top == NULL || scalapack_full.top == NULL || lapack_top.top == NULL || slepc_top.top == NULL)
        return;
    CHECK_EQ_INT(scalapack_full.solver, NULLSPACE_SOLVER_SCALAPACK);

    for (int l = 0; l < BLOCKS; l++) {
        const double *reference_values = lapack_full.eigvals + (size_t)l * D;
        double scale = reference_values[0];
        CHECK(reference_values[0] >= reference_values[1]);
        CHECK(reference_values[K - 1] > reference_values[D - 1]);
        char name[96];
        snprintf(name, sizeof name, "block %d eigenvalues, scalapack vs lapack", l);
        test_compare_doubles(name, scalapack_full.eigvals + (size_t)l * D, reference_values, D, 1e-10 * scale, 0);
        snprintf(name, sizeof name, "block %d top eigenvalues, dsyevr vs dsyevd", l);
        test_compare_doubles(name, lapack_top.eigvals + (size_t)l * D, reference_values, K, 1e-10, 1.0);
        snprintf(name, sizeof name, "block %d top eigenvalues, slepc vs lapack", l);
        test_compare_doubles(name, slepc_top.eigvals + (size_t)l * D, reference_values, K, 1e-9, 1.0);

        const double *reference_top = lapack_full.top + (size_t)l * D * K;
        double distances[3] = {
            subspace_distance(reference_top, scalapack_full.top + (size_t)l * D * K, D, K),
            subspace_distance(reference_top, lapack_top.top + (size_t)l * D * K, D, K),
            subspace_distance(reference_top, slepc_top.top + (size_t)l * D * K, D, K),
        };
        const char *names[3] = {"scalapack", "lapack top-k", "slepc"};
        for (int x = 0; x < 3; x++) {
            if (!(distances[x] < 1e-6))
                test_report_failure(__FILE__, __LINE__, "block %d: %s top-%d subspace is %g away from lapack's", l,
                                    names[x], K, distances[x]);
        }

        /* The full eigenvectors are orthonormal and agree up to sign for
         * the well-separated leading eigenvalues. */
        const double *e = lapack_full.eigvecs + (size_t)l * D * D;
        const double *f = scalapack_full.eigvecs + (size_t)l * D * D;
        double worst = 0;
        for (int c = 0; c < D; c++) {
            double self = 0, cross = 0;
            for (int r = 0; r < D; r++) {
                self += e[r * D + c] * e[r * D + c];
                cross += e[r * D + c] * f[r * D + c];
            }
            worst = fmax(worst, fabs(self - 1.0));
            if (c < K)
                worst = fmax(worst, fabs(fabs(cross) - 1.0));
        }
        if (!(worst < 1e-10))
            test_report_failure(__FILE__, __LINE__, "block %d: eigenvector check off by %g", l, worst);
    }

    /* Every rank has the same results. */
    double mine = lapack_full.eigvals[5] + slepc_top.top[7] + scalapack_full.eigvecs[D * D + 9];
    double low = 0, high = 0;
    MPI_Allreduce(&mine, &low, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&mine, &high, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    CHECK(low == high);

    nullspace_decomposition_free(&lapack_full);
    nullspace_decomposition_free(&scalapack_full);
    nullspace_decomposition_free(&lapack_top);
    nullspace_decomposition_free(&slepc_top);

    nullspace_collector *no_rows = NULL;
    CHECK_OK(nullspace_collector_create(&o, 0, 0, &no_rows));
    nullspace_decomposition unused;
    CHECK_FAILS_WITH(nullspace_decompose(no_rows, NULLSPACE_SOLVER_SLEPC, 0, &unused), "keeps its rows");
    nullspace_collector_destroy(no_rows);
    nullspace_collector_destroy(collector);
}

/* All-zero features (untrained adapters) stop SLEPc's Lanczos solvers,
 * so the slepc solver decomposes them with LAPACK: same bases, no error. */
static void test_slepc_zero_features(void)
{
    enum { D = 16, BLOCKS = 2, K = 2, ROWS = 40 };
    nullspace_options o;
    nullspace_options_default(&o, BLOCKS, D, 4);
    o.top_select = K;
    nullspace_collector *collector = NULL;
    CHECK_OK(nullspace_collector_create(&o, 1, ROWS, &collector));
    if (collector == NULL)
        return;
    float zeros[D] = {0};
    test_random g = {23};
    for (long i = rank; i < ROWS; i += size) {
        float row[D];
        for (int x = 0; x < D; x++)
            row[x] = (float)test_normal(&g);
        CHECK_OK(nullspace_collector_add(collector, 0, row, 1));
        CHECK_OK(nullspace_collector_add(collector, 1, zeros, 1));
    }
    nullspace_decomposition slepc, lapack;
    CHECK_OK(nullspace_decompose(collector, NULLSPACE_SOLVER_SLEPC, 1, &slepc));
    CHECK_OK(nullspace_decompose(collector, NULLSPACE_SOLVER_LAPACK, 1, &lapack));
    if (slepc.top != NULL && lapack.top != NULL) {
        CHECK_EQ_INT(slepc.solver, NULLSPACE_SOLVER_LAPACK);
        test_compare_doubles("zero features: eigenvalues", slepc.eigvals, lapack.eigvals, (size_t)BLOCKS * D, 0, 0);
        test_compare_doubles("zero features: top vectors", slepc.top, lapack.top, (size_t)BLOCKS * D * K, 0, 0);
        nullspace_decomposition_free(&slepc);
        nullspace_decomposition_free(&lapack);
    }
    nullspace_collector_destroy(collector);
}

/* The bases built from one collector are identical on every rank and
 * the full eigenvectors reproduce the covariance. */
static void test_build_bases_on_all_ranks(void)
{
    enum { D = 20, BLOCKS = 4, ROWS = 90 };
    nullspace_options o;
    nullspace_options_default(&o, BLOCKS, D, 4);
    o.top_select = 2;
    nullspace_state *state = NULL;
    nullspace_collector *collector = NULL;
    CHECK_OK(nullspace_state_create(&o, &state));
    CHECK_OK(nullspace_collector_create(&o, 0, 0, &collector));
    if (state == NULL || collector == NULL)
        return;
    test_random g = {23};
    double directions[5 * D];
    float row[D];
    for (int l = 0; l < BLOCKS; l++) {
        for (int x = 0; x < 5 * D; x++)
            directions[x] = test_normal(&g);
        for (long i = rank; i < ROWS; i += size) {
            test_feature_row(900 + l, i, directions, 5, D, 0.1, row);
            CHECK_OK(nullspace_collector_add(collector, l, row, 1));
        }
    }
    double covariance[D * D];
    CHECK_OK(nullspace_collector_allreduce(collector, 3, covariance));
    CHECK_OK(nullspace_build_bases(state, collector));
    CHECK_EQ_INT(nullspace_task_count(state), 1);

    const double *values = NULL;
    const float *vectors = NULL;
    CHECK_OK(nullspace_task_block(state, 0, 3, &values, &vectors, NULL));
    if (values == NULL || vectors == NULL)
        return;
    /* E diag(values) E^T = C, to float precision of E. */
    double worst = 0, scale = values[0];
    for (int r = 0; r < D; r++)
        for (int c = 0; c < D; c++) {
            double sum = 0;
            for (int p = 0; p < D; p++)
                sum += (double)vectors[r * D + p] * values[p] * vectors[c * D + p];
            worst = fmax(worst, fabs(sum - covariance[r * D + c]));
        }
    if (!(worst < 1e-5 * scale))
        test_report_failure(__FILE__, __LINE__, "E diag(values) E^T differs from the covariance by %g (scale %g)",
                            worst, scale);

    double mine = 0, low = 0, high = 0;
    for (int x = 0; x < D * D; x++)
        mine += vectors[x] * (x + 1);
    MPI_Allreduce(&mine, &low, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&mine, &high, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    CHECK(low == high);
    nullspace_collector_destroy(collector);
    nullspace_state_destroy(state);
}

/* Factored adapter outputs a = scale (up_w z + up_b) give the covariance
 * and kept rows of the explicit rows, and SLEPc works on the kept rows. */
static void test_factored_rows_match_explicit(void)
{
    enum { D = 30, H = 6, ROWS = 41 };
    const float scale = 0.1f;
    nullspace_options o;
    nullspace_options_default(&o, 2, D, H);
    o.top_select = 2;
    nullspace_collector *factored = NULL, *explicit_rows = NULL;
    CHECK_OK(nullspace_collector_create(&o, 1, 4, &factored));
    CHECK_OK(nullspace_collector_create(&o, 1, 4, &explicit_rows));
    if (factored == NULL || explicit_rows == NULL)
        return;

    test_random g = {61};
    float up_w[D * H], up_b[D], hidden[ROWS * H], rows[ROWS * D];
    for (int x = 0; x < D * H; x++)
        up_w[x] = (float)test_normal(&g);
    for (int x = 0; x < D; x++)
        up_b[x] = (float)(0.3 * test_normal(&g));
    for (int x = 0; x < ROWS * H; x++)
        hidden[x] = test_uniform(&g) < 0.3 ? 0.0f : (float)fabs(test_normal(&g)); /* ReLU, dropout zeros */
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < D; c++) {
            double sum = up_b[c];
            for (int x = 0; x < H; x++)
                sum += (double)up_w[c * H + x] * hidden[r * H + x];
            rows[r * D + c] = (float)(scale * sum);
        }

    /* This rank's rows, added in two calls to cross the call boundary. */
    long begin = 0, count = 0;
    dist_shard(ROWS, rank, size, &begin, &count);
    long half = count / 2;
    CHECK_OK(nullspace_collector_add_factored(factored, 1, hidden + begin * H, half, H, up_w, up_b, scale));
    CHECK_OK(nullspace_collector_add_factored(factored, 1, hidden + (begin + half) * H, count - half, H, up_w, up_b,
                                              scale));
    CHECK_OK(nullspace_collector_add(explicit_rows, 1, rows + begin * D, count));
    /* Block 0 mixes raw rows and factored rows on every rank. */
    CHECK_OK(nullspace_collector_add(factored, 0, rows, 20));
    CHECK_OK(nullspace_collector_add_factored(factored, 0, hidden + 20 * H, ROWS - 20, H, up_w, up_b, scale));
    CHECK_OK(nullspace_collector_add(explicit_rows, 0, rows, ROWS));
    CHECK_EQ_INT(nullspace_collector_rows(factored, 1), count);

    double from_factored[D * D], from_rows[D * D];
    CHECK_OK(nullspace_collector_allreduce(factored, 1, from_factored));
    CHECK_OK(nullspace_collector_allreduce(explicit_rows, 1, from_rows));
    double largest = 0;
    for (int x = 0; x < D * D; x++)
        largest = fmax(largest, fabs(from_rows[x]));
    test_compare_doubles("factored covariance", from_factored, from_rows, D * D, 1e-6, largest);
    CHECK_OK(nullspace_collector_allreduce(factored, 0, from_factored));
    CHECK_OK(nullspace_collector_allreduce(explicit_rows, 0, from_rows));
    test_compare_doubles("raw then factored covariance", from_factored, from_rows, D * D, 1e-6, largest);

    nullspace_decomposition a, b;
    CHECK_OK(nullspace_decompose(factored, NULLSPACE_SOLVER_SLEPC, 0, &a));
    CHECK_OK(nullspace_decompose(explicit_rows, NULLSPACE_SOLVER_SLEPC, 0, &b));
    if (a.top != NULL && b.top != NULL) {
        test_compare_doubles("factored top eigenvalues", a.eigvals + D, b.eigvals + D, 2, 1e-5, 1.0);
        double distance = subspace_distance(a.top + D * 2, b.top + D * 2, D, 2);
        if (!(distance < 1e-4))
            test_report_failure(__FILE__, __LINE__, "factored rows: top-2 subspace %g away", distance);
    }
    nullspace_decomposition_free(&a);
    nullspace_decomposition_free(&b);
    CHECK_FAILS_WITH(nullspace_collector_add_factored(factored, 0, hidden, 3, 0, up_w, up_b, scale),
                     "invalid factored rows for block 0");
    nullspace_collector_destroy(factored);
    nullspace_collector_destroy(explicit_rows);
}

int main(int argc, char **argv)
{
    CHECK_OK(dist_init(argv[0], argc - 1, argv + 1));
    rank = dist_rank();
    size = dist_size();
    test_covariance_reduction_matches_one_rank();
    test_lambda_hand_built_k1(NULLSPACE_SOLVER_LAPACK);
    test_lambda_hand_built_k1(NULLSPACE_SOLVER_SCALAPACK);
    test_lambda_hand_built_k1(NULLSPACE_SOLVER_SLEPC);
    test_lambda_hand_built_k2();
    test_solvers_agree();
    test_build_bases_on_all_ranks();
    test_factored_rows_match_explicit();
    test_slepc_zero_features();

    test_sum_failures_over_ranks();
    dist_finalize();
    return test_finish("test_nullspace_mpi");
}

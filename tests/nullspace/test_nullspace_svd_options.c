/* The SLEPc solver honours -svd_* options from the PETSc options database:
 * another SVD type gives the same top-k subspace, and an iteration limit
 * that cannot converge fails with a message naming the block and the fix. */
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/nullspace.h"
#include "nullspace_test_data.h"
#include "test_util.h"

#include <petscsys.h>

enum { D = 40, BLOCKS = 2, K = 2, ROWS = 200, RANK = 8 };

/* Top-k vectors of block 0 with the current options; 0 or -1. */
static int slepc_top(nullspace_collector *collector, double *top)
{
    nullspace_decomposition result;
    DMNSP_TRY(nullspace_decompose(collector, NULLSPACE_SOLVER_SLEPC, 0, &result));
    memcpy(top, result.top, sizeof(double) * D * K);
    nullspace_decomposition_free(&result);
    return 0;
}

/* Largest |cos| deficit between matching columns (1 - |a_q . b_q|). */
static double column_mismatch(const double *a, const double *b)
{
    double worst = 0;
    for (int q = 0; q < K; q++) {
        double dot = 0;
        for (int r = 0; r < D; r++)
            dot += a[r * K + q] * b[r * K + q];
        worst = fmax(worst, 1.0 - fabs(dot));
    }
    return worst;
}

int main(int argc, char **argv)
{
    CHECK_OK(dist_init(argv[0], argc - 1, argv + 1));
    int rank = dist_rank(), size = dist_size();

    nullspace_options o;
    nullspace_options_default(&o, BLOCKS, D, 4);
    o.top_select = K;
    nullspace_collector *collector = NULL;
    CHECK_OK(nullspace_collector_create(&o, 1, ROWS, &collector));
    test_random g = {77};
    double directions[RANK * D];
    float row[D];
    for (int x = 0; x < RANK * D; x++)
        directions[x] = test_normal(&g);
    for (int l = 0; l < BLOCKS; l++)
        for (long i = rank; i < ROWS; i += size) {
            test_feature_row(40 + l, i, directions, RANK, D, 0.01, row);
            CHECK_OK(nullspace_collector_add(collector, l, row, 1));
        }

    double reference[D * K], other[D * K];
    CHECK_OK(slepc_top(collector, reference));

    /* The cross-product solver instead of the default thick-restart Lanczos. */
    CHECK_EQ_INT(PetscOptionsSetValue(NULL, "-svd_type", "cross"), 0);
    CHECK_OK(slepc_top(collector, other));
    double mismatch = column_mismatch(reference, other);
    if (!(mismatch < 1e-9))
        test_report_failure(__FILE__, __LINE__, "-svd_type cross: top vectors differ by %g", mismatch);
    CHECK_EQ_INT(PetscOptionsClearValue(NULL, "-svd_type"), 0);

    /* One iteration with an unreachable tolerance cannot converge. */
    CHECK_EQ_INT(PetscOptionsSetValue(NULL, "-svd_max_it", "1"), 0);
    CHECK_EQ_INT(PetscOptionsSetValue(NULL, "-svd_tol", "1e-30"), 0);
    CHECK_FAILS_WITH(slepc_top(collector, other), "SLEPc SVD of block 0 converged");
    CHECK_STR_CONTAINS(dmnsp_last_error(), "raise -svd_max_it");
    CHECK_EQ_INT(PetscOptionsClearValue(NULL, "-svd_max_it"), 0);
    CHECK_EQ_INT(PetscOptionsClearValue(NULL, "-svd_tol"), 0);

    /* With the options cleared the default solver works again. */
    CHECK_OK(slepc_top(collector, other));
    CHECK(column_mismatch(reference, other) < 1e-12);

    nullspace_collector_destroy(collector);
    test_sum_failures_over_ranks();
    dist_finalize();
    return test_finish("test_nullspace_svd_options");
}

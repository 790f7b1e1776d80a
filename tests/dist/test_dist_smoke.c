/* MPI + PETSc + SLEPc smoke test: starts everything through dist_init,
 * checks rank facts and sharding, does a reduction over MPI and one over a
 * PETSc vector, and checks that dist_check_all reports a failure on every
 * rank when only one rank fails. */
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "test_util.h"

#include <petscvec.h>
#include <slepcsvd.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    CHECK_OK(dist_init(argv[0], argc - 1, argv + 1));
    int rank = dist_rank(), size = dist_size();

    /* MPI reduction: sum of 1..size. */
    long mine = rank + 1, total = 0;
    MPI_Allreduce(&mine, &total, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    CHECK_EQ_INT(total, (long)size * (size + 1) / 2);

    /* Sharding covers 0..n-1 exactly once, in rank order. */
    long begin = 0, count = 0, covered = 0;
    dist_shard(10, rank, size, &begin, &count);
    MPI_Allreduce(&count, &covered, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    CHECK_EQ_INT(covered, 10);

    /* PETSc reduction: a distributed vector of ones has norm1 = global size. */
    Vec v;
    PetscReal norm = 0;
    CHECK_EQ_INT(VecCreateMPI(PETSC_COMM_WORLD, 4, PETSC_DETERMINE, &v), 0);
    CHECK_EQ_INT(VecSet(v, 1.0), 0);
    CHECK_EQ_INT(VecNorm(v, NORM_1, &norm), 0);
    CHECK_NEAR(norm, 4.0 * size, 1e-12);
    CHECK_EQ_INT(VecDestroy(&v), 0);

    /* SLEPc is initialised: an SVD object can be created. */
    SVD svd;
    CHECK_EQ_INT(SVDCreate(PETSC_COMM_WORLD, &svd), 0);
    CHECK_EQ_INT(SVDDestroy(&svd), 0);

    /* One failing rank makes every rank see a failure, without a hang. */
    int status = (rank == size - 1) ? dmnsp_fail("deliberate failure on the last rank") : 0;
    CHECK(dist_check_all(status) != 0);
    CHECK(dist_check_all(0) == 0);

    /* dist_any_failed: every rank sees the failure; the others record a
     * secondary message naming the failing rank, and the original message
     * is the one reported. */
    status = (rank == size - 1) ? dmnsp_fail("original failure") : 0;
    CHECK(dist_any_failed(status) != 0);
    if (rank != size - 1) {
        CHECK(dmnsp_last_error_is_secondary());
        char expected[64];
        snprintf(expected, sizeof expected, "rank %d failed", size - 1);
        CHECK_STR_CONTAINS(dmnsp_last_error(), expected);
    } else {
        CHECK(!dmnsp_last_error_is_secondary());
    }
    CHECK(dist_any_failed(0) == 0);

    test_sum_failures_over_ranks();
    dist_finalize();
    return test_finish("test_dist_smoke");
}

/* nullspace SLEPc solver: top-k right singular vectors of a block's
 * distributed activation matrix (tokens x d, rows on the ranks that
 * produced them). */
#include "nullspace_internal.h"

#include "dmnsp/error.h"

#include <slepcsvd.h>
#include <string.h>

/* Default relative tolerance of the SVD residual; -svd_tol overrides it.
 * Tighter than SLEPc's 1e-8 so that the top-k subspace matches the dense
 * solvers' to about 1e-7 in angle (the tested agreement is 1e-6). */
#define SVD_DEFAULT_TOLERANCE 1e-10

/* Runs a PETSc/SLEPc call; on failure records the call and PETSc's text
 * for the error code and jumps to the cleanup. */
#define PETSC_CHECK(call)                                                                                    \
    do {                                                                                                     \
        PetscErrorCode petsc_error_ = (call);                                                                \
        if (petsc_error_ != 0) {                                                                             \
            const char *petsc_text_ = NULL;                                                                  \
            PetscErrorMessage(petsc_error_, &petsc_text_, NULL);                                             \
            status = dmnsp_fail("nullspace: %s failed for block %d (PETSc error %d: %s)", #call, block,     \
                                (int)petsc_error_, petsc_text_ ? petsc_text_ : "unknown");                   \
            goto done;                                                                                       \
        }                                                                                                    \
    } while (0)

int nullspace_slepc_top(const nullspace_collector *c, int block, double *values, double *top)
{
    int status = 0;
    Mat activations = NULL;
    SVD svd = NULL;
    Vec right = NULL, gathered = NULL;
    VecScatter scatter = NULL;
    PetscInt d = c->width, k = c->top_select, global_rows = 0, global_cols = 0, converged = 0, lda = 0;
    PetscInt local_rows = (PetscInt)c->row_count[block];
    const float *rows = c->rows[block];

    /* Create the operator: a parallel dense matrix, this rank's rows
     * stored column-major by PETSc. */
    PETSC_CHECK(MatCreateDense(PETSC_COMM_WORLD, local_rows, PETSC_DECIDE, PETSC_DETERMINE, d, NULL, &activations));
    PetscScalar *values_local = NULL;
    PETSC_CHECK(MatDenseGetArrayWrite(activations, &values_local));
    PETSC_CHECK(MatDenseGetLDA(activations, &lda));
    /* Transpose in tiles so that both the row-major source and the
     * column-major target are read and written within cache lines. */
    enum { TILE = 64 };
    for (PetscInt r0 = 0; r0 < local_rows; r0 += TILE) {
        PetscInt r1 = r0 + TILE < local_rows ? r0 + TILE : local_rows;
        for (PetscInt c0 = 0; c0 < d; c0 += TILE) {
            PetscInt c1 = c0 + TILE < d ? c0 + TILE : d;
            for (PetscInt col = c0; col < c1; col++) {
                PetscScalar *column = values_local + (size_t)col * lda;
                for (PetscInt r = r0; r < r1; r++)
                    column[r] = rows[(size_t)r * d + col];
            }
        }
    }
    PETSC_CHECK(MatDenseRestoreArrayWrite(activations, &values_local));
    PETSC_CHECK(MatAssemblyBegin(activations, MAT_FINAL_ASSEMBLY));
    PETSC_CHECK(MatAssemblyEnd(activations, MAT_FINAL_ASSEMBLY));
    PETSC_CHECK(MatGetSize(activations, &global_rows, &global_cols));
    if (global_rows < k) {
        status = dmnsp_fail("nullspace: block %d has %ld rows over all ranks, fewer than top_select %ld", block,
                            (long)global_rows, (long)k);
        goto done;
    }

    /* Configure the solver: defaults first, then the options database
     * (-svd_type, -svd_tol, -svd_ncv, ...) overrides them. */
    PETSC_CHECK(SVDCreate(PETSC_COMM_WORLD, &svd));
    PETSC_CHECK(SVDSetOperators(svd, activations, NULL));
    PETSC_CHECK(SVDSetDimensions(svd, k, PETSC_DEFAULT, PETSC_DEFAULT));
    PETSC_CHECK(SVDSetWhichSingularTriplets(svd, SVD_LARGEST));
    PETSC_CHECK(SVDSetType(svd, SVDTRLANCZOS));
    PETSC_CHECK(SVDSetTolerances(svd, SVD_DEFAULT_TOLERANCE, PETSC_DEFAULT));
    PETSC_CHECK(SVDSetFromOptions(svd));

    /* Solve. */
    PETSC_CHECK(SVDSolve(svd));
    PETSC_CHECK(SVDGetConverged(svd, &converged));
    if (converged < k) {
        SVDConvergedReason reason = SVD_CONVERGED_ITERATING;
        SVDGetConvergedReason(svd, &reason);
        status = dmnsp_fail("nullspace: SLEPc SVD of block %d converged %ld of %ld singular triplets (reason %s); "
                            "raise -svd_max_it or -svd_ncv, or loosen -svd_tol",
                            block, (long)converged, (long)k, SVDConvergedReasons[reason]);
        goto done;
    }

    /* Gather each right singular vector on every rank. */
    PETSC_CHECK(MatCreateVecs(activations, &right, NULL));
    PETSC_CHECK(VecScatterCreateToAll(right, &scatter, &gathered));
    for (PetscInt i = 0; i < k; i++) {
        PetscReal sigma = 0;
        const PetscScalar *vector = NULL;
        PETSC_CHECK(SVDGetSingularTriplet(svd, i, &sigma, NULL, right));
        values[i] = (double)sigma * (double)sigma;
        PETSC_CHECK(VecScatterBegin(scatter, right, gathered, INSERT_VALUES, SCATTER_FORWARD));
        PETSC_CHECK(VecScatterEnd(scatter, right, gathered, INSERT_VALUES, SCATTER_FORWARD));
        PETSC_CHECK(VecGetArrayRead(gathered, &vector));
        for (PetscInt r = 0; r < d; r++)
            top[(size_t)r * k + i] = vector[r];
        PETSC_CHECK(VecRestoreArrayRead(gathered, &vector));
    }

done:
    VecScatterDestroy(&scatter);
    VecDestroy(&gathered);
    VecDestroy(&right);
    SVDDestroy(&svd);
    MatDestroy(&activations);
    return status;
}

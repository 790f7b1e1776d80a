/* nullspace solvers: rank groups, LAPACK and ScaLAPACK eigendecompositions,
 * and the decomposition of every block that ties them together. */
#include "nullspace_internal.h"

#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Fortran LAPACK (OpenBLAS); the trailing size_t arguments are the hidden
 * lengths of the character arguments in gfortran's calling convention. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w, double *work,
             const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len, size_t uplo_len);
void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a, const int *lda,
             const double *vl, const double *vu, const int *il, const int *iu, const double *abstol, int *m,
             double *w, double *z, const int *ldz, int *isuppz, double *work, const int *lwork, int *iwork,
             const int *liwork, int *info, size_t jobz_len, size_t range_len, size_t uplo_len);

/* BLACS and ScaLAPACK (libscalapack-openmpi, 32-bit integers). */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *context, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int context, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int context);
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
               const int *icsrc, const int *context, const int *lld, int *info);
void Cpdgemr2d(int m, int n, double *a, int ia, int ja, int *desca, double *b, int ib, int jb, int *descb,
               int context);
void pdsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *ia, const int *ja,
              const int *desca, double *w, double *z, const int *iz, const int *jz, const int *descz, double *work,
              const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len, size_t uplo_len);

/* ------------------------------------------------------------------------
 * Rank groups
 * ------------------------------------------------------------------------ */
int nullspace_groups_create(int blocks, nullspace_groups *groups)
{
    memset(groups, 0, sizeof *groups);
    groups->comm = MPI_COMM_NULL;
    MPI_Comm_rank(MPI_COMM_WORLD, &groups->world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &groups->world_size);
    groups->group_count = groups->world_size < blocks ? groups->world_size : blocks;
    groups->group = groups->world_rank % groups->group_count;
    if (MPI_Comm_split(MPI_COMM_WORLD, groups->group, groups->world_rank, &groups->comm) != MPI_SUCCESS)
        return dmnsp_fail("nullspace: MPI_Comm_split into %d block groups failed", groups->group_count);
    MPI_Comm_rank(groups->comm, &groups->group_rank);
    MPI_Comm_size(groups->comm, &groups->group_size);
    return 0;
}

void nullspace_groups_free(nullspace_groups *groups)
{
    if (groups->comm != MPI_COMM_NULL)
        MPI_Comm_free(&groups->comm);
}

/* ------------------------------------------------------------------------
 * LAPACK
 * ------------------------------------------------------------------------ */

/* Writes the column-major eigenvectors Z (ascending, d x count, leading
 * dimension d) as row-major columns in descending order into VECTORS
 * (d x count), and reverses VALUES. */
static void store_descending(const double *z, double *values, int d, int count, double *vectors)
{
    for (int c = 0; c < count; c++) {
        const double *column = z + (size_t)c * d;
        int target = count - 1 - c;
        for (int r = 0; r < d; r++)
            vectors[(size_t)r * count + target] = column[r];
    }
    for (int i = 0; i < count / 2; i++) {
        double swap = values[i];
        values[i] = values[count - 1 - i];
        values[count - 1 - i] = swap;
    }
}

int nullspace_lapack_eigen(double *a, int d, int k, double *values, double *vectors)
{
    int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
    double work_query = 0;
    double *work = NULL, *z = NULL;
    int *iwork = NULL, *isuppz = NULL;
    int status = -1;

    if (k >= d) {
        /* All eigenpairs: divide and conquer; A is overwritten by Z. */
        dsyevd_("V", "U", &d, a, &d, values, &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1);
        if (info != 0)
            return dmnsp_fail("nullspace: dsyevd workspace query failed (info %d)", info);
        lwork = (int)work_query;
        liwork = iwork_query;
        work = dmnsp_malloc((size_t)lwork * sizeof(double), "dsyevd workspace");
        iwork = dmnsp_malloc((size_t)liwork * sizeof(int), "dsyevd integer workspace");
        if (work == NULL || iwork == NULL)
            goto done;
        dsyevd_("V", "U", &d, a, &d, values, work, &lwork, iwork, &liwork, &info, 1, 1);
        if (info != 0) {
            dmnsp_fail("nullspace: dsyevd failed on a %d x %d covariance (info %d)", d, d, info);
            goto done;
        }
        store_descending(a, values, d, d, vectors);
        status = 0;
        goto done;
    }

    /* Only the top K: MRRR for eigenvalue indices d-k+1..d (ascending). */
    int il = d - k + 1, iu = d, found = 0;
    double unused = 0, abstol = 0;
    z = dmnsp_malloc((size_t)d * k * sizeof(double), "dsyevr eigenvectors");
    isuppz = dmnsp_malloc((size_t)2 * k * sizeof(int), "dsyevr support");
    if (z == NULL || isuppz == NULL)
        goto done;
    dsyevr_("V", "I", "U", &d, a, &d, &unused, &unused, &il, &iu, &abstol, &found, values, z, &d, isuppz, &work_query,
            &lwork, &iwork_query, &liwork, &info, 1, 1, 1);
    if (info != 0) {
        dmnsp_fail("nullspace: dsyevr workspace query failed (info %d)", info);
        goto done;
    }
    lwork = (int)work_query;
    liwork = iwork_query;
    work = dmnsp_malloc((size_t)lwork * sizeof(double), "dsyevr workspace");
    iwork = dmnsp_malloc((size_t)liwork * sizeof(int), "dsyevr integer workspace");
    if (work == NULL || iwork == NULL)
        goto done;
    dsyevr_("V", "I", "U", &d, a, &d, &unused, &unused, &il, &iu, &abstol, &found, values, z, &d, isuppz, work, &lwork,
            iwork, &liwork, &info, 1, 1, 1);
    if (info != 0 || found != k) {
        dmnsp_fail("nullspace: dsyevr failed on a %d x %d covariance (info %d, %d of %d eigenpairs)", d, d, info,
                   found, k);
        goto done;
    }
    store_descending(z, values, d, k, vectors);
    status = 0;

done:
    free(work);
    free(iwork);
    free(z);
    free(isuppz);
    return status;
}

/* ------------------------------------------------------------------------
 * ScaLAPACK
 * ------------------------------------------------------------------------ */

/* A process grid as square as P allows: nprow <= npcol, nprow * npcol = P. */
static void grid_shape(int p, int *nprow, int *npcol)
{
    int rows = (int)sqrt((double)p);
    while (rows > 1 && p % rows != 0)
        rows--;
    *nprow = rows;
    *npcol = p / rows;
}

int nullspace_scalapack_eigen(const nullspace_groups *groups, double *a, int d, double *values, double *vectors)
{
    int nprow = 1, npcol = 1, myrow = -1, mycol = -1;
    grid_shape(groups->group_size, &nprow, &npcol);

    /* Two contexts over the group: the nprow x npcol grid for pdsyevd and
     * a 1 x 1 grid on the group's rank 0, which stores the whole matrix. */
    int handle = Csys2blacs_handle(groups->comm);
    int grid = handle, root = handle;
    Cblacs_gridinit(&grid, "R", nprow, npcol);
    Cblacs_gridinit(&root, "R", 1, 1);
    Cblacs_gridinfo(grid, &nprow, &npcol, &myrow, &mycol);

    /* Square blocks (pdsyevd needs MB = NB); small ones for small d so that
     * every process of the grid holds part of the matrix. */
    int largest = nprow > npcol ? nprow : npcol;
    int nb = d / (2 * largest);
    if (nb > 64)
        nb = 64;
    if (nb < 4)
        nb = 4;
    int zero = 0, one = 1, info = 0;
    int local_rows = numroc_(&d, &nb, &myrow, &zero, &nprow);
    int local_cols = numroc_(&d, &nb, &mycol, &zero, &npcol);
    int lld = local_rows > 1 ? local_rows : 1;
    int desc_a[9], desc_z[9], desc_full[9];
    memset(desc_full, 0, sizeof desc_full);
    desc_full[1] = -1;

    double *local_a = NULL, *local_z = NULL, *work = NULL, *full_z = NULL;
    int *iwork = NULL;
    int status = -1;

    descinit_(desc_a, &d, &d, &nb, &nb, &zero, &zero, &grid, &lld, &info);
    if (info != 0) {
        dmnsp_fail("nullspace: descinit for a %d x %d matrix on a %d x %d grid failed (info %d)", d, d, nprow, npcol,
                   info);
        goto done;
    }
    memcpy(desc_z, desc_a, sizeof desc_a);
    if (groups->group_rank == 0) {
        descinit_(desc_full, &d, &d, &d, &d, &zero, &zero, &root, &d, &info);
        if (info != 0) {
            dmnsp_fail("nullspace: descinit for the gathered %d x %d matrix failed (info %d)", d, d, info);
            goto done;
        }
        full_z = dmnsp_malloc((size_t)d * d * sizeof(double), "ScaLAPACK gathered eigenvectors");
    }
    size_t local_count = (size_t)lld * (local_cols > 1 ? local_cols : 1);
    local_a = dmnsp_malloc(local_count * sizeof(double), "ScaLAPACK local covariance");
    local_z = dmnsp_malloc(local_count * sizeof(double), "ScaLAPACK local eigenvectors");
    int allocated = local_a != NULL && local_z != NULL && (groups->group_rank != 0 || full_z != NULL);
    int all_allocated = 0;
    MPI_Allreduce(&allocated, &all_allocated, 1, MPI_INT, MPI_MIN, groups->comm);
    if (!all_allocated) {
        if (allocated)
            dmnsp_fail_secondary("nullspace: out of memory on another rank of the ScaLAPACK group");
        goto done;
    }

    /* The covariance is symmetric, so its row-major copy on rank 0 is also
     * its column-major form. */
    Cpdgemr2d(d, d, a, 1, 1, desc_full, local_a, 1, 1, desc_a, grid);

    int lwork = -1, liwork = -1, iwork_query = 0;
    double work_query = 0;
    pdsyevd_("V", "U", &d, local_a, &one, &one, desc_a, values, local_z, &one, &one, desc_z, &work_query, &lwork,
             &iwork_query, &liwork, &info, 1, 1);
    if (info != 0) {
        dmnsp_fail("nullspace: pdsyevd workspace query failed (info %d)", info);
        goto done;
    }
    lwork = (int)work_query;
    liwork = iwork_query;
    if (liwork < 7 * d + 8 * npcol + 2)
        liwork = 7 * d + 8 * npcol + 2;
    work = dmnsp_malloc((size_t)lwork * sizeof(double), "pdsyevd workspace");
    iwork = dmnsp_malloc((size_t)liwork * sizeof(int), "pdsyevd integer workspace");
    allocated = work != NULL && iwork != NULL;
    MPI_Allreduce(&allocated, &all_allocated, 1, MPI_INT, MPI_MIN, groups->comm);
    if (!all_allocated) {
        if (allocated)
            dmnsp_fail_secondary("nullspace: out of memory on another rank of the ScaLAPACK group");
        goto done;
    }
    pdsyevd_("V", "U", &d, local_a, &one, &one, desc_a, values, local_z, &one, &one, desc_z, work, &lwork, iwork,
             &liwork, &info, 1, 1);
    if (info != 0) {
        dmnsp_fail("nullspace: pdsyevd failed on a %d x %d covariance over a %d x %d grid (info %d)", d, d, nprow,
                   npcol, info);
        goto done;
    }

    Cpdgemr2d(d, d, local_z, 1, 1, desc_z, full_z, 1, 1, desc_full, grid);
    if (groups->group_rank == 0)
        store_descending(full_z, values, d, d, vectors);
    status = 0;

done:
    free(local_a);
    free(local_z);
    free(work);
    free(iwork);
    free(full_z);
    if (root >= 0)
        Cblacs_gridexit(root);
    if (grid >= 0)
        Cblacs_gridexit(grid);
    Cfree_blacs_system_handle(handle);
    return status;
}

/* ------------------------------------------------------------------------
 * Decomposition of every block
 * ------------------------------------------------------------------------ */
void nullspace_decomposition_free(nullspace_decomposition *result)
{
    free(result->eigvals);
    free(result->eigvecs);
    free(result->top);
    result->eigvals = result->eigvecs = result->top = NULL;
}

/* Copies the first K columns of the eigenvector matrix VECTORS (d x d). */
static void copy_top_columns(const double *vectors, int d, int k, double *top)
{
    for (int r = 0; r < d; r++)
        memcpy(top + (size_t)r * k, vectors + (size_t)r * d, (size_t)k * sizeof(double));
}

static int all_finite(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* Decomposes the covariances this rank's group owns (LAPACK or ScaLAPACK)
 * and broadcasts every block's results from its owner. */
static int decompose_dense(nullspace_collector *c, const nullspace_groups *groups, nullspace_solver solver, int full,
                           nullspace_decomposition *result)
{
    int L = c->blocks, d = c->width, k = c->top_select;
    int G = groups->group_count;
    int owned_count = (L - groups->group + G - 1) / G; /* blocks group, group + G, ... */
    int is_owner = groups->group_rank == 0;
    int status = 0;

    nullspace_collector_update_covariance(c);

    /* Covariance slots of the blocks this rank owns (slot = block / G). */
    double *owned = NULL, *vectors = NULL;
    if (is_owner) {
        owned = dmnsp_malloc((size_t)owned_count * d * d * sizeof(double), "nullspace owned covariances");
        if (owned == NULL)
            status = -1;
    }
    if (dist_any_failed(status) != 0)
        return -1;

    for (int l = 0; l < L; l++) {
        int owner = nullspace_block_owner(groups, l);
        const double *local = c->covariance + (size_t)l * d * d;
        double *target = owner == groups->world_rank ? owned + (size_t)(l / G) * d * d : NULL;
        if (MPI_Reduce(local, target, d * d, MPI_DOUBLE, MPI_SUM, owner, MPI_COMM_WORLD) != MPI_SUCCESS) {
            free(owned);
            return dmnsp_fail("nullspace: MPI_Reduce of the block %d covariance to rank %d failed", l, owner);
        }
        if (target != NULL) {
            nullspace_symmetrize_upper(target, d);
            if (status == 0 && !all_finite(target, (size_t)d * d))
                status = dmnsp_fail("nullspace: the covariance of block %d contains non-finite values (the adapter "
                                    "outputs overflowed or are NaN)",
                                    l);
        }
    }
    if (dist_any_failed(status) != 0) {
        free(owned);
        return -1;
    }

    /* Owners (with their group for ScaLAPACK) decompose their blocks. */
    int use_group = solver == NULLSPACE_SOLVER_SCALAPACK;
    if (use_group || is_owner) {
        vectors = dmnsp_malloc((size_t)d * d * sizeof(double), "nullspace eigenvectors");
        if (vectors == NULL)
            status = -1;
    }
    for (int slot = 0; slot < owned_count && status == 0; slot++) {
        int l = groups->group + slot * G;
        double *values = result->eigvals + (size_t)l * d;
        double *a = is_owner ? owned + (size_t)slot * d * d : NULL;
        if (use_group) {
            status = nullspace_scalapack_eigen(groups, a, d, values, vectors);
        } else if (is_owner) {
            status = nullspace_lapack_eigen(a, d, full ? d : k, values, vectors);
        }
        if (status != 0) {
            dmnsp_fail_prefix("block %d", l);
            break;
        }
        if (is_owner) {
            if (full)
                memcpy(result->eigvecs + (size_t)l * d * d, vectors, (size_t)d * d * sizeof(double));
            if (full || use_group)
                copy_top_columns(vectors, d, k, result->top + (size_t)l * d * k);
            else
                memcpy(result->top + (size_t)l * d * k, vectors, (size_t)d * k * sizeof(double));
        }
    }
    free(vectors);
    free(owned);
    if (dist_any_failed(status) != 0)
        return -1;

    /* Every rank gets every block's results from the owner. */
    for (int l = 0; l < L; l++) {
        int owner = nullspace_block_owner(groups, l);
        int ok = MPI_Bcast(result->eigvals + (size_t)l * d, d, MPI_DOUBLE, owner, MPI_COMM_WORLD) == MPI_SUCCESS;
        ok = ok && MPI_Bcast(result->top + (size_t)l * d * k, d * k, MPI_DOUBLE, owner, MPI_COMM_WORLD) == MPI_SUCCESS;
        if (full)
            ok = ok && MPI_Bcast(result->eigvecs + (size_t)l * d * d, d * d, MPI_DOUBLE, owner, MPI_COMM_WORLD) ==
                           MPI_SUCCESS;
        if (!ok)
            return dmnsp_fail("nullspace: MPI_Bcast of the block %d bases from rank %d failed", l, owner);
    }
    return 0;
}

/* Sets *BLOCK to the first block whose kept rows are all zero on every
 * rank, or -1, and *COUNT to the number of such blocks. Collective. */
static int find_zero_block(const nullspace_collector *c, int *block, int *count)
{
    int L = c->blocks;
    size_t d = (size_t)c->width;
    double *sums = dmnsp_calloc((size_t)L, sizeof(double), "nullspace row norms");
    int status = sums == NULL ? -1 : 0;
    for (int l = 0; l < L && status == 0; l++) {
        const float *rows = c->rows[l];
        size_t values = (size_t)c->row_count[l] * d;
        for (size_t i = 0; i < values; i++)
            sums[l] += fabs((double)rows[i]);
    }
    if (dist_any_failed(status) != 0) {
        free(sums);
        return -1;
    }
    if (MPI_Allreduce(MPI_IN_PLACE, sums, L, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        status = dmnsp_fail("nullspace: summing the row norms over the ranks failed");
    *block = -1;
    *count = 0;
    for (int l = 0; l < L && status == 0; l++) {
        if (sums[l] != 0)
            continue;
        if (*block < 0)
            *block = l;
        (*count)++;
    }
    free(sums);
    return status;
}

int nullspace_decompose(nullspace_collector *c, nullspace_solver solver, int full, nullspace_decomposition *result)
{
    memset(result, 0, sizeof *result);
    int L = c->blocks, d = c->width, k = c->top_select;
    int ranks = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    if (solver == NULLSPACE_SOLVER_AUTO)
        solver = ranks > L ? NULLSPACE_SOLVER_SCALAPACK : NULLSPACE_SOLVER_LAPACK;
    if (solver == NULLSPACE_SOLVER_SLEPC && !c->keep_rows)
        return dmnsp_fail("nullspace: the slepc solver needs a collector that keeps its rows (keep_rows = 1)");

    result->blocks = L;
    result->width = d;
    result->top_select = k;
    result->solver = solver;
    result->eigvals = dmnsp_calloc((size_t)L * d, sizeof(double), "nullspace eigenvalues");
    result->top = dmnsp_calloc((size_t)L * d * k, sizeof(double), "nullspace top eigenvectors");
    int status = result->eigvals == NULL || result->top == NULL ? -1 : 0;
    if (status == 0 && full) {
        result->eigvecs = dmnsp_calloc((size_t)L * d * d, sizeof(double), "nullspace eigenvectors");
        if (result->eigvecs == NULL)
            status = -1;
    }
    if (dist_any_failed(status) != 0) {
        nullspace_decomposition_free(result);
        return -1;
    }

    /* Every block needs rows from at least one rank. */
    long *rows = dmnsp_malloc((size_t)L * sizeof(long), "nullspace row totals");
    if (rows == NULL || MPI_Allreduce(c->row_count, rows, L, MPI_LONG, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS) {
        free(rows);
        nullspace_decomposition_free(result);
        return dmnsp_fail("nullspace: summing the row counts over the ranks failed");
    }
    for (int l = 0; l < L && status == 0; l++) {
        if (rows[l] < 1)
            status = dmnsp_fail("nullspace: no rows were collected for block %d on any rank", l);
    }
    free(rows);
    if (status != 0) {
        nullspace_decomposition_free(result);
        return -1;
    }

    nullspace_groups groups;
    status = nullspace_groups_create(L, &groups);
    if (dist_any_failed(status) != 0) {
        nullspace_decomposition_free(result);
        return -1;
    }

    int zero_block = -1, zero_count = 0;
    if (solver == NULLSPACE_SOLVER_SLEPC)
        status = find_zero_block(c, &zero_block, &zero_count);
    if (status == 0 && zero_block >= 0) {
        /* SLEPc's Lanczos solvers stop with an error on a zero operator. */
        log_warn("nullspace: the features of %d of %d blocks (the first is block %d) are all zero, for example "
                 "from untrained adapters, whose up projection starts at 0; LAPACK decomposes this step instead "
                 "of SLEPc",
                 zero_count, L, zero_block);
        solver = NULLSPACE_SOLVER_LAPACK;
        result->solver = solver;
    }

    if (status == 0 && solver == NULLSPACE_SOLVER_SLEPC) {
        /* The projector's top-k vectors come from SLEPc; full eigenpairs
         * (for lambda and checkpoints) from LAPACK on the owners. */
        if (full)
            status = decompose_dense(c, &groups, NULLSPACE_SOLVER_LAPACK, 1, result);
        for (int l = 0; l < L && status == 0; l++) {
            double values[k];
            status = nullspace_slepc_top(c, l, values, result->top + (size_t)l * d * k);
            if (status == 0 && !full)
                memcpy(result->eigvals + (size_t)l * d, values, (size_t)k * sizeof(double));
            status = dist_any_failed(status);
        }
    } else if (status == 0) {
        status = decompose_dense(c, &groups, solver, full, result);
    }
    nullspace_groups_free(&groups);
    if (status != 0)
        nullspace_decomposition_free(result);
    return status;
}

/* nullspace_internal: structures shared by the nullspace source files. */
#ifndef DMNSP_NULLSPACE_INTERNAL_H
#define DMNSP_NULLSPACE_INTERNAL_H

#include "dmnsp/nullspace.h"

#include <mpi.h>

struct nullspace_collector {
    int blocks, width, top_select;
    int keep_rows;
    double *covariance; /* L x d x d, upper triangle accumulated */
    double *chunk;      /* COLLECT_CHUNK_ROWS x d conversion buffer */
    long *row_count;    /* L, local rows since the last reset */
    long *covered_rows; /* L, kept rows already in the covariance */
    float **rows;       /* L pointers to row_capacity[l] x d floats (keep_rows) */
    long *row_capacity;
    /* Factored input: (b+1) x (b+1) Gram matrix, its rows, M = [up_w | up_b]
     * and M times the Gram matrix (d x (b+1)), all double, for the largest
     * bottleneck b seen so far. */
    int factored_bottleneck;
    double *hidden_gram, *hidden_chunk, *up_matrix, *up_times_gram;
};

/* The rank groups that share blocks: rank r is in group r mod G, block l
 * belongs to group l mod G, G = min(ranks, blocks); the lowest rank of a
 * group (its index) owns the group's blocks. */
typedef struct {
    int world_rank, world_size;
    int group_count; /* G */
    int group;       /* this rank's group */
    MPI_Comm comm;   /* this group's sub-communicator */
    int group_rank, group_size;
} nullspace_groups;

static inline int nullspace_block_owner(const nullspace_groups *groups, int block)
{
    return block % groups->group_count;
}

/* Collective: splits MPI_COMM_WORLD into the groups for BLOCKS blocks. */
int nullspace_groups_create(int blocks, nullspace_groups *groups);
void nullspace_groups_free(nullspace_groups *groups);

void nullspace_symmetrize_upper(double *a, int d);

/* Adds the kept rows not yet in the covariance (keep_rows collectors defer
 * the d x d products until a dense solver needs them). */
void nullspace_collector_update_covariance(nullspace_collector *collector);

/* Eigenvalues (descending) and eigenvectors of the symmetric A (d x d,
 * overwritten): LAPACK dsyevd for all of them (VECTORS d x d, column c =
 * eigenvector c) or dsyevr for the top K (VECTORS d x k, VALUES k). */
int nullspace_lapack_eigen(double *a, int d, int k, double *values, double *vectors);

/* ScaLAPACK pdsyevd of A (d x d, significant on the group's rank 0) over
 * the group's BLACS grid; VALUES (d, descending) and VECTORS (d x d) are
 * set on the group's rank 0. Collective over GROUPS->comm. */
int nullspace_scalapack_eigen(const nullspace_groups *groups, double *a, int d, double *values, double *vectors);

/* SLEPc truncated SVD of the activation matrix of BLOCK (rows on every
 * rank): top-k right singular vectors TOP (d x k) and VALUES (k) =
 * sigma^2, identical on every rank. Collective over MPI_COMM_WORLD. */
int nullspace_slepc_top(const nullspace_collector *collector, int block, double *values, double *top);

#endif

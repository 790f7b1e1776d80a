/* dist: MPI and PETSc/SLEPc lifetime, rank facts, and job-wide failure.
 *
 * dist_init() starts MPI (threads: MPI_THREAD_FUNNELED) and SLEPc (which
 * starts PETSc) with only the PETSc-style options the caller passes, so
 * dmnsp's own arguments never reach the PETSc options database.
 * dist_abort() prints the recorded error once, from the failing rank, and
 * ends every rank with MPI_Abort. dist_check_all() is the collective form:
 * when any rank reports failure, the lowest failing rank prints its message
 * and every rank gets a non-zero status back, so no rank waits forever.
 */
#ifndef DMNSP_DIST_H
#define DMNSP_DIST_H

#include <mpi.h>

typedef struct {
    int rank;
    int size;
    int petsc_started;
} dist_context;

/* Starts MPI and PETSc/SLEPc. PETSC_ARGV contains PETSc options only
 * ("-svd_type", "lanczos", "-log_view"); PROGRAM is argv[0]. */
int dist_init(const char *program, int petsc_argc, char **petsc_argv);
/* Ends PETSc/SLEPc and MPI; safe to call when dist_init never ran. */
void dist_finalize(void);

/* Sets the thread counts of a process when the environment sets none,
 * and describes the counts in use in SUMMARY. With OMP_NUM_THREADS unset,
 * OpenMP gets 1 thread. With OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS and
 * OMP_NUM_THREADS unset, OpenBLAS gets the cores this process may run on,
 * divided by RANKS_ON_NODE when the process is not bound to a subset of
 * the cores. Both libraries' idle threads spin, and on 2 cores an eval
 * with both at 2 threads took 5 times as long as with either at 1.
 * dist_init calls it with the ranks of the node. */
void dist_default_threads(int ranks_on_node, char *summary, size_t size);
/* The SUMMARY of the dist_default_threads call made by dist_init. */
const char *dist_thread_summary(void);
/* 1 when OpenMP and OpenBLAS both run several threads and OMP_WAIT_POLICY
 * is not passive, which makes their idle threads spin against each other
 * (an eval 2.6 times slower on 2 cores). */
int dist_threads_may_spin(void);

const dist_context *dist_get(void);
int dist_rank(void);
/* Ranks on this rank's node (sharing its memory), 1 before dist_init. */
int dist_ranks_on_node(void);
int dist_size(void);
int dist_is_initialized(void);

/* Prints "dmnsp: error: MESSAGE" (with the rank when size > 1) and aborts
 * the whole job (exit(1) when MPI is not running). Never returns. */
_Noreturn void dist_abort(const char *message);

/* Collective over MPI_COMM_WORLD: returns 0 when STATUS is 0 on every rank;
 * otherwise the lowest failing rank prints its dmnsp_last_error() and every
 * rank gets -1 back (with "failed on rank R" recorded on the others).
 * Original messages win over secondary ones (dmnsp_fail_secondary), so
 * the message printed is the cause, not an echo of it. */
int dist_check_all(int status);

/* Collective over MPI_COMM_WORLD, prints nothing: returns 0 when STATUS is
 * 0 on every rank, else -1 on every rank; ranks whose STATUS was 0 record
 * a secondary message naming the lowest failing rank. Use it after
 * rank-local work that can fail, before the next collective call. */
int dist_any_failed(int status);

/* Owner rank of visual block BLOCK among SIZE ranks (block mod size). */
static inline int dist_block_owner(int block, int size) { return block % size; }

/* Splits N items over SIZE ranks as evenly as possible in rank order:
 * rank R takes [*begin, *begin + *count). */
void dist_shard(long n, int rank, int size, long *begin, long *count);

#endif

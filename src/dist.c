/* dist: MPI and PETSc/SLEPc lifetime and job-wide failure handling. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "dmnsp/dist.h"

#include "dmnsp/error.h"
#include "dmnsp/log.h"

#include <cblas.h>
#include <omp.h>
#include <sched.h>
#include <slepcsys.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static dist_context context = {0, 1, 0};
static int mpi_started_here = 0;
static char thread_summary[160];

static const char petsc_help[] = "dmnsp: PETSc/SLEPc options (-svd_*, -eps_*, -log_view) follow the dmnsp arguments.\n";

/* Ranks sharing this rank's node, counted by dist_init. */
static int ranks_on_node = 1;

int dist_init(const char *program, int petsc_argc, char **petsc_argv)
{
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return dmnsp_fail("MPI_Init_thread failed");
        mpi_started_here = 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &context.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &context.size);
    log_set_rank(context.rank);

    MPI_Comm node = MPI_COMM_NULL;
    ranks_on_node = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &ranks_on_node);
        MPI_Comm_free(&node);
    }
    dist_default_threads(ranks_on_node, thread_summary, sizeof thread_summary);

    /* PETSc keeps pointers into argv, so the array lives until finalize. */
    static char *argv_store[256];
    static int argc_store;
    if (petsc_argc > 254)
        return dmnsp_fail("too many PETSc options (%d, the limit is 254)", petsc_argc);
    argc_store = 0;
    argv_store[argc_store++] = (char *)program;
    for (int i = 0; i < petsc_argc; i++)
        argv_store[argc_store++] = petsc_argv[i];
    argv_store[argc_store] = NULL;
    char **argv_pointer = argv_store;

    PetscErrorCode ierr = SlepcInitialize(&argc_store, &argv_pointer, NULL, petsc_help);
    if (ierr != 0)
        return dmnsp_fail("SlepcInitialize failed with PETSc error %d", (int)ierr);
    /* PETSc's own error handler would print a traceback and keep going;
     * dmnsp checks every return value and reports through dmnsp_fail. */
    PetscPushErrorHandler(PetscReturnErrorHandler, NULL);
    context.petsc_started = 1;
    return 0;
}

void dist_finalize(void)
{
    if (context.petsc_started) {
        PetscPopErrorHandler();
        SlepcFinalize();
        context.petsc_started = 0;
    }
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized && mpi_started_here)
        MPI_Finalize();
}

static int env_set(const char *name)
{
    const char *value = getenv(name);
    return value != NULL && value[0] != '\0';
}

void dist_default_threads(int ranks_on_node, char *summary, size_t size)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int cores = online > 0 ? (int)online : 1;
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof mask, &mask) == 0 && CPU_COUNT(&mask) > 0)
        cores = CPU_COUNT(&mask);
    /* A process bound to fewer cores than the node has does not share
     * them with the other ranks; an unbound one does. */
    int share = cores >= online && ranks_on_node > 1 ? ranks_on_node : 1;
    int blas_threads = cores / share > 0 ? cores / share : 1;

    const char *omp_source = "environment";
    if (!env_set("OMP_NUM_THREADS")) {
        omp_set_num_threads(1);
        omp_source = "default";
    }
    const char *blas_source = "environment";
    if (!env_set("OPENBLAS_NUM_THREADS") && !env_set("GOTO_NUM_THREADS") && !env_set("OMP_NUM_THREADS")) {
        openblas_set_num_threads(blas_threads);
        blas_source = "default";
    }
    snprintf(summary, size, "%d OpenBLAS (%s), %d OpenMP (%s), %d usable core%s", openblas_get_num_threads(),
             blas_source, omp_get_max_threads(), omp_source, cores, cores == 1 ? "" : "s");
}

const char *dist_thread_summary(void) { return thread_summary; }

int dist_threads_may_spin(void)
{
    const char *policy = getenv("OMP_WAIT_POLICY");
    int passive = policy != NULL && strcasecmp(policy, "passive") == 0;
    return omp_get_max_threads() > 1 && openblas_get_num_threads() > 1 && !passive;
}

const dist_context *dist_get(void) { return &context; }
int dist_ranks_on_node(void)
{
    return ranks_on_node;
}

int dist_rank(void) { return context.rank; }
int dist_size(void) { return context.size; }

int dist_is_initialized(void)
{
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    return initialized && !finalized;
}

_Noreturn void dist_abort(const char *message)
{
    if (message == NULL || message[0] == '\0')
        message = "unknown error";
    if (context.size > 1)
        fprintf(stderr, "dmnsp: error (rank %d): %s\n", context.rank, message);
    else
        fprintf(stderr, "dmnsp: error: %s\n", message);
    fflush(stderr);
    if (dist_is_initialized() && context.size > 1)
        MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

/* Lowest failing rank over MPI_COMM_WORLD, preferring ranks whose message
 * is an original one; context.size when no rank failed. */
static int lowest_failing_rank(int status)
{
    int failed = status != 0;
    int primary = failed && !dmnsp_last_error_is_secondary();
    int mine[2] = {primary ? context.rank : context.size, failed ? context.rank : context.size};
    int lowest[2];
    if (MPI_Allreduce(mine, lowest, 2, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS)
        dist_abort("MPI_Allreduce failed while checking the status of all ranks");
    return lowest[0] < context.size ? lowest[0] : lowest[1];
}

int dist_any_failed(int status)
{
    if (!dist_is_initialized())
        return status == 0 ? 0 : -1;
    int lowest = lowest_failing_rank(status);
    if (lowest == context.size)
        return 0;
    if (status == 0)
        dmnsp_fail_secondary("stopped because rank %d failed", lowest);
    return -1;
}

int dist_check_all(int status)
{
    if (!dist_is_initialized())
        return status == 0 ? 0 : -1;

    int lowest = lowest_failing_rank(status);
    if (lowest == context.size)
        return 0;
    /* The failing rank's message also goes to rank 0's log file. */
    char line[1200];
    if (lowest == context.rank) {
        const char *message = dmnsp_last_error();
        if (context.size > 1)
            snprintf(line, sizeof line, "dmnsp: error (rank %d): %s", context.rank,
                     message[0] ? message : "unknown error");
        else
            snprintf(line, sizeof line, "dmnsp: error: %s", message[0] ? message : "unknown error");
        fprintf(stderr, "%s\n", line);
        fflush(stderr);
    }
    if (MPI_Bcast(line, (int)sizeof line, MPI_CHAR, lowest, MPI_COMM_WORLD) == MPI_SUCCESS)
        log_file_line(line);
    if (lowest != context.rank && status == 0)
        dmnsp_fail_secondary("failed on rank %d", lowest);
    return -1;
}

void dist_shard(long n, int rank, int size, long *begin, long *count)
{
    long base = n / size;
    long extra = n % size;
    *count = base + (rank < extra ? 1 : 0);
    *begin = rank * base + (rank < extra ? rank : extra);
}

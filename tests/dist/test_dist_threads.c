/* Default thread counts: with no thread variables set, OpenMP gets 1
 * thread and OpenBLAS the usable cores, shared among the ranks of a node
 * when the process is not bound; a variable that is set is left alone. */
#include "dmnsp/dist.h"
#include "test_util.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void clear_thread_variables(void)
{
    unsetenv("OMP_NUM_THREADS");
    unsetenv("OPENBLAS_NUM_THREADS");
    unsetenv("GOTO_NUM_THREADS");
}

int main(void)
{
    char summary[160];
    clear_thread_variables();
    dist_default_threads(1, summary, sizeof summary);
    int cores = openblas_get_num_threads();
    CHECK(cores >= 1);
    CHECK_EQ_INT(omp_get_max_threads(), 1);
    CHECK_STR_CONTAINS(summary, "OpenBLAS (default)");
    CHECK_STR_CONTAINS(summary, "1 OpenMP (default)");

    /* Two unbound ranks on the node share the cores. */
    dist_default_threads(2, summary, sizeof summary);
    int shared = openblas_get_num_threads();
    CHECK_EQ_INT(shared, cores >= 2 ? cores / 2 : 1);

    /* A variable the user set wins over the default. */
    openblas_set_num_threads(1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    dist_default_threads(1, summary, sizeof summary);
    CHECK_EQ_INT(openblas_get_num_threads(), 1);
    CHECK_STR_CONTAINS(summary, "1 OpenBLAS (environment)");

    omp_set_num_threads(2);
    setenv("OMP_NUM_THREADS", "2", 1);
    dist_default_threads(1, summary, sizeof summary);
    CHECK_EQ_INT(omp_get_max_threads(), 2);
    CHECK_STR_CONTAINS(summary, "2 OpenMP (environment)");
    /* Several threads in both libraries spin against each other unless
     * OpenMP's idle threads sleep. */
    openblas_set_num_threads(2);
    if (openblas_get_num_threads() > 1) {
        unsetenv("OMP_WAIT_POLICY");
        CHECK_EQ_INT(dist_threads_may_spin(), 1);
        setenv("OMP_WAIT_POLICY", "passive", 1);
        CHECK_EQ_INT(dist_threads_may_spin(), 0);
    }
    openblas_set_num_threads(1);
    CHECK_EQ_INT(dist_threads_may_spin(), 0);
    return test_finish("test_dist_threads");
}

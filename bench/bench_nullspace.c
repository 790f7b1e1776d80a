/* bench_nullspace: time of DMNSP's basis step and gradient projection.
 *
 *   mpiexec -n R bench_nullspace [--images N] [--tokens T] [--blocks L]
 *       [--width D] [--rank P] [--bottleneck B] [--solvers LIST]
 *       [--tasks LIST] [-- PETSc options]
 *
 * Defaults are ViT-B/16 shapes: one basis batch of 128 images x 197 tokens
 * per block (rows split over the ranks), 12 blocks of width 768, features
 * of rank 65 plus uniform noise. It first times the covariances from the
 * factored form (hidden width 65). Then, for each solver in LIST (default
 * lapack,scalapack,slepc), it times collecting the rows (dsyrk for the
 * dense solvers, a copy for SLEPc), building the bases of a task (reduce,
 * decompose, broadcast) and computing lambda from the same batch. A basis step costs collect + build bases, a lambda step
 * collect + lambda. Then it times one projection of every
 * block's adapter weight gradients (bottleneck B, default 64) with t past
 * tasks for each t in --tasks (default 1,9), in both union modes. Times
 * are the slowest rank's, in seconds.
 */
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/nullspace.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int images, tokens, blocks, width, rank, bottleneck;
    char solvers[128];
    char tasks[64];
} bench_settings;

static uint64_t random_state = 12345;

static double uniform(void)
{
    random_state = random_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(random_state >> 11) / 9007199254740992.0;
}

static double normal(void)
{
    double u1 = uniform(), u2 = uniform();
    return sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
}

/* CPU seconds of this process (all its threads). */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double slowest(double seconds)
{
    double result = 0;
    MPI_Allreduce(&seconds, &result, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return result;
}

/* Features of block L for this rank's rows: coefficients (rows x P) times
 * block directions (P x D) plus noise. The seeds are fixed, so every run
 * uses the same rows. */
static void make_features(const bench_settings *b, int block, long rows, float *coefficients, float *directions,
                          float *features)
{
    random_state = 1000 + (uint64_t)block;
    for (long x = 0; x < (long)b->rank * b->width; x++)
        directions[x] = (float)normal();
    random_state = 5000 + (uint64_t)block * 100 + (uint64_t)dist_rank();
    for (long x = 0; x < rows * b->rank; x++)
        coefficients[x] = (float)(normal() / (1.0 + 0.1 * (x % b->rank)));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, b->width, b->rank, 1.0f, coefficients, b->rank,
                directions, b->width, 0.0f, features, b->width);
    for (long x = 0; x < rows * b->width; x++)
        features[x] += (float)(0.01 * (uniform() - 0.5));
}

/* The same covariances from the factored form: HIDDEN[l] (rows x P) and
 * UP_W[l] (D x P) with zero bias and scale 1 (the noise term is absent). */
static int bench_collect_factored(const bench_settings *b, float **hidden, float **up_w, long rows)
{
    nullspace_options o;
    nullspace_options_default(&o, b->blocks, b->width, b->bottleneck);
    nullspace_collector *collector = NULL;
    DMNSP_TRY(nullspace_collector_create(&o, 0, 0, &collector));
    float *bias = calloc((size_t)b->width, sizeof(float));
    if (bias == NULL)
        return dmnsp_fail("bench: out of memory");
    MPI_Barrier(MPI_COMM_WORLD);
    double start = MPI_Wtime(), cpu_start = cpu_now();
    for (int l = 0; l < b->blocks; l++)
        DMNSP_TRY(nullspace_collector_add_factored(collector, l, hidden[l], rows, b->rank, up_w[l], bias, 1.0f));
    double collect = slowest(MPI_Wtime() - start), cpu = slowest(cpu_now() - cpu_start);
    if (dist_rank() == 0)
        printf("collect     %d blocks, factored (hidden width %d): %.3f s (CPU %.3f s)\n"
               "result impl=dmnsp bench=collect_factored ranks=%d seconds=%.3f\n",
               b->blocks, b->rank, collect, cpu, dist_size(), collect);
    fflush(stdout);
    free(bias);
    nullspace_collector_destroy(collector);
    return 0;
}

/* Collects the features into a new collector (keeping the rows when
 * KEEP_ROWS) and returns the slowest rank's time in *SECONDS. */
static int bench_collect(const bench_settings *b, float **features, long rows, int keep_rows,
                         nullspace_collector **collector, double *seconds, double *cpu)
{
    nullspace_options o;
    nullspace_options_default(&o, b->blocks, b->width, b->bottleneck);
    DMNSP_TRY(nullspace_collector_create(&o, keep_rows, rows, collector));
    MPI_Barrier(MPI_COMM_WORLD);
    double start = MPI_Wtime(), cpu_start = cpu_now();
    for (int l = 0; l < b->blocks; l++)
        DMNSP_TRY(nullspace_collector_add(*collector, l, features[l], rows));
    *seconds = slowest(MPI_Wtime() - start);
    *cpu = slowest(cpu_now() - cpu_start);
    return 0;
}

/* Times the basis step (collect + build bases) and the lambda step
 * (collect + lambda) of SOLVER on COLLECTOR, collected in COLLECT seconds. */
static int bench_solver(const bench_settings *b, nullspace_solver solver, nullspace_collector *collector,
                        double collect, double collect_cpu)
{
    nullspace_options o;
    nullspace_options_default(&o, b->blocks, b->width, b->bottleneck);
    o.solver = solver;
    nullspace_state *state = NULL;
    DMNSP_TRY(nullspace_state_create(&o, &state));

    MPI_Barrier(MPI_COMM_WORLD);
    double start = MPI_Wtime(), cpu_start = cpu_now();
    DMNSP_TRY(nullspace_build_bases(state, collector));
    double build = slowest(MPI_Wtime() - start), build_cpu = slowest(cpu_now() - cpu_start);

    /* Lambda from the same batch: its top-k decomposition plus the
     * similarities against the stored task. */
    MPI_Barrier(MPI_COMM_WORLD);
    start = MPI_Wtime();
    cpu_start = cpu_now();
    DMNSP_TRY(nullspace_compute_lambda(state, collector));
    double lambda = slowest(MPI_Wtime() - start), lambda_cpu = slowest(cpu_now() - cpu_start);

    if (dist_rank() == 0)
        printf("solver %-9s ranks %d: collect %.3f s, build bases %.3f s, lambda %.3f s -> basis step %.3f s, "
               "lambda step %.3f s (CPU of the slowest rank: %.3f, %.3f, %.3f s)\n",
               nullspace_solver_name(solver), dist_size(), collect, build, lambda, collect + build, collect + lambda,
               collect_cpu, build_cpu, lambda_cpu);
    if (dist_rank() == 0)
        printf("result impl=dmnsp bench=basis solver=%s ranks=%d collect_s=%.3f build_s=%.3f lambda_s=%.3f\n",
               nullspace_solver_name(solver), dist_size(), collect, build, lambda);
    fflush(stdout);
    nullspace_state_destroy(state);
    return 0;
}

/* Adds TASKS tasks of random orthonormal top-k vectors (no eigenvectors:
 * the projection needs only the top-k). */
static int add_random_tasks(const bench_settings *b, nullspace_state *state, int tasks, int k)
{
    int d = b->width, L = b->blocks;
    double *eigvals = calloc((size_t)L * d, sizeof(double));
    float *top = malloc((size_t)L * d * k * sizeof(float));
    if (eigvals == NULL || top == NULL)
        return dmnsp_fail("bench: out of memory");
    const double *eigvals_p[L];
    const float *top_p[L];
    for (int t = 0; t < tasks; t++) {
        for (int l = 0; l < L; l++) {
            float *v = top + (size_t)l * d * k;
            for (int x = 0; x < d * k; x++)
                v[x] = (float)normal();
            for (int q = 0; q < k; q++) {
                double norm = 0;
                for (int r = 0; r < d; r++)
                    norm += (double)v[r * k + q] * v[r * k + q];
                for (int r = 0; r < d; r++)
                    v[r * k + q] /= (float)sqrt(norm);
            }
            eigvals_p[l] = eigvals + (size_t)l * d;
            top_p[l] = v;
        }
        DMNSP_TRY(nullspace_add_task(state, eigvals_p, NULL, top_p));
    }
    free(eigvals);
    free(top);
    return 0;
}

static int bench_projection(const bench_settings *b, int tasks, nullspace_union union_mode)
{
    nullspace_options o;
    nullspace_options_default(&o, b->blocks, b->width, b->bottleneck);
    o.variant = NULLSPACE_FIXED;
    o.union_mode = union_mode;
    o.projection_normalize = 1;
    nullspace_state *state = NULL;
    DMNSP_TRY(nullspace_state_create(&o, &state));
    DMNSP_TRY(add_random_tasks(b, state, tasks, o.top_select));
    DMNSP_TRY(nullspace_compute_lambda(state, NULL));

    size_t count = (size_t)b->width * b->bottleneck;
    float *gradients = malloc(2 * count * b->blocks * sizeof(float));
    if (gradients == NULL)
        return dmnsp_fail("bench: out of memory");
    float *down[b->blocks], *up[b->blocks];
    for (int l = 0; l < b->blocks; l++) {
        down[l] = gradients + 2 * count * l;
        up[l] = down[l] + count;
    }
    for (size_t x = 0; x < 2 * count * b->blocks; x++)
        gradients[x] = (float)(uniform() - 0.5);

    int repeats = 20;
    long nonfinite = 0;
    DMNSP_TRY(nullspace_project(state, down, up, &nonfinite)); /* warm-up */
    double start = MPI_Wtime(), cpu_start = cpu_now();
    for (int i = 0; i < repeats; i++)
        DMNSP_TRY(nullspace_project(state, down, up, &nonfinite));
    double seconds = (MPI_Wtime() - start) / repeats, cpu = (cpu_now() - cpu_start) / repeats;
    if (dist_rank() == 0)
        printf("projection  %d blocks, width %d, bottleneck %d, t = %d, union %-11s: %.3f ms per step, CPU %.3f ms "
               "(non-finite %ld)\n",
               b->blocks, b->width, b->bottleneck, tasks,
               union_mode == NULLSPACE_UNION_CONCAT ? "concat" : "orthonormal", 1e3 * seconds, 1e3 * cpu, nonfinite);
    if (dist_rank() == 0)
        printf("result impl=dmnsp bench=projection past_tasks=%d union=%s ranks=%d ms_per_step=%.3f\n", tasks,
               union_mode == NULLSPACE_UNION_CONCAT ? "concat" : "orthonormal", dist_size(), 1e3 * seconds);
    free(gradients);
    nullspace_state_destroy(state);
    return 0;
}

static int run(const bench_settings *b)
{
    long total_rows = (long)b->images * b->tokens;
    long begin = 0, rows = 0;
    dist_shard(total_rows, dist_rank(), dist_size(), &begin, &rows);
    if (dist_rank() == 0)
        printf("bench_nullspace: %d ranks, %d blocks, width %d, %d images x %d tokens = %ld rows per block, "
               "feature rank %d\n",
               dist_size(), b->blocks, b->width, b->images, b->tokens, total_rows, b->rank);

    float *directions = malloc((size_t)b->rank * b->width * sizeof(float));
    float *features[b->blocks], *hidden[b->blocks], *up_w[b->blocks];
    if (directions == NULL)
        return dmnsp_fail("bench: out of memory");
    for (int l = 0; l < b->blocks; l++) {
        features[l] = malloc((size_t)rows * b->width * sizeof(float));
        hidden[l] = malloc((size_t)rows * b->rank * sizeof(float));
        up_w[l] = malloc((size_t)b->width * b->rank * sizeof(float));
        if (features[l] == NULL || hidden[l] == NULL || up_w[l] == NULL)
            return dmnsp_fail("bench: out of memory for the features of block %d", l);
        make_features(b, l, rows, hidden[l], directions, features[l]);
        for (int r = 0; r < b->rank; r++)
            for (int c = 0; c < b->width; c++)
                up_w[l][(size_t)c * b->rank + r] = directions[(size_t)r * b->width + c];
    }
    free(directions);

    DMNSP_TRY(bench_collect_factored(b, hidden, up_w, rows));
    for (int l = 0; l < b->blocks; l++) {
        free(hidden[l]);
        free(up_w[l]);
    }
    /* Dense solvers share one collector that accumulates the covariance
     * as rows arrive; SLEPc gets one that keeps the rows (and computes the
     * covariance only when the full decomposition needs it). */
    nullspace_collector *dense = NULL, *kept = NULL;
    double dense_seconds = 0, kept_seconds = 0, dense_cpu = 0, kept_cpu = 0;
    char solvers[sizeof b->solvers];
    memcpy(solvers, b->solvers, sizeof solvers);
    for (char *name = strtok(solvers, ","); name != NULL; name = strtok(NULL, ",")) {
        nullspace_solver solver;
        DMNSP_TRY(nullspace_parse_solver(name, &solver));
        int keep = solver == NULLSPACE_SOLVER_SLEPC;
        nullspace_collector **collector = keep ? &kept : &dense;
        double *seconds = keep ? &kept_seconds : &dense_seconds;
        double *cpu = keep ? &kept_cpu : &dense_cpu;
        if (*collector == NULL) {
            DMNSP_TRY(bench_collect(b, features, rows, keep, collector, seconds, cpu));
            if (dist_rank() == 0 && !keep)
                printf("collect     %d blocks with dsyrk: %.3f s (%.1f GFLOP/s summed over ranks, %.1f GFLOP per CPU "
                       "second of the slowest rank)\n",
                       b->blocks, *seconds, (double)total_rows * b->width * (b->width + 1) * b->blocks / *seconds / 1e9,
                       (double)rows * b->width * (b->width + 1) * b->blocks / *cpu / 1e9);
        }
        DMNSP_TRY(bench_solver(b, solver, *collector, *seconds, *cpu));
    }
    nullspace_collector_destroy(dense);
    nullspace_collector_destroy(kept);
    for (int l = 0; l < b->blocks; l++)
        free(features[l]);

    char tasks[sizeof b->tasks];
    memcpy(tasks, b->tasks, sizeof tasks);
    for (char *item = strtok(tasks, ","); item != NULL; item = strtok(NULL, ",")) {
        int t = atoi(item);
        if (t < 1)
            return dmnsp_fail("bench: --tasks entry '%s' is invalid (expected a positive count)", item);
        DMNSP_TRY(bench_projection(b, t, NULLSPACE_UNION_CONCAT));
        DMNSP_TRY(bench_projection(b, t, NULLSPACE_UNION_ORTHONORMAL));
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_settings b = {128, 197, 12, 768, 65, 64, "lapack,scalapack,slepc", "1,9"};
    int petsc_start = argc;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(arg, "--") == 0) {
            petsc_start = i + 1;
            break;
        } else if (strcmp(arg, "--images") == 0 && has_value) {
            b.images = atoi(argv[++i]);
        } else if (strcmp(arg, "--tokens") == 0 && has_value) {
            b.tokens = atoi(argv[++i]);
        } else if (strcmp(arg, "--blocks") == 0 && has_value) {
            b.blocks = atoi(argv[++i]);
        } else if (strcmp(arg, "--width") == 0 && has_value) {
            b.width = atoi(argv[++i]);
        } else if (strcmp(arg, "--rank") == 0 && has_value) {
            b.rank = atoi(argv[++i]);
        } else if (strcmp(arg, "--bottleneck") == 0 && has_value) {
            b.bottleneck = atoi(argv[++i]);
        } else if (strcmp(arg, "--solvers") == 0 && has_value) {
            snprintf(b.solvers, sizeof b.solvers, "%s", argv[++i]);
        } else if (strcmp(arg, "--tasks") == 0 && has_value) {
            snprintf(b.tasks, sizeof b.tasks, "%s", argv[++i]);
        } else {
            int help = strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
            if (!help)
                fprintf(stderr, "bench_nullspace: unknown or incomplete option '%s'\n\n", arg);
            fprintf(help ? stdout : stderr,
                    "usage: mpiexec -n R bench_nullspace [--images N] [--tokens T] [--blocks L] [--width D]\n"
                    "           [--rank P] [--bottleneck B] [--solvers LIST] [--tasks LIST] [-- PETSc options]\n"
                    "\n"
                    "Times DMNSP's basis step, lambda step and projection on synthetic features.\n"
                    "  --images N, --tokens T  basis batch of N images x T tokens (default 128 x 197)\n"
                    "  --blocks L, --width D   L blocks of width D (default 12 x 768)\n"
                    "  --rank P                rank of the features before noise (default 65)\n"
                    "  --bottleneck B          adapter bottleneck of the projection (default 64)\n"
                    "  --solvers LIST          comma-separated: lapack,scalapack,slepc (default all)\n"
                    "  --tasks LIST            past-task counts for the projection (default 1,9)\n");
            return help ? 0 : 2;
        }
    }
    if (b.images < 1 || b.tokens < 1 || b.blocks < 1 || b.width < 2 || b.rank < 1 || b.bottleneck < 1) {
        fprintf(stderr, "bench_nullspace: every size must be positive\n");
        return 2;
    }
    if (dist_init(argv[0], argc - petsc_start, argv + petsc_start) != 0)
        dist_abort(dmnsp_last_error());
    if (run(&b) != 0)
        dist_abort(dmnsp_last_error());
    dist_finalize();
    return 0;
}

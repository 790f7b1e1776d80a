/* nullspace: options, the per-task state, lambda and the projection of
 * adapter weight gradients (see include/dmnsp/nullspace.h). */
#include "nullspace_internal.h"

#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/log.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Relative eigenvalue threshold below which a direction of the Gram matrix
 * of past top-k vectors counts as linearly dependent (orthonormal union). */
#define GRAM_RANK_TOLERANCE 1e-8

struct nullspace_state {
    nullspace_options options;
    int tasks, task_capacity;
    double **eigvals; /* per task: L x d */
    float **eigvecs;  /* per task: L x d x d, or NULL */
    float **top;      /* per task: L x d x k */

    /* Projection basis per block: B (d x rank[l] floats). Concat union:
     * all past top-k vectors, task after task; orthonormal union: an
     * orthonormal basis of their span. */
    float **basis;
    int *basis_rank;
    float *work; /* bottleneck x max rank */

    double *lambda; /* L x L */
    int has_lambda;
};

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */
void nullspace_options_default(nullspace_options *o, int blocks, int width, int bottleneck)
{
    memset(o, 0, sizeof *o);
    o->blocks = blocks;
    o->width = width;
    o->bottleneck = bottleneck;
    o->top_select = 1;
    o->top_k_ratio = 0.1;
    o->lambda_scale = 30.0;
    o->solver = NULLSPACE_SOLVER_AUTO;
    o->union_mode = NULLSPACE_UNION_CONCAT;
    o->lambda_apply = NULLSPACE_LAMBDA_GRADIENT;
    o->variant = NULLSPACE_DYNAMIC;
    o->projection_normalize = 0;
}

int nullspace_options_validate(const nullspace_options *o)
{
    if (o->blocks < 1)
        return dmnsp_fail("nullspace: blocks %d is invalid (expected at least 1)", o->blocks);
    if (o->width < 2)
        return dmnsp_fail("nullspace: width %d is invalid (expected at least 2)", o->width);
    if (o->bottleneck < 1)
        return dmnsp_fail("nullspace: adapter bottleneck %d is invalid (expected at least 1)", o->bottleneck);
    if (o->top_select < 1 || o->top_select >= o->width)
        return dmnsp_fail("nullspace: top_select %d is out of range (expected 1..%d, below the width %d)",
                          o->top_select, o->width - 1, o->width);
    if (!(o->top_k_ratio > 0.0 && o->top_k_ratio <= 1.0))
        return dmnsp_fail("nullspace: top_k_ratio %g is out of range (expected 0 < top_k_ratio <= 1)",
                          o->top_k_ratio);
    if (!(o->lambda_scale > 0.0) || !isfinite(o->lambda_scale))
        return dmnsp_fail("nullspace: lambda_scale %g is invalid (expected a finite value > 0)", o->lambda_scale);
    if (o->solver < NULLSPACE_SOLVER_AUTO || o->solver > NULLSPACE_SOLVER_SLEPC)
        return dmnsp_fail("nullspace: solver %d is invalid", (int)o->solver);
    if (o->union_mode != NULLSPACE_UNION_CONCAT && o->union_mode != NULLSPACE_UNION_ORTHONORMAL)
        return dmnsp_fail("nullspace: union mode %d is invalid", (int)o->union_mode);
    if (o->lambda_apply != NULLSPACE_LAMBDA_GRADIENT && o->lambda_apply != NULLSPACE_LAMBDA_STEP)
        return dmnsp_fail("nullspace: lambda_apply %d is invalid", (int)o->lambda_apply);
    if (o->variant < NULLSPACE_DYNAMIC || o->variant > NULLSPACE_SINGLE)
        return dmnsp_fail("nullspace: variant %d is invalid", (int)o->variant);
    return 0;
}

static const char *solver_names[] = {"auto", "lapack", "scalapack", "slepc"};

int nullspace_parse_solver(const char *name, nullspace_solver *solver)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, solver_names[i]) == 0) {
            *solver = (nullspace_solver)i;
            return 0;
        }
    }
    return dmnsp_fail("nullspace.solver: unknown solver '%s' (expected auto, lapack, scalapack or slepc)", name);
}

const char *nullspace_solver_name(nullspace_solver solver)
{
    if (solver < NULLSPACE_SOLVER_AUTO || solver > NULLSPACE_SOLVER_SLEPC)
        return "invalid";
    return solver_names[solver];
}

int nullspace_parse_union(const char *name, nullspace_union *union_mode)
{
    if (strcasecmp(name, "concat") == 0)
        *union_mode = NULLSPACE_UNION_CONCAT;
    else if (strcasecmp(name, "orthonormal") == 0)
        *union_mode = NULLSPACE_UNION_ORTHONORMAL;
    else
        return dmnsp_fail("nullspace.union: unknown value '%s' (expected concat or orthonormal)", name);
    return 0;
}

int nullspace_parse_lambda_apply(const char *name, nullspace_lambda_apply *apply)
{
    if (strcasecmp(name, "gradient") == 0)
        *apply = NULLSPACE_LAMBDA_GRADIENT;
    else if (strcasecmp(name, "step") == 0)
        *apply = NULLSPACE_LAMBDA_STEP;
    else
        return dmnsp_fail("lambda_apply: unknown value '%s' (expected gradient or step)", name);
    return 0;
}

int nullspace_variant_for_method(const char *method, nullspace_variant *variant)
{
    if (strcmp(method, "DMNSP") == 0 || strcmp(method, "DMNSP-both") == 0)
        *variant = NULLSPACE_DYNAMIC;
    else if (strcmp(method, "DMNSP-fixed") == 0)
        *variant = NULLSPACE_FIXED;
    else if (strcmp(method, "NSP-single") == 0)
        *variant = NULLSPACE_SINGLE;
    else
        return dmnsp_fail("nullspace: method '%s' uses no null space (expected DMNSP, DMNSP-both, DMNSP-fixed or "
                          "NSP-single)",
                          method);
    return 0;
}

nullspace_solver nullspace_resolve_solver(const nullspace_options *o, int ranks)
{
    if (o->solver != NULLSPACE_SOLVER_AUTO)
        return o->solver;
    return ranks > o->blocks ? NULLSPACE_SOLVER_SCALAPACK : NULLSPACE_SOLVER_LAPACK;
}

int nullspace_solver_needs_rows(const nullspace_options *o, int ranks)
{
    return nullspace_resolve_solver(o, ranks) == NULLSPACE_SOLVER_SLEPC;
}

/* ------------------------------------------------------------------------
 * State
 * ------------------------------------------------------------------------ */
int nullspace_state_create(const nullspace_options *options, nullspace_state **state)
{
    *state = NULL;
    DMNSP_TRY(nullspace_options_validate(options));
    int L = options->blocks;
    nullspace_state *s = dmnsp_calloc(1, sizeof *s, "nullspace state");
    if (s == NULL)
        return -1;
    s->options = *options;
    s->basis = dmnsp_calloc((size_t)L, sizeof(float *), "nullspace projection bases");
    s->basis_rank = dmnsp_calloc((size_t)L, sizeof(int), "nullspace projection ranks");
    s->lambda = dmnsp_calloc((size_t)L * L, sizeof(double), "nullspace lambda");
    if (s->basis == NULL || s->basis_rank == NULL || s->lambda == NULL) {
        nullspace_state_destroy(s);
        return -1;
    }
    *state = s;
    return 0;
}

void nullspace_state_destroy(nullspace_state *s)
{
    if (s == NULL)
        return;
    for (int t = 0; t < s->tasks; t++) {
        free(s->eigvals[t]);
        free(s->eigvecs[t]);
        free(s->top[t]);
    }
    free(s->eigvals);
    free(s->eigvecs);
    free(s->top);
    if (s->basis != NULL) {
        for (int l = 0; l < s->options.blocks; l++)
            free(s->basis[l]);
    }
    free(s->basis);
    free(s->basis_rank);
    free(s->work);
    free(s->lambda);
    free(s);
}

const nullspace_options *nullspace_state_options(const nullspace_state *s) { return &s->options; }
int nullspace_task_count(const nullspace_state *s) { return s->tasks; }

int nullspace_task_block(const nullspace_state *s, int task, int block, const double **eigvals, const float **eigvecs,
                         const float **top)
{
    int L = s->options.blocks, d = s->options.width, k = s->options.top_select;
    if (task < 0 || task >= s->tasks)
        return dmnsp_fail("nullspace: task %d has no bases (the state holds tasks 0..%d)", task, s->tasks - 1);
    if (block < 0 || block >= L)
        return dmnsp_fail("nullspace: block %d is out of range (expected 0..%d)", block, L - 1);
    if (eigvals)
        *eigvals = s->eigvals[task] + (size_t)block * d;
    if (eigvecs)
        *eigvecs = s->eigvecs[task] ? s->eigvecs[task] + (size_t)block * d * d : NULL;
    if (top)
        *top = s->top[task] + (size_t)block * d * k;
    return 0;
}

/* Orthonormal basis Q (d x rank) of the span of the columns of T (d x n):
 * Q = T W diag(1/sqrt(mu)) over the eigenpairs (mu, W) of T^T T above the
 * rank tolerance. Returns the rank, or -1. */
static int orthonormal_span(const float *t_float, int d, int n, float *q, int *rank)
{
    double *t = dmnsp_malloc((size_t)d * n * sizeof(double), "orthonormal union span");
    double *gram = dmnsp_malloc((size_t)n * n * sizeof(double), "orthonormal union Gram matrix");
    double *mu = dmnsp_malloc((size_t)n * sizeof(double), "orthonormal union eigenvalues");
    double *w = dmnsp_malloc((size_t)n * n * sizeof(double), "orthonormal union eigenvectors");
    int status = -1;
    if (t == NULL || gram == NULL || mu == NULL || w == NULL)
        goto done;
    for (size_t i = 0; i < (size_t)d * n; i++)
        t[i] = t_float[i];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, d, 1.0, t, n, t, n, 0.0, gram, n);
    if (nullspace_lapack_eigen(gram, n, n, mu, w) != 0)
        goto done;

    int r = 0;
    while (r < n && mu[r] > GRAM_RANK_TOLERANCE * mu[0])
        r++;
    /* Scale column c of W by 1/sqrt(mu_c), then Q = T W[:, :r]. */
    for (int row = 0; row < n; row++)
        for (int c = 0; c < r; c++)
            w[(size_t)row * n + c] /= sqrt(mu[c]);
    double *qd = gram; /* reuse as d x r output when it fits */
    if ((size_t)d * r > (size_t)n * n) {
        qd = dmnsp_malloc((size_t)d * r * sizeof(double), "orthonormal union basis");
        if (qd == NULL)
            goto done;
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, r, n, 1.0, t, n, w, n, 0.0, qd, r);
    for (size_t i = 0; i < (size_t)d * r; i++)
        q[i] = (float)qd[i];
    if (qd != gram)
        free(qd);
    *rank = r;
    status = 0;

done:
    free(t);
    free(gram);
    free(mu);
    free(w);
    return status;
}

/* Rebuilds every block's projection basis from the stored top-k vectors. */
static int rebuild_bases(nullspace_state *s)
{
    int L = s->options.blocks, d = s->options.width, k = s->options.top_select;
    int n = s->tasks * k;
    int max_rank = 0;
    for (int l = 0; l < L; l++) {
        float *stacked = dmnsp_malloc((size_t)d * n * sizeof(float), "nullspace projection basis");
        if (stacked == NULL)
            return -1;
        for (int t = 0; t < s->tasks; t++) {
            const float *top = s->top[t] + (size_t)l * d * k;
            for (int r = 0; r < d; r++)
                memcpy(stacked + (size_t)r * n + (size_t)t * k, top + (size_t)r * k, (size_t)k * sizeof(float));
        }
        int rank = n;
        if (s->options.union_mode == NULLSPACE_UNION_ORTHONORMAL) {
            float *q = dmnsp_malloc((size_t)d * n * sizeof(float), "nullspace orthonormal basis");
            if (q == NULL || orthonormal_span(stacked, d, n, q, &rank) != 0) {
                free(q);
                free(stacked);
                return dmnsp_fail_prefix("nullspace: block %d orthonormal union", l);
            }
            free(stacked);
            stacked = q;
        }
        free(s->basis[l]);
        s->basis[l] = stacked;
        s->basis_rank[l] = rank;
        if (rank > max_rank)
            max_rank = rank;
    }
    float *work = realloc(s->work, (size_t)s->options.bottleneck * (max_rank > 0 ? max_rank : 1) * sizeof(float));
    if (work == NULL)
        return dmnsp_fail("nullspace: out of memory for the projection workspace");
    s->work = work;
    return 0;
}

/* Appends a task, taking ownership of the three arrays. */
static int append_task(nullspace_state *s, double *eigvals, float *eigvecs, float *top)
{
    if (s->tasks == s->task_capacity) {
        int capacity = s->task_capacity ? 2 * s->task_capacity : 8;
        double **e = realloc(s->eigvals, (size_t)capacity * sizeof *e);
        if (e != NULL)
            s->eigvals = e;
        float **v = realloc(s->eigvecs, (size_t)capacity * sizeof *v);
        if (v != NULL)
            s->eigvecs = v;
        float **t = realloc(s->top, (size_t)capacity * sizeof *t);
        if (t != NULL)
            s->top = t;
        if (e == NULL || v == NULL || t == NULL) {
            free(eigvals);
            free(eigvecs);
            free(top);
            return dmnsp_fail("nullspace: out of memory growing the task list to %d tasks", capacity);
        }
        s->task_capacity = capacity;
    }
    s->eigvals[s->tasks] = eigvals;
    s->eigvecs[s->tasks] = eigvecs;
    s->top[s->tasks] = top;
    s->tasks++;
    if (rebuild_bases(s) != 0) {
        s->tasks--;
        free(eigvals);
        free(eigvecs);
        free(top);
        return -1;
    }
    return 0;
}

int nullspace_add_task(nullspace_state *s, const double *const *eigvals, const float *const *eigvecs,
                       const float *const *top)
{
    int L = s->options.blocks, d = s->options.width, k = s->options.top_select;
    if (eigvals == NULL || top == NULL)
        return dmnsp_fail("nullspace: adding task %d needs eigenvalues and top eigenvectors", s->tasks);
    for (int l = 0; l < L; l++) {
        if (eigvals[l] == NULL || top[l] == NULL || (eigvecs != NULL && eigvecs[l] == NULL))
            return dmnsp_fail("nullspace: adding task %d: the arrays of block %d are missing", s->tasks, l);
    }
    double *all_eigvals = dmnsp_malloc((size_t)L * d * sizeof(double), "nullspace eigenvalues");
    float *all_top = dmnsp_malloc((size_t)L * d * k * sizeof(float), "nullspace top eigenvectors");
    float *all_eigvecs = eigvecs ? dmnsp_malloc((size_t)L * d * d * sizeof(float), "nullspace eigenvectors") : NULL;
    if (all_eigvals == NULL || all_top == NULL || (eigvecs != NULL && all_eigvecs == NULL)) {
        free(all_eigvals);
        free(all_top);
        free(all_eigvecs);
        return -1;
    }
    for (int l = 0; l < L; l++) {
        memcpy(all_eigvals + (size_t)l * d, eigvals[l], (size_t)d * sizeof(double));
        memcpy(all_top + (size_t)l * d * k, top[l], (size_t)d * k * sizeof(float));
        if (eigvecs)
            memcpy(all_eigvecs + (size_t)l * d * d, eigvecs[l], (size_t)d * d * sizeof(float));
    }
    return append_task(s, all_eigvals, all_eigvecs, all_top);
}

int nullspace_build_bases(nullspace_state *s, nullspace_collector *collector)
{
    int L = s->options.blocks, d = s->options.width, k = s->options.top_select;
    if (collector->blocks != L || collector->width != d || collector->top_select != k)
        return dmnsp_fail("nullspace: collector shape (%d blocks, width %d, top_select %d) does not match the state "
                          "(%d, %d, %d)",
                          collector->blocks, collector->width, collector->top_select, L, d, k);
    nullspace_decomposition result;
    DMNSP_TRY(nullspace_decompose(collector, s->options.solver, 1, &result));

    /* The state keeps eigenvectors in float; the decomposition's doubles
     * are converted block after block. */
    double *eigvals = result.eigvals;
    result.eigvals = NULL;
    float *eigvecs = dmnsp_malloc((size_t)L * d * d * sizeof(float), "nullspace eigenvectors");
    float *top = dmnsp_malloc((size_t)L * d * k * sizeof(float), "nullspace top eigenvectors");
    if (eigvecs == NULL || top == NULL) {
        free(eigvals);
        free(eigvecs);
        free(top);
        nullspace_decomposition_free(&result);
        return -1;
    }
    for (size_t i = 0; i < (size_t)L * d * d; i++)
        eigvecs[i] = (float)result.eigvecs[i];
    for (size_t i = 0; i < (size_t)L * d * k; i++)
        top[i] = (float)result.top[i];
    nullspace_decomposition_free(&result);
    return append_task(s, eigvals, eigvecs, top);
}

/* ------------------------------------------------------------------------
 * Lambda
 * ------------------------------------------------------------------------ */
static int compare_descending(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Column I of lambda from U_ALL (d x L*k, the current top-k vectors of
 * every block side by side) and the stored eigenvectors of block I. */
static int lambda_column(const nullspace_state *s, const double *u_all, int i, double *lambda)
{
    int L = s->options.blocks, d = s->options.width, k = s->options.top_select, t = s->tasks;
    int lk = L * k;
    size_t n = (size_t)t * (d - k);
    double *eig = dmnsp_malloc((size_t)d * d * sizeof(double), "lambda eigenvectors");
    double *products = dmnsp_malloc((size_t)lk * d * sizeof(double), "lambda products");
    double *similarity = dmnsp_malloc((size_t)L * n * sizeof(double), "lambda similarities");
    int status = -1;
    if (eig == NULL || products == NULL || similarity == NULL)
        goto done;

    for (int tau = 0; tau < t; tau++) {
        const float *e = s->eigvecs[tau] + (size_t)i * d * d;
        for (size_t x = 0; x < (size_t)d * d; x++)
            eig[x] = e[x];
        /* products[j*k + q][c] = u_j[:, q] . E[:, c] */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, lk, d, d, 1.0, u_all, lk, eig, d, 0.0, products, d);
        for (int j = 0; j < L; j++) {
            double *sim = similarity + (size_t)j * n + (size_t)tau * (d - k);
            for (int c = k; c < d; c++) {
                double sum = 0;
                for (int q = 0; q < k; q++) {
                    double p = products[(size_t)(j * k + q) * d + c];
                    sum += p * p;
                }
                sim[c - k] = sqrt(sum);
            }
        }
    }

    size_t m = (size_t)floor((double)n * s->options.top_k_ratio);
    if (m < 1)
        m = 1;
    for (int j = 0; j < L; j++) {
        double *sim = similarity + (size_t)j * n;
        qsort(sim, n, sizeof(double), compare_descending);
        double sum = 0;
        for (size_t x = 0; x < m; x++)
            sum += sim[x];
        lambda[(size_t)j * L + i] = s->options.lambda_scale * exp(-sum / (double)m);
    }
    status = 0;

done:
    free(eig);
    free(products);
    free(similarity);
    return status;
}

int nullspace_compute_lambda(nullspace_state *s, nullspace_collector *collector)
{
    int L = s->options.blocks, d = s->options.width, k = s->options.top_select;
    if (s->options.variant == NULLSPACE_FIXED) {
        for (int x = 0; x < L * L; x++)
            s->lambda[x] = s->options.lambda_scale;
        s->has_lambda = 1;
        return 0;
    }
    if (s->tasks < 1)
        return dmnsp_fail("nullspace: lambda needs the bases of at least one finished task");
    for (int t = 0; t < s->tasks; t++) {
        if (s->eigvecs[t] == NULL)
            return dmnsp_fail("nullspace: lambda needs the full eigenvectors of task %d, which were not kept", t);
    }
    if (collector == NULL || collector->blocks != L || collector->width != d || collector->top_select != k)
        return dmnsp_fail("nullspace: lambda needs a collector with %d blocks of width %d and top_select %d", L, d,
                          k);

    nullspace_decomposition current;
    DMNSP_TRY(nullspace_decompose(collector, s->options.solver, 0, &current));

    double *u_all = dmnsp_malloc((size_t)d * L * k * sizeof(double), "lambda current top eigenvectors");
    double *local = dmnsp_calloc((size_t)L * L, sizeof(double), "lambda columns");
    int status = u_all == NULL || local == NULL ? -1 : 0;
    if (status == 0) {
        for (int j = 0; j < L; j++)
            for (int r = 0; r < d; r++)
                memcpy(u_all + (size_t)r * L * k + (size_t)j * k, current.top + ((size_t)j * d + r) * k,
                       (size_t)k * sizeof(double));
        int rank = 0, size = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        for (int i = 0; i < L && status == 0; i++) {
            if (dist_block_owner(i, size) == rank)
                status = lambda_column(s, u_all, i, local);
        }
    }
    nullspace_decomposition_free(&current);
    free(u_all);
    if (dist_any_failed(status) != 0) {
        free(local);
        return -1;
    }
    /* Each entry has exactly one non-zero contribution, so the sum is
     * exact and identical on every rank. */
    if (MPI_Allreduce(local, s->lambda, L * L, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS) {
        free(local);
        return dmnsp_fail("nullspace: MPI_Allreduce of lambda failed");
    }
    free(local);
    s->has_lambda = 1;
    return 0;
}

const double *nullspace_lambda(const nullspace_state *s) { return s->has_lambda ? s->lambda : NULL; }

int nullspace_set_lambda(nullspace_state *s, const double *lambda)
{
    int L = s->options.blocks;
    for (int x = 0; x < L * L; x++) {
        if (!(lambda[x] > 0.0) || !isfinite(lambda[x]))
            return dmnsp_fail("nullspace: lambda[%d][%d] = %g is invalid (expected a finite value > 0)", x / L, x % L,
                              lambda[x]);
    }
    memcpy(s->lambda, lambda, (size_t)L * L * sizeof(double));
    s->has_lambda = 1;
    return 0;
}

/* Lambda entry (l, i), or s when the fixed variant has no matrix yet. */
static double lambda_entry(const nullspace_state *s, int l, int i)
{
    if (!s->has_lambda)
        return s->options.lambda_scale;
    return s->lambda[(size_t)l * s->options.blocks + i];
}

void nullspace_step_factors(const nullspace_state *s, double *factors)
{
    int L = s->options.blocks;
    for (int l = 0; l < L; l++) {
        if (!s->has_lambda) {
            factors[l] = 1.0;
            continue;
        }
        if (s->options.variant == NULLSPACE_SINGLE) {
            factors[l] = lambda_entry(s, l, l) / s->options.lambda_scale;
            continue;
        }
        double log_sum = 0;
        for (int i = 0; i < L; i++)
            log_sum += log(lambda_entry(s, l, i) / s->options.lambda_scale);
        factors[l] = exp(log_sum / L);
    }
}

void nullspace_log_lambda(const nullspace_state *s, int task)
{
    int L = s->options.blocks;
    if (!s->has_lambda) {
        log_info("task %d: no lambda yet", task);
        return;
    }
    double low = INFINITY, high = -INFINITY, sum = 0;
    for (int x = 0; x < L * L; x++) {
        low = fmin(low, s->lambda[x]);
        high = fmax(high, s->lambda[x]);
        sum += s->lambda[x];
    }
    log_info("task %d: lambda (%dx%d, scale %g): min %.4g mean %.4g max %.4g", task, L, L, s->options.lambda_scale,
             low, sum / (L * L), high);

    char line[2048];
    size_t used = 0;
    for (int l = 0; l < L && used < sizeof line; l++)
        used += (size_t)snprintf(line + used, sizeof line - used, "%s%.4g", l ? " " : "", s->lambda[(size_t)l * L + l]);
    log_info("task %d: lambda diagonal: %s", task, line);

    double factors[L];
    nullspace_step_factors(s, factors);
    used = 0;
    for (int l = 0; l < L && used < sizeof line; l++)
        used += (size_t)snprintf(line + used, sizeof line - used, "%s%.4f", l ? " " : "", factors[l]);
    log_info("task %d: per-block update factors%s: %s", task,
             s->options.lambda_apply == NULLSPACE_LAMBDA_STEP ? "" : " (not applied, lambda_apply is gradient)",
             line);
}

/* ------------------------------------------------------------------------
 * Projection
 * ------------------------------------------------------------------------ */

/* Factors of one projector application G <- c (a G - b (G B) B^T): the
 * lambda coefficient C, the identity multiple A and the basis weight B. */
typedef struct {
    float c, a, b;
} projector_scale;

static projector_scale projector_scale_for(const nullspace_state *s, int l, int i)
{
    projector_scale scale = {1.0f, 1.0f, 1.0f};
    double coefficient = 1.0;
    if (s->options.lambda_apply == NULLSPACE_LAMBDA_GRADIENT) {
        coefficient = lambda_entry(s, l, i);
        if (s->options.projection_normalize)
            coefficient /= s->options.lambda_scale;
    }
    scale.c = (float)coefficient;
    if (s->options.union_mode == NULLSPACE_UNION_CONCAT) {
        if (s->options.projection_normalize)
            scale.b = 1.0f / (float)s->tasks;
        else
            scale.a = (float)s->tasks;
    }
    return scale;
}

/* DOWN (b x d) <- c (a DOWN - b (DOWN B) B^T), B = basis (d x r). */
static void project_down(const nullspace_state *s, int i, projector_scale scale, float *down)
{
    int d = s->options.width, bn = s->options.bottleneck, r = s->basis_rank[i];
    const float *basis = s->basis[i];
    if (r == 0) {
        cblas_sscal(bn * d, scale.c * scale.a, down, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bn, r, d, 1.0f, down, d, basis, r, 0.0f, s->work, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bn, d, r, -scale.c * scale.b, s->work, r, basis, r,
                scale.c * scale.a, down, d);
}

/* UP (d x b) <- c (a UP - b B (B^T UP)). */
static void project_up(const nullspace_state *s, int i, projector_scale scale, float *up)
{
    int d = s->options.width, bn = s->options.bottleneck, r = s->basis_rank[i];
    const float *basis = s->basis[i];
    if (r == 0) {
        cblas_sscal(bn * d, scale.c * scale.a, up, 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, bn, d, 1.0f, basis, r, up, bn, 0.0f, s->work, bn);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, bn, r, -scale.c * scale.b, basis, r, s->work, bn,
                scale.c * scale.a, up, bn);
}

static long count_nonfinite(const float *x, size_t n)
{
    long count = 0;
#pragma omp parallel for reduction(+ : count) schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        count += !isfinite(x[i]);
    return count;
}

int nullspace_project(nullspace_state *s, float *const *down, float *const *up, long *nonfinite)
{
    int L = s->options.blocks;
    size_t count = (size_t)s->options.width * s->options.bottleneck;
    if (s->tasks == 0)
        return 0;
    if (!s->has_lambda && s->options.variant != NULLSPACE_FIXED &&
        s->options.lambda_apply == NULLSPACE_LAMBDA_GRADIENT)
        return dmnsp_fail("nullspace: projecting with %d finished tasks needs lambda (call nullspace_compute_lambda "
                          "at the first batch of the task)",
                          s->tasks);

    long bad = 0;
    for (int l = 0; l < L; l++) {
        if (down[l] == NULL || up[l] == NULL)
            return dmnsp_fail("nullspace: the gradient of block %d is missing", l);
        int first = 0, last = L - 1;
        if (s->options.variant == NULLSPACE_SINGLE)
            first = last = l;
        /* Both products apply P_0 first: G_down . P_0 . P_1 ... and
         * ... P_1 . P_0 . G_up. */
        for (int i = first; i <= last; i++) {
            projector_scale scale = projector_scale_for(s, l, i);
            project_down(s, i, scale, down[l]);
            project_up(s, i, scale, up[l]);
        }
        bad += count_nonfinite(down[l], count) + count_nonfinite(up[l], count);
    }
    if (nonfinite != NULL)
        *nonfinite += bad;
    return 0;
}

int nullspace_project_views(nullspace_state *s, const clip_adapter_view *views, long *nonfinite)
{
    int L = s->options.blocks;
    float *down[L], *up[L];
    for (int l = 0; l < L; l++) {
        if (views[l].width != s->options.width || views[l].bottleneck != s->options.bottleneck)
            return dmnsp_fail("nullspace: adapter view of block %d is %d wide with bottleneck %d (expected %d and %d)",
                              l, views[l].width, views[l].bottleneck, s->options.width, s->options.bottleneck);
        down[l] = views[l].down_w;
        up[l] = views[l].up_w;
    }
    return nullspace_project(s, down, up, nonfinite);
}

int nullspace_project_buffer(nullspace_state *s, const clip_config *config, float *gradients, clip_modality modality,
                             long *nonfinite)
{
    int L = s->options.blocks;
    int layers = modality == CLIP_VISUAL ? config->vision_layers : config->text_layers;
    if (layers != L)
        return dmnsp_fail("nullspace: the model has %d %s blocks but the null-space state has %d", layers,
                          modality == CLIP_VISUAL ? "visual" : "text", L);
    clip_adapter_view views[L];
    for (int l = 0; l < L; l++)
        clip_adapter_block(config, gradients, modality, l, &views[l]);
    return nullspace_project_views(s, views, nonfinite);
}

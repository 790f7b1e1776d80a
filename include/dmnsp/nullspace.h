/* nullspace: DMNSP's null-space bases, the coefficient matrix lambda and the
 * projection of adapter weight gradients.
 *
 * The module owns three objects, all on plain arrays (no model code):
 *
 *   nullspace_collector  per block, the feature covariance C = sum over rows
 *                        a a^T (d x d, double) of the local rows, and
 *                        optionally the rows themselves (for SLEPc).
 *   nullspace_state      per finished task and block: eigenvalues (d,
 *                        descending), full eigenvectors (d x d, float) and
 *                        the top-k eigenvectors (d x k, float); the current
 *                        task's lambda (L x L); projection workspace.
 *   nullspace_decomposition  double-precision result of one decomposition
 *                        of every block (the lower-level entry point).
 *
 * Notation: L = blocks, d = width, k = top_select, rho = top_k_ratio,
 * s = lambda_scale, b = bottleneck, t = number of finished tasks.
 *
 * Matrix layout: every matrix is row-major. An eigenvector matrix E (d x d)
 * stores eigenvector c in column c (E[r*d + c]), in descending eigenvalue
 * order, as a PyTorch tensor U with U[:, c] the c-th vector would. "top" is
 * its first k columns (d x k). Adapter gradients keep PyTorch's Linear layout:
 * down_w [b, d], up_w [d, b].
 *
 * Work sharing (all collective calls run on MPI_COMM_WORLD). With R ranks
 * the ranks form G = min(R, L) groups: rank r belongs to group r mod G and
 * block l to group l mod G, whose lowest rank l mod G is the block's owner
 * (dist_block_owner(l, R)). Covariances are reduced to the owner
 * (MPI_Reduce per block), and the owner decomposes them with LAPACK. With
 * the ScaLAPACK solver the whole group runs pdsyevd on the block instead,
 * over the group's sub-communicator and a BLACS grid as square as the
 * group size allows. Groups have more than one rank only when ranks
 * outnumber blocks. SLEPc solves each block over all ranks, using the rows
 * each rank produced. The owner broadcasts the results, so every rank ends
 * with identical bases and an identical lambda. Rows that every rank
 * computes alike (the text prompts of DMNSP-both) must be added on one
 * rank only. Added on every rank, they multiply the covariance and its
 * eigenvalues by R, though eigenvectors, projector and lambda stay the
 * same.
 *
 * Solvers (nullspace.solver):
 *   lapack     dsyevd on the owner (dsyevr for top-k only).
 *   scalapack  pdsyevd on the block's group.
 *   slepc      truncated SVD of the distributed activation matrix (PETSc
 *              dense matrix, rows on the ranks that produced them) for the
 *              top-k right singular vectors, eigenvalue = sigma^2. Options
 *              -svd_type (default trlanczos), -svd_tol (default 1e-10),
 *              -svd_max_it, -svd_ncv ... from the PETSc options database
 *              are honoured. A full decomposition (the bases of a finished
 *              task, whose full eigenvectors lambda needs later) takes the
 *              top-k vectors from SLEPc and the eigenvalues and full
 *              eigenvectors from LAPACK on the owner.
 *   auto       lapack when every group is a single rank (R <= L),
 *              scalapack when ranks outnumber blocks. Never slepc: the
 *              bases of a finished task need all eigenvectors (for later
 *              lambdas), hence the covariance, so SLEPc can only save the
 *              dsyrk of the lambda step. With ViT-B/16 shapes that made
 *              the lambda step 20% faster on one rank but 4 times slower
 *              on two, while the factored collection
 *              (nullspace_collector_add_factored) makes the dense lambda
 *              step about 10 times cheaper (bench/README.md has the
 *              numbers).
 *
 * Lambda is not unique when a covariance is rank deficient (eigenvectors of
 * a repeated zero eigenvalue are an arbitrary basis chosen by the
 * eigensolver); the projector is unique. Lambda is computed from the LAPACK
 * or ScaLAPACK eigenvectors stored in the state.
 *
 * Typical use in the training loop (every call on every rank):
 *
 *   nullspace_state_create(&options, &state);
 *   nullspace_collector_create(&options,
 *       nullspace_solver_needs_rows(&options, ranks), local_rows, &collector);
 *   for each task t:
 *     if t > 0:   first training batch, after the forward pass:
 *                 nullspace_collector_reset(collector);
 *                 for each block l: nullspace_collector_add(collector, l, a_l, n);
 *                 nullspace_compute_lambda(state, collector);
 *                 nullspace_log_lambda(state, t);
 *     each step:  all-reduce the gradients, then for t > 0
 *                 nullspace_project_buffer(state, config, grads, CLIP_VISUAL, &count);
 *                 with lambda_apply = step, scale block l's AdamW update by
 *                 nullspace_step_factors(state, factors)[l]
 *     after training: reset, add the adapter outputs of the basis batches
 *                 (eval mode), nullspace_build_bases(state, collector)
 *   dmnsp train adds the adapter's hidden activations
 *   (clip_workspace_adapter_hidden) with nullspace_collector_add_factored
 *   instead of the rows: the same covariance for about 1/80 of the flops of
 *   dsyrk on the rows (d = 768, b = 64; 1/50 of the CPU time in
 *   bench/bench_nullspace.c).
 *     checkpoint: nullspace_task_block() for each block, nullspace_lambda()
 *   resume:      nullspace_add_task() per finished task, nullspace_set_lambda()
 *
 * Memory per rank: the state keeps the full eigenvectors of every finished
 * task on every rank, 4*L*d*d bytes per task (28 MB per task for ViT-B/16);
 * a decomposition holds 8*L*d*d bytes while it runs.
 */
#ifndef DMNSP_NULLSPACE_H
#define DMNSP_NULLSPACE_H

#include "dmnsp/clip_layout.h"

typedef enum {
    NULLSPACE_SOLVER_AUTO = 0,
    NULLSPACE_SOLVER_LAPACK,
    NULLSPACE_SOLVER_SCALAPACK,
    NULLSPACE_SOLVER_SLEPC,
} nullspace_solver;

/* How the null spaces of several past tasks combine into one projector. */
typedef enum {
    /* Default: P = V V^T with V the concatenated trailing eigenvectors,
     * P = t I - sum_tau U_tau U_tau^T. For t > 1 this is not a projector
     * because it scales the common null space by t. */
    NULLSPACE_UNION_CONCAT = 0,
    /* A true orthogonal projector onto the intersection of the past null
     * spaces: P = I - Q Q^T, Q an orthonormal basis of all past top-k
     * vectors of the block. */
    NULLSPACE_UNION_ORTHONORMAL,
} nullspace_union;

typedef enum {
    /* Default: lambda scales the projected gradient. */
    NULLSPACE_LAMBDA_GRADIENT = 0,
    /* The gradient is projected without lambda; the optimizer multiplies
     * block l's update by nullspace_step_factors()[l]. */
    NULLSPACE_LAMBDA_STEP,
} nullspace_lambda_apply;

/* Which projectors act on block l. */
typedef enum {
    NULLSPACE_DYNAMIC = 0, /* DMNSP: all L projectors, lambda from features */
    NULLSPACE_FIXED,       /* DMNSP-fixed: all L projectors, every lambda = s */
    NULLSPACE_SINGLE,      /* NSP-single: only P_l, scaled by lambda[l][l] */
} nullspace_variant;

typedef struct {
    int blocks;          /* L */
    int width;           /* d */
    int bottleneck;      /* b: rows of down_w, columns of up_w */
    int top_select;      /* k, 1 <= k < d */
    double top_k_ratio;  /* rho in (0, 1] */
    double lambda_scale; /* s > 0 */
    nullspace_solver solver;
    nullspace_union union_mode;
    nullspace_lambda_apply lambda_apply;
    nullspace_variant variant;
    /* Divide each P_i by the number of past tasks whose bases it contains
     * (concat union only, because the orthonormal projector needs no
     * division) and lambda by s. */
    int projection_normalize;
} nullspace_options;

/* Fills the published DMNSP settings for the given shapes: k = 1, rho = 0.1,
 * s = 30, solver auto, concat union, lambda on the gradient, DMNSP. */
void nullspace_options_default(nullspace_options *options, int blocks, int width, int bottleneck);
/* Returns 0, or -1 with a message naming the invalid field, its value and
 * the valid range. */
int nullspace_options_validate(const nullspace_options *options);

/* Name parsers for config values; -1 with a message listing the names. */
int nullspace_parse_solver(const char *name, nullspace_solver *solver);
int nullspace_parse_union(const char *name, nullspace_union *union_mode);
int nullspace_parse_lambda_apply(const char *name, nullspace_lambda_apply *apply);
/* Maps a method name to a variant: "DMNSP" and "DMNSP-both" -> dynamic,
 * "DMNSP-fixed" -> fixed, "NSP-single" -> single. Other methods use no
 * null space (-1 with a message). DMNSP-both projects text adapters too:
 * the caller runs a second state with the text width and text blocks, fed
 * with the text adapters' outputs (the text null space is built like the
 * visual one). */
int nullspace_variant_for_method(const char *method, nullspace_variant *variant);
const char *nullspace_solver_name(nullspace_solver solver);

/* The solver "auto" becomes for RANKS ranks (other solvers map to
 * themselves). */
nullspace_solver nullspace_resolve_solver(const nullspace_options *options, int ranks);
/* 1 when SOLVER (after resolving) needs the collector to keep the rows. */
int nullspace_solver_needs_rows(const nullspace_options *options, int ranks);

/* ------------------------------------------------------------------------
 * Collector: covariance of the local rows of every block.
 * ------------------------------------------------------------------------ */
typedef struct nullspace_collector nullspace_collector;

/* Creates a collector for OPTIONS->blocks blocks of width OPTIONS->width.
 * With KEEP_ROWS the rows are also copied (float) for the SLEPc solver;
 * ROWS_HINT is the expected number of local rows per block between resets
 * (the row storage is allocated for it and grows when exceeded). */
int nullspace_collector_create(const nullspace_options *options, int keep_rows, long rows_hint,
                               nullspace_collector **collector);
void nullspace_collector_destroy(nullspace_collector *collector);
/* Forgets all rows and zeroes the covariances (start of a basis step or of
 * the lambda batch). */
void nullspace_collector_reset(nullspace_collector *collector);
/* Adds COUNT local rows (COUNT x d floats, row-major: one adapter output per
 * token, tokens of all local images) to BLOCK: C += rows^T rows, accumulated
 * in double with dsyrk over chunks. A collector that keeps its rows defers
 * the dsyrk until a dense solver or nullspace_collector_allreduce needs the
 * covariance, so a top-k SLEPc solve skips it. Local, not collective. */
int nullspace_collector_add(nullspace_collector *collector, int block, const float *rows, long count);
/* Adds COUNT adapter outputs of BLOCK given in factored form, a = SCALE *
 * (UP_W z + UP_B), from the adapter's hidden activations HIDDEN (COUNT x
 * BOTTLENECK floats: z after ReLU and dropout), UP_W (d x BOTTLENECK) and
 * UP_B (d). The covariance gains SCALE^2 M (sum [z;1][z;1]^T) M^T with
 * M = [UP_W | UP_B], the same as nullspace_collector_add on the rows a up
 * to rounding, at O(COUNT b^2 + d^2 b) instead of O(COUNT d^2) work. With
 * keep_rows the rows a are formed and kept. Local, not collective. */
int nullspace_collector_add_factored(nullspace_collector *collector, int block, const float *hidden, long count,
                                     int bottleneck, const float *up_w, const float *up_b, float scale);
/* Local rows added to BLOCK since the last reset. */
long nullspace_collector_rows(const nullspace_collector *collector, int block);
/* Collective: the covariance of BLOCK summed over all ranks, symmetric,
 * copied to COVARIANCE (d x d) on every rank. */
int nullspace_collector_allreduce(nullspace_collector *collector, int block, double *covariance);

/* ------------------------------------------------------------------------
 * Decomposition of every block (lower level; the state functions call it).
 * ------------------------------------------------------------------------ */
typedef struct {
    int blocks, width, top_select;
    double *eigvals; /* L x d, descending; with full == 0 only the first k */
    double *eigvecs; /* L x d x d (column c = eigenvector c), NULL unless full */
    double *top;     /* L x d x k */
    nullspace_solver solver; /* the solver that ran (never auto) */
} nullspace_decomposition;

/* Collective: decomposes the covariance of every block collected in
 * COLLECTOR with SOLVER (auto resolves for the world size). FULL requests
 * all eigenvalues and eigenvectors, otherwise only the top k. On return
 * every rank has the same RESULT (free it with
 * nullspace_decomposition_free). */
int nullspace_decompose(nullspace_collector *collector, nullspace_solver solver, int full,
                        nullspace_decomposition *result);
void nullspace_decomposition_free(nullspace_decomposition *result);

/* ------------------------------------------------------------------------
 * State: bases of finished tasks, lambda, projection.
 * ------------------------------------------------------------------------ */
typedef struct nullspace_state nullspace_state;

/* Validates OPTIONS and creates an empty state (no finished task). */
int nullspace_state_create(const nullspace_options *options, nullspace_state **state);
void nullspace_state_destroy(nullspace_state *state);
const nullspace_options *nullspace_state_options(const nullspace_state *state);
/* Number of finished tasks whose bases the state contains. */
int nullspace_task_count(const nullspace_state *state);

/* Collective: reduces and decomposes the covariances in COLLECTOR (the
 * basis batches of the task just trained) and appends the bases as the
 * next task. */
int nullspace_build_bases(nullspace_state *state, nullspace_collector *collector);

/* Appends one task's bases, copied from per-block arrays: EIGVALS[l] (d),
 * EIGVECS[l] (d x d, or EIGVECS itself NULL when lambda will never be
 * computed: the fixed variant), TOP[l] (d x k). Local: call it with the
 * same arrays on every rank (used to restore a checkpoint). */
int nullspace_add_task(nullspace_state *state, const double *const *eigvals, const float *const *eigvecs,
                       const float *const *top);

/* Pointers into the state for TASK and BLOCK (owned by the state, valid
 * until it is destroyed): eigvals (d), eigvecs (d x d, NULL when not kept),
 * top (d x k). Any output pointer may be NULL. Returns -1 for an invalid
 * task or block. */
int nullspace_task_block(const nullspace_state *state, int task, int block, const double **eigvals,
                         const float **eigvecs, const float **top);

/* Collective: computes lambda (L x L) for the next task from COLLECTOR,
 * which holds the first training batch of that task (every block): u_j =
 * top-k eigenvectors of the summed covariance C_j; for each column v of
 * V_i = [N_0,i | ... | N_t-1,i] (N = trailing d-k eigenvectors), the
 * similarity |u_j^T v| (k = 1) or ||u_j^T v||_2 (k > 1), absolute because
 * eigenvector signs are arbitrary; m = max(1,
 * floor(n rho)) of the n similarities, lambda[j][i] = s exp(-mean of the m
 * largest). The owner of block i computes column i; one MPI_Allreduce
 * gives every rank the same matrix. The fixed variant sets every entry to
 * s and ignores COLLECTOR (may be NULL). Needs t >= 1. */
int nullspace_compute_lambda(nullspace_state *state, nullspace_collector *collector);
/* The current lambda (L x L, row j = the block being projected), or NULL
 * before the first nullspace_compute_lambda / nullspace_set_lambda. */
const double *nullspace_lambda(const nullspace_state *state);
/* Restores lambda (L x L) from a checkpoint. */
int nullspace_set_lambda(nullspace_state *state, const double *lambda);

/* Per-block update factors for lambda_apply = step: FACTORS[l] = geometric
 * mean of lambda[l][i] / s over the projectors acting on block l (all i,
 * or i = l for the single variant), a value in (1/e, 1]. All 1 when there
 * is no lambda yet. */
void nullspace_step_factors(const nullspace_state *state, double *factors);

/* Projects the weight gradients of every block in place (biases are not
 * projected): DOWN[l] (b x d) <- DOWN[l] . c0 P_0 . c1 P_1 ... and
 * UP[l] (d x b) <- ... c1 P_1 . c0 P_0 . UP[l], with c_i = lambda[l][i]
 * (divided by s with projection_normalize, 1 with lambda_apply = step)
 * and P_i the block-i projector of the union mode. Cost O(b d k t) per
 * projector; d x d matrices are never formed. Adds the number of
 * non-finite values in the projected gradients to *NONFINITE (may be
 * NULL). A no-op when the state has no finished task. Needs lambda unless
 * the variant is fixed. Local: every rank calls it on its copy of the
 * summed gradients. */
int nullspace_project(nullspace_state *state, float *const *down, float *const *up, long *nonfinite);
/* The same over L adapter views (clip_adapter_block of a gradient buffer);
 * the views' width and bottleneck must match the options. */
int nullspace_project_views(nullspace_state *state, const clip_adapter_view *views, long *nonfinite);

/* The same over the adapter-layout gradient buffer GRADIENTS of CONFIG
 * (all adapters, both modalities): projects MODALITY's blocks, the visual
 * ones for DMNSP (a text state with DMNSP-both). This is what a training
 * step hook calls after the gradient all-reduce. */
int nullspace_project_buffer(nullspace_state *state, const clip_config *config, float *gradients,
                             clip_modality modality, long *nonfinite);

/* Logs (rank 0, info) a summary of lambda for TASK: min, mean, max, the
 * diagonal and, for lambda_apply = step, the per-block update factors. */
void nullspace_log_lambda(const nullspace_state *state, int task);

#endif

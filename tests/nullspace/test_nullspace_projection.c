/* Projection tests on one rank: the implicit projectors against explicit
 * products of d x d matrices built from the full eigenvectors, projected
 * gradients orthogonal to past top directions, counting of non-finite
 * values, state accessors and parameter validation. */
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/nullspace.h"
#include "nullspace_test_data.h"
#include "test_util.h"

#include <stdio.h>

enum { D = 16, L = 3, K = 2, B = 4, T = 3 };

/* Adds T tasks of random orthogonal bases. Block 0 of the last task repeats
 * task 0's eigenvectors, which makes the union of its top directions rank
 * deficient. */
static void add_random_tasks(nullspace_state *state, test_random *g, double eigvecs[T][L][D * D])
{
    for (int t = 0; t < T; t++) {
        double eigvals[L][D];
        float eigvecs_f[L][D * D], top_f[L][D * K];
        const double *eigvals_p[L];
        const float *eigvecs_p[L], *top_p[L];
        for (int l = 0; l < L; l++) {
            if (t == T - 1 && l == 0)
                memcpy(eigvecs[t][l], eigvecs[0][l], sizeof eigvecs[t][l]);
            else
                test_random_orthogonal(g, D, eigvecs[t][l]);
            for (int c = 0; c < D; c++)
                eigvals[l][c] = (double)(D - c);
            for (int x = 0; x < D * D; x++) {
                eigvecs_f[l][x] = (float)eigvecs[t][l][x];
                eigvecs[t][l][x] = eigvecs_f[l][x]; /* the test uses what the state stores */
            }
            for (int r = 0; r < D; r++)
                for (int q = 0; q < K; q++)
                    top_f[l][r * K + q] = eigvecs_f[l][r * D + q];
            eigvals_p[l] = eigvals[l];
            eigvecs_p[l] = eigvecs_f[l];
            top_p[l] = top_f[l];
        }
        CHECK_OK(nullspace_add_task(state, eigvals_p, eigvecs_p, top_p));
    }
}

/* Fills the weight gradients of BLOCKS blocks, DOWN (B x WIDTH) and UP
 * (WIDTH x B) each, with standard normal values from G, and points DOWN_P
 * and UP_P at them. */
static void random_gradients(test_random *g, int blocks, int width, float (*down)[B * width], float (*up)[B * width],
                             float **down_p, float **up_p)
{
    for (int l = 0; l < blocks; l++) {
        for (int x = 0; x < B * width; x++) {
            down[l][x] = (float)test_normal(g);
            up[l][x] = (float)test_normal(g);
        }
        down_p[l] = down[l];
        up_p[l] = up[l];
    }
}

/* C = A B for D x D matrices. */
static void multiply(const double *a, const double *b, double *c)
{
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double sum = 0;
            for (int p = 0; p < D; p++)
                sum += a[i * D + p] * b[p * D + j];
            c[i * D + j] = sum;
        }
}

/* Explicit projector of block I: V V^T from the trailing eigenvectors
 * (concat) or I - Q Q^T with Q from Gram-Schmidt of the top vectors
 * (orthonormal). */
static void explicit_projector(const nullspace_options *o, double eigvecs[T][L][D * D], int i, double *p)
{
    memset(p, 0, sizeof(double) * D * D);
    if (o->union_mode == NULLSPACE_UNION_CONCAT) {
        for (int t = 0; t < T; t++)
            for (int r = 0; r < D; r++)
                for (int c = 0; c < D; c++)
                    for (int col = K; col < D; col++)
                        p[r * D + c] += eigvecs[t][i][r * D + col] * eigvecs[t][i][c * D + col];
        if (o->projection_normalize)
            for (int x = 0; x < D * D; x++)
                p[x] /= T;
        return;
    }
    double q[T * K][D];
    int rank = 0;
    for (int t = 0; t < T; t++)
        for (int col = 0; col < K; col++) {
            double v[D];
            for (int r = 0; r < D; r++)
                v[r] = eigvecs[t][i][r * D + col];
            for (int pass = 0; pass < 2; pass++)
                for (int prev = 0; prev < rank; prev++) {
                    double dot = 0;
                    for (int r = 0; r < D; r++)
                        dot += v[r] * q[prev][r];
                    for (int r = 0; r < D; r++)
                        v[r] -= dot * q[prev][r];
                }
            double norm = 0;
            for (int r = 0; r < D; r++)
                norm += v[r] * v[r];
            if (sqrt(norm) < 1e-4)
                continue;
            for (int r = 0; r < D; r++)
                q[rank][r] = v[r] / sqrt(norm);
            rank++;
        }
    for (int r = 0; r < D; r++)
        p[r * D + r] = 1.0;
    for (int v = 0; v < rank; v++)
        for (int r = 0; r < D; r++)
            for (int c = 0; c < D; c++)
                p[r * D + c] -= q[v][r] * q[v][c];
}

static void check_projector_case(nullspace_union union_mode, int normalize, nullspace_variant variant,
                                 nullspace_lambda_apply apply)
{
    nullspace_options o;
    nullspace_options_default(&o, L, D, B);
    o.top_select = K;
    o.lambda_scale = 20.0;
    o.union_mode = union_mode;
    o.projection_normalize = normalize;
    o.variant = variant;
    o.lambda_apply = apply;
    nullspace_state *state = NULL;
    CHECK_OK(nullspace_state_create(&o, &state));
    if (state == NULL)
        return;

    test_random g = {42};
    static double eigvecs[T][L][D * D];
    add_random_tasks(state, &g, eigvecs);
    double lambda[L * L];
    for (int x = 0; x < L * L; x++)
        lambda[x] = o.lambda_scale * exp(-test_uniform(&g));
    CHECK_OK(nullspace_set_lambda(state, lambda));

    float down[L][B * D], up[L][D * B];
    float *down_p[L], *up_p[L];
    random_gradients(&g, L, D, down, up, down_p, up_p);
    double down_ref[L][B * D], up_ref[L][D * B];

    /* Expected: M_l = prod_i c_i P_i; G_down M_l and M_l^T G_up. */
    for (int l = 0; l < L; l++) {
        double m[D * D], p[D * D], next[D * D];
        memset(m, 0, sizeof m);
        for (int r = 0; r < D; r++)
            m[r * D + r] = 1.0;
        for (int i = 0; i < L; i++) {
            if (variant == NULLSPACE_SINGLE && i != l)
                continue;
            double coefficient = 1.0;
            if (apply == NULLSPACE_LAMBDA_GRADIENT)
                coefficient = lambda[l * L + i] / (normalize ? o.lambda_scale : 1.0);
            explicit_projector(&o, eigvecs, i, p);
            for (int x = 0; x < D * D; x++)
                p[x] *= coefficient;
            multiply(m, p, next);
            memcpy(m, next, sizeof m);
        }
        for (int r = 0; r < B; r++)
            for (int c = 0; c < D; c++) {
                double sum = 0;
                for (int x = 0; x < D; x++)
                    sum += down[l][r * D + x] * m[x * D + c];
                down_ref[l][r * D + c] = sum;
            }
        for (int r = 0; r < D; r++)
            for (int c = 0; c < B; c++) {
                double sum = 0;
                for (int x = 0; x < D; x++)
                    sum += m[x * D + r] * up[l][x * B + c];
                up_ref[l][r * B + c] = sum;
            }
    }

    long nonfinite = 0;
    CHECK_OK(nullspace_project(state, down_p, up_p, &nonfinite));
    CHECK_EQ_INT(nonfinite, 0);

    char name[160];
    for (int l = 0; l < L; l++) {
        float expected_down[B * D], expected_up[D * B];
        double largest = 0;
        for (int x = 0; x < B * D; x++) {
            expected_down[x] = (float)down_ref[l][x];
            expected_up[x] = (float)up_ref[l][x];
            largest = fmax(largest, fmax(fabs(down_ref[l][x]), fabs(up_ref[l][x])));
        }
        snprintf(name, sizeof name, "union %d normalize %d variant %d apply %d block %d down", union_mode, normalize,
                 variant, apply, l);
        test_compare_floats(name, down[l], expected_down, B * D, 2e-5, largest);
        snprintf(name, sizeof name, "union %d normalize %d variant %d apply %d block %d up", union_mode, normalize,
                 variant, apply, l);
        test_compare_floats(name, up[l], expected_up, D * B, 2e-5, largest);
    }
    nullspace_state_destroy(state);
}

static void test_projector_matches_explicit(void)
{
    for (int u = 0; u < 2; u++)
        for (int normalize = 0; normalize < 2; normalize++)
            for (int v = 0; v < 2; v++)
                for (int a = 0; a < 2; a++)
                    check_projector_case(u ? NULLSPACE_UNION_ORTHONORMAL : NULLSPACE_UNION_CONCAT, normalize,
                                         v ? NULLSPACE_SINGLE : NULLSPACE_DYNAMIC,
                                         a ? NULLSPACE_LAMBDA_STEP : NULLSPACE_LAMBDA_GRADIENT);
}

/* Largest |component| of the projected gradients DOWN (b x d) and UP
 * (d x b) along the top directions of BASIS_BLOCK in every past task. */
static double largest_top_component(const nullspace_state *state, int basis_block, int width, int top_select,
                                    const float *down, const float *up)
{
    double largest = 0;
    for (int task = 0; task < nullspace_task_count(state); task++) {
        const float *top = NULL;
        CHECK_OK(nullspace_task_block(state, task, basis_block, NULL, NULL, &top));
        if (top == NULL)
            return INFINITY;
        for (int q = 0; q < top_select; q++) {
            for (int r = 0; r < B; r++) {
                double dot = 0;
                for (int c = 0; c < width; c++)
                    dot += down[r * width + c] * top[c * top_select + q];
                largest = fmax(largest, fabs(dot));
            }
            for (int c = 0; c < B; c++) {
                double dot = 0;
                for (int r = 0; r < width; r++)
                    dot += top[r * top_select + q] * up[r * B + c];
                largest = fmax(largest, fabs(dot));
            }
        }
    }
    return largest;
}

/* Orthonormal union, bases built from collected features. NSP-single: each
 * block's projected gradients have no component along that block's past
 * top directions. DMNSP: the outermost projector is the last block's, so
 * every block's gradients are orthogonal to the last block's directions. */
static void test_orthonormal_projection_is_orthogonal(void)
{
    enum { WIDTH = 32, BLOCKS = 3, TOP = 3, ROWS = 200 };
    for (int single = 0; single < 2; single++) {
        nullspace_options o;
        nullspace_options_default(&o, BLOCKS, WIDTH, B);
        o.top_select = TOP;
        o.union_mode = NULLSPACE_UNION_ORTHONORMAL;
        o.variant = single ? NULLSPACE_SINGLE : NULLSPACE_FIXED;
        o.solver = NULLSPACE_SOLVER_LAPACK;
        nullspace_state *state = NULL;
        nullspace_collector *collector = NULL;
        CHECK_OK(nullspace_state_create(&o, &state));
        CHECK_OK(nullspace_collector_create(&o, 0, 0, &collector));
        if (state == NULL || collector == NULL)
            return;

        test_random g = {7};
        double directions[6 * WIDTH];
        float row[WIDTH];
        for (int task = 0; task < 2; task++) {
            nullspace_collector_reset(collector);
            for (int l = 0; l < BLOCKS; l++) {
                for (int x = 0; x < 6 * WIDTH; x++)
                    directions[x] = test_normal(&g);
                for (long i = 0; i < ROWS; i++) {
                    test_feature_row(100 + task * 10 + l, i, directions, 6, WIDTH, 0.05, row);
                    CHECK_OK(nullspace_collector_add(collector, l, row, 1));
                }
            }
            CHECK_OK(nullspace_build_bases(state, collector));
        }
        CHECK_EQ_INT(nullspace_task_count(state), 2);
        if (single) {
            double lambda[BLOCKS * BLOCKS];
            for (int x = 0; x < BLOCKS * BLOCKS; x++)
                lambda[x] = 20.0;
            CHECK_OK(nullspace_set_lambda(state, lambda));
        } else {
            CHECK_OK(nullspace_compute_lambda(state, NULL));
        }

        float down[BLOCKS][B * WIDTH], up[BLOCKS][WIDTH * B];
        float *down_p[BLOCKS], *up_p[BLOCKS];
        random_gradients(&g, BLOCKS, WIDTH, down, up, down_p, up_p);
        CHECK_OK(nullspace_project(state, down_p, up_p, NULL));

        for (int l = 0; l < BLOCKS; l++) {
            double scale = 0;
            for (int x = 0; x < B * WIDTH; x++)
                scale = fmax(scale, fmax(fabs(down[l][x]), fabs(up[l][x])));
            CHECK(scale > 1.0); /* the projection did not zero everything */
            int basis_block = single ? l : BLOCKS - 1;
            double largest = largest_top_component(state, basis_block, WIDTH, TOP, down[l], up[l]);
            if (!(largest <= 1e-5 * scale))
                test_report_failure(__FILE__, __LINE__,
                                    "%s block %d: largest component along a past top direction of block %d is %g "
                                    "(gradient scale %g)",
                                    single ? "NSP-single" : "DMNSP", l, basis_block, largest, scale);
        }
        nullspace_collector_destroy(collector);
        nullspace_state_destroy(state);
    }
}

/* A huge lambda_scale overflows float: every non-finite value is counted. */
static void test_overflow_is_counted(void)
{
    for (int huge = 0; huge < 2; huge++) {
        nullspace_options o;
        nullspace_options_default(&o, L, D, B);
        o.top_select = K;
        o.variant = NULLSPACE_FIXED;
        o.lambda_scale = huge ? 1e30 : 30.0;
        nullspace_state *state = NULL;
        CHECK_OK(nullspace_state_create(&o, &state));
        if (state == NULL)
            return;
        test_random g = {99};
        static double eigvecs[T][L][D * D];
        add_random_tasks(state, &g, eigvecs);
        CHECK_OK(nullspace_compute_lambda(state, NULL));

        float down[L][B * D], up[L][D * B];
        float *down_p[L], *up_p[L];
        random_gradients(&g, L, D, down, up, down_p, up_p);
        long nonfinite = 5; /* the count is added to */
        CHECK_OK(nullspace_project(state, down_p, up_p, &nonfinite));
        long expected = 5;
        for (int l = 0; l < L; l++)
            for (int x = 0; x < B * D; x++)
                expected += !isfinite(down[l][x]) + !isfinite(up[l][x]);
        CHECK_EQ_INT(nonfinite, expected);
        if (huge)
            CHECK(nonfinite > 5 + L * B * D);
        else
            CHECK_EQ_INT(nonfinite, 5);
        nullspace_state_destroy(state);
    }
}

static void test_state_accessors_round_trip(void)
{
    nullspace_options o;
    nullspace_options_default(&o, L, D, B);
    o.top_select = K;
    nullspace_state *state = NULL;
    CHECK_OK(nullspace_state_create(&o, &state));
    if (state == NULL)
        return;
    test_random g = {5};
    static double eigvecs[T][L][D * D];
    add_random_tasks(state, &g, eigvecs);
    CHECK_EQ_INT(nullspace_task_count(state), T);
    CHECK(nullspace_lambda(state) == NULL);

    const double *values = NULL;
    const float *vectors = NULL, *top = NULL;
    CHECK_OK(nullspace_task_block(state, 1, 2, &values, &vectors, &top));
    CHECK_NEAR(values[0], D, 0);
    CHECK_NEAR(values[D - 1], 1, 0);
    double largest = 0;
    for (int r = 0; r < D; r++) {
        for (int c = 0; c < D; c++)
            largest = fmax(largest, fabs(vectors[r * D + c] - eigvecs[1][2][r * D + c]));
        for (int q = 0; q < K; q++)
            largest = fmax(largest, fabs(top[r * K + q] - eigvecs[1][2][r * D + q]));
    }
    CHECK_NEAR(largest, 0, 0);
    CHECK_FAILS_WITH(nullspace_task_block(state, T, 0, &values, NULL, NULL), "task 3 has no bases");
    CHECK_FAILS_WITH(nullspace_task_block(state, 0, L, &values, NULL, NULL), "block 3 is out of range");

    double lambda[L * L];
    for (int x = 0; x < L * L; x++)
        lambda[x] = 10.0 + x;
    lambda[4] = -1.0;
    CHECK_FAILS_WITH(nullspace_set_lambda(state, lambda), "lambda[1][1] = -1 is invalid");
    lambda[4] = 14.0;
    CHECK_OK(nullspace_set_lambda(state, lambda));
    CHECK(nullspace_lambda(state) != NULL);
    CHECK(nullspace_lambda(state)[5] == 15.0);

    double factors[L];
    nullspace_step_factors(state, factors);
    CHECK_NEAR(factors[0], cbrt(10.0 / 30 * 11.0 / 30 * 12.0 / 30), 1e-12);
    nullspace_state_destroy(state);
}

static void test_invalid_parameters_rejected(void)
{
    nullspace_options o;
    nullspace_options_default(&o, 12, 768, 64);
    CHECK_OK(nullspace_options_validate(&o));

    o.top_select = 768;
    CHECK_FAILS_WITH(nullspace_options_validate(&o), "top_select 768 is out of range (expected 1..767");
    o.top_select = 0;
    CHECK_FAILS_WITH(nullspace_options_validate(&o), "top_select 0 is out of range");
    o.top_select = 1;

    o.top_k_ratio = 0.0;
    CHECK_FAILS_WITH(nullspace_options_validate(&o), "top_k_ratio 0 is out of range (expected 0 < top_k_ratio <= 1)");
    o.top_k_ratio = 1.5;
    CHECK_FAILS_WITH(nullspace_options_validate(&o), "top_k_ratio 1.5 is out of range");
    o.top_k_ratio = NAN;
    CHECK_FAILS_WITH(nullspace_options_validate(&o), "top_k_ratio nan is out of range");
    o.top_k_ratio = 1.0;
    CHECK_OK(nullspace_options_validate(&o));

    o.lambda_scale = 0.0;
    CHECK_FAILS_WITH(nullspace_options_validate(&o), "lambda_scale 0 is invalid");
    o.lambda_scale = 30.0;

    nullspace_state *state = NULL;
    o.top_select = 900;
    CHECK_FAILS_WITH(nullspace_state_create(&o, &state), "top_select 900");
    CHECK(state == NULL);

    nullspace_solver solver;
    CHECK_OK(nullspace_parse_solver("SLEPc", &solver));
    CHECK_EQ_INT(solver, NULLSPACE_SOLVER_SLEPC);
    CHECK_FAILS_WITH(nullspace_parse_solver("magma", &solver), "unknown solver 'magma'");
    nullspace_union union_mode;
    CHECK_FAILS_WITH(nullspace_parse_union("sum", &union_mode), "expected concat or orthonormal");
    nullspace_lambda_apply apply;
    CHECK_OK(nullspace_parse_lambda_apply("step", &apply));
    CHECK_EQ_INT(apply, NULLSPACE_LAMBDA_STEP);
    nullspace_variant variant;
    CHECK_OK(nullspace_variant_for_method("NSP-single", &variant));
    CHECK_EQ_INT(variant, NULLSPACE_SINGLE);
    CHECK_FAILS_WITH(nullspace_variant_for_method("finetune", &variant), "uses no null space");

    /* auto: LAPACK while every block group is one rank. */
    nullspace_options_default(&o, 12, 768, 64);
    CHECK_EQ_INT(nullspace_resolve_solver(&o, 1), NULLSPACE_SOLVER_LAPACK);
    CHECK_EQ_INT(nullspace_resolve_solver(&o, 12), NULLSPACE_SOLVER_LAPACK);
    CHECK_EQ_INT(nullspace_resolve_solver(&o, 16), NULLSPACE_SOLVER_SCALAPACK);
}

static void test_projection_needs_lambda(void)
{
    nullspace_options o;
    nullspace_options_default(&o, L, D, B);
    o.top_select = K;
    nullspace_state *state = NULL;
    CHECK_OK(nullspace_state_create(&o, &state));
    if (state == NULL)
        return;
    float down[L][B * D], up[L][D * B];
    float *down_p[L], *up_p[L];
    for (int l = 0; l < L; l++) {
        for (int x = 0; x < B * D; x++)
            down[l][x] = up[l][x] = 1.0f;
        down_p[l] = down[l];
        up_p[l] = up[l];
    }
    /* No finished task: nothing to project. */
    CHECK_OK(nullspace_project(state, down_p, up_p, NULL));
    CHECK(down[1][3] == 1.0f);
    CHECK(up[2][5] == 1.0f);

    test_random g = {11};
    static double eigvecs[T][L][D * D];
    add_random_tasks(state, &g, eigvecs);
    CHECK_FAILS_WITH(nullspace_project(state, down_p, up_p, NULL), "needs lambda");
    CHECK_FAILS_WITH(nullspace_compute_lambda(state, NULL), "lambda needs a collector");
    nullspace_state_destroy(state);
}

/* The adapter-buffer entry point projects exactly the visual weight
 * gradients; biases and text adapters stay as they were. */
static void test_project_buffer_touches_visual_weights(void)
{
    clip_config config;
    CHECK_OK(clip_preset("tiny", &config));
    int blocks = config.vision_layers, width = config.vision_width, bottleneck = config.adapter_bottleneck;
    nullspace_options o;
    nullspace_options_default(&o, blocks, width, bottleneck);
    o.variant = NULLSPACE_FIXED;
    o.projection_normalize = 1;
    nullspace_state *state = NULL;
    CHECK_OK(nullspace_state_create(&o, &state));
    if (state == NULL)
        return;

    /* One task of random orthonormal top vectors (k = 1: unit vectors). */
    test_random g = {31};
    double *eigvals = calloc((size_t)blocks * width, sizeof(double));
    float *top = malloc((size_t)blocks * width * sizeof(float));
    const double *eigvals_p[blocks];
    const float *top_p[blocks];
    for (int l = 0; l < blocks; l++) {
        double norm = 0;
        for (int r = 0; r < width; r++) {
            top[l * width + r] = (float)test_normal(&g);
            norm += (double)top[l * width + r] * top[l * width + r];
        }
        for (int r = 0; r < width; r++)
            top[l * width + r] /= (float)sqrt(norm);
        eigvals_p[l] = eigvals + (size_t)l * width;
        top_p[l] = top + (size_t)l * width;
    }
    CHECK_OK(nullspace_add_task(state, eigvals_p, NULL, top_p));
    CHECK_OK(nullspace_compute_lambda(state, NULL));

    size_t count = clip_adapter_count(&config);
    float *gradients = malloc(count * sizeof(float));
    float *before = malloc(count * sizeof(float));
    for (size_t x = 0; x < count; x++)
        gradients[x] = before[x] = (float)test_normal(&g);
    CHECK_OK(nullspace_project_buffer(state, &config, gradients, CLIP_VISUAL, NULL));

    /* Expected: the same projection through separate copies. */
    float *expected = malloc(count * sizeof(float));
    memcpy(expected, before, count * sizeof(float));
    float *down[blocks], *up[blocks];
    for (int l = 0; l < blocks; l++) {
        clip_adapter_view view;
        clip_adapter_block(&config, expected, CLIP_VISUAL, l, &view);
        down[l] = view.down_w;
        up[l] = view.up_w;
    }
    CHECK_OK(nullspace_project(state, down, up, NULL));
    test_compare_floats("adapter buffer after projection", gradients, expected, count, 0, 0);

    /* Biases and every text adapter value are unchanged; weights moved. */
    clip_adapter_view view, original;
    clip_adapter_block(&config, gradients, CLIP_VISUAL, 3, &view);
    clip_adapter_block(&config, before, CLIP_VISUAL, 3, &original);
    CHECK(memcmp(view.down_b, original.down_b, bottleneck * sizeof(float)) == 0);
    CHECK(memcmp(view.up_b, original.up_b, width * sizeof(float)) == 0);
    CHECK(memcmp(view.down_w, original.down_w, (size_t)bottleneck * width * sizeof(float)) != 0);
    size_t text_offset = clip_adapter_modality_offset(&config, CLIP_TEXT);
    size_t text_count = clip_adapter_modality_count(&config, CLIP_TEXT);
    CHECK(memcmp(gradients + text_offset, before + text_offset, text_count * sizeof(float)) == 0);

    CHECK_FAILS_WITH(nullspace_project_buffer(state, &config, gradients, CLIP_TEXT, NULL),
                     "adapter view of block 0 is 64 wide");
    nullspace_state_destroy(state);
    free(eigvals);
    free(top);
    free(gradients);
    free(before);
    free(expected);
}

/* Collective errors: a block without rows, non-finite features. */
static void test_decompose_rejects_bad_features(void)
{
    nullspace_options o;
    nullspace_options_default(&o, 2, 8, 2);
    nullspace_state *state = NULL;
    nullspace_collector *collector = NULL;
    CHECK_OK(nullspace_state_create(&o, &state));
    CHECK_OK(nullspace_collector_create(&o, 0, 0, &collector));
    if (state == NULL || collector == NULL)
        return;
    float rows[3 * 8];
    for (int x = 0; x < 3 * 8; x++)
        rows[x] = (float)(x % 5);
    CHECK_OK(nullspace_collector_add(collector, 0, rows, 3));
    CHECK_FAILS_WITH(nullspace_build_bases(state, collector), "no rows were collected for block 1");
    rows[10] = INFINITY;
    CHECK_OK(nullspace_collector_add(collector, 1, rows, 3));
    CHECK_FAILS_WITH(nullspace_build_bases(state, collector), "covariance of block 1 contains non-finite values");
    CHECK_EQ_INT(nullspace_task_count(state), 0);
    nullspace_collector_destroy(collector);
    nullspace_state_destroy(state);
}

int main(int argc, char **argv)
{
    CHECK_OK(dist_init(argv[0], argc - 1, argv + 1));
    test_projector_matches_explicit();
    test_orthonormal_projection_is_orthogonal();
    test_overflow_is_counted();
    test_state_accessors_round_trip();
    test_invalid_parameters_rejected();
    test_projection_needs_lambda();
    test_project_buffer_touches_visual_weights();
    test_decompose_rejects_bad_features();
    dist_finalize();
    return test_finish("test_nullspace_projection");
}

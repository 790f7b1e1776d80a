/* Checks every op against a naive double-precision implementation written
 * here: the float forward must match it, and the float backward must match
 * central finite differences of the double forward of the loss
 * sum(out · r) for a fixed random r. */
#include "dmnsp/ops.h"
#include "test_util.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state = 12345;

static double uniform(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) * 0x1p-53;
}

/* Fills x with values in [-scale, scale]; with a nonzero gap, values lie
 * at least gap away from 0 (keeps finite differences off ReLU's kink). */
static void fill(float *x, size_t n, double scale, double gap)
{
    for (size_t i = 0; i < n; i++) {
        double v = (2.0 * uniform() - 1.0) * scale;
        if (gap > 0 && fabs(v) < gap)
            v = v < 0 ? v - gap : v + gap;
        x[i] = (float)v;
    }
}

static double *to_double(const float *x, size_t n)
{
    double *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++)
        y[i] = x[i];
    return y;
}

/* A double forward with one variable input: writes out (count `out_n`). */
typedef void (*forward_fn)(void *ctx, const double *var, double *out);

/* Central differences of sum(out · r) with respect to var [n]. */
static void finite_difference(forward_fn f, void *ctx, double *var, size_t n, const double *r, size_t out_n,
                              double *grad)
{
    const double eps = 1e-6;
    double *out = malloc(out_n * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        double saved = var[i];
        double plus = 0, minus = 0;
        var[i] = saved + eps;
        f(ctx, var, out);
        for (size_t j = 0; j < out_n; j++)
            plus += out[j] * r[j];
        var[i] = saved - eps;
        f(ctx, var, out);
        for (size_t j = 0; j < out_n; j++)
            minus += out[j] * r[j];
        var[i] = saved;
        grad[i] = (plus - minus) / (2 * eps);
    }
    free(out);
}

/* Compares a float gradient with the finite-difference gradient. */
static void check_gradient(const char *name, const float *got, forward_fn f, void *ctx, double *var, size_t n,
                           const double *r, size_t out_n)
{
    double *expected = malloc(n * sizeof *expected);
    finite_difference(f, ctx, var, n, r, out_n, expected);
    double *got_d = to_double(got, n);
    test_compare_doubles(name, got_d, expected, n, 2e-4, 1e-2);
    free(got_d);
    free(expected);
}

static void check_forward(const char *name, const float *got, const double *expected, size_t n)
{
    double *got_d = to_double(got, n);
    test_compare_doubles(name, got_d, expected, n, 1e-5, 1.0);
    free(got_d);
}

/* ---- linear ------------------------------------------------------------- */

typedef struct {
    int N, C, OC;
    double *inp, *weight, *bias;
    int variable; /* 0 inp, 1 weight, 2 bias */
} linear_ctx;

static void linear_double(void *opaque, const double *var, double *out)
{
    linear_ctx *c = opaque;
    const double *inp = c->variable == 0 ? var : c->inp;
    const double *w = c->variable == 1 ? var : c->weight;
    const double *b = c->variable == 2 ? var : c->bias;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = b[o];
            for (int i = 0; i < c->C; i++)
                s += inp[n * c->C + i] * w[o * c->C + i];
            out[n * c->OC + o] = s;
        }
}

static void test_linear(void)
{
    int N = 7, C = 5, OC = 6;
    float *inp = malloc(sizeof(float) * N * C), *w = malloc(sizeof(float) * OC * C), *b = malloc(sizeof(float) * OC);
    fill(inp, N * C, 1, 0);
    fill(w, OC * C, 1, 0);
    fill(b, OC, 1, 0);
    float out[7 * 6];
    linear_forward(out, inp, w, b, N, C, OC);

    linear_ctx ctx = {N, C, OC, to_double(inp, N * C), to_double(w, OC * C), to_double(b, OC), -1};
    double expected[7 * 6];
    linear_double(&ctx, NULL, expected);
    check_forward("linear forward", out, expected, N * OC);

    float r[7 * 6];
    fill(r, N * OC, 1, 0);
    double *rd = to_double(r, N * OC);

    /* Gradients start from a nonzero value to check that they accumulate. */
    float dinp[7 * 5], dw[6 * 5], db[6];
    for (int i = 0; i < N * C; i++)
        dinp[i] = 1.0f;
    memset(dw, 0, sizeof dw);
    memset(db, 0, sizeof db);
    linear_backward(dinp, dw, db, r, inp, w, N, C, OC);
    for (int i = 0; i < N * C; i++)
        dinp[i] -= 1.0f;

    ctx.variable = 0;
    check_gradient("linear dinp", dinp, linear_double, &ctx, ctx.inp, N * C, rd, N * OC);
    ctx.variable = 1;
    check_gradient("linear dweight", dw, linear_double, &ctx, ctx.weight, OC * C, rd, N * OC);
    ctx.variable = 2;
    check_gradient("linear dbias", db, linear_double, &ctx, ctx.bias, OC, rd, N * OC);

    /* NULL gradients are skipped; no bias means zero bias. */
    float dinp2[7 * 5] = {0};
    linear_backward(dinp2, NULL, NULL, r, inp, w, N, C, OC);
    test_compare_floats("linear dinp without weight gradients", dinp2, dinp, N * C, 1e-6, 0);
    float out_nobias[7 * 6];
    linear_forward(out_nobias, inp, w, NULL, N, C, OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++)
            expected[n * OC + o] -= ctx.bias[o];
    check_forward("linear forward without bias", out_nobias, expected, N * OC);

    free(inp), free(w), free(b), free(rd), free(ctx.inp), free(ctx.weight), free(ctx.bias);
}

/* ---- linear with a bias wider than one column tile --------------------- */

static void test_linear_wide_bias_gradient(void)
{
    int N = 3, C = 2, OC = 300;
    float *dout = malloc(sizeof(float) * N * OC), *inp = calloc((size_t)N * C, sizeof(float));
    float *w = calloc((size_t)OC * C, sizeof(float)), *db = calloc(OC, sizeof(float));
    float *expected = calloc(OC, sizeof(float));
    fill(dout, (size_t)N * OC, 1, 0);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++)
            expected[o] += dout[n * OC + o];
    linear_backward(NULL, NULL, db, dout, inp, w, N, C, OC);
    test_compare_floats("linear dbias over 300 columns", db, expected, OC, 1e-6, 0);
    free(dout), free(inp), free(w), free(db), free(expected);
}

/* ---- projection --------------------------------------------------------- */

typedef struct {
    int N, C, OC;
    double *proj;
} projection_ctx;

static void projection_double(void *opaque, const double *inp, double *out)
{
    projection_ctx *c = opaque;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = 0;
            for (int i = 0; i < c->C; i++)
                s += inp[n * c->C + i] * c->proj[i * c->OC + o];
            out[n * c->OC + o] = s;
        }
}

static void test_projection(void)
{
    int N = 4, C = 6, OC = 3;
    float inp[24], proj[18], out[12], r[12], dinp[24] = {0};
    fill(inp, 24, 1, 0);
    fill(proj, 18, 1, 0);
    fill(r, 12, 1, 0);
    projection_forward(out, inp, proj, N, C, OC);
    projection_ctx ctx = {N, C, OC, to_double(proj, 18)};
    double *inp_d = to_double(inp, 24), expected[12];
    projection_double(&ctx, inp_d, expected);
    check_forward("projection forward", out, expected, 12);

    projection_backward(dinp, r, proj, N, C, OC);
    double *rd = to_double(r, 12);
    check_gradient("projection dinp", dinp, projection_double, &ctx, inp_d, 24, rd, 12);
    free(ctx.proj), free(inp_d), free(rd);
}

/* ---- layernorm ---------------------------------------------------------- */

typedef struct {
    int N, C;
    double *weight, *bias;
} layernorm_ctx;

static void layernorm_double(void *opaque, const double *x, double *out)
{
    layernorm_ctx *c = opaque;
    for (int n = 0; n < c->N; n++) {
        const double *row = x + n * c->C;
        double m = 0, v = 0;
        for (int i = 0; i < c->C; i++)
            m += row[i];
        m /= c->C;
        for (int i = 0; i < c->C; i++)
            v += (row[i] - m) * (row[i] - m);
        v /= c->C;
        for (int i = 0; i < c->C; i++)
            out[n * c->C + i] = (row[i] - m) / sqrt(v + 1e-5) * c->weight[i] + c->bias[i];
    }
}

static void test_layernorm(void)
{
    int N = 5, C = 8;
    float x[40], w[8], b[8], out[40], mean[5], rstd[5], r[40], dx[40] = {0};
    fill(x, 40, 2, 0);
    /* a large common offset in one row, as residual streams can have */
    for (int i = 0; i < C; i++)
        x[i] += 30.0f;
    fill(w, 8, 1.5, 0);
    fill(b, 8, 1, 0);
    fill(r, 40, 1, 0);
    layernorm_forward(out, mean, rstd, x, w, b, N, C);
    layernorm_ctx ctx = {N, C, to_double(w, 8), to_double(b, 8)};
    double *xd = to_double(x, 40), expected[40];
    layernorm_double(&ctx, xd, expected);
    check_forward("layernorm forward", out, expected, 40);

    float out_no_stats[40];
    layernorm_forward(out_no_stats, NULL, NULL, x, w, b, N, C);
    test_compare_floats("layernorm forward without saved statistics", out_no_stats, out, 40, 0, 0);

    layernorm_backward(dx, r, x, w, mean, rstd, N, C);
    double *rd = to_double(r, 40);
    check_gradient("layernorm dinp", dx, layernorm_double, &ctx, xd, 40, rd, 40);
    free(ctx.weight), free(ctx.bias), free(xd), free(rd);
}

/* ---- attention ---------------------------------------------------------- */

typedef struct {
    int B, T, C, H, causal;
} attention_ctx;

static void attention_double(void *opaque, const double *qkv, double *out)
{
    attention_ctx *c = opaque;
    int D = c->C / c->H, C3 = 3 * c->C;
    double scores[64];
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++)
            for (int t = 0; t < c->T; t++) {
                const double *q = qkv + (b * c->T + t) * C3 + h * D;
                double max_score = -INFINITY, sum = 0;
                for (int s = 0; s < c->T; s++) {
                    if (c->causal && s > t) {
                        scores[s] = -INFINITY;
                        continue;
                    }
                    const double *k = qkv + (b * c->T + s) * C3 + c->C + h * D;
                    double dot = 0;
                    for (int d = 0; d < D; d++)
                        dot += q[d] * k[d];
                    scores[s] = dot / sqrt((double)D);
                    max_score = fmax(max_score, scores[s]);
                }
                for (int s = 0; s < c->T; s++) {
                    scores[s] = exp(scores[s] - max_score);
                    sum += scores[s];
                }
                for (int d = 0; d < D; d++) {
                    double y = 0;
                    for (int s = 0; s < c->T; s++)
                        y += scores[s] / sum * qkv[(b * c->T + s) * C3 + 2 * c->C + h * D + d];
                    out[(b * c->T + t) * c->C + h * D + d] = y;
                }
            }
}

static void test_attention(int causal)
{
    int B = 2, T = 5, C = 8, H = 2;
    size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C;
    float *qkv = malloc(n_qkv * sizeof(float)), *out = malloc(n_out * sizeof(float));
    float *att = malloc((size_t)T * T * sizeof(float)), *r = malloc(n_out * sizeof(float));
    float *dqkv = calloc(n_qkv, sizeof(float));
    fill(qkv, n_qkv, 1.5, 0);
    fill(r, n_out, 1, 0);
    attention_forward(out, att, qkv, B, T, C, H, causal);

    attention_ctx ctx = {B, T, C, H, causal};
    double *qkv_d = to_double(qkv, n_qkv), *expected = malloc(n_out * sizeof(double));
    attention_double(&ctx, qkv_d, expected);
    check_forward(causal ? "causal attention forward" : "attention forward", out, expected, n_out);

    /* the last head's probability rows sum to one and respect the mask */
    for (int row = 0; row < T; row++) {
        int t = row;
        double sum = 0;
        for (int s = 0; s < T; s++) {
            sum += att[row * T + s];
            if (causal && s > t)
                CHECK(att[row * T + s] == 0.0f);
        }
        CHECK_NEAR(sum, 1.0, 1e-6);
    }

    float scratch[2 * 5 * 5];
    attention_backward(dqkv, scratch, r, qkv, B, T, C, H, causal);
    double *rd = to_double(r, n_out);
    check_gradient(causal ? "causal attention dqkv" : "attention dqkv", dqkv, attention_double, &ctx, qkv_d, n_qkv,
                   rd, n_out);
    free(qkv), free(out), free(att), free(r), free(dqkv), free(qkv_d), free(expected), free(rd);
}

/* One query row per sample gives row QUERY[b] of the full attention, and
 * its backward the full backward of a gradient on those rows only. */
static void test_attention_query(int causal)
{
    enum { B = 2, T = 5, C = 8, H = 2 };
    int query[B] = {3, causal ? 1 : 0};
    float qkv[B * T * 3 * C], full_out[B * T * C], full_att[T * T];
    fill(qkv, sizeof qkv / sizeof qkv[0], 1.5, 0);
    attention_forward(full_out, full_att, qkv, B, T, C, H, causal);

    float q[B * C], kv[B * T * 2 * C], out[B * C], att[B * H * T], expected[B * C];
    for (int b = 0; b < B; b++) {
        const float *row = qkv + ((size_t)b * T + query[b]) * 3 * C;
        memcpy(q + b * C, row, C * sizeof(float));
        memcpy(expected + b * C, full_out + ((size_t)b * T + query[b]) * C, C * sizeof(float));
        for (int t = 0; t < T; t++)
            memcpy(kv + ((size_t)b * T + t) * 2 * C, qkv + ((size_t)b * T + t) * 3 * C + C, 2 * C * sizeof(float));
    }
    attention_query_forward(out, att, q, kv, query, B, T, C, H, causal);
    test_compare_floats(causal ? "causal single-query attention forward" : "single-query attention forward", out,
                        expected, B * C, 1e-6, 1.0);

    float dout[B * C], full_dout[B * T * C] = {0}, full_dqkv[B * T * 3 * C] = {0}, scratch[2 * T * T];
    fill(dout, B * C, 1, 0);
    for (int b = 0; b < B; b++)
        memcpy(full_dout + ((size_t)b * T + query[b]) * C, dout + b * C, C * sizeof(float));
    attention_backward(full_dqkv, scratch, full_dout, qkv, B, T, C, H, causal);
    float dq[B * C] = {0}, dkv[B * T * 2 * C] = {0}, expected_dq[B * C], expected_dkv[B * T * 2 * C];
    attention_query_backward(dq, dkv, scratch, dout, att, q, kv, query, B, T, C, H, causal);
    for (int b = 0; b < B; b++) {
        memcpy(expected_dq + b * C, full_dqkv + ((size_t)b * T + query[b]) * 3 * C, C * sizeof(float));
        for (int t = 0; t < T; t++)
            memcpy(expected_dkv + ((size_t)b * T + t) * 2 * C, full_dqkv + ((size_t)b * T + t) * 3 * C + C,
                   2 * C * sizeof(float));
    }
    test_compare_floats("single-query attention dq", dq, expected_dq, B * C, 1e-5, 1.0);
    test_compare_floats("single-query attention dk and dv", dkv, expected_dkv, B * T * 2 * C, 1e-5, 1.0);
}

/* A row whose scores are all huge must not overflow the softmax. */
static void test_attention_large_scores(void)
{
    int B = 1, T = 3, C = 64, H = 1;
    float qkv[3 * 3 * 64], out[3 * 64], att[9];
    for (int i = 0; i < 3 * 3 * 64; i++)
        qkv[i] = 40.0f;
    attention_forward(out, att, qkv, B, T, C, H, 0);
    for (int i = 0; i < 3 * 64; i++)
        CHECK_NEAR(out[i], 40.0, 1e-4);
    for (int i = 0; i < 9; i++)
        CHECK_NEAR(att[i], 1.0 / 3.0, 1e-6);
}

/* ---- elementwise -------------------------------------------------------- */

static void quickgelu_double(void *opaque, const double *x, double *out)
{
    size_t n = *(size_t *)opaque;
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] / (1 + exp(-1.702 * x[i]));
}

static void relu_double(void *opaque, const double *x, double *out)
{
    size_t n = *(size_t *)opaque;
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] > 0 ? x[i] : 0;
}

static void test_elementwise(void)
{
    size_t n = 37;
    float x[37], out[37], r[37], dx[37];
    double expected[37];
    fill(x, n, 4, 0.05);
    fill(r, n, 1, 0);
    double *xd = to_double(x, n), *rd = to_double(r, n);

    quickgelu_forward(out, x, n);
    quickgelu_double(&n, xd, expected);
    check_forward("quickgelu forward", out, expected, n);
    memset(dx, 0, sizeof dx);
    quickgelu_backward(dx, r, x, n);
    check_gradient("quickgelu dinp", dx, quickgelu_double, &n, xd, n, rd, n);

    relu_forward(out, x, n);
    relu_double(&n, xd, expected);
    check_forward("relu forward", out, expected, n);
    memset(dx, 0, sizeof dx);
    relu_backward(dx, r, x, n);
    check_gradient("relu dinp", dx, relu_double, &n, xd, n, rd, n);

    /* residual: both inputs receive dout */
    float a[37], b[37], da[37] = {0}, db[37] = {0};
    fill(a, n, 1, 0);
    fill(b, n, 1, 0);
    residual_forward(out, a, b, n);
    for (size_t i = 0; i < n; i++)
        CHECK(out[i] == a[i] + b[i]);
    residual_backward(da, db, r, n);
    test_compare_floats("residual da", da, r, n, 0, 0);
    test_compare_floats("residual db", db, r, n, 0, 0);
    free(xd), free(rd);
}

/* QuickGELU's own exponential over the whole useful range of inputs,
 * including the saturated tails. The derivative crosses 0 near x = -0.75,
 * where float cancellation needs an absolute floor. */
static void test_quickgelu_wide_range(void)
{
    size_t n = 24001;
    float *x = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float)), *dx = calloc(n, sizeof(float));
    float *ones = malloc(n * sizeof(float));
    double *expected = malloc(n * sizeof(double)), *expected_dx = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        x[i] = -120.0f + 0.01f * (float)i;
        ones[i] = 1.0f;
        double s = 1.0 / (1.0 + exp(-1.702 * x[i]));
        expected[i] = x[i] * s;
        expected_dx[i] = s + 1.702 * x[i] * s * (1.0 - s);
    }
    quickgelu_forward(out, x, n);
    quickgelu_backward(dx, ones, x, n);
    double *got = to_double(out, n), *got_dx = to_double(dx, n);
    test_compare_doubles("quickgelu forward over [-120, 120]", got, expected, n, 2e-6, 1e-6);
    test_compare_doubles("quickgelu derivative over [-120, 120]", got_dx, expected_dx, n, 1e-5, 1e-2);
    free(x), free(out), free(dx), free(ones), free(expected), free(expected_dx), free(got), free(got_dx);
}

/* ---- dropout ------------------------------------------------------------ */

typedef struct {
    int B, T, C, key_tokens;
    float p;
    long offset;
} dropout_ctx;

static void dropout_double(void *opaque, const double *x, double *out)
{
    dropout_ctx *c = opaque;
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++)
            for (int i = 0; i < c->C; i++) {
                uint64_t index = ((uint64_t)(c->offset + b) * c->key_tokens + t) * c->C + i;
                size_t k = ((size_t)b * c->T + t) * c->C + i;
                out[k] = ops_dropout_keep(7, 3, index, c->p) ? x[k] / (1.0 - c->p) : 0.0;
            }
}

static void test_dropout(void)
{
    dropout_ctx ctx = {3, 4, 5, 6, 0.25f, 10};
    size_t n = 60;
    float x[60], out[60], r[60], dx[60] = {0};
    double expected[60];
    fill(x, n, 1, 0.01);
    fill(r, n, 1, 0);
    double *xd = to_double(x, n), *rd = to_double(r, n);
    dropout_forward(out, x, ctx.B, ctx.T, ctx.C, ctx.p, 7, 3, ctx.offset, ctx.key_tokens);
    dropout_double(&ctx, xd, expected);
    check_forward("dropout forward", out, expected, n);
    dropout_backward(dx, r, ctx.B, ctx.T, ctx.C, ctx.p, 7, 3, ctx.offset, ctx.key_tokens);
    check_gradient("dropout dinp", dx, dropout_double, &ctx, xd, n, rd, n);

    /* A sample's mask does not depend on its row in the batch: sample
     * 11 as row 1 of a batch at offset 10 equals row 0 at offset 11. */
    float alone[20];
    dropout_forward(alone, x + 20, 1, 4, 5, ctx.p, 7, 3, 11, ctx.key_tokens);
    test_compare_floats("dropout mask keyed by global sample", alone, out + 20, 20, 0, 0);

    /* Cutting the tokens (T < key_tokens) keeps the first tokens' masks. */
    float cut[3 * 2 * 5], expected_cut[3 * 2 * 5];
    for (int b = 0; b < 3; b++)
        memcpy(expected_cut + b * 10, out + b * 20, 10 * sizeof(float));
    float x_cut[3 * 2 * 5];
    for (int b = 0; b < 3; b++)
        memcpy(x_cut + b * 10, x + b * 20, 10 * sizeof(float));
    dropout_forward(cut, x_cut, 3, 2, 5, ctx.p, 7, 3, ctx.offset, ctx.key_tokens);
    test_compare_floats("dropout mask under a token cut", cut, expected_cut, 30, 0, 0);

    /* The kept fraction over many elements is close to 1 - p. */
    size_t kept = 0, total = 200000;
    for (size_t i = 0; i < total; i++)
        kept += ops_dropout_keep(1, 2, i, 0.1f);
    CHECK_NEAR((double)kept / total, 0.9, 0.003);
    /* Different streams give different masks. */
    size_t same = 0;
    for (size_t i = 0; i < 1000; i++)
        same += ops_dropout_keep(1, 2, i, 0.5f) == ops_dropout_keep(1, 3, i, 0.5f);
    CHECK(same > 400 && same < 600);

    /* p = 0 is the identity */
    dropout_forward(out, x, 3, 4, 5, 0.0f, 7, 3, 0, 6);
    test_compare_floats("dropout p=0 forward", out, x, n, 0, 0);
    free(xd), free(rd);
}

/* ---- patch unfold ------------------------------------------------------- */

static void test_patch_unfold_matches_convolution(void)
{
    int B = 2, R = 8, P = 4, G = 2, OC = 3, F = 3 * P * P;
    float images[2 * 3 * 8 * 8], weight[3 * 48], patches[2 * 4 * 48], out[2 * 4 * 3];
    fill(images, sizeof images / sizeof(float), 1, 0);
    fill(weight, sizeof weight / sizeof(float), 1, 0);
    patch_unfold(patches, images, B, R, P);
    linear_forward(out, patches, weight, NULL, B * G * G, F, OC);

    /* strided convolution by its definition */
    double expected[2 * 4 * 3];
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++)
                for (int o = 0; o < OC; o++) {
                    double s = 0;
                    for (int c = 0; c < 3; c++)
                        for (int y = 0; y < P; y++)
                            for (int x = 0; x < P; x++)
                                s += (double)images[((b * 3 + c) * R + gy * P + y) * R + gx * P + x] *
                                     weight[((o * 3 + c) * P + y) * P + x];
                    expected[((b * G + gy) * G + gx) * OC + o] = s;
                }
    check_forward("patch unfold + linear vs convolution", out, expected, B * G * G * OC);
}

/* Large enough for the OpenMP paths: two threads give the same values as
 * one (elementwise ops bitwise, the bias column sums up to rounding). */
static void test_two_threads_match_one(void)
{
    int N = 600, C = 96, K = 256;
    size_t n = (size_t)N * C;
    float *x = malloc(n * sizeof(float)), *w = malloc(C * sizeof(float)), *b = malloc(C * sizeof(float));
    float *dout = malloc((size_t)N * K * sizeof(float));
    fill(x, n, 2, 0);
    fill(w, C, 1, 0);
    fill(b, C, 1, 0);
    fill(dout, (size_t)N * K, 1, 0);

    float *results[2][5];
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        float **r = results[threads - 1];
        float mean[600], rstd[600];
        for (int k = 0; k < 4; k++)
            r[k] = calloc(n, sizeof(float));
        r[4] = calloc(K, sizeof(float));
        layernorm_forward(r[0], mean, rstd, x, w, b, N, C);
        layernorm_backward(r[1], x, x, w, mean, rstd, N, C);
        quickgelu_forward(r[2], x, n);
        dropout_forward(r[3], x, 4, N / 4, C, 0.1f, 1, 2, 0, N / 4);
        linear_backward(NULL, NULL, r[4], dout, NULL, NULL, N, 0, K);
    }
    omp_set_num_threads(1);
    const char *names[4] = {"layernorm forward", "layernorm backward", "quickgelu forward", "dropout forward"};
    for (int k = 0; k < 4; k++) {
        char name[96];
        snprintf(name, sizeof name, "%s with 2 threads vs 1", names[k]);
        test_compare_floats(name, results[1][k], results[0][k], n, 0, 0);
    }
    test_compare_floats("linear dbias with 2 threads vs 1", results[1][4], results[0][4], K, 5e-5, 1.0);
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 5; k++)
            free(results[t][k]);
    free(x), free(w), free(b), free(dout);
}

int main(void)
{
    test_linear();
    test_linear_wide_bias_gradient();
    test_projection();
    test_layernorm();
    test_attention(0);
    test_attention(1);
    test_attention_query(0);
    test_attention_query(1);
    test_attention_large_scores();
    test_elementwise();
    test_quickgelu_wide_range();
    test_dropout();
    test_patch_unfold_matches_convolution();
    test_two_threads_match_one();
    return test_finish("test_ops");
}

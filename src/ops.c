/* ops: linear and projection GEMMs, layernorm, elementwise activations,
 * dropout and patch unfolding (see include/dmnsp/ops.h). Attention lives in
 * ops_attention.c. */
#include "dmnsp/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Loops over fewer elements run on one thread: waking the OpenMP team costs
 * more than they do, and idle team threads compete with OpenBLAS's own. */
#define PARALLEL_MIN 32768

/* ---- linear ------------------------------------------------------------- */

void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC)
{
    /* Start from the bias rows so that one GEMM with beta = 1 finishes. */
    float beta = 0.0f;
    if (bias != NULL) {
#pragma omp parallel for schedule(static) if ((size_t)N * OC >= PARALLEL_MIN)
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

/* dbias [OC] += sum over rows of dout [N, OC], in column tiles so each
 * thread reduces into a small private array. */
static void add_column_sums(float *dbias, const float *dout, int N, int OC)
{
    enum { TILE = 256 };
    for (int begin = 0; begin < OC; begin += TILE) {
        int width = OC - begin < TILE ? OC - begin : TILE;
        float sums[TILE];
        memset(sums, 0, sizeof sums);
#pragma omp parallel for schedule(static) reduction(+ : sums[:TILE]) if ((size_t)N * width >= PARALLEL_MIN)
        for (int n = 0; n < N; n++) {
            const float *row = dout + (size_t)n * OC + begin;
            for (int o = 0; o < width; o++)
                sums[o] += row[o];
        }
        for (int o = 0; o < width; o++)
            dbias[begin + o] += sums[o];
    }
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC)
{
    if (dinp != NULL)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    if (dweight != NULL)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias != NULL)
        add_column_sums(dbias, dout, N, OC);
}

/* ---- projection --------------------------------------------------------- */

void projection_forward(float *out, const float *inp, const float *proj, int N, int C, int OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, OC, C, 1.0f, inp, C, proj, OC, 0.0f, out, OC);
}

void projection_backward(float *dinp, const float *dout, const float *proj, int N, int C, int OC)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, OC, 1.0f, dout, OC, proj, OC, 1.0f, dinp, C);
}

/* ---- layernorm ---------------------------------------------------------- */

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;

        /* Two passes in double: the rows of a residual stream can carry a
         * large common offset. */
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < C; c++)
            sum += x[c];
        double m = sum / C;
        double var = 0.0;
#pragma omp simd reduction(+ : var)
        for (int c = 0; c < C; c++)
            var += (x[c] - m) * (x[c] - m);
        var /= C;
        float s = (float)(1.0 / sqrt(var + (double)OPS_LAYERNORM_EPS));
        float mf = (float)m;

        for (int c = 0; c < C; c++)
            y[c] = (x[c] - mf) * s * weight[c] + bias[c];
        if (mean != NULL)
            mean[n] = mf;
        if (rstd != NULL)
            rstd[n] = s;
    }
}

void layernorm_backward(float *dinp, const float *dout, const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)N * C >= PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], s = rstd[n];

        /* dx = rstd · (g - mean(g) - xhat · mean(g · xhat)), g = dy · weight */
        float sum_g = 0.0f, sum_gx = 0.0f;
#pragma omp simd reduction(+ : sum_g, sum_gx)
        for (int c = 0; c < C; c++) {
            float g = dy[c] * weight[c];
            float xhat = (x[c] - m) * s;
            sum_g += g;
            sum_gx += g * xhat;
        }
        float mean_g = sum_g / C, mean_gx = sum_gx / C;
        for (int c = 0; c < C; c++) {
            float g = dy[c] * weight[c];
            float xhat = (x[c] - m) * s;
            dx[c] += s * (g - mean_g - xhat * mean_gx);
        }
    }
}

/* ---- elementwise -------------------------------------------------------- */

static inline int32_t float_bits(float x)
{
    int32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits;
}

static inline float bits_float(int32_t bits)
{
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* sigmoid(z), written so that loops over it vectorise (libm's expf is a
 * scalar call, and float comparisons block if-conversion under the default
 * -ftrapping-math, so clamping and the sign select use integer bit
 * operations). t = e^-|z| = 2^n · e^r with |r| <= ln 2 / 2 and e^r by a
 * degree-6 Taylor polynomial; |z| is clamped to 87 so t stays a normal
 * float. sigmoid = 1/(1+t) for z >= 0 and t/(1+t) below. Relative error
 * of QuickGELU against double: below 5e-6 over [-120, 120], where the
 * largest errors sit on outputs below 1e-25 in magnitude. */
static inline float sigmoid(float z)
{
    const float round_magic = 12582912.0f; /* 1.5 · 2^23: adding it rounds to an integer */
    const int32_t limit = 0x42AE0000;      /* 87.0f */
    int32_t z_bits = float_bits(z);
    int32_t abs_bits = z_bits & 0x7FFFFFFF;
    abs_bits = abs_bits < limit ? abs_bits : limit;

    float a = -bits_float(abs_bits);
    float n = (a * 1.44269504f + round_magic) - round_magic;
    float r = a - n * 0.693145752f; /* ln 2, high part (exact product) */
    r = r - n * 1.42860677e-6f;     /* ln 2, low part */
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    float t = p * bits_float(((int32_t)n + 127) << 23);

    float s = 1.0f / (1.0f + t);
    int32_t negative = z_bits >> 31; /* all ones when z < 0 */
    return bits_float((float_bits(s) & ~negative) | (float_bits(t * s) & negative));
}

void quickgelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = x * sigmoid(1.702f * x);
    }
}

void quickgelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float s = sigmoid(1.702f * x);
        dinp[i] += dout[i] * (s + 1.702f * x * s * (1.0f - s));
    }
}

void relu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}

void residual_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void residual_backward(float *da, float *db, const float *dout, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        da[i] += dout[i];
        db[i] += dout[i];
    }
}

/* ---- dropout ------------------------------------------------------------ */

#define GOLDEN_GAMMA 0x9E3779B97F4A7C15ULL

/* splitmix64's output function: a bijection on 64-bit words whose output
 * bits all depend on all input bits. */
static inline uint64_t mix64(uint64_t z)
{
    z ^= z >> 30;
    z *= 0xBF58476D1CE4E5B9ULL;
    z ^= z >> 27;
    z *= 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z;
}

uint64_t ops_hash3(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint64_t h = mix64(seed + GOLDEN_GAMMA);
    h = mix64(h ^ (stream + GOLDEN_GAMMA));
    return mix64(h ^ (index + GOLDEN_GAMMA));
}

int ops_dropout_keep(uint64_t seed, uint64_t stream, uint64_t index, float p)
{
    float u = (float)(ops_hash3(seed, stream, index) >> 40) * 0x1p-24f;
    return u >= p;
}

/* Shared by forward and backward: dst = src·mask/(1-p), or dst += that.
 * Row (b, t) is token t of sample b, or token TOKENS[b] when TOKENS is
 * not NULL (then T is 1). */
static void apply_dropout(float *dst, const float *src, int accumulate, int B, int T, int C, float p, uint64_t seed,
                          uint64_t stream, long sample_offset, int key_tokens, const int *tokens)
{
    float scale = 1.0f / (1.0f - p);
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * T * C >= PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t row = ((size_t)b * T + t) * C;
            uint64_t token = (uint64_t)(tokens != NULL ? tokens[b] : t);
            uint64_t key = ((uint64_t)(sample_offset + b) * (uint64_t)key_tokens + token) * (uint64_t)C;
            for (int c = 0; c < C; c++) {
                float value = ops_dropout_keep(seed, stream, key + (uint64_t)c, p) ? src[row + c] * scale : 0.0f;
                if (accumulate)
                    dst[row + c] += value;
                else
                    dst[row + c] = value;
            }
        }
    }
}

static void dropout_copy(float *out, const float *inp, size_t n)
{
    if (out != inp)
        memmove(out, inp, n * sizeof(float));
}

static void dropout_pass_through(float *dinp, const float *dout, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        dinp[i] += dout[i];
}

void dropout_forward(float *out, const float *inp, int B, int T, int C, float p, uint64_t seed, uint64_t stream,
                     long sample_offset, int key_tokens)
{
    if (p <= 0.0f)
        dropout_copy(out, inp, (size_t)B * T * C);
    else
        apply_dropout(out, inp, 0, B, T, C, p, seed, stream, sample_offset, key_tokens, NULL);
}

void dropout_backward(float *dinp, const float *dout, int B, int T, int C, float p, uint64_t seed, uint64_t stream,
                      long sample_offset, int key_tokens)
{
    if (p <= 0.0f)
        dropout_pass_through(dinp, dout, (size_t)B * T * C);
    else
        apply_dropout(dinp, dout, 1, B, T, C, p, seed, stream, sample_offset, key_tokens, NULL);
}

void dropout_tokens_forward(float *out, const float *inp, int B, const int *tokens, int C, float p, uint64_t seed,
                            uint64_t stream, long sample_offset, int key_tokens)
{
    if (p <= 0.0f)
        dropout_copy(out, inp, (size_t)B * C);
    else
        apply_dropout(out, inp, 0, B, 1, C, p, seed, stream, sample_offset, key_tokens, tokens);
}

void dropout_tokens_backward(float *dinp, const float *dout, int B, const int *tokens, int C, float p, uint64_t seed,
                             uint64_t stream, long sample_offset, int key_tokens)
{
    if (p <= 0.0f)
        dropout_pass_through(dinp, dout, (size_t)B * C);
    else
        apply_dropout(dinp, dout, 1, B, 1, C, p, seed, stream, sample_offset, key_tokens, tokens);
}

/* ---- patch embedding ---------------------------------------------------- */

void patch_unfold(float *patches, const float *images, int B, int R, int P)
{
    int G = R / P;
    int features = 3 * P * P;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * R * R >= PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        for (int patch = 0; patch < G * G; patch++) {
            int gy = patch / G, gx = patch % G;
            float *dst = patches + ((size_t)b * G * G + patch) * features;
            for (int c = 0; c < 3; c++) {
                for (int y = 0; y < P; y++) {
                    const float *src = images + (((size_t)b * 3 + c) * R + (size_t)gy * P + y) * R + (size_t)gx * P;
                    memcpy(dst + (c * P + y) * P, src, (size_t)P * sizeof(float));
                }
            }
        }
    }
}

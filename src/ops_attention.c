/* ops_attention: multi-head self-attention forward and backward (see
 * include/dmnsp/ops.h). The products with q, k and v are CBLAS GEMMs per
 * (sample, head), or GEMVs for a single query row. They run one after
 * another, so OpenBLAS threads each of them. Softmax rows are split over
 * OpenMP threads. */
#include "dmnsp/ops.h"

#include <cblas.h>
#include <math.h>

/* Softmax of every row of scores [rows, T] in place. With a causal mask,
 * row r is token r % T and attends to tokens 0..r % T only (the rest
 * become 0). */
static void softmax_rows(float *scores, int rows, int T, int causal)
{
#pragma omp parallel for schedule(static) if ((size_t)rows * T >= 32768)
    for (int r = 0; r < rows; r++) {
        float *p = scores + (size_t)r * T;
        int visible = causal ? r % T + 1 : T;
        float max_score = -INFINITY;
        for (int s = 0; s < visible; s++)
            max_score = p[s] > max_score ? p[s] : max_score;
        float sum = 0.0f;
        for (int s = 0; s < visible; s++) {
            p[s] = expf(p[s] - max_score);
            sum += p[s];
        }
        float inv = 1.0f / sum;
        for (int s = 0; s < visible; s++)
            p[s] *= inv;
        for (int s = visible; s < T; s++)
            p[s] = 0.0f;
    }
}

/* Probabilities of head H of sample B into P [T, T]: scaled scores q·kᵀ,
 * then the softmax with the causal mask. */
static void head_probabilities(float *p, const float *qkv, int b, int h, int T, int C, int H, int causal)
{
    int D = C / H, row3 = 3 * C;
    float scale = 1.0f / sqrtf((float)D);
    const float *q = qkv + (size_t)b * T * row3 + (size_t)h * D;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, scale, q, row3, q + C, row3, 0.0f, p, T);
    softmax_rows(p, T, T, causal);
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int H, int causal)
{
    int D = C / H, row3 = 3 * C;

    /* One head at a time: the weighted sum of the values reads the head's
     * T×T probabilities while they are still in cache. */
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const float *v = qkv + (size_t)b * T * row3 + 2 * (size_t)C + (size_t)h * D;
            float *y = out + (size_t)b * T * C + (size_t)h * D;
            head_probabilities(att, qkv, b, h, T, C, H, causal);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, att, T, v, row3, 0.0f, y, C);
        }
    }
}

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv, int B, int T, int C, int H,
                        int causal)
{
    int D = C / H, row3 = 3 * C;
    float scale = 1.0f / sqrtf((float)D);
    float *p = scratch, *ds = scratch + (size_t)T * T;

    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            size_t offset = (size_t)b * T * row3 + (size_t)h * D;
            const float *q = qkv + offset, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + offset, *dk = dq + C, *dv = dq + 2 * C;
            const float *dy = dout + (size_t)b * T * C + (size_t)h * D;

            /* the forward's probabilities, recomputed: T² floats per head
             * are not kept, which is most of a block's saved activations
             * at 197 tokens */
            head_probabilities(p, qkv, b, h, T, C, H, causal);

            /* through the weighted sum: dv += pᵀ·dy, dp = dy·vᵀ */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, p, T, dy, C, 1.0f, dv, row3);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.0f, dy, C, v, row3, 0.0f, ds, T);

            /* through the softmax: ds = p·(dp - rowsum(p·dp)), times the score
             * scale; masked probabilities are 0, so their gradients vanish */
            for (int t = 0; t < T; t++) {
                const float *pt = p + (size_t)t * T;
                float *dst = ds + (size_t)t * T;
                float dot = 0.0f;
                for (int s = 0; s < T; s++)
                    dot += pt[s] * dst[s];
                for (int s = 0; s < T; s++)
                    dst[s] = pt[s] * (dst[s] - dot) * scale;
            }

            /* through the scores: dq += ds·k, dk += dsᵀ·q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, ds, T, k, row3, 1.0f, dq, row3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, ds, T, q, row3, 1.0f, dk, row3);
        }
    }
}

/* ---- one query row per sample -------------------------------------------- */

/* Keys visible to the query of sample B: all T, or 0..token under a
 * causal mask. */
static int visible_keys(const int *query_token, int b, int T, int causal)
{
    int token = query_token != NULL ? query_token[b] : 0;
    return causal ? token + 1 : T;
}

void attention_query_forward(float *out, float *att, const float *q, const float *kv, const int *query_token, int B,
                             int T, int C, int H, int causal)
{
    int D = C / H, row2 = 2 * C;
    float scale = 1.0f / sqrtf((float)D);
    for (int b = 0; b < B; b++) {
        int visible = visible_keys(query_token, b, T, causal);
        for (int h = 0; h < H; h++) {
            const float *k = kv + (size_t)b * T * row2 + (size_t)h * D, *v = k + C;
            const float *qh = q + (size_t)b * C + (size_t)h * D;
            float *p = att + ((size_t)b * H + h) * T;
            float *y = out + (size_t)b * C + (size_t)h * D;
            cblas_sgemv(CblasRowMajor, CblasNoTrans, visible, D, scale, k, row2, qh, 1, 0.0f, p, 1);
            softmax_rows(p, 1, visible, 0);
            for (int s = visible; s < T; s++)
                p[s] = 0.0f;
            cblas_sgemv(CblasRowMajor, CblasTrans, visible, D, 1.0f, v, row2, p, 1, 0.0f, y, 1);
        }
    }
}

void attention_query_backward(float *dq, float *dkv, float *scratch, const float *dout, const float *att,
                              const float *q, const float *kv, const int *query_token, int B, int T, int C, int H,
                              int causal)
{
    int D = C / H, row2 = 2 * C;
    float scale = 1.0f / sqrtf((float)D);
    float *ds = scratch;
    for (int b = 0; b < B; b++) {
        int visible = visible_keys(query_token, b, T, causal);
        for (int h = 0; h < H; h++) {
            size_t offset = (size_t)b * T * row2 + (size_t)h * D;
            const float *k = kv + offset, *v = k + C;
            float *dk = dkv + offset, *dv = dk + C;
            const float *qh = q + (size_t)b * C + (size_t)h * D;
            float *dqh = dq + (size_t)b * C + (size_t)h * D;
            const float *dy = dout + (size_t)b * C + (size_t)h * D;
            const float *p = att + ((size_t)b * H + h) * T;

            /* through the weighted sum: dv += p·dyᵀ, dp = v·dy */
            cblas_sger(CblasRowMajor, visible, D, 1.0f, p, 1, dy, 1, dv, row2);
            cblas_sgemv(CblasRowMajor, CblasNoTrans, visible, D, 1.0f, v, row2, dy, 1, 0.0f, ds, 1);

            /* through the softmax, times the score scale */
            float dot = 0.0f;
            for (int s = 0; s < visible; s++)
                dot += p[s] * ds[s];
            for (int s = 0; s < visible; s++)
                ds[s] = p[s] * (ds[s] - dot) * scale;

            /* through the scores: dq += kᵀ·ds, dk += ds·qᵀ */
            cblas_sgemv(CblasRowMajor, CblasTrans, visible, D, 1.0f, k, row2, ds, 1, 1.0f, dqh, 1);
            cblas_sger(CblasRowMajor, visible, D, 1.0f, ds, 1, qh, 1, dk, row2);
        }
    }
}

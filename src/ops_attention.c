/* ops_attention: multi-head self-attention forward and backward (see
 * include/dmnsp/ops.h). The products with q, k and v are CBLAS GEMMs per
 * (sample, head). They run one after another, so OpenBLAS threads each of
 * them. The forward's softmax rows are split over OpenMP threads. */
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

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int H, int causal)
{
    int D = C / H, row3 = 3 * C;
    float scale = 1.0f / sqrtf((float)D);

    /* scaled scores q·kᵀ; a causal mask is applied in the softmax */
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const float *q = qkv + (size_t)b * T * row3 + (size_t)h * D;
            float *p = att + ((size_t)b * H + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, scale, q, row3, q + C, row3, 0.0f, p, T);
        }
    }
    softmax_rows(att, B * H * T, T, causal);

    /* weighted sums of the values */
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const float *v = qkv + (size_t)b * T * row3 + 2 * (size_t)C + (size_t)h * D;
            const float *p = att + ((size_t)b * H + h) * T * T;
            float *y = out + (size_t)b * T * C + (size_t)h * D;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, p, T, v, row3, 0.0f, y, C);
        }
    }
}

void attention_backward(float *dqkv, float *scratch, const float *dout, const float *att, const float *qkv, int B,
                        int T, int C, int H, int causal)
{
    int D = C / H, row3 = 3 * C;
    float scale = 1.0f / sqrtf((float)D);
    (void)causal; /* masked probabilities are 0, so their gradients vanish */

    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            size_t offset = (size_t)b * T * row3 + (size_t)h * D;
            const float *q = qkv + offset, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + offset, *dk = dq + C, *dv = dq + 2 * C;
            const float *dy = dout + (size_t)b * T * C + (size_t)h * D;
            const float *p = att + ((size_t)b * H + h) * T * T;

            /* through the weighted sum: dv += pᵀ·dy, dp = dy·vᵀ */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, p, T, dy, C, 1.0f, dv, row3);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.0f, dy, C, v, row3, 0.0f, scratch, T);

            /* through the softmax: ds = p·(dp - rowsum(p·dp)), times the score
             * scale; one head's rows are too few to share among threads */
            for (int t = 0; t < T; t++) {
                const float *pt = p + (size_t)t * T;
                float *ds = scratch + (size_t)t * T;
                float dot = 0.0f;
                for (int s = 0; s < T; s++)
                    dot += pt[s] * ds[s];
                for (int s = 0; s < T; s++)
                    ds[s] = pt[s] * (ds[s] - dot) * scale;
            }

            /* through the scores: dq += ds·k, dk += dsᵀ·q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, scratch, T, k, row3, 1.0f, dq, row3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, scratch, T, q, row3, 1.0f, dk, row3);
        }
    }
}

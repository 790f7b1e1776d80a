/* ops_attention: multi-head self-attention forward and backward (see
 * include/dmnsp/ops.h). One (sample, head) pair is one unit of OpenMP
 * work; every pair writes a disjoint slice of its outputs. */
#include "dmnsp/ops.h"

#include <math.h>

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int H, int causal)
{
    int D = C / H;
    size_t row3 = 3 * (size_t)C;
    float scale = 1.0f / sqrtf((float)D);

#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const float *base = qkv + (size_t)b * T * row3;
            for (int t = 0; t < T; t++) {
                const float *q = base + t * row3 + (size_t)h * D;
                float *p = att + (((size_t)b * H + h) * T + t) * T;
                int visible = causal ? t + 1 : T;

                /* scores and their maximum, for a stable softmax */
                float max_score = -INFINITY;
                for (int s = 0; s < visible; s++) {
                    const float *k = base + s * row3 + C + (size_t)h * D;
                    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                    for (int d = 0; d < D; d++)
                        dot += q[d] * k[d];
                    p[s] = dot * scale;
                    if (p[s] > max_score)
                        max_score = p[s];
                }
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

                /* weighted sum of the values */
                float *y = out + ((size_t)b * T + t) * C + (size_t)h * D;
                for (int d = 0; d < D; d++)
                    y[d] = 0.0f;
                for (int s = 0; s < visible; s++) {
                    const float *v = base + s * row3 + 2 * (size_t)C + (size_t)h * D;
                    float w = p[s];
#pragma omp simd
                    for (int d = 0; d < D; d++)
                        y[d] += w * v[d];
                }
            }
        }
    }
}

void attention_backward(float *dqkv, const float *dout, const float *att, const float *qkv, int B, int T, int C,
                        int H, int causal)
{
    int D = C / H;
    size_t row3 = 3 * (size_t)C;
    float scale = 1.0f / sqrtf((float)D);

#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const float *base = qkv + (size_t)b * T * row3;
            float *dbase = dqkv + (size_t)b * T * row3;
            float dp[T];
            for (int t = 0; t < T; t++) {
                const float *p = att + (((size_t)b * H + h) * T + t) * T;
                const float *dy = dout + ((size_t)b * T + t) * C + (size_t)h * D;
                const float *q = base + t * row3 + (size_t)h * D;
                float *dq = dbase + t * row3 + (size_t)h * D;
                int visible = causal ? t + 1 : T;

                /* through the weighted sum: dp = dy·v, dv += p·dy */
                float dot_p_dp = 0.0f;
                for (int s = 0; s < visible; s++) {
                    const float *v = base + s * row3 + 2 * (size_t)C + (size_t)h * D;
                    float *dv = dbase + s * row3 + 2 * (size_t)C + (size_t)h * D;
                    float dot = 0.0f;
                    float w = p[s];
#pragma omp simd reduction(+ : dot)
                    for (int d = 0; d < D; d++) {
                        dot += dy[d] * v[d];
                        dv[d] += w * dy[d];
                    }
                    dp[s] = dot;
                    dot_p_dp += w * dot;
                }

                /* through the softmax and the scaled dot products */
                for (int s = 0; s < visible; s++) {
                    float ds = p[s] * (dp[s] - dot_p_dp) * scale;
                    const float *k = base + s * row3 + C + (size_t)h * D;
                    float *dk = dbase + s * row3 + C + (size_t)h * D;
#pragma omp simd
                    for (int d = 0; d < D; d++) {
                        dq[d] += ds * k[d];
                        dk[d] += ds * q[d];
                    }
                }
            }
        }
    }
}

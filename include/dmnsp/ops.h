/* ops: the neural-network layers of the CLIP encoders, each a forward and
 * a backward function with the same argument order.
 *
 * Shape legend used in every comment below: B batch (samples), T tokens
 * per sample, N rows (usually B*T), C channels, OC output channels, H
 * attention heads, D = C/H channels per head. All tensors are row-major
 * float arrays owned by the caller; no op allocates.
 *
 * Backward functions ACCUMULATE (+=) into every gradient they write (dinp,
 * dweight, ...), so the caller zeroes a gradient buffer once and several
 * paths can add into it (residual connections). A NULL weight-gradient
 * pointer skips that gradient: frozen weights never get one.
 *
 * GEMMs (including attention's per-head products) go through CBLAS;
 * elementwise loops, layernorm rows and softmax rows are split over OpenMP
 * threads.
 */
#ifndef DMNSP_OPS_H
#define DMNSP_OPS_H

#include <stddef.h>
#include <stdint.h>

/* ---- linear: out = inp · weightᵀ + bias ---------------------------------- */

/* out [N, OC]; inp [N, C]; weight [OC, C] (PyTorch Linear layout); bias
 * [OC] or NULL. */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
/* dinp [N, C] += dout · weight; dweight [OC, C] += doutᵀ · inp when not
 * NULL; dbias [OC] += column sums of dout when not NULL. dinp may be NULL
 * when the input needs no gradient. */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);

/* ---- projection: out = inp · proj (proj stored [C, OC]) ------------------ */

/* The layout of CLIP's visual.proj and text_projection parameters, which
 * are plain matrices rather than Linear weights. out [N, OC]; inp [N, C];
 * proj [C, OC]. */
void projection_forward(float *out, const float *inp, const float *proj, int N, int C, int OC);
/* dinp [N, C] += dout · projᵀ. The projection is frozen, so there is no
 * weight gradient. */
void projection_backward(float *dinp, const float *dout, const float *proj, int N, int C, int OC);

/* ---- layernorm over the last axis, eps 1e-5 ------------------------------- */

#define OPS_LAYERNORM_EPS 1e-5f

/* out [N, C]; mean, rstd [N] (saved for the backward, may be NULL in
 * inference); inp [N, C]; weight, bias [C]. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C);
/* dinp [N, C] += gradient through the normalisation for frozen weight and
 * bias; dout [N, C]; inp [N, C]; mean, rstd [N] from the forward. */
void layernorm_backward(float *dinp, const float *dout, const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int C);

/* ---- multi-head self-attention ------------------------------------------ */

/* out [B, T, C]; att [T, T] work space that ends with the softmax
 * probabilities of the last (sample, head); qkv [B, T, 3C] contains q, k
 * and v side by side as produced by in_proj (columns 0..C-1 are q, head h
 * uses columns h*D..h*D+D-1 of each). Scores are scaled by 1/sqrt(D);
 * causal != 0 lets token t attend only to tokens 0..t (the probabilities
 * above the diagonal are 0). The softmax runs in fp32 with the row maximum
 * subtracted. */
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int H, int causal);
/* dqkv [B, T, 3C] += gradient; scratch [2, T, T] floats of caller-owned
 * work space; dout [B, T, C]; qkv from the forward. The probabilities are
 * recomputed from q and k, one head at a time, so the forward keeps none. */
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv, int B, int T, int C, int H,
                        int causal);

/* Attention of a single query row per sample (the pooled token of a last
 * block) over all T tokens of that sample. out [B, C]; att [B, H, T]
 * receives the probabilities (0 beyond the visible keys); q [B, C] the
 * queries; kv [B, T, 2C] the keys and values side by side (columns 0..C-1
 * are k, head h uses columns h*D..h*D+D-1 of each); query_token [B] the
 * query's position (NULL: token 0), which limits the keys to 0..position
 * when causal != 0. Equal to row query_token[b] of attention_forward. */
void attention_query_forward(float *out, float *att, const float *q, const float *kv, const int *query_token, int B,
                             int T, int C, int H, int causal);
/* dq [B, C] and dkv [B, T, 2C] += gradients; scratch [T] floats of
 * caller-owned work space; dout [B, C]; att, q and kv from the forward. */
void attention_query_backward(float *dq, float *dkv, float *scratch, const float *dout, const float *att,
                              const float *q, const float *kv, const int *query_token, int B, int T, int C, int H,
                              int causal);

/* ---- elementwise activations -------------------------------------------- */

/* QuickGELU: out = x · sigmoid(1.702 x); out, inp [n]. */
void quickgelu_forward(float *out, const float *inp, size_t n);
/* dinp [n] += dout · d/dx QuickGELU(inp). */
void quickgelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* ReLU: out = max(x, 0); out, inp [n]. */
void relu_forward(float *out, const float *inp, size_t n);
/* dinp [n] += dout where inp > 0. */
void relu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* out = a + b; out, a, b [n] (out may alias a or b). */
void residual_forward(float *out, const float *a, const float *b, size_t n);
/* da, db [n] += dout. */
void residual_backward(float *da, float *db, const float *dout, size_t n);

/* ---- dropout ------------------------------------------------------------ */

/* Inverted dropout with a counter-based mask: element (b, t, c) is kept
 * when ops_dropout_keep(seed, stream, index, p) is true for
 * index = ((sample_offset + b) · key_tokens + t) · C + c, and then scaled
 * by 1/(1-p); dropped elements become 0. The mask is a pure function of
 * (seed, stream, global sample, token, channel), so it does not depend on
 * how samples are split over ranks or threads, nor on T when T <
 * key_tokens (text cut at the last end-of-text token). p == 0 copies.
 * out, inp [B, T, C]; 0 <= p < 1; T <= key_tokens. out may alias inp. */
void dropout_forward(float *out, const float *inp, int B, int T, int C, float p, uint64_t seed, uint64_t stream,
                     long sample_offset, int key_tokens);
/* dinp [B, T, C] += dout · mask / (1-p) with the forward's mask. */
void dropout_backward(float *dinp, const float *dout, int B, int T, int C, float p, uint64_t seed, uint64_t stream,
                      long sample_offset, int key_tokens);

/* The same masks for one row per sample: row b [C] is token TOKENS[b] of
 * sample b (NULL: token 0), so these rows get exactly the mask that
 * dropout_forward gives them inside the full [B, T, C] tensor. out, inp
 * [B, C]. */
void dropout_tokens_forward(float *out, const float *inp, int B, const int *tokens, int C, float p, uint64_t seed,
                            uint64_t stream, long sample_offset, int key_tokens);
void dropout_tokens_backward(float *dinp, const float *dout, int B, const int *tokens, int C, float p, uint64_t seed,
                             uint64_t stream, long sample_offset, int key_tokens);
/* The keep decision for one element: a splitmix64-style hash of (seed,
 * stream, index) mapped to u in [0, 1) with 24 bits; kept when u >= p. */
int ops_dropout_keep(uint64_t seed, uint64_t stream, uint64_t index, float p);
/* The 64-bit hash behind ops_dropout_keep (exposed so a reference
 * implementation can reproduce masks). */
uint64_t ops_hash3(uint64_t seed, uint64_t stream, uint64_t index);

/* ---- patch embedding ---------------------------------------------------- */

/* Unfolds non-overlapping P×P patches of images [B, 3, R, R] into
 * patches [B, G*G, 3*P*P] with G = R/P, patch order row-major over the grid
 * and features ordered (channel, y, x), so that patches · conv1_weightᵀ
 * (conv1 weight [C, 3, P, P] flattened to [C, 3*P*P]) equals the strided
 * convolution. No backward: images need no gradient. */
void patch_unfold(float *patches, const float *images, int B, int R, int P);

#endif

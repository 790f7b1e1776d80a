/* clip: the CLIP image and text encoders with a bottleneck adapter in every
 * residual block, forward and backward.
 *
 * A clip_model owns the two parameter buffers whose layout clip_layout.h
 * defines: one frozen float buffer (never receives gradients) and one
 * adapter float buffer. A clip_workspace owns all activation memory, sized
 * once for a maximum number of images and texts; encode calls never
 * allocate. Every residual block computes
 *
 *     x = x + attn(ln_1(x))
 *     a = scale · up(dropout(relu(down(x))))       (the adapter output)
 *     x = x + mlp(ln_2(x)) + a
 *
 * Image encoder: patch GEMM (no bias), class token, positional embedding,
 * ln_pre, blocks, ln_post on the class token, · visual.proj. Text encoder:
 * token + positional embedding, blocks with a causal mask, ln_final on the
 * end-of-text token (the largest id of the row), · text_projection.
 *
 * Backward propagates from the features to the first block's input only:
 * nothing before the first adapter trains, so the embeddings get no
 * gradient. The first block runs only its adapter's backward, because its
 * adapter weights need nothing but the gradient of the block output.
 */
#ifndef DMNSP_CLIP_H
#define DMNSP_CLIP_H

#include "dmnsp/clip_layout.h"

#include <stdint.h>

typedef struct clip_model clip_model;

/* Allocates a model with both buffers zeroed. CONFIG is validated and
 * copied. Returns 0, or -1 with a message. */
int clip_model_create(const clip_config *config, clip_model **out);
void clip_model_free(clip_model *m);

const clip_config *clip_model_config(const clip_model *m);
/* The frozen buffer (clip_frozen_count floats) and the adapter buffer
 * (clip_adapter_count floats), owned by the model, in clip_layout order. */
float *clip_model_frozen(clip_model *m);
float *clip_model_adapters(clip_model *m);
/* The stored logit_scale parameter: the log of the logit multiplier
 * (ln 100 in released CLIP weights). */
float clip_model_logit_scale(const clip_model *m);

/* Fills the frozen buffer with random CLIP-like weights: normal with std
 * 0.02 for token embeddings, 0.01 for the text positional embedding,
 * width^-0.5 for the class/visual positional embeddings, projections and
 * in_proj, width^-0.5·(2·layers)^-0.5 for out_proj and c_proj,
 * (2·width)^-0.5 for c_fc, (3·patch²)^-0.5 for conv1; layernorm weights 1
 * and all biases 0; logit_scale ln 100. The values are a pure function of
 * SEED (independent of the thread count). */
int clip_model_init_random(clip_model *m, uint64_t seed);
/* Fills the adapter buffer as a fresh adapter: down.weight uniform in
 * ±1/sqrt(width) (PyTorch's Kaiming-uniform with a = sqrt(5)), up.weight
 * and both biases 0, so the model computes plain CLIP. */
int clip_model_init_adapters(clip_model *m, uint64_t seed);

/* Dropout masks are keyed by (seed, step, modality, block, global sample
 * index, token, feature), so a sample gets the same mask on whichever rank
 * processes it. */
typedef struct {
    uint64_t seed;
    uint64_t step;
} clip_dropout_key;

/* The dropout stream of one adapter: ops_hash3(step, modality, block). The
 * mask of element (sample, token, feature) is then
 * ops_dropout_keep(seed, stream, (sample·key_tokens + token)·bottleneck +
 * feature, p), with key_tokens = vision tokens for images and
 * context_length for texts. */
uint64_t clip_dropout_stream(clip_dropout_key key, clip_modality modality, int block);

typedef struct clip_workspace clip_workspace;

/* Allocates activation memory for batches of up to MAX_IMAGES images and
 * MAX_TEXTS token rows (either may be 0 to leave that encoder out).
 * KEEP_FOR_BACKWARD != 0 keeps what backward needs; RECOMPUTE_BLOCKS != 0
 * (with KEEP_FOR_BACKWARD) keeps only each block's input and recomputes
 * the block inside backward, trading one extra forward for memory. Kept
 * activations cost about 9·N·C + 2·N·K floats per block (N = B·T rows;
 * attention probabilities are recomputed in backward), about 10 GB for
 * 128 ViT-B/16 images; recomputation brings that to about a third.
 * clip_workspace_bytes() reports the size. A workspace serves one caller
 * at a time. */
int clip_workspace_create(const clip_model *m, int max_images, int max_texts, int keep_for_backward,
                          int recompute_blocks, clip_workspace **out);
void clip_workspace_free(clip_workspace *ws);
/* Size in bytes of the workspace's activation memory. */
size_t clip_workspace_bytes(const clip_workspace *ws);
/* The size clip_workspace_create would allocate for these arguments,
 * without allocating it; 0 for invalid batch sizes or when the small
 * bookkeeping arrays cannot be allocated. */
size_t clip_workspace_required_bytes(const clip_config *config, int max_images, int max_texts, int keep_for_backward,
                                     int recompute_blocks);

/* FLAGS of the encode calls. CLIP_ENCODE_TRAIN enables adapter dropout.
 * Without CLIP_ENCODE_ALL_TOKENS, the last block computes keys and values
 * for every token and everything else for the pooled row of each sample
 * only (the class token, the end-of-text token). The features and
 * gradients stay the same, and ViT-B/16 does about 7% less work. The last
 * block's adapter activations then cover the pooled rows only, so
 * clip_workspace_adapter_hidden and _output return NULL for it, and
 * null-space collection passes CLIP_ENCODE_ALL_TOKENS. */
enum { CLIP_ENCODE_TRAIN = 1, CLIP_ENCODE_ALL_TOKENS = 2 };

/* Encodes N images [N, 3, R, R] (already normalised) into FEATURES
 * [N, embed_dim] (projected, not normalised). SAMPLE_OFFSET is the global
 * index of row 0 (dropout keys); FLAGS as above.
 * Returns 0, or -1 when N exceeds the workspace. */
int clip_encode_images(clip_model *m, clip_workspace *ws, const float *images, int n, long sample_offset, int flags,
                       clip_dropout_key key, float *features);
/* Encodes N token rows [N, context_length] (SOT ... EOT, 0-padded) into
 * FEATURES [N, embed_dim]. The sequence is cut after the batch's last
 * end-of-text position (exact under the causal mask). Dropout keys use the
 * row index as the sample index, so texts are keyed alike on every rank.
 * Returns 0, or -1 for an out-of-range token id or too many rows. */
int clip_encode_texts(clip_model *m, clip_workspace *ws, const int32_t *tokens, int n, int flags,
                      clip_dropout_key key, float *features);
/* Same, with row 0 keyed as sample SAMPLE_OFFSET: encoding a long prompt
 * list in chunks with their offsets gives every prompt the mask it gets
 * in one batch. */
int clip_encode_texts_at(clip_model *m, clip_workspace *ws, const int32_t *tokens, int n, long sample_offset,
                         int flags, clip_dropout_key key, float *features);

/* Backward of the last encode call of that modality. D_FEATURES
 * [n, embed_dim]; ADDS the adapter gradients into GRADS (adapter layout,
 * clip_adapter_count floats; only that modality's part is touched). It
 * reads the current adapter values, so leave them unchanged between an
 * encode and its backward.
 * Returns -1 when the workspace does not keep activations or no forward
 * ran. */
int clip_backward_images(clip_model *m, clip_workspace *ws, const float *d_features, float *grads);
int clip_backward_texts(clip_model *m, clip_workspace *ws, const float *d_features, float *grads);

/* The adapter hidden activations z = dropout(relu(down(x))) of block BLOCK
 * from the last forward of MODALITY (dropout only in training mode):
 * *ROWS = n · tokens rows of adapter_bottleneck floats, sample major, so
 * that the adapter output is a = adapter_scale · (z up_wᵀ + up_b). Valid
 * until the next encode of that modality, in eval mode too. NULL with
 * *ROWS = 0 before any forward, and for the last block of a forward
 * without CLIP_ENCODE_ALL_TOKENS. */
const float *clip_workspace_adapter_hidden(const clip_workspace *ws, clip_modality modality, int block, int *rows);
/* The adapter output a (before the residual add) of the same rows, *ROWS
 * rows of width floats, computed from the hidden activations and the
 * model's current up projection into one workspace buffer. The workspace
 * keeps no per-block outputs, so the result is valid until the next call
 * or the next encode of that modality. NULL as above. */
const float *clip_workspace_adapter_output(const clip_model *m, clip_workspace *ws, clip_modality modality, int block,
                                           int *rows);
/* Same for the visual encoder (the features DMNSP's null spaces use). */
const float *clip_workspace_visual_adapter_output(const clip_model *m, clip_workspace *ws, int block, int *rows);

#endif

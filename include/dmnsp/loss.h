/* loss: CLIP's image-text logits, softmax cross entropy with label
 * smoothing, their backward into both feature sets, and argmax prediction.
 *
 * Shapes: N images of one rank's shard, C classes, D embedding width.
 *   logits[i][c] = exp(logit_scale) * <img_i/|img_i|, txt_c/|txt_c|>
 *   loss_i = (1 - ls) * (-log p_i[y_i]) + ls * mean_c(-log p_i[c])
 * which is PyTorch's cross_entropy(label_smoothing=ls). The loss is a mean
 * over the GLOBAL batch. A rank passes the global batch size and gets
 * sum_i loss_i / n_global for its own N rows, with gradients scaled the same
 * way. Summing losses and gradients over ranks then gives the one-rank
 * result.
 *
 * The workspace owns every intermediate (normalised features, inverse norms,
 * probabilities), sized once for the largest N and C.
 */
#ifndef DMNSP_LOSS_H
#define DMNSP_LOSS_H

#include <stddef.h>

typedef struct loss_workspace loss_workspace;

/* Allocates buffers for up to MAX_IMAGES rows, MAX_CLASSES classes and
 * EMBED_DIM features. Returns 0, or -1 on invalid sizes or no memory. */
int loss_workspace_create(int max_images, int max_classes, int embed_dim, loss_workspace **out);
void loss_workspace_free(loss_workspace *ws);

typedef struct {
    double loss; /* this rank's part: sum of its per-image losses / n_global */
    long correct; /* images of this rank whose argmax logit is the label */
} loss_result;

/* Forward over N image features [N, D] and C text features [C, D], both
 * unnormalised (the projected encoder outputs). LABELS [N] are in 0..C-1.
 * LOGIT_SCALE is the stored log value (ln 100 in released CLIP). N may be 0
 * (a rank with an empty shard). The inputs must stay valid until
 * loss_clip_backward(). Returns 0, or -1 when a size exceeds the workspace,
 * a label is out of range or a feature row has zero norm. */
int loss_clip_forward(loss_workspace *ws, const float *image_features, int n, const float *text_features,
                      int classes, float logit_scale, const int *labels, float label_smoothing, long n_global,
                      loss_result *out);

/* Backward of the last forward: OVERWRITES d_image_features [N, D] and
 * d_text_features [C, D] with the gradients of this rank's loss part. */
int loss_clip_backward(loss_workspace *ws, float *d_image_features, float *d_text_features);

/* Logits [N, C] of the last forward (valid until the next forward). */
const float *loss_workspace_logits(const loss_workspace *ws);

/* Scales each of the N rows of X [N, D] to unit Euclidean norm in place.
 * Returns 0, or -1 when a row has zero or non-finite norm. */
int loss_normalize_rows(float *x, int n, int dim);

/* Predicts PREDICTIONS[i] = argmax_c <img_i, txt_c> for N image features
 * [N, D] (normalising them does not change the argmax) against C NORMALISED
 * text features [C, D]. Ties go to the lowest class index, as torch.argmax. */
void loss_predict(const float *image_features, int n, const float *text_features_normalized, int classes,
                  int dim, int *predictions);

/* Number of the N predictions equal to their label. */
long loss_count_correct(const int *predictions, const int *labels, int n);

#endif

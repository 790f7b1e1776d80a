/* train: one data-parallel training step of CLIP's adapters, and the
 * evaluation helpers that classify images against class prompts.
 *
 * A step on every rank of the trainer's communicator:
 *   1. encode the task's C class prompts (every rank, identical: text
 *      dropout masks depend on the prompt row, never on the rank),
 *   2. encode this rank's N images (dropout keyed by global sample index),
 *   3. cross entropy over the task's classes, averaged over the GLOBAL
 *      batch, and its backward into both feature sets,
 *   4. backward through both encoders into one adapter-layout gradient
 *      buffer (the text part from this rank's share of d_text),
 *   5. one MPI_Allreduce (sum) of that buffer, so every rank has the
 *      gradient of the global mean loss,
 *   6. the caller's gradient hook (DMNSP's projection), then
 *   7. AdamW with the task's warm-up + cosine learning rate.
 * A small allreduce before step 5 carries the loss, the correct count and
 * a failure flag, so a rank that fails makes every rank return -1 instead
 * of leaving the others waiting in the gradient allreduce.
 *
 * Memory: trainer_create sizes everything once (model workspace for the
 * largest local batch and the largest task, gradient buffer, AdamW
 * moments); steps never allocate.
 */
#ifndef DMNSP_TRAIN_H
#define DMNSP_TRAIN_H

#include "dmnsp/clip.h"
#include "dmnsp/optim.h"

#include <mpi.h>
#include <stdint.h>

typedef struct {
    int max_local_images;  /* largest N a rank passes to train_step (>= 1) */
    int max_classes;       /* largest C of a task, and text rows per encode */
    int recompute_blocks;  /* activation checkpointing in the model */
    float label_smoothing; /* ls in [0, 1] */
    adamw_config adamw;
    uint64_t dropout_seed;
    MPI_Comm comm; /* ranks that share the global batch (MPI_COMM_WORLD) */
} train_config;

/* train_config with the reference settings: label smoothing 0, AdamW
 * defaults (weight decay 0), dropout seed 0, no recompute,
 * MPI_COMM_WORLD. The sizes are left at 0 for the caller to set. */
train_config train_default_config(void);

typedef struct trainer trainer;

/* Creates a trainer for MODEL (borrowed: it must outlive the trainer; its
 * adapter buffer is the one that trains). MPI must be initialised. Returns
 * 0, or -1 on invalid settings or no memory. */
int trainer_create(clip_model *model, const train_config *config, trainer **out);
void trainer_free(trainer *t);

/* Starts task TASK: fresh AdamW moments and step counter, the learning-rate
 * schedule (BASE_LR, WARMUP_STEPS, TOTAL_STEPS = epochs x batches of the
 * task), no update factors. Dropout masks of different tasks differ.
 * Returns 0, or -1 on an invalid schedule. */
int trainer_begin_task(trainer *t, int task, double base_lr, long warmup_steps, long total_steps);

/* Multiplies the learning rate of element ranges of the adapter buffer by
 * a factor (AdamW update factors, e.g. one per visual block) for the rest
 * of the task. The ranges are copied; N = 0 clears them. */
int trainer_set_update_factors(trainer *t, const adamw_range_factor *factors, int n);

/* The same with one factor per block of MODALITY: FACTORS [layers] scale
 * the learning rate of all four adapter tensors of each block (the
 * per-block factors of lambda_apply = step). Replaces any earlier ranges. */
int trainer_set_block_factors(trainer *t, clip_modality modality, const double *factors);

/* Called after the gradient allreduce and before AdamW. GRADIENTS contains
 * the summed gradient of both encoders in the adapter layout
 * (clip_adapter_count floats), identical on every rank; the hook may
 * change it in place. STEP is the step index within the task. Returns 0,
 * or non-zero (with dmnsp_fail) to fail the step on every rank: a second
 * small allreduce checks the hook's status before AdamW runs. */
typedef int (*train_gradient_hook)(void *context, float *gradients, int step);

typedef struct {
    double loss;           /* global mean loss of the batch */
    long correct;          /* images of the global batch whose argmax is the label */
    double learning_rate;  /* the rate AdamW used */
    adamw_step_stats nonfinite; /* non-finite gradient/moment/parameter counts */
    double seconds;        /* wall time of the step on this rank */
} train_step_result;

/* One training step (see the top of this file). IMAGES_LOCAL [N_LOCAL, 3,
 * R, R] are this rank's normalised images and LABELS_LOCAL [N_LOCAL] their
 * task-local labels (0..N_CLASSES-1); N_LOCAL may be 0. GLOBAL_OFFSET is
 * the global index of this rank's first image (dropout keys) and N_GLOBAL
 * the global batch size. PROMPT_TOKENS [N_CLASSES, context_length] are the
 * task's class prompts, the same on every rank. STEP is the step index
 * within the task (learning rate, dropout, hook). HOOK may be NULL.
 * Collective over the trainer's communicator. Returns 0, or -1 on every
 * rank when any rank fails before the gradient allreduce or in the hook;
 * the adapters are then unchanged. */
int train_step(trainer *t, const float *images_local, const int *labels_local, int n_local, long global_offset,
               int n_global, const int32_t *prompt_tokens, int n_classes, int step, train_gradient_hook hook,
               void *hook_context, train_step_result *out);

/* Encodes N_CLASSES prompt rows [N_CLASSES, context_length] in evaluation
 * mode (no dropout) into unit-norm text features FEATURES [N_CLASSES,
 * embed_dim], in chunks of max_classes rows. Local to this rank. */
int train_encode_class_texts(trainer *t, const int32_t *prompt_tokens, int n_classes, float *features);

/* Predicts PREDICTIONS [N] for N local images [N, 3, R, R] in evaluation
 * mode against unit-norm TEXT_FEATURES [N_CLASSES, embed_dim] (argmax of
 * cosine similarity), in chunks of max_local_images. Local to this rank. */
int train_predict(trainer *t, const float *images, int n, const float *text_features, int n_classes,
                  int *predictions);

/* Non-finite counts summed over the steps of the current task (zeroed by
 * trainer_begin_task), for the per-task report. */
adamw_step_stats trainer_task_nonfinite(const trainer *t);

/* The model, its workspace (adapter outputs of the last image forward,
 * for covariances) and the AdamW state. To resume a task mid-way, call
 * trainer_begin_task, then copy the saved moments into m and v of
 * trainer_optimizer() and set its step to the steps already taken. */
clip_model *trainer_model(trainer *t);
clip_workspace *trainer_workspace(trainer *t);
adamw *trainer_optimizer(trainer *t);
/* The gradient buffer of the last step (clip_adapter_count floats, after
 * the hook). */
const float *trainer_gradients(const trainer *t);

#endif

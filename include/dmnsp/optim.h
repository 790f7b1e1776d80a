/* optim: AdamW over one flat float buffer and the learning-rate schedule.
 *
 * AdamW follows torch.optim.AdamW (PyTorch 1.13, amsgrad off) step for
 * step, in float32 with the scalar factors in double:
 *   t += 1
 *   p *= 1 - lr * wd                  (decoupled weight decay)
 *   m = beta1 * m + (1 - beta1) * g
 *   v = beta2 * v + (1 - beta2) * g * g
 *   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * The buffer is the adapter layout (parameters, gradients and both moments
 * share it). An optional list of ranges multiplies the learning rate of the
 * elements in each range by a factor (both the decay and the Adam step),
 * which is how a per-block update factor is applied.
 *
 * Non-finite values are counted, not hidden: every step reports how many
 * gradient elements were non-finite on entry and how many moment and
 * parameter elements are non-finite after the update. PyTorch semantics are
 * kept otherwise (an inf second moment freezes an element, a NaN gradient
 * makes it NaN); the caller logs and accumulates the counts.
 *
 * Schedule: linear warm-up over W steps, then a cosine to 0 at step S:
 *   lr(s) = base * (s + 1) / W                        for s < W
 *   lr(s) = base * 0.5 * (1 + cos(pi (s - W) / (S - W)))   for W <= s <= S
 *   lr(s) = 0                                         for s >= S
 */
#ifndef DMNSP_OPTIM_H
#define DMNSP_OPTIM_H

#include <stddef.h>

typedef struct {
    double beta1;        /* 0.9 */
    double beta2;        /* 0.999 */
    double eps;          /* 1e-8 */
    double weight_decay; /* decoupled: p *= 1 - lr * weight_decay */
} adamw_config;

/* torch.optim.AdamW's defaults except weight_decay = 0 (the reference
 * setting; torch's default is 0.01). */
adamw_config adamw_default_config(void);

typedef struct {
    size_t count;  /* elements */
    float *m;      /* first moment [count] */
    float *v;      /* second moment [count] */
    long step;     /* steps taken since the last reset */
    adamw_config config;
} adamw;

/* Elements [offset, offset + count) of the buffer get their learning rate
 * multiplied by FACTOR. Ranges must not overlap. */
typedef struct {
    size_t offset;
    size_t count;
    float factor;
} adamw_range_factor;

/* Non-finite counts of one step. */
typedef struct {
    long gradient_nonfinite;  /* gradient elements that were inf or NaN */
    long moment_nonfinite;    /* m or v elements inf or NaN after the step */
    long parameter_nonfinite; /* parameters inf or NaN after the step */
} adamw_step_stats;

/* Allocates zeroed moments for COUNT elements. Returns 0, or -1 on invalid
 * hyper-parameters (betas outside [0, 1), eps <= 0, weight decay < 0) or no
 * memory. Free with adamw_free(). */
int adamw_create(size_t count, const adamw_config *config, adamw *opt);
void adamw_free(adamw *opt);

/* Zeroes both moments and the step counter (a fresh optimizer, e.g. at the
 * start of each task). */
void adamw_reset(adamw *opt);

/* One update of PARAMS [count] from GRADIENTS [count] with learning rate LR.
 * FACTORS (may be NULL when N_FACTORS is 0) scale the learning rate per
 * range. Fills STATS (may be NULL). Returns 0, or -1 when a range lies
 * outside the buffer or LR is negative or non-finite. */
int adamw_step(adamw *opt, float *params, const float *gradients, double lr, const adamw_range_factor *factors,
               int n_factors, adamw_step_stats *stats);

typedef struct {
    double base_lr;
    long warmup_steps; /* W >= 0 */
    long total_steps;  /* S >= 1: epochs x batches of the task */
} lr_schedule;

/* Fills SCHEDULE; returns 0, or -1 when base_lr is negative or not finite,
 * warmup_steps < 0 or total_steps < 1. When S <= W the cosine part is
 * empty: the warm-up is the whole schedule, and lr reaches
 * base * S / W at the last step. */
int lr_schedule_init(lr_schedule *schedule, double base_lr, long warmup_steps, long total_steps);

/* Learning rate of step S (0-based) under the schedule; 0 for s >= S or
 * s < 0. */
double lr_schedule_at(const lr_schedule *schedule, long step);

#endif

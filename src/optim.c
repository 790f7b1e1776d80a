/* optim: AdamW and the warm-up + cosine learning-rate schedule (see
 * include/dmnsp/optim.h). */
#include "dmnsp/optim.h"

#include "dmnsp/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

adamw_config adamw_default_config(void)
{
    adamw_config config = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0};
    return config;
}

int adamw_create(size_t count, const adamw_config *config, adamw *opt)
{
    memset(opt, 0, sizeof *opt);
    if (!(config->beta1 >= 0 && config->beta1 < 1) || !(config->beta2 >= 0 && config->beta2 < 1))
        return dmnsp_fail("adamw: betas (%g, %g) must lie in [0, 1)", config->beta1, config->beta2);
    if (!(config->eps > 0) || !isfinite(config->eps))
        return dmnsp_fail("adamw: eps %g must be positive and finite", config->eps);
    if (!(config->weight_decay >= 0) || !isfinite(config->weight_decay))
        return dmnsp_fail("adamw: weight decay %g must be non-negative and finite", config->weight_decay);

    opt->m = dmnsp_calloc(count ? count : 1, sizeof(float), "AdamW first moment");
    opt->v = dmnsp_calloc(count ? count : 1, sizeof(float), "AdamW second moment");
    if (opt->m == NULL || opt->v == NULL) {
        adamw_free(opt);
        return -1;
    }
    opt->count = count;
    opt->config = *config;
    return 0;
}

void adamw_free(adamw *opt)
{
    free(opt->m);
    free(opt->v);
    opt->m = NULL;
    opt->v = NULL;
    opt->count = 0;
}

void adamw_reset(adamw *opt)
{
    memset(opt->m, 0, opt->count * sizeof(float));
    memset(opt->v, 0, opt->count * sizeof(float));
    opt->step = 0;
}

/* The per-step scalars, computed in double as PyTorch does in Python and
 * rounded to float where its kernels take them as float scalars. */
typedef struct {
    float beta1, one_minus_beta1;
    float beta2, one_minus_beta2;
    float eps;
    double bias_correction1;
    double bias_correction2_sqrt;
    double weight_decay;
} adamw_scalars;

/* Updates elements [begin, end) with learning rate LR and adds the
 * non-finite counts to STATS. */
static void adamw_update_range(adamw *opt, const adamw_scalars *s, float *params, const float *gradients,
                               size_t begin, size_t end, double lr, adamw_step_stats *stats)
{
    const float decay = (float)(1.0 - lr * s->weight_decay);
    const float step_size = (float)(lr / s->bias_correction1);
    const float bias_correction2_sqrt = (float)s->bias_correction2_sqrt;
    const float beta1 = s->beta1, one_minus_beta1 = s->one_minus_beta1;
    const float beta2 = s->beta2, one_minus_beta2 = s->one_minus_beta2;
    const float eps = s->eps;
    float *m = opt->m, *v = opt->v;
    long gradient_bad = 0, moment_bad = 0, parameter_bad = 0;

#pragma omp parallel for schedule(static) reduction(+ : gradient_bad, moment_bad, parameter_bad)
    for (size_t i = begin; i < end; i++) {
        float g = gradients[i];
        gradient_bad += !isfinite(g);

        float p = params[i] * decay;
        float mi = m[i] * beta1 + one_minus_beta1 * g;
        float vi = v[i] * beta2 + one_minus_beta2 * (g * g);
        float denom = sqrtf(vi) / bias_correction2_sqrt + eps;
        p = p + (-step_size) * (mi / denom);

        m[i] = mi;
        v[i] = vi;
        params[i] = p;
        moment_bad += !isfinite(mi) || !isfinite(vi);
        parameter_bad += !isfinite(p);
    }
    stats->gradient_nonfinite += gradient_bad;
    stats->moment_nonfinite += moment_bad;
    stats->parameter_nonfinite += parameter_bad;
}

static int compare_range_offsets(const void *a, const void *b)
{
    size_t x = ((const adamw_range_factor *)a)->offset, y = ((const adamw_range_factor *)b)->offset;
    return (x > y) - (x < y);
}

int adamw_step(adamw *opt, float *params, const float *gradients, double lr, const adamw_range_factor *factors,
               int n_factors, adamw_step_stats *stats)
{
    adamw_step_stats local = {0, 0, 0};
    if (stats == NULL)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!(lr >= 0) || !isfinite(lr))
        return dmnsp_fail("adamw: learning rate %g must be non-negative and finite", lr);
    if (n_factors < 0 || (n_factors > 0 && factors == NULL))
        return dmnsp_fail("adamw: %d update factors given without a factor array", n_factors);

    /* Ranges sorted by offset, so the gaps between them (factor 1) are
     * walked in one pass. */
    adamw_range_factor *sorted = NULL;
    if (n_factors > 0) {
        sorted = dmnsp_malloc((size_t)n_factors * sizeof *sorted, "AdamW update factor ranges");
        if (sorted == NULL)
            return -1;
        memcpy(sorted, factors, (size_t)n_factors * sizeof *sorted);
        qsort(sorted, (size_t)n_factors, sizeof *sorted, compare_range_offsets);
        int status = 0;
        for (int r = 0; r < n_factors && status == 0; r++) {
            const adamw_range_factor *range = &sorted[r];
            if (range->offset > opt->count || range->count > opt->count - range->offset)
                status = dmnsp_fail("adamw: update factor range [%zu, %zu) lies outside the buffer of %zu elements",
                                    range->offset, range->offset + range->count, opt->count);
            else if (r > 0 && range->offset < sorted[r - 1].offset + sorted[r - 1].count)
                status = dmnsp_fail("adamw: update factor ranges starting at %zu and %zu overlap",
                                    sorted[r - 1].offset, range->offset);
            else if (!(range->factor >= 0) || !isfinite(range->factor))
                status = dmnsp_fail("adamw: update factor %g of range at %zu must be non-negative and finite",
                                    (double)range->factor, range->offset);
        }
        if (status != 0) {
            free(sorted);
            return status;
        }
    }

    opt->step++;
    const adamw_config *c = &opt->config;
    adamw_scalars s = {
        .beta1 = (float)c->beta1,
        .one_minus_beta1 = (float)(1.0 - c->beta1),
        .beta2 = (float)c->beta2,
        .one_minus_beta2 = (float)(1.0 - c->beta2),
        .eps = (float)c->eps,
        .bias_correction1 = 1.0 - pow(c->beta1, (double)opt->step),
        .bias_correction2_sqrt = sqrt(1.0 - pow(c->beta2, (double)opt->step)),
        .weight_decay = c->weight_decay,
    };

    size_t position = 0;
    for (int r = 0; r < n_factors; r++) {
        if (sorted[r].offset > position)
            adamw_update_range(opt, &s, params, gradients, position, sorted[r].offset, lr, stats);
        adamw_update_range(opt, &s, params, gradients, sorted[r].offset, sorted[r].offset + sorted[r].count,
                           lr * sorted[r].factor, stats);
        position = sorted[r].offset + sorted[r].count;
    }
    if (position < opt->count)
        adamw_update_range(opt, &s, params, gradients, position, opt->count, lr, stats);
    free(sorted);
    return 0;
}

int lr_schedule_init(lr_schedule *schedule, double base_lr, long warmup_steps, long total_steps)
{
    if (!(base_lr >= 0) || !isfinite(base_lr))
        return dmnsp_fail("learning rate schedule: base learning rate %g must be non-negative and finite", base_lr);
    if (warmup_steps < 0)
        return dmnsp_fail("learning rate schedule: warm-up steps %ld must be >= 0", warmup_steps);
    if (total_steps < 1)
        return dmnsp_fail("learning rate schedule: total steps %ld must be >= 1", total_steps);
    schedule->base_lr = base_lr;
    schedule->warmup_steps = warmup_steps;
    schedule->total_steps = total_steps;
    return 0;
}

double lr_schedule_at(const lr_schedule *schedule, long step)
{
    long warmup = schedule->warmup_steps, total = schedule->total_steps;
    double base = schedule->base_lr;
    if (step < 0 || step >= total)
        return 0.0;
    if (step < warmup)
        return base * (double)(step + 1) / (double)warmup;
    /* Here warmup <= step < total, so total - warmup >= 1. */
    double progress = (double)(step - warmup) / (double)(total - warmup);
    return 0.5 * (1.0 + cos(M_PI * progress)) * base;
}

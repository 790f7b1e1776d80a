/* AdamW and schedule tests without fixtures: the schedule's values at its
 * corners, AdamW against the update rule written out in double, update
 * factors equal to a scaled learning rate, reset, non-finite counting and
 * input errors. */
#include "dmnsp/error.h"
#include "dmnsp/optim.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_schedule(void)
{
    lr_schedule s;
    CHECK_OK(lr_schedule_init(&s, 1e-3, 30, 100));
    CHECK_NEAR(lr_schedule_at(&s, 0), 1e-3 / 30, 1e-18);
    CHECK_NEAR(lr_schedule_at(&s, 14), 1e-3 * 15 / 30, 1e-18);
    CHECK_NEAR(lr_schedule_at(&s, 29), 1e-3, 1e-18);
    CHECK_NEAR(lr_schedule_at(&s, 30), 1e-3, 1e-18);
    /* halfway through the cosine: (65 - 30) / 70 = 0.5 */
    CHECK_NEAR(lr_schedule_at(&s, 65), 0.5e-3, 1e-15);
    CHECK_NEAR(lr_schedule_at(&s, 99), 0.5 * (1 + cos(M_PI * 69.0 / 70.0)) * 1e-3, 1e-18);
    CHECK(lr_schedule_at(&s, 99) > 0);
    CHECK(lr_schedule_at(&s, 100) == 0);
    CHECK(lr_schedule_at(&s, 1000) == 0);
    CHECK(lr_schedule_at(&s, -1) == 0);

    /* No warm-up: the cosine starts at the base rate. */
    CHECK_OK(lr_schedule_init(&s, 2.0, 0, 4));
    CHECK_NEAR(lr_schedule_at(&s, 0), 2.0, 1e-15);
    CHECK_NEAR(lr_schedule_at(&s, 2), 1.0, 1e-15);

    /* Total steps not above warm-up: only the warm-up ramp, no division
     * by zero. */
    CHECK_OK(lr_schedule_init(&s, 1.0, 30, 10));
    CHECK_NEAR(lr_schedule_at(&s, 9), 10.0 / 30.0, 1e-15);
    CHECK(lr_schedule_at(&s, 10) == 0);
    CHECK_OK(lr_schedule_init(&s, 1.0, 10, 10));
    CHECK_NEAR(lr_schedule_at(&s, 9), 1.0, 1e-15);
    for (long step = 0; step < 12; step++)
        CHECK(isfinite(lr_schedule_at(&s, step)));

    CHECK_FAILS_WITH(lr_schedule_init(&s, -1.0, 0, 10), "base learning rate -1");
    CHECK_FAILS_WITH(lr_schedule_init(&s, 1.0, -2, 10), "warm-up steps -2");
    CHECK_FAILS_WITH(lr_schedule_init(&s, 1.0, 2, 0), "total steps 0");
}

/* Two steps of AdamW against the rule computed in double. */
static void check_adamw_rule(void)
{
    enum { N = 6 };
    float params[N] = {0.5f, -1.0f, 2.0f, 0.0f, 1e-3f, -7.0f};
    const float g1[N] = {0.1f, -0.2f, 3.0f, 0.0f, 1e-7f, -5.0f};
    const float g2[N] = {-0.3f, 0.2f, 1.0f, 1e-4f, 2e-7f, 4.0f};
    double p[N], m[N] = {0}, v[N] = {0};
    for (int i = 0; i < N; i++)
        p[i] = params[i];

    adamw_config config = adamw_default_config();
    config.weight_decay = 0.05;
    adamw opt;
    CHECK_OK(adamw_create(N, &config, &opt));
    const double lrs[2] = {1e-2, 3e-3};
    const float *grads[2] = {g1, g2};
    for (int t = 1; t <= 2; t++) {
        adamw_step_stats stats;
        CHECK_OK(adamw_step(&opt, params, grads[t - 1], lrs[t - 1], NULL, 0, &stats));
        CHECK_EQ_INT(stats.gradient_nonfinite + stats.moment_nonfinite + stats.parameter_nonfinite, 0);
        for (int i = 0; i < N; i++) {
            double g = grads[t - 1][i], lr = lrs[t - 1];
            p[i] *= 1 - lr * 0.05;
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + 0.001 * g * g;
            double m_hat = m[i] / (1 - pow(0.9, t)), v_hat = v[i] / (1 - pow(0.999, t));
            p[i] -= lr * m_hat / (sqrt(v_hat) + 1e-8);
        }
    }
    CHECK_EQ_INT(opt.step, 2);
    float expected[N];
    for (int i = 0; i < N; i++)
        expected[i] = (float)p[i];
    test_compare_floats("AdamW parameters vs double rule", params, expected, N, 1e-6, 1e-3);

    /* After a reset the same gradient gives the same first step again. */
    adamw_reset(&opt);
    CHECK_EQ_INT(opt.step, 0);
    float fresh[N] = {1, 1, 1, 1, 1, 1}, again[N] = {1, 1, 1, 1, 1, 1};
    CHECK_OK(adamw_step(&opt, fresh, g1, 1e-2, NULL, 0, NULL));
    adamw other;
    CHECK_OK(adamw_create(N, &config, &other));
    CHECK_OK(adamw_step(&other, again, g1, 1e-2, NULL, 0, NULL));
    CHECK(memcmp(fresh, again, sizeof fresh) == 0);
    adamw_free(&other);
    adamw_free(&opt);
}

/* A factor f on a range gives exactly what an optimizer over that range
 * with learning rate lr * f gives; elements outside keep lr. */
static void check_update_factors(void)
{
    enum { N = 20 };
    float with_factors[N], first[8], middle[5], rest[7], grads[N];
    for (int i = 0; i < N; i++) {
        with_factors[i] = 0.1f * (float)(i - 10);
        grads[i] = 0.37f * (float)((i * 13) % 7) - 1.0f;
    }
    memcpy(first, with_factors, sizeof first);
    memcpy(middle, with_factors + 8, sizeof middle);
    memcpy(rest, with_factors + 13, sizeof rest);

    adamw_config config = adamw_default_config();
    config.weight_decay = 0.2;
    adamw opt, opt_first, opt_middle, opt_rest;
    CHECK_OK(adamw_create(N, &config, &opt));
    CHECK_OK(adamw_create(8, &config, &opt_first));
    CHECK_OK(adamw_create(5, &config, &opt_middle));
    CHECK_OK(adamw_create(7, &config, &opt_rest));
    /* given out of order on purpose */
    const adamw_range_factor factors[2] = {{13, 7, 0.25f}, {0, 8, 0.5f}};
    for (int step = 0; step < 3; step++) {
        double lr = 1e-2 * (step + 1);
        CHECK_OK(adamw_step(&opt, with_factors, grads, lr, factors, 2, NULL));
        CHECK_OK(adamw_step(&opt_first, first, grads, lr * 0.5f, NULL, 0, NULL));
        CHECK_OK(adamw_step(&opt_middle, middle, grads + 8, lr, NULL, 0, NULL));
        CHECK_OK(adamw_step(&opt_rest, rest, grads + 13, lr * 0.25f, NULL, 0, NULL));
    }
    test_compare_floats("factor 0.5 range", with_factors, first, 8, 1e-7, 1e-3);
    test_compare_floats("range without factor", with_factors + 8, middle, 5, 1e-7, 1e-3);
    test_compare_floats("factor 0.25 range", with_factors + 13, rest, 7, 1e-7, 1e-3);

    const adamw_range_factor outside[1] = {{15, 6, 1.0f}};
    CHECK_FAILS_WITH(adamw_step(&opt, with_factors, grads, 1e-3, outside, 1, NULL),
                     "range [15, 21) lies outside the buffer of 20 elements");
    const adamw_range_factor overlapping[2] = {{0, 5, 1.0f}, {4, 2, 1.0f}};
    CHECK_FAILS_WITH(adamw_step(&opt, with_factors, grads, 1e-3, overlapping, 2, NULL),
                     "starting at 0 and 4 overlap");
    const adamw_range_factor negative[1] = {{0, 5, -1.0f}};
    CHECK_FAILS_WITH(adamw_step(&opt, with_factors, grads, 1e-3, negative, 1, NULL), "update factor -1");
    CHECK_FAILS_WITH(adamw_step(&opt, with_factors, grads, NAN, NULL, 0, NULL), "learning rate nan");
    CHECK_EQ_INT(opt.step, 3);

    adamw_free(&opt);
    adamw_free(&opt_first);
    adamw_free(&opt_middle);
    adamw_free(&opt_rest);
}

/* A huge gradient overflows v to inf (the element then stops moving, as in
 * PyTorch), a NaN gradient makes its element NaN; both are counted. */
static void check_nonfinite_counts(void)
{
    float params[4] = {1, 1, 1, 1};
    const float grads[4] = {0.5f, 1e30f, NAN, INFINITY};
    adamw_config config = adamw_default_config();
    adamw opt;
    CHECK_OK(adamw_create(4, &config, &opt));
    adamw_step_stats stats;
    CHECK_OK(adamw_step(&opt, params, grads, 1e-3, NULL, 0, &stats));
    CHECK_EQ_INT(stats.gradient_nonfinite, 2);
    /* element 1: v = 1e-3 * 1e60 overflows; 2: NaN; 3: m, v inf */
    CHECK_EQ_INT(stats.moment_nonfinite, 3);
    CHECK(isinf(opt.v[1]));
    CHECK(params[1] == 1.0f);
    CHECK(isnan(params[2]));
    /* element 3: m / denom = inf / inf = NaN */
    CHECK_EQ_INT(stats.parameter_nonfinite, 2);
    CHECK(isfinite(params[0]) && params[0] < 1.0f);
    adamw_free(&opt);

    adamw_config bad = adamw_default_config();
    bad.beta2 = 1.0;
    CHECK_FAILS_WITH(adamw_create(4, &bad, &opt), "betas (0.9, 1) must lie in [0, 1)");
    bad = adamw_default_config();
    bad.eps = 0;
    CHECK_FAILS_WITH(adamw_create(4, &bad, &opt), "eps 0 must be positive");
}

int main(void)
{
    check_schedule();
    check_adamw_rule();
    check_update_factors();
    check_nonfinite_counts();
    return test_finish("test_optim");
}

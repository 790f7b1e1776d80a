/* AdamW parity with PyTorch: three steps of torch.optim.AdamW (float32,
 * weight decay 0.1) under the warm-up + cosine schedule, with a second
 * parameter group at half the learning rate standing for an update factor
 * of 0.5, against optim_fixture.safetensors (written by
 * gen_optim_fixtures.py). */
#include "dmnsp/error.h"
#include "dmnsp/optim.h"
#include "dmnsp/safetensors.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>

enum { COUNT = 40, STEPS = 3 };

int main(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/optim/optim_fixture.safetensors", test_env("DMNSP_SOURCE_DIR", "."));
    safetensors_file *file = NULL;
    CHECK_OK(safetensors_open(path, &file));
    if (file == NULL)
        return test_finish("test_optim_matches_torch");

    float params[COUNT], gradients[STEPS * COUNT], expected[COUNT], settings[6], learning_rates[STEPS];
    CHECK_OK(safetensors_read_f32(file, "initial", params, COUNT));
    CHECK_OK(safetensors_read_f32(file, "gradients", gradients, STEPS * COUNT));
    CHECK_OK(safetensors_read_f32(file, "settings", settings, 6));
    CHECK_OK(safetensors_read_f32(file, "learning_rates", learning_rates, STEPS));
    double base_lr = settings[0], weight_decay = settings[3];
    long warmup = (long)settings[1], total = (long)settings[2];
    size_t split = (size_t)settings[4];
    float factor = settings[5];

    lr_schedule schedule;
    CHECK_OK(lr_schedule_init(&schedule, base_lr, warmup, total));
    adamw_config config = adamw_default_config();
    config.weight_decay = weight_decay;
    adamw opt;
    CHECK_OK(adamw_create(COUNT, &config, &opt));
    const adamw_range_factor factors[1] = {{split, COUNT - split, factor}};

    for (int step = 0; step < STEPS; step++) {
        double lr = lr_schedule_at(&schedule, step);
        CHECK_NEAR(lr, learning_rates[step], 1e-7 * base_lr);
        adamw_step_stats stats;
        CHECK_OK(adamw_step(&opt, params, gradients + (size_t)step * COUNT, lr, factors, 1, &stats));
        CHECK_EQ_INT(stats.gradient_nonfinite + stats.moment_nonfinite + stats.parameter_nonfinite, 0);
        char name[64];
        snprintf(name, sizeof name, "params_after_step%d", step);
        CHECK_OK(safetensors_read_f32(file, name, expected, COUNT));
        test_compare_floats(name, params, expected, COUNT, 1e-6, 1e-2);
    }
    CHECK_OK(safetensors_read_f32(file, "exp_avg", expected, COUNT));
    test_compare_floats("exp_avg", opt.m, expected, COUNT, 1e-6, 1e-3);
    CHECK_OK(safetensors_read_f32(file, "exp_avg_sq", expected, COUNT));
    test_compare_floats("exp_avg_sq", opt.v, expected, COUNT, 1e-6, 1e-9);

    adamw_free(&opt);
    safetensors_close(file);
    return test_finish("test_optim_matches_torch");
}

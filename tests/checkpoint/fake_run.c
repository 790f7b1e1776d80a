/* fake_run: deterministic made-up experiment data for checkpoint tests. */
#include "fake_run.h"

#include "dmnsp/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* xorshift64*: reproducible values in [-1, 1) without libc's rand state. */
static double next_value(unsigned long long *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    unsigned long long bits = *state * 2685821657736338717ULL;
    return (double)(bits >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* Fills one block's eigenvalues (descending), eigenvectors (d x d) and
 * their first K columns. */
static int fill_block(unsigned long long *state, int d, int k, double **eigvals, float **eigvecs, float **top)
{
    *eigvals = dmnsp_malloc((size_t)d * sizeof(double), "fake eigvals");
    *eigvecs = dmnsp_malloc((size_t)d * d * sizeof(float), "fake eigvecs");
    *top = dmnsp_malloc((size_t)d * k * sizeof(float), "fake top");
    if (*eigvals == NULL || *eigvecs == NULL || *top == NULL)
        return -1;
    for (int i = 0; i < d; i++)
        (*eigvals)[i] = 100.0 / (1 + i) + 0.001 * next_value(state);
    for (int i = 0; i < d * d; i++)
        (*eigvecs)[i] = (float)next_value(state);
    for (int r = 0; r < d; r++)
        for (int j = 0; j < k; j++)
            (*top)[r * k + j] = (*eigvecs)[r * d + j];
    return 0;
}

int fake_run_init(fake_run *run, int tasks)
{
    memset(run, 0, sizeof *run);
    run->config.vision_width = 16;
    run->config.vision_layers = 3;
    run->config.text_width = 8;
    run->config.text_layers = 2;
    run->config.adapter_bottleneck = 4;
    run->config.vision_heads = 1;
    run->config.text_heads = 1;
    run->tasks = tasks;
    run->k = 2;
    run->adapter_count = clip_adapter_count(&run->config);

    unsigned long long state = 0x9e3779b97f4a7c15ULL;
    int d = run->config.vision_width, layers = run->config.vision_layers;
    for (int t = 0; t < tasks; t++) {
        run->snapshots[t] = dmnsp_malloc(run->adapter_count * sizeof(float), "fake snapshot");
        if (run->snapshots[t] == NULL)
            return -1;
        /* Visual parameters drift a little per task, text ones more. */
        for (size_t i = 0; i < run->adapter_count; i++) {
            double base = t == 0 ? 0.0 : run->snapshots[t - 1][i];
            double step = i < clip_adapter_modality_count(&run->config, CLIP_VISUAL) ? 0.01 : 0.05;
            run->snapshots[t][i] = (float)(base + step * next_value(&state) + (t == 0 ? 0.1 * next_value(&state) : 0));
        }
        for (int b = 0; b < layers; b++)
            DMNSP_TRY(fill_block(&state, d, run->k, &run->eigvals[t][b], &run->eigvecs[t][b], &run->top[t][b]));
        for (int i = 0; i < layers * layers; i++)
            run->lambda[t][i] = (float)(30.0 * exp(-0.5 * (1 + next_value(&state))));
        for (int c = 0; c < FAKE_RUN_CLASSES_PER_TASK; c++)
            run->classes[t][c] = t * FAKE_RUN_CLASSES_PER_TASK + c;
        for (int j = 0; j <= t; j++)
            run->accuracy_rows[t][j] = 90.0 - 10.0 * (t - j) + (j % 2 ? 0.25 : 0.0);
    }
    /* Drawn after the per-task data, so snapshots, visual null spaces and
     * lambda keep the values they had before text null spaces were added. */
    for (int t = 0; t < tasks; t++) {
        for (int b = 0; b < run->config.text_layers; b++)
            DMNSP_TRY(fill_block(&state, run->config.text_width, run->k, &run->text_eigvals[t][b],
                                 &run->text_eigvecs[t][b], &run->text_top[t][b]));
    }
    for (int i = 0; i < 8 * 8; i++) {
        run->optimizer_lambda[i] = 30.0 * exp(-0.5 * (1 + next_value(&state)));
        run->optimizer_text_lambda[i] = 30.0 * exp(-0.5 * (1 + next_value(&state)));
    }
    for (int i = 0; i < 2; i++) {
        run->moments[i] = dmnsp_malloc(run->adapter_count * sizeof(float), "fake moments");
        if (run->moments[i] == NULL)
            return -1;
        for (size_t j = 0; j < run->adapter_count; j++)
            run->moments[i][j] = (float)(i == 0 ? next_value(&state) : 1e-6 * (1 + next_value(&state)));
    }
    return 0;
}

void fake_run_free(fake_run *run)
{
    for (int t = 0; t < FAKE_RUN_MAX_TASKS; t++) {
        free(run->snapshots[t]);
        for (int b = 0; b < 8; b++) {
            free(run->eigvals[t][b]);
            free(run->eigvecs[t][b]);
            free(run->top[t][b]);
            free(run->text_eigvals[t][b]);
            free(run->text_eigvecs[t][b]);
            free(run->text_top[t][b]);
        }
    }
    free(run->moments[0]);
    free(run->moments[1]);
    memset(run, 0, sizeof *run);
}

void fake_run_record(fake_run *run, int t, int keep_bases, checkpoint_task_record *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->task = t;
    rec->classes = run->classes[t];
    rec->n_classes = FAKE_RUN_CLASSES_PER_TASK;
    rec->adapters = run->snapshots[t];
    rec->blocks = run->config.vision_layers;
    rec->d = run->config.vision_width;
    rec->k = run->k;
    rec->eigvals = (const double *const *)run->eigvals[t];
    rec->eigvecs = keep_bases ? (const float *const *)run->eigvecs[t] : NULL;
    rec->top = (const float *const *)run->top[t];
    if (run->text_nullspace) {
        rec->text_blocks = run->config.text_layers;
        rec->text_d = run->config.text_width;
        rec->text_eigvals = (const double *const *)run->text_eigvals[t];
        rec->text_eigvecs = keep_bases ? (const float *const *)run->text_eigvecs[t] : NULL;
        rec->text_top = (const float *const *)run->text_top[t];
    }
    rec->lambda = t > 0 ? run->lambda[t] : NULL;
    rec->accuracy_row = run->accuracy_rows[t];
    rec->row_length = t + 1;
    rec->accuracy = 85.0 - t;
    rec->forward_accuracy = t > 0 ? 20.0 + t : NAN;
    rec->nonfinite_count = t == 2 ? 7 : 0;
}

int fake_run_write(fake_run *run, const char *path, const char *config_yaml)
{
    checkpoint_header header = {config_yaml, "v-test", 2};
    for (int t = 0; t < run->tasks; t++) {
        checkpoint_task_record rec;
        fake_run_record(run, t, 1, &rec);
        DMNSP_TRY(checkpoint_append_task(path, &header, &run->config, run->snapshots[t], NULL, &rec));
    }
    return 0;
}

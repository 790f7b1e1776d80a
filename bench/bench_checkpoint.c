/* bench_checkpoint: cost of the checkpoint writes of a long run.
 *
 *   bench_checkpoint [--preset NAME] [--tasks T] [--saves S] [--path FILE]
 *
 * Appends T finished tasks (default 10) with full null-space bases of every
 * visual block, the way a DMNSP run with checkpoint.keep_bases=true writes
 * them, timing each append. Then it times S (default 3) progress
 * checkpoints, which rewrite /model and /optimizer and copy the T finished
 * tasks into the new file. Shapes come from the preset (default ViT-B/16:
 * 12 visual blocks of width 768, bottleneck 64). Values are pseudo-random,
 * and nothing is compressed, so their content does not change the cost.
 * FILE (default bench_checkpoint.h5 in the current folder) is removed at
 * the end; the write needs room for two copies of it.
 */
#include "dmnsp/checkpoint.h"
#include "dmnsp/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static uint64_t random_state = 12345;

static float next_value(void)
{
    random_state = random_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((double)(random_state >> 40) / 16777216.0 - 0.5);
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double file_megabytes(const char *path)
{
    struct stat info;
    return stat(path, &info) == 0 ? (double)info.st_size / 1048576.0 : -1.0;
}

static void fill(float *values, size_t count)
{
    for (size_t i = 0; i < count; i++)
        values[i] = next_value();
}

int main(int argc, char **argv)
{
    const char *preset = "ViT-B/16", *path = "bench_checkpoint.h5";
    int tasks = 10, saves = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc)
            preset = argv[++i];
        else if (strcmp(argv[i], "--tasks") == 0 && i + 1 < argc)
            tasks = atoi(argv[++i]);
        else if (strcmp(argv[i], "--saves") == 0 && i + 1 < argc)
            saves = atoi(argv[++i]);
        else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc)
            path = argv[++i];
        else {
            fprintf(stderr, "usage: bench_checkpoint [--preset NAME] [--tasks T] [--saves S] [--path FILE]\n");
            return 2;
        }
    }

    clip_config config;
    if (clip_preset(preset, &config) != 0) {
        fprintf(stderr, "bench_checkpoint: %s\n", dmnsp_last_error());
        return 1;
    }
    int blocks = config.vision_layers, d = config.vision_width, k = 1;
    size_t adapter_count = clip_adapter_count(&config);

    /* One set of arrays serves every task: only the sizes matter here. */
    float *adapters = malloc(adapter_count * sizeof *adapters);
    float *m = malloc(adapter_count * sizeof *m);
    float *v = malloc(adapter_count * sizeof *v);
    float *eigvecs = malloc((size_t)blocks * d * d * sizeof *eigvecs);
    float *top = malloc((size_t)blocks * d * k * sizeof *top);
    double *eigvals = malloc((size_t)blocks * d * sizeof *eigvals);
    double *lambda = malloc((size_t)blocks * blocks * sizeof *lambda);
    float *task_lambda = malloc((size_t)blocks * blocks * sizeof *task_lambda);
    const double **eigvals_p = malloc((size_t)blocks * sizeof *eigvals_p);
    const float **eigvecs_p = malloc((size_t)blocks * sizeof *eigvecs_p);
    const float **top_p = malloc((size_t)blocks * sizeof *top_p);
    int classes[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    double *row = malloc((size_t)(tasks > 0 ? tasks : 1) * sizeof *row);
    if (!adapters || !m || !v || !eigvecs || !top || !eigvals || !lambda || !task_lambda || !eigvals_p ||
        !eigvecs_p || !top_p || !row) {
        fprintf(stderr, "bench_checkpoint: out of memory\n");
        return 1;
    }
    fill(adapters, adapter_count);
    fill(m, adapter_count);
    fill(v, adapter_count);
    fill(eigvecs, (size_t)blocks * d * d);
    fill(top, (size_t)blocks * d * k);
    for (int i = 0; i < blocks * d; i++)
        eigvals[i] = 1.0 / (1 + i % d);
    for (int i = 0; i < blocks * blocks; i++) {
        lambda[i] = 25.0 + next_value();
        task_lambda[i] = (float)lambda[i];
    }
    for (int b = 0; b < blocks; b++) {
        eigvals_p[b] = eigvals + (size_t)b * d;
        eigvecs_p[b] = eigvecs + (size_t)b * d * d;
        top_p[b] = top + (size_t)b * d * k;
    }
    for (int t = 0; t < tasks; t++)
        row[t] = 50.0;

    printf("preset %s: %d visual blocks of width %d, %zu adapter floats (%.1f MB), bases %.1f MB per task\n", preset,
           blocks, d, adapter_count, 4.0 * (double)adapter_count / 1048576.0,
           4.0 * (double)blocks * d * d / 1048576.0);
    remove(path);
    checkpoint_header header = {"bench: true\n", "bench", 1};
    int status = 0;
    for (int t = 0; t < tasks && status == 0; t++) {
        checkpoint_task_record record = {0};
        record.task = t;
        record.classes = classes;
        record.n_classes = 10;
        record.adapters = adapters;
        record.blocks = blocks;
        record.d = d;
        record.k = k;
        record.eigvals = eigvals_p;
        record.eigvecs = eigvecs_p;
        record.top = top_p;
        record.lambda = t > 0 ? task_lambda : NULL;
        record.accuracy_row = row;
        record.row_length = t + 1;
        record.accuracy = 50.0;
        record.forward_accuracy = 10.0;
        double start = now_seconds();
        status = checkpoint_append_task(path, &header, &config, adapters, NULL, &record);
        printf("append task %2d: %6.2f s, file %7.1f MB\n", t, now_seconds() - start, file_megabytes(path));
        fflush(stdout);
    }

    checkpoint_optimizer progress = {tasks, 100, m, v, lambda, NULL, 0};
    for (int s = 0; s < saves && status == 0; s++) {
        double start = now_seconds();
        status = checkpoint_save_progress(path, &header, &config, adapters, &progress);
        printf("progress save %d with %d finished tasks: %6.2f s, file %7.1f MB\n", s, tasks, now_seconds() - start,
               file_megabytes(path));
        fflush(stdout);
    }
    if (status != 0)
        fprintf(stderr, "bench_checkpoint: %s\n", dmnsp_last_error());
    remove(path);

    free(adapters);
    free(m);
    free(v);
    free(eigvecs);
    free(top);
    free(eigvals);
    free(lambda);
    free(task_lambda);
    free(eigvals_p);
    free(eigvecs_p);
    free(top_p);
    free(row);
    return status == 0 ? 0 : 1;
}

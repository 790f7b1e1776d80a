/* bench_clip: throughput of the CLIP encoders on a random model.
 *
 *   bench_clip [--preset NAME] [--batch N] [--mode forward|train]
 *              [--steps S] [--warmup W] [--texts T] [--recompute]
 *
 * forward: eval-mode image encoding (no activations kept), images/s.
 * train:   one training-step-like pass: image forward + backward with
 *          dropout, and T prompt rows through the text encoder and back,
 *          images/s.
 * Prints the wall and CPU time per step, images/s, the workspace size and
 * the peak resident set size of the process. Threads: OMP_NUM_THREADS and
 * OPENBLAS_NUM_THREADS.
 */
#include "dmnsp/clip.h"
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/ops.h"
#include "model_flops.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_rss_mib(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

static void usage(FILE *out, const char *argv0)
{
    fprintf(out,
            "usage: %s [--preset NAME] [--batch N] [--mode forward|train] [--steps S] [--warmup W] [--texts T] "
            "[--recompute]\n  presets: %s\n",
            argv0, clip_preset_names());
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_clip: %s: %s\n", what, dmnsp_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    const char *preset = "ViT-B/16", *mode = "forward";
    int batch = 8, steps = 5, warmup = 1, texts = 10, recompute = 0;
    for (int i = 1; i < argc; i++) {
        int has_value = i + 1 < argc;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout, argv[0]);
            return 0;
        }
        if (strcmp(argv[i], "--preset") == 0 && has_value)
            preset = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && has_value)
            batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--mode") == 0 && has_value)
            mode = argv[++i];
        else if (strcmp(argv[i], "--steps") == 0 && has_value)
            steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && has_value)
            warmup = atoi(argv[++i]);
        else if (strcmp(argv[i], "--texts") == 0 && has_value)
            texts = atoi(argv[++i]);
        else if (strcmp(argv[i], "--recompute") == 0)
            recompute = 1;
        else {
            usage(stderr, argv[0]);
            return 2;
        }
    }
    /* The thread defaults of dmnsp train (OpenMP 1 thread unless set), so
     * that OpenMP and OpenBLAS threads do not spin against each other. */
    char threads[160];
    dist_default_threads(1, threads, sizeof threads);
    printf("threads: %s\n", threads);

    int train = strcmp(mode, "train") == 0;
    if ((!train && strcmp(mode, "forward") != 0) || batch <= 0 || steps <= 0 || warmup < 0 || texts <= 0) {
        usage(stderr, argv[0]);
        return 2;
    }

    /* ---- model and inputs ---- */
    clip_config c;
    clip_model *m = NULL;
    clip_workspace *ws = NULL;
    if (clip_preset(preset, &c) != 0 || clip_model_create(&c, &m) != 0)
        return fail("creating the model");
    clip_model_init_random(m, 1);
    clip_model_init_adapters(m, 2);
    /* non-zero up weights, as after some training */
    float *adapters = clip_model_adapters(m);
    for (size_t i = 0; i < clip_adapter_count(&c); i++)
        if (adapters[i] == 0.0f)
            adapters[i] = 0.01f * ((float)(ops_hash3(3, 0, i) >> 40) * 0x1p-24f - 0.5f);
    if (clip_workspace_create(m, batch, train ? texts : 0, train, recompute, &ws) != 0)
        return fail("creating the workspace");

    size_t image_floats = (size_t)batch * 3 * c.image_resolution * c.image_resolution;
    float *images = malloc(image_floats * sizeof(float));
    float *features = malloc((size_t)batch * c.embed_dim * sizeof(float));
    float *d_features = malloc((size_t)batch * c.embed_dim * sizeof(float));
    float *text_features = malloc((size_t)texts * c.embed_dim * sizeof(float));
    float *grads = calloc(clip_adapter_count(&c), sizeof(float));
    int32_t *tokens = calloc((size_t)texts * c.context_length, sizeof(int32_t));
    if (!images || !features || !d_features || !text_features || !grads || !tokens) {
        fprintf(stderr, "bench_clip: out of memory for inputs\n");
        return 1;
    }
    for (size_t i = 0; i < image_floats; i++)
        images[i] = (float)(ops_hash3(4, 0, i) >> 40) * 0x1p-24f * 4.0f - 2.0f;
    for (int i = 0; i < batch * c.embed_dim; i++)
        d_features[i] = (float)(ops_hash3(5, 0, (uint64_t)i) >> 40) * 0x1p-24f - 0.5f;
    /* prompt-like rows: SOT, 7 tokens, EOT */
    for (int r = 0; r < texts; r++) {
        int32_t *row = tokens + (size_t)r * c.context_length;
        row[0] = c.vocab_size - 2;
        for (int t = 1; t < 8; t++)
            row[t] = 1 + (r * 13 + t * 7) % (c.vocab_size - 3);
        row[8] = c.vocab_size - 1;
    }

    /* ---- timed steps ---- */
    double elapsed = 0, cpu = 0;
    for (int step = 0; step < warmup + steps; step++) {
        clip_dropout_key key = {7, (uint64_t)step};
        double start = now_seconds(), cpu_start = cpu_seconds();
        if (clip_encode_images(m, ws, images, batch, 0, train, key, features) != 0)
            return fail("image forward");
        if (train) {
            if (clip_backward_images(m, ws, d_features, grads) != 0 ||
                clip_encode_texts(m, ws, tokens, texts, 1, key, text_features) != 0 ||
                clip_backward_texts(m, ws, d_features, grads) != 0)
                return fail("training step");
        }
        if (step >= warmup) {
            elapsed += now_seconds() - start;
            cpu += cpu_seconds() - cpu_start;
        }
    }

    double per_step = elapsed / steps;
    printf("preset %s, mode %s%s, batch %d, %d threads, %d steps\n", preset, mode,
           recompute ? " (recomputed blocks)" : "", batch, omp_get_max_threads(), steps);
    if (train)
        printf("  text rows per step: %d\n", texts);
    printf("  time per step: %.4f s, images/s: %.2f\n", per_step, batch / per_step);
    /* On a shared machine the CPU time shows what the run itself used. */
    printf("  CPU time per step: %.4f s, images per CPU second: %.2f\n", cpu / steps, batch * steps / cpu);
    printf("  workspace: %.1f MiB, parameters: %.1f MiB, peak RSS: %.1f MiB\n",
           clip_workspace_bytes(ws) / 1048576.0,
           (clip_frozen_count(&c) + clip_adapter_count(&c)) * sizeof(float) / 1048576.0, peak_rss_mib());
    if (!train) {
        double gflop = image_forward_flops(&c, batch) * 1e-9;
        printf("  model FLOPs: %.1f GFLOP per step, %.1f GFLOP/s\n", gflop, gflop / per_step);
        printf("result impl=dmnsp preset=%s mode=forward batch=%d ranks=1 threads=%d steps=%d seconds_per_step=%.4f "
               "images_per_s=%.3f peak_rss_mib=%.1f model_gflop_per_step=%.2f gflops=%.2f\n",
               preset, batch, openblas_get_num_threads(), steps, per_step, batch / per_step, peak_rss_mib(), gflop,
               gflop / per_step);
    }

    free(images), free(features), free(d_features), free(text_features), free(grads), free(tokens);
    clip_workspace_free(ws);
    clip_model_free(m);
    return 0;
}

/* bench_gemm: OpenBLAS sgemm speed at the matrix shapes of a CLIP preset,
 * the ceiling that the encoders' FLOP rates are compared with.
 *
 *   bench_gemm [--preset NAME] [--batch N] [--repeat R]
 *
 * Times cblas_sgemm with the operand layouts that the encoders use: the
 * four Linear layers of a vision block as forward products (out = x·Wᵀ)
 * and as input gradients (dx = dy·W), over batch × tokens rows, and the
 * attention products of one head. Prints GFLOP/s per shape (best of R
 * calls after a warm-up call) and the largest of them as the ceiling.
 * Threads: OPENBLAS_NUM_THREADS.
 */
#include "dmnsp/clip_layout.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *name;
    int transpose_b; /* 1: C = A·Bᵀ (forward), 0: C = A·B (input gradient) */
    int m, n, k;
} gemm_shape;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best GFLOP/s of REPEAT calls of SHAPE, after one untimed call. */
static double time_shape(const gemm_shape *shape, int repeat)
{
    size_t m = (size_t)shape->m, n = (size_t)shape->n, k = (size_t)shape->k;
    float *a = malloc(m * k * sizeof(float)), *b = malloc(k * n * sizeof(float)), *c = malloc(m * n * sizeof(float));
    if (a == NULL || b == NULL || c == NULL) {
        free(a), free(b), free(c);
        return -1.0;
    }
    for (size_t i = 0; i < m * k; i++)
        a[i] = (float)(i % 7) * 0.1f - 0.3f;
    for (size_t i = 0; i < k * n; i++)
        b[i] = (float)(i % 5) * 0.1f - 0.2f;
    memset(c, 0, m * n * sizeof(float));

    double best = 1e30;
    for (int call = 0; call <= repeat; call++) {
        double start = now_seconds();
        if (shape->transpose_b)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, shape->m, shape->n, shape->k, 1.0f, a, shape->k, b,
                        shape->k, 0.0f, c, shape->n);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, shape->m, shape->n, shape->k, 1.0f, a, shape->k,
                        b, shape->n, 0.0f, c, shape->n);
        double elapsed = now_seconds() - start;
        if (call > 0 && elapsed < best)
            best = elapsed;
    }
    free(a), free(b), free(c);
    return 2.0 * (double)m * (double)n * (double)k / best * 1e-9;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bench_gemm [--preset NAME] [--batch N] [--repeat R]\n"
            "  --preset  model preset whose vision shapes are timed (%s; default ViT-B/16)\n"
            "  --batch   images per product, rows = batch x tokens (default 32)\n"
            "  --repeat  timed calls per shape, the best counts (default 3)\n",
            clip_preset_names());
}

int main(int argc, char **argv)
{
    const char *preset = "ViT-B/16";
    int batch = 32, repeat = 3;
    for (int i = 1; i < argc; i++) {
        int has_value = i + 1 < argc;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--preset") == 0 && has_value)
            preset = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && has_value)
            batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--repeat") == 0 && has_value)
            repeat = atoi(argv[++i]);
        else {
            fprintf(stderr, "bench_gemm: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    clip_config c;
    if (clip_preset(preset, &c) != 0) {
        fprintf(stderr, "bench_gemm: unknown preset '%s' (known: %s)\n", preset, clip_preset_names());
        return 2;
    }
    if (batch < 1 || repeat < 1) {
        fprintf(stderr, "bench_gemm: --batch and --repeat must be at least 1\n");
        return 2;
    }

    int tokens = clip_vision_tokens(&c), rows = batch * tokens, C = c.vision_width;
    int D = C / c.vision_heads;
    const gemm_shape shapes[] = {
        {"in_proj forward", 1, rows, 3 * C, C},
        {"out_proj forward", 1, rows, C, C},
        {"c_fc forward", 1, rows, 4 * C, C},
        {"c_proj forward", 1, rows, C, 4 * C},
        {"in_proj input gradient", 0, rows, C, 3 * C},
        {"c_fc input gradient", 0, rows, C, 4 * C},
        {"c_proj input gradient", 0, rows, 4 * C, C},
        {"attention scores, one head", 1, tokens, tokens, D},
        {"attention values, one head", 0, tokens, D, tokens},
    };
    int count = (int)(sizeof shapes / sizeof shapes[0]);

    printf("bench_gemm: %s vision shapes, batch %d (%d rows), best of %d calls\n", preset, batch, rows, repeat);
    double ceiling = 0;
    for (int i = 0; i < count; i++) {
        double gflops = time_shape(&shapes[i], repeat);
        if (gflops < 0) {
            fprintf(stderr, "bench_gemm: out of memory for %s (%d x %d x %d)\n", shapes[i].name, shapes[i].m,
                    shapes[i].n, shapes[i].k);
            return 1;
        }
        printf("  %-28s %6d x %5d x %5d: %7.1f GFLOP/s\n", shapes[i].name, shapes[i].m, shapes[i].n, shapes[i].k,
               gflops);
        if (gflops > ceiling)
            ceiling = gflops;
    }
    printf("result impl=sgemm preset=%s batch=%d ceiling_gflops=%.1f\n", preset, batch, ceiling);
    return 0;
}

/* bench_train: throughput of train_step (both encoders forward and
 * backward, loss, gradient allreduce, AdamW) on a random CLIP preset.
 *
 *   bench_train [--preset NAME] [--batch N] [--classes C] [--steps S]
 *               [--warmup W] [--recompute]
 *   mpirun -np 2 bench_train --preset tiny --batch 128
 *
 * Prints images per second over the timed steps (after W untimed ones),
 * seconds per step, and this rank's peak resident memory. --batch is the
 * global batch, split over the ranks. Prompts are random 9-token rows
 * (like "a bad photo of a cat."), images random normal values.
 */
#include "dmnsp/clip.h"
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/train.h"
#include "model_flops.h"

#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
    const char *preset;
    int batch;
    int classes;
    int steps;
    int warmup;
    int recompute;
} bench_options;

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_train [--preset NAME] [--batch N] [--classes C] [--steps S] [--warmup W] "
                 "[--recompute]\n"
                 "  --preset     model preset (%s; default tiny)\n"
                 "  --batch      global images per step (default 128)\n"
                 "  --classes    classes of the task, one prompt each (default 10)\n"
                 "  --steps      timed steps (default 5)\n"
                 "  --warmup     untimed steps before them (default 1)\n"
                 "  --recompute  recompute block activations in backward (less memory)\n",
            clip_preset_names());
}

static int parse_int(const char *option, const char *value, int minimum, int *out)
{
    char *end = NULL;
    long parsed = value ? strtol(value, &end, 10) : 0;
    if (value == NULL || *end != '\0' || parsed < minimum || parsed > 1000000)
        return dmnsp_fail("bench_train: %s needs an integer >= %d (got '%s')", option, minimum,
                          value ? value : "nothing");
    *out = (int)parsed;
    return 0;
}

static int parse_options(int argc, char **argv, bench_options *o)
{
    *o = (bench_options){"tiny", 128, 10, 5, 1, 0};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--preset") == 0 && value) {
            o->preset = value;
            i++;
        } else if (strcmp(arg, "--batch") == 0) {
            DMNSP_TRY(parse_int(arg, value, 1, &o->batch));
            i++;
        } else if (strcmp(arg, "--classes") == 0) {
            DMNSP_TRY(parse_int(arg, value, 1, &o->classes));
            i++;
        } else if (strcmp(arg, "--steps") == 0) {
            DMNSP_TRY(parse_int(arg, value, 1, &o->steps));
            i++;
        } else if (strcmp(arg, "--warmup") == 0) {
            DMNSP_TRY(parse_int(arg, value, 0, &o->warmup));
            i++;
        } else if (strcmp(arg, "--recompute") == 0) {
            o->recompute = 1;
        } else {
            usage(stderr);
            return dmnsp_fail("bench_train: unknown or incomplete option '%s'", arg);
        }
    }
    return 0;
}

static double normal(uint64_t *state)
{
    /* Sum of 4 uniforms, scaled to unit variance: close enough to normal
     * for benchmark inputs. */
    double sum = 0;
    for (int k = 0; k < 4; k++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        sum += (double)(*state >> 11) / (double)(1ULL << 53) - 0.5;
    }
    return sum * 1.7320508075688772;
}

int main(int argc, char **argv)
{
    if (dist_init(argv[0], 0, NULL) != 0)
        dist_abort(dmnsp_last_error());
    int rank = dist_rank(), size = dist_size();
    bench_options o;
    if (parse_options(argc, argv, &o) != 0)
        dist_abort(dmnsp_last_error());

    clip_config config;
    clip_model *model = NULL;
    if (clip_preset(o.preset, &config) != 0 || clip_model_create(&config, &model) != 0 ||
        clip_model_init_random(model, 1) != 0 || clip_model_init_adapters(model, 2) != 0)
        dist_abort(dmnsp_last_error());

    long begin = 0, count = 0;
    dist_shard(o.batch, rank, size, &begin, &count);
    size_t image_floats = (size_t)3 * config.image_resolution * config.image_resolution;
    float *images = malloc((size_t)(count > 0 ? count : 1) * image_floats * sizeof *images);
    int *labels = malloc((size_t)(count > 0 ? count : 1) * sizeof *labels);
    int32_t *prompts = calloc((size_t)o.classes * config.context_length, sizeof *prompts);
    if (images == NULL || labels == NULL || prompts == NULL)
        dist_abort("bench_train: out of memory for the inputs");
    /* Each image's values depend on its global index only, so runs on any
     * number of ranks train on the same batch. */
    for (long i = 0; i < count; i++) {
        uint64_t state = 7 + 1000003ULL * (uint64_t)(begin + i);
        for (size_t k = 0; k < image_floats; k++)
            images[(size_t)i * image_floats + k] = (float)normal(&state);
    }
    for (long i = 0; i < count; i++)
        labels[i] = (int)((begin + i) % o.classes);
    int start_token = config.vocab_size - 2, end_token = config.vocab_size - 1;
    for (int c = 0; c < o.classes; c++) {
        int32_t *row = prompts + (size_t)c * config.context_length;
        row[0] = start_token;
        for (int k = 1; k < 8 && k < config.context_length - 1; k++)
            row[k] = 1 + (c * 31 + k * 17) % (start_token - 1);
        row[8 < config.context_length - 1 ? 8 : config.context_length - 1] = end_token;
    }

    train_config train = train_default_config();
    train.max_local_images = (o.batch + size - 1) / size;
    train.max_classes = o.classes;
    train.recompute_blocks = o.recompute;
    trainer *t = NULL;
    if (trainer_create(model, &train, &t) != 0 || trainer_begin_task(t, 0, 1e-3, 30, 1000) != 0)
        dist_abort(dmnsp_last_error());

    double timed = 0, cpu_timed = 0, loss = 0;
    for (int step = 0; step < o.warmup + o.steps; step++) {
        struct timespec cpu_start, cpu_end;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu_start);
        train_step_result result;
        if (train_step(t, images, labels, (int)count, begin, o.batch, prompts, o.classes, step, NULL, NULL,
                       &result) != 0)
            dist_abort(dmnsp_last_error());
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu_end);
        double seconds = result.seconds;
        double cpu_seconds =
            (double)(cpu_end.tv_sec - cpu_start.tv_sec) + 1e-9 * (double)(cpu_end.tv_nsec - cpu_start.tv_nsec);
        MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, &cpu_seconds, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (step >= o.warmup) {
            timed += seconds;
            cpu_timed += cpu_seconds;
        }
        loss = result.loss;
    }

    struct rusage usage_self;
    getrusage(RUSAGE_SELF, &usage_self);
    double peak_mib = (double)usage_self.ru_maxrss / 1024.0, max_peak_mib = 0;
    MPI_Reduce(&peak_mib, &max_peak_mib, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("preset %s, global batch %d, %d classes, %d rank(s), recompute %s, %s threads\n", o.preset, o.batch,
               o.classes, size, o.recompute ? "on" : "off", getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "default");
        printf("train_step: %.3f s/step, %.2f images/s over %d steps (last loss %.4f)\n", timed / o.steps,
               o.batch * o.steps / timed, o.steps, loss);
        /* CPU time summed over ranks and threads: on a shared machine,
         * wall time depends on the load while this does much less (spin
         * waiting of idle threads still counts). */
        printf("cpu time: %.3f s/step, %.2f images per CPU second\n", cpu_timed / o.steps,
               o.batch * o.steps / cpu_timed);
        printf("peak RSS: %.1f MiB per rank (max over ranks); workspace %.1f MiB\n", max_peak_mib,
               (double)clip_workspace_bytes(trainer_workspace(t)) / (1024.0 * 1024.0));
        /* prompt rows are 9 tokens long, SOT to EOT */
        double gflop = train_step_flops(&config, o.batch, o.classes, 9) * 1e-9;
        printf("model FLOPs: %.1f GFLOP per step, %.1f GFLOP/s\n", gflop, gflop * o.steps / timed);
        printf("result impl=dmnsp preset=%s mode=train batch=%d ranks=%d threads=%d classes=%d recompute=%d steps=%d "
               "seconds_per_step=%.4f images_per_s=%.3f peak_rss_mib=%.1f model_gflop_per_step=%.2f gflops=%.2f\n",
               o.preset, o.batch, size, openblas_get_num_threads(), o.classes, o.recompute, o.steps, timed / o.steps,
               o.batch * o.steps / timed, max_peak_mib, gflop, gflop * o.steps / timed);
    }

    trainer_free(t);
    clip_model_free(model);
    free(images);
    free(labels);
    free(prompts);
    dist_finalize();
    return 0;
}

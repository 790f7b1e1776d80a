/* cmd_analyze_csv: the CSV files of `dmnsp analyze`. Columns are described
 * in analysis/README.md; unknown values are empty cells. */
#include "cmd_analyze.h"

#include "dmnsp/error.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const modality_names[2] = {"visual", "text"};
static const char *const tensor_names[2] = {"down_w", "up_w"};

FILE *analyze_open(const char *dir, const char *name, char *path, size_t path_size)
{
    snprintf(path, path_size, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        dmnsp_fail("analyze: %s: cannot create: %s", path, strerror(errno));
    return f;
}

int analyze_close(FILE *f, const char *path)
{
    int failed = ferror(f);
    if (fclose(f) != 0 || failed)
        return dmnsp_fail("analyze: %s: write failed: %s", path, strerror(errno));
    return 0;
}

/* A number cell: %.9g, or empty for NaN / infinity. */
static void put_number(FILE *f, double value)
{
    if (isfinite(value))
        fprintf(f, ",%.9g", value);
    else
        fputc(',', f);
}

/* A text cell, quoted when it contains a comma, quote or newline. */
static void put_text(FILE *f, const char *text, int first)
{
    if (!first)
        fputc(',', f);
    if (strpbrk(text, ",\"\n") == NULL) {
        fputs(text, f);
        return;
    }
    fputc('"', f);
    for (const char *c = text; *c; c++) {
        if (*c == '"')
            fputc('"', f);
        fputc(*c, f);
    }
    fputc('"', f);
}

static int layers_of(const analyze_run *run, int modality)
{
    return modality == 0 ? run->shape.vision_layers : run->shape.text_layers;
}

/* Writes the header line and the rows of one per-run table to F. */
typedef void (*table_writer)(FILE *f, const analyze_run *run);

static void write_param_stats(FILE *f, const analyze_run *run)
{
    fprintf(f, "task,modality,block,tensor,mean,std,min,max,norm,delta_norm,nonfinite_count\n");
    for (int t = 0; t < run->checkpoint_tasks; t++)
        for (int m = 0; run->stored[t] && m < 2; m++)
            for (int b = 0; b < layers_of(run, m); b++)
                for (int k = 0; k < 2; k++) {
                    const param_stats *s = analyze_stats(run, t, m, b, k);
                    fprintf(f, "%d,%s,%d,%s", t, modality_names[m], b, tensor_names[k]);
                    put_number(f, s->mean);
                    put_number(f, s->std);
                    put_number(f, s->min);
                    put_number(f, s->max);
                    put_number(f, s->norm);
                    put_number(f, s->delta_norm);
                    fprintf(f, ",%ld\n", s->nonfinite_count);
                }
}

static void write_histograms(FILE *f, const analyze_run *run)
{
    fprintf(f, "task,modality,block,tensor,bin,left_edge,right_edge,count\n");
    for (int t = 0; t < run->checkpoint_tasks; t++)
        for (int m = 0; run->stored[t] && m < 2; m++)
            for (int b = 0; b < layers_of(run, m); b++)
                for (int k = 0; k < 2; k++) {
                    const param_stats *s = analyze_stats(run, t, m, b, k);
                    for (int i = 0; i < PARAM_STATS_BINS; i++) {
                        fprintf(f, "%d,%s,%d,%s,%d", t, modality_names[m], b, tensor_names[k], i);
                        put_number(f, s->edges[i]);
                        put_number(f, s->edges[i + 1]);
                        fprintf(f, ",%ld\n", s->histogram[i]);
                    }
                }
}

/* Per task, modality and tensor over all blocks: the mean of the block
 * standard deviations, the Frobenius norm of all blocks together, the norm
 * of the change since the previous task, and that change relative to the
 * previous task's norm. */
static void write_modality_summary(FILE *f, const analyze_run *run)
{
    fprintf(f, "task,modality,tensor,mean_std,total_norm,total_delta_norm,relative_change\n");
    for (int t = 0; t < run->checkpoint_tasks; t++)
        for (int m = 0; run->stored[t] && m < 2; m++)
            for (int k = 0; k < 2; k++) {
                double std_sum = 0, norm_squares = 0, delta_squares = 0, previous_squares = 0;
                int blocks = layers_of(run, m);
                int has_previous = t > 0 && run->stored[t - 1];
                for (int b = 0; b < blocks; b++) {
                    const param_stats *s = analyze_stats(run, t, m, b, k);
                    std_sum += s->std;
                    norm_squares += s->norm * s->norm;
                    delta_squares += s->delta_norm * s->delta_norm;
                    if (has_previous) {
                        const param_stats *p = analyze_stats(run, t - 1, m, b, k);
                        previous_squares += p->norm * p->norm;
                    }
                }
                fprintf(f, "%d,%s,%s", t, modality_names[m], tensor_names[k]);
                put_number(f, blocks > 0 ? std_sum / blocks : NAN);
                put_number(f, sqrt(norm_squares));
                /* Without task t-1's snapshot the change was not measured. */
                put_number(f, t == 0 || has_previous ? sqrt(delta_squares) : NAN);
                put_number(f, has_previous && previous_squares > 0 ? sqrt(delta_squares / previous_squares) : NAN);
                fputc('\n', f);
            }
}

static void write_lambda(FILE *f, const analyze_run *run)
{
    int layers = run->shape.vision_layers;
    fprintf(f, "task,projected_block");
    for (int i = 0; i < layers; i++)
        fprintf(f, ",nullspace_block_%02d", i);
    fputc('\n', f);
    for (int t = 0; t < run->checkpoint_tasks; t++) {
        if (!run->has_lambda[t])
            continue;
        const float *lambda = run->lambda + (size_t)t * layers * layers;
        for (int l = 0; l < layers; l++) {
            fprintf(f, "%d,%d", t, l);
            for (int i = 0; i < layers; i++)
                put_number(f, lambda[(size_t)l * layers + i]);
            fputc('\n', f);
        }
    }
}

static void write_accuracy_matrix(FILE *f, const analyze_run *run)
{
    fprintf(f, "after_task");
    for (int j = 0; j < run->tasks; j++)
        fprintf(f, ",task_%02d", j);
    fputc('\n', f);
    for (int i = 0; i < run->tasks; i++) {
        fprintf(f, "%d", i);
        for (int j = 0; j < run->tasks; j++)
            put_number(f, run->accuracy_matrix[(size_t)i * run->tasks + j]);
        fputc('\n', f);
    }
}

static void write_metrics_per_task(FILE *f, const analyze_run *run)
{
    fprintf(f, "task,acc,avg_acc,forgetting,bwt,fwt,nonfinite_count\n");
    for (int i = 0; i < run->tasks; i++) {
        fprintf(f, "%d", i);
        put_number(f, run->acc[i]);
        put_number(f, run->avg_acc[i]);
        put_number(f, run->forgetting[i]);
        put_number(f, run->bwt[i]);
        put_number(f, run->fwt[i]);
        fprintf(f, ",%ld\n", run->nonfinite[i]);
    }
}

/* Creates OUT_DIR/NAME and fills it with WRITE. */
static int write_table(const analyze_run *run, const char *out_dir, const char *name, table_writer write)
{
    char path[4400];
    FILE *f = analyze_open(out_dir, name, path, sizeof path);
    if (f == NULL)
        return -1;
    write(f, run);
    return analyze_close(f, path);
}

int analyze_write_run_csv(const analyze_run *run, const char *out_dir)
{
    if (run->has_checkpoint) {
        DMNSP_TRY(write_table(run, out_dir, "param_stats.csv", write_param_stats));
        DMNSP_TRY(write_table(run, out_dir, "param_histograms.csv", write_histograms));
        DMNSP_TRY(write_table(run, out_dir, "modality_summary.csv", write_modality_summary));
        DMNSP_TRY(write_table(run, out_dir, "lambda.csv", write_lambda));
    }
    DMNSP_TRY(write_table(run, out_dir, "accuracy_matrix.csv", write_accuracy_matrix));
    return write_table(run, out_dir, "metrics_per_task.csv", write_metrics_per_task);
}

/* Settings that sweep.csv always has a column for. */
static int has_own_column(const char *key)
{
    return strcmp(key, "dataset") == 0 || strcmp(key, "method") == 0;
}

int analyze_write_sweep_csv(const analyze_run *runs, int count, char **swept_keys, int swept_count,
                            const char *out_dir)
{
    char path[4400];
    FILE *f = analyze_open(out_dir, "sweep.csv", path, sizeof path);
    if (f == NULL)
        return -1;
    fprintf(f, "run");
    for (int k = 0; k < swept_count; k++) {
        if (!has_own_column(swept_keys[k]))
            put_text(f, swept_keys[k], 0);
    }
    fprintf(f, ",dataset,method,finished,tasks,last,avg,avg_forgetting,forgetting_last,nonfinite_total,wall_seconds,"
               "ranks,run_dir\n");
    for (int r = 0; r < count; r++) {
        const analyze_run *run = &runs[r];
        put_text(f, run->name, 1);
        for (int k = 0; k < swept_count; k++) {
            if (has_own_column(swept_keys[k]))
                continue;
            const char *value = analyze_setting_value(run, swept_keys[k]);
            put_text(f, value != NULL ? value : "", 0);
        }
        put_text(f, run->dataset, 0);
        put_text(f, run->method, 0);
        long nonfinite = 0;
        for (int t = 0; t < run->tasks; t++)
            nonfinite += run->nonfinite[t];
        double last = analyze_last_accuracy(run);
        double avg = analyze_average_accuracy(run);
        fprintf(f, ",%d,%d", run->finished, run->tasks);
        put_number(f, last);
        put_number(f, avg);
        put_number(f, run->finished ? run->avg_forgetting : NAN);
        put_number(f, run->tasks > 0 ? run->forgetting[run->tasks - 1] : NAN);
        fprintf(f, ",%ld", nonfinite);
        put_number(f, run->wall_seconds);
        if (run->ranks > 0)
            fprintf(f, ",%ld", run->ranks);
        else
            fputc(',', f);
        put_text(f, run->dir, 0);
        fputc('\n', f);
    }
    return analyze_close(f, path);
}

/* cmd_analyze: internal interface of `dmnsp analyze` (src/cmd_analyze*.c).
 *
 * A run folder is loaded into one analyze_run. Parameter statistics and
 * lambda come from checkpoint.h5. The accuracy matrix and per-task metrics
 * come from metrics.json, or are derived from the checkpoint's accuracy
 * rows when metrics.json lacks them. The settings come from config.yaml, or
 * from the checkpoint's config attribute. The CSV writers and the gnuplot
 * scripts work from that struct only.
 */
#ifndef DMNSP_CMD_ANALYZE_H
#define DMNSP_CMD_ANALYZE_H

#include "dmnsp/checkpoint.h"

#include <math.h>
#include <stdio.h>

/* One flattened config entry: dotted key and its scalar text. */
typedef struct {
    char key[96];
    char value[256];
} analyze_setting;

typedef struct {
    char dir[4096];
    char name[256]; /* last component of dir */

    /* From checkpoint.h5 (has_checkpoint = 0: none of these). */
    int has_checkpoint;
    checkpoint_shape shape;
    int checkpoint_tasks;
    int *stored; /* [checkpoint_tasks]: 1 when the task has statistics in the file */
    /* stats[((t * 2 + modality) * max_layers + block) * 2 + tensor], tensor 0 = down_w, 1 = up_w */
    param_stats *stats;
    int max_layers;
    float *lambda;   /* [checkpoint_tasks][L * L] */
    int *has_lambda; /* [checkpoint_tasks] */

    /* Accuracy and continual-learning metrics, percent; NAN where unknown. */
    int tasks;
    double *accuracy_matrix; /* [tasks][tasks], R[i][j] after task i on task j, NAN for j > i */
    double *acc, *avg_acc, *forgetting, *bwt, *fwt;
    long *nonfinite;
    const char *metrics_source; /* which file the accuracy rows came from, for report.md */

    /* Summary line of metrics.json (finished = 0 when there is none). */
    int finished;
    double last, avg, avg_forgetting, wall_seconds;
    long ranks;
    char dataset[64], method[64];

    analyze_setting *settings;
    int setting_count;
} analyze_run;

static inline param_stats *analyze_stats(const analyze_run *run, int task, int modality, int block, int tensor)
{
    return &run->stats[(((size_t)task * 2 + modality) * run->max_layers + block) * 2 + tensor];
}

/* Accuracy after the last task and its running average: the summary line's
 * values, or those of the last task row of an unfinished run (NAN without rows). */
static inline double analyze_last_accuracy(const analyze_run *run)
{
    if (run->finished)
        return run->last;
    return run->tasks > 0 ? run->acc[run->tasks - 1] : NAN;
}

static inline double analyze_average_accuracy(const analyze_run *run)
{
    if (run->finished)
        return run->avg;
    return run->tasks > 0 ? run->avg_acc[run->tasks - 1] : NAN;
}

/* Loads RUN_DIR; 0 or -1 with a message naming the file. */
int analyze_load_run(const char *run_dir, analyze_run *run);
void analyze_free_run(analyze_run *run);
/* The value of KEY in the run's settings, or NULL. */
const char *analyze_setting_value(const analyze_run *run, const char *key);

/* Flattens YAML TEXT ("a: {b: 1}" -> "a.b" = "1"; sequences become "[x, y]")
 * into *SETTINGS (malloc'd). SOURCE names the text in messages. */
int analyze_flatten_yaml(const char *text, size_t length, const char *source, analyze_setting **settings,
                         int *count);

/* CSV files of one run into OUT_DIR; each returns 0 or -1. */
int analyze_write_run_csv(const analyze_run *run, const char *out_dir);
/* Sweep table over RUNS; SWEPT_KEYS are the settings shown as columns. */
int analyze_write_sweep_csv(const analyze_run *runs, int count, char **swept_keys, int swept_count,
                            const char *out_dir);

/* Writes gnuplot scripts into OUT_DIR/plots and runs GNUPLOT on them.
 * PNGS collects the written PNG file names relative to OUT_DIR. */
typedef struct {
    char **names;
    int count;
} analyze_file_list;
int analyze_list_add(analyze_file_list *list, const char *name);
void analyze_list_free(analyze_file_list *list);

int analyze_plot_run(const analyze_run *run, const char *out_dir, const char *gnuplot, analyze_file_list *pngs);
int analyze_plot_sweep(const analyze_run *runs, int count, const char *out_dir, const char *gnuplot,
                       analyze_file_list *pngs);

/* Opens DIR/NAME for writing ("w"); NULL with a message on failure. */
FILE *analyze_open(const char *dir, const char *name, char *path, size_t path_size);
/* Closes F, checking for write errors; 0 or -1 naming PATH. */
int analyze_close(FILE *f, const char *path);

#endif

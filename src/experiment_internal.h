/* experiment_internal: the state of one run, shared by experiment*.c. */
#ifndef DMNSP_EXPERIMENT_INTERNAL_H
#define DMNSP_EXPERIMENT_INTERNAL_H

#include "dmnsp/clip.h"
#include "dmnsp/config.h"
#include "dmnsp/dataset.h"
#include "dmnsp/metrics.h"
#include "dmnsp/nullspace.h"
#include "dmnsp/scenario.h"
#include "dmnsp/tokenizer.h"
#include "dmnsp/train.h"

#include <stdint.h>

/* What a method trains and projects. */
typedef struct {
    int trains;          /* 0 for zeroshot */
    int projects_visual; /* DMNSP and its ablations */
    int projects_text;   /* DMNSP-both */
    nullspace_variant variant;
} experiment_method;

typedef struct {
    const config *cfg;
    int rank, ranks;
    double start_time;
    experiment_method method;
    uint64_t seed;

    /* data */
    dataset *train_set, *test_set;
    scenario sc;
    scenario_samples *train_samples; /* per task, capped by train_per_class */
    scenario_samples *test_samples;  /* per task, capped by test_per_class */
    int max_task_classes;

    /* model and prompts */
    clip_config model_config;
    clip_model *model;
    tokenizer *vocabulary;
    int32_t *prompt_tokens; /* class_count x context_length, by ordered label */
    trainer *trainer;
    int max_local_images; /* per-rank chunk for training, bases and evaluation */
    float *images;        /* max_local_images x 3 x R x R */
    long *indices;        /* max_local_images */
    int *labels;          /* max_local_images */
    int *predictions;     /* max_local_images */
    float *text_features;  /* class_count x embed_dim */
    float *image_features; /* max_local_images x embed_dim (scratch) */

    /* DMNSP */
    nullspace_state *visual_state, *text_state;
    nullspace_collector *visual_collector, *text_collector;
    long projection_nonfinite; /* in the current task */

    /* results */
    metrics_matrix metrics;
    int first_task; /* 0, or the task a resumed run starts with */
    char output_dir[4096];
    char metrics_path[4224];
    char checkpoint_path[4224];
} experiment;

/* experiment_setup.c */
int experiment_open(const config *cfg, experiment *e);
void experiment_close(experiment *e);
int experiment_method_of(const char *name, experiment_method *method);

/* experiment_eval.c: accuracy of the current adapters on TASK's test set
 * with the classifier over ordered labels 0..N_CLASSES-1 (collective). */
int experiment_text_features(experiment *e, int n_classes);
int experiment_evaluate_task(experiment *e, int task, int n_classes, long *correct, long *total);

/* experiment_bases.c */
int experiment_compute_lambda(experiment *e, int task);
int experiment_build_bases(experiment *e, int task);
int experiment_projection_hook(void *context, float *gradients, int step);

/* experiment_checkpoint.c: rank 0 writes, every rank calls (collective). */
int experiment_save_task(experiment *e, int task);
int experiment_write_summary(experiment *e, int tasks_done);
int experiment_resume_from(experiment *e, const char *resume_path);

/* experiment_report.c */
void experiment_log_task_result(const experiment *e, int task);
void experiment_log_summary(const experiment *e, int tasks_done);

#endif

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

/* The saved state of a task that a resumed checkpoint stopped in the
 * middle (its /optimizer group). */
typedef struct {
    int active;             /* 1 until train_task continues the task */
    int task;               /* the task in progress */
    long step;              /* optimizer steps already taken in it */
    long nonfinite;         /* non-finite events counted before the save */
    float *m, *v;           /* AdamW moments, clip_adapter_count floats */
    double *lambda;         /* [vision_layers^2], NULL when the task has none */
    double *text_lambda;    /* [text_layers^2] (DMNSP-both), or NULL */
} experiment_progress;

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
    experiment_progress resumed; /* inside first_task, when the checkpoint stopped there */
    double last_checkpoint_time; /* log_now() of the last checkpoint write or of the run's start */
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
/* Sets the lambda of TASK saved in the middle of it (LAMBDA [vision_layers^2],
 * TEXT_LAMBDA [text_layers^2] or NULL) instead of computing it again, with
 * the update factors of lambda_apply=step. */
int experiment_restore_lambda(experiment *e, int task, const double *lambda, const double *text_lambda);
int experiment_build_bases(experiment *e, int task);
int experiment_projection_hook(void *context, float *gradients, int step);

/* experiment_checkpoint.c: rank 0 writes, every rank calls (collective). */
int experiment_save_task(experiment *e, int task);
/* Installs a SIGUSR1 handler: the next training step of rank 0 then ends
 * with a progress checkpoint (checkpoint.every_task must be true), and
 * training goes on. Slurm's --signal=USR1@SECONDS sends it before a time
 * limit; mpirun forwards it to the ranks. */
void experiment_save_on_sigusr1(void);
int experiment_write_summary(experiment *e, int tasks_done);
int experiment_resume_from(experiment *e, const char *resume_path);

/* Writes a progress checkpoint of TASK after STEPS_TAKEN of its STEPS
 * optimizer steps when checkpoint.interval_minutes or
 * checkpoint.interval_steps makes one due. Rank 0 decides and
 * broadcasts, so every rank saves at the same step. NONFINITE is the
 * task's count so far. */
int experiment_save_progress_if_due(experiment *e, int task, long steps_taken, long steps, long nonfinite);
/* Continues task e->resumed.task where the resumed checkpoint stopped:
 * restores the AdamW moments and step, lambda and *NONFINITE, sets
 * *FIRST_STEP to the next step and frees e->resumed. Call it after
 * trainer_begin_task of that task, in place of experiment_compute_lambda. */
int experiment_continue_task(experiment *e, long *first_step, long *nonfinite);
void experiment_progress_free(experiment_progress *progress);

/* experiment_report.c */
void experiment_log_task_result(const experiment *e, int task);
void experiment_log_summary(const experiment *e, int tasks_done);

#endif

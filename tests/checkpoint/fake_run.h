/* fake_run: a small made-up experiment (3 visual blocks of width 16, 2 text
 * blocks of width 8, bottleneck 4) with deterministic pseudo-random adapter
 * snapshots, null spaces of both encoders, lambda and accuracy rows per
 * task, for the checkpoint and analysis tests. */
#ifndef DMNSP_TEST_FAKE_RUN_H
#define DMNSP_TEST_FAKE_RUN_H

#include "dmnsp/checkpoint.h"

#define FAKE_RUN_MAX_TASKS 4
#define FAKE_RUN_CLASSES_PER_TASK 2

typedef struct {
    clip_config config;
    int tasks;
    int k;
    size_t adapter_count;
    float *snapshots[FAKE_RUN_MAX_TASKS]; /* adapter layout, one per task */
    float *moments[2];                    /* m and v for the optimizer state */
    /* per task and block */
    double *eigvals[FAKE_RUN_MAX_TASKS][8];
    float *eigvecs[FAKE_RUN_MAX_TASKS][8];
    float *top[FAKE_RUN_MAX_TASKS][8];
    float lambda[FAKE_RUN_MAX_TASKS][8 * 8];
    /* text null spaces, written only when text_nullspace is 1 (DMNSP-both) */
    int text_nullspace;
    double *text_eigvals[FAKE_RUN_MAX_TASKS][8];
    float *text_eigvecs[FAKE_RUN_MAX_TASKS][8];
    float *text_top[FAKE_RUN_MAX_TASKS][8];
    double optimizer_lambda[8 * 8];      /* lambda of a task in progress */
    double optimizer_text_lambda[8 * 8]; /* text lambda of a task in progress */
    int classes[FAKE_RUN_MAX_TASKS][FAKE_RUN_CLASSES_PER_TASK];
    double accuracy_rows[FAKE_RUN_MAX_TASKS][FAKE_RUN_MAX_TASKS];
} fake_run;

/* Fills RUN with TASKS (<= FAKE_RUN_MAX_TASKS) tasks of data; 0 or -1. */
int fake_run_init(fake_run *run, int tasks);
void fake_run_free(fake_run *run);
/* The record of task T; bases are kept (eigvecs) unless KEEP_BASES is 0.
 * Text null spaces are included when RUN->text_nullspace is 1. */
void fake_run_record(fake_run *run, int t, int keep_bases, checkpoint_task_record *rec);
/* Writes tasks 0..TASKS-1 to PATH with checkpoint_append_task. */
int fake_run_write(fake_run *run, const char *path, const char *config_yaml);

#endif

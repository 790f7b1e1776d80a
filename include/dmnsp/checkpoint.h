/* checkpoint: the HDF5 file checkpoint.h5 of an experiment, written after
 * every task and during a task, and read back to resume or analyse a run.
 *
 * Layout (format_version 1). NN is the block, TT the task, both at least two
 * digits (block_03, task_10); every dataset has a `description` attribute.
 *
 *   /                  attrs format_version (int 1), config (resolved YAML),
 *                      git_describe, ranks, dmnsp_version, tasks_completed
 *   /tasks             attr stored_tasks: the tasks that have a group below
 *   /model             attrs vision_width, vision_layers, text_width,
 *                      text_layers, adapter_bottleneck
 *   /model/{visual,text}/block_NN/{down_w,down_b,up_w,up_b}   current adapters
 *   /tasks/task_TT/classes                   ordered labels of the task (int32)
 *   /tasks/task_TT/adapters/{visual,text}/block_NN/{down_w,down_b,up_w,up_b}
 *   /tasks/task_TT/nullspace/block_NN/eigvals  [d] float64, descending
 *   /tasks/task_TT/nullspace/block_NN/eigvecs  [d, d] float32, column j is
 *                      the eigenvector of eigvals[j] (absent when bases are
 *                      not kept)
 *   /tasks/task_TT/nullspace/block_NN/top      [d, k] float32, eigvecs[:, :k]
 *   /tasks/task_TT/nullspace_text/block_NN/{eigvals,eigvecs,top}
 *                      the same for every text block, with d = text width.
 *                      Only DMNSP-both writes them, and files from older
 *                      dmnsp builds lack them.
 *   /tasks/task_TT/lambda                      [L, L] float32 (tasks > 0)
 *   /tasks/task_TT/stats/{visual,text}/block_NN/{down_w,up_w}/
 *                      mean, std, min, max, norm, delta_norm, nonfinite_count,
 *                      histogram [64] int64, edges [65] float64
 *   /tasks/task_TT/metrics/{accuracy_row, accuracy, forward_accuracy,
 *                      nonfinite_count}
 *   /optimizer         present while a task is in progress: attrs task,
 *                      step, nonfinite_count; datasets m, v (adapter layout,
 *                      flat), lambda [L, L] float64 when the task has one
 *                      and lambda_text [text layers, text layers] float64
 *                      (DMNSP-both)
 *
 * Adapter tensors keep PyTorch's shapes: down_w [bottleneck, width],
 * down_b [bottleneck], up_w [width, bottleneck], up_b [width].
 *
 * Writing: one process (rank 0) writes with HDF5's default serial file
 * driver; the MPI-IO driver is not needed because the data is already
 * gathered on rank 0. Each write builds PATH.tmp next to PATH (copying the
 * finished tasks with H5Ocopy), then fsyncs and renames it over PATH, so a
 * failed or interrupted write leaves the previous checkpoint intact. HDF5
 * file locking is used where the file system supports it and skipped
 * where it does not (some parallel file systems). These functions are not
 * thread-safe (HDF5 is built without thread safety); call them from one
 * thread.
 *
 * Errors are dmnsp_fail messages naming the file and the HDF5 object;
 * HDF5's own error stack printing is switched off.
 */
#ifndef DMNSP_CHECKPOINT_H
#define DMNSP_CHECKPOINT_H

#include "dmnsp/clip_layout.h"
#include "dmnsp/paramstats.h"

#define CHECKPOINT_FORMAT_VERSION 1

/* Run-level facts written as root attributes. */
typedef struct {
    const char *config_yaml;  /* resolved config as YAML text (at most 60000 bytes), or NULL for "" */
    const char *git_describe; /* NULL: the git describe of this build */
    int ranks;                /* MPI ranks of the run */
} checkpoint_header;

/* AdamW state of the task in progress (for resuming in the middle of a
 * task). Lambda is kept in double, as the run uses it, so a resumed task
 * projects with exactly the same coefficients. */
typedef struct {
    int task;                  /* task being trained */
    long step;                 /* optimizer steps already taken in that task */
    const float *m;            /* first moments, adapter layout (clip_adapter_count floats) */
    const float *v;            /* second moments, adapter layout */
    const double *lambda;      /* [L, L] visual coefficients of that task, or NULL */
    const double *text_lambda; /* [text layers, text layers] (DMNSP-both), or NULL */
    long nonfinite_count;      /* non-finite gradient/state events so far in the task */
} checkpoint_optimizer;

/* What one finished task adds under /tasks/task_TT. */
typedef struct {
    int task;
    const int *classes; /* ordered labels of the task */
    int n_classes;
    const float *adapters; /* snapshot after the task, adapter layout */

    /* Null space of every visual block; blocks = 0 when the method builds
     * none (finetune, zeroshot). blocks must equal vision_layers and d the
     * vision width otherwise. Arrays are indexed by block:
     *   eigvals[b]  d doubles, descending
     *   eigvecs[b]  d*d floats row-major, element [r*d + j] is component r
     *               of eigenvector j; eigvecs may be NULL when the full
     *               bases are not kept
     *   top[b]      d*k floats row-major, the first k columns of eigvecs */
    int blocks, d, k;
    const double *const *eigvals;
    const float *const *eigvecs;
    const float *const *top;

    /* Null space of every text block (DMNSP-both), laid out like the visual
     * one with the same k. text_blocks is 0 when the method projects no
     * text adapters; otherwise it must equal text_layers and text_d the
     * text width. */
    int text_blocks, text_d;
    const double *const *text_eigvals;
    const float *const *text_eigvecs;
    const float *const *text_top;

    const float *lambda; /* [L, L] with L = vision_layers, or NULL (task 0) */

    const double *accuracy_row; /* R[task][0..row_length-1], percent */
    int row_length;
    double accuracy;         /* sample-weighted accuracy over tasks 0..task, percent */
    double forward_accuracy; /* accuracy on this task before training it, percent; NAN if not measured */
    long nonfinite_count;    /* non-finite events during the task */
} checkpoint_task_record;

/* Writes task REC->task, the current adapters and (when OPT is not NULL)
 * the optimizer state to PATH, keeping the tasks already in PATH. PATH must
 * have fewer than REC->task + 1 completed tasks (a missing PATH has none).
 * Appending task t marks tasks 0..t completed; tasks skipped in between
 * have no group (a writer that stores only the last task), and reading them
 * fails with a message that says so. Parameter statistics are computed
 * here; delta_norm compares with task t-1's snapshot read from PATH and is
 * 0 when there is none (task 0 or t-1 not stored). At a task boundary pass
 * OPT = NULL (AdamW restarts every task), so /optimizer is dropped. Rank 0
 * only. Returns 0 or -1. */
int checkpoint_append_task(const char *path, const checkpoint_header *header, const clip_config *config,
                           const float *current_adapters, const checkpoint_optimizer *opt,
                           const checkpoint_task_record *rec);

/* Rewrites /model and /optimizer of PATH in the middle of a task, keeping
 * the finished tasks (PATH may not exist yet). OPT must not be NULL. Rank 0
 * only. Returns 0 or -1. */
int checkpoint_save_progress(const char *path, const checkpoint_header *header, const clip_config *config,
                             const float *current_adapters, const checkpoint_optimizer *opt);

/* ---------------------------------------------------------------------------
 * Reading. checkpoint_open validates the format version and the layout of
 * /tasks; the reader owns the strings it returns.
 * ------------------------------------------------------------------------- */
typedef struct checkpoint_reader checkpoint_reader;

/* Adapter shapes stored under /model. */
typedef struct {
    int vision_width, vision_layers, text_width, text_layers, adapter_bottleneck;
} checkpoint_shape;

typedef struct {
    int blocks; /* 0: the task has no null space of that modality */
    int d, k;
    int has_eigvecs;
} checkpoint_nullspace_info;

typedef struct {
    double *accuracy_row; /* malloc'd, row_length values; free with free() */
    int row_length;
    double accuracy;
    double forward_accuracy;
    long nonfinite_count;
} checkpoint_task_metrics;

typedef struct {
    int task;
    long step;
    long nonfinite_count;
    int has_lambda;
    int has_text_lambda;
} checkpoint_optimizer_info;

int checkpoint_open(const char *path, checkpoint_reader **reader);
void checkpoint_close(checkpoint_reader *reader);

const char *checkpoint_path(const checkpoint_reader *reader);
const char *checkpoint_config_text(const checkpoint_reader *reader);
const char *checkpoint_git_describe(const checkpoint_reader *reader);
int checkpoint_ranks(const checkpoint_reader *reader);
/* Number of completed tasks; they are tasks 0..count-1. */
int checkpoint_task_count(const checkpoint_reader *reader);
/* 1 when TASK has its group (snapshot, null space, statistics, metrics),
 * 0 when it was completed without being stored or is out of range. */
int checkpoint_task_stored(const checkpoint_reader *reader, int task);
const checkpoint_shape *checkpoint_get_shape(const checkpoint_reader *reader);

/* Checks that CONFIG has the adapter shapes of the file; 0 or -1 naming the
 * field and both values. */
int checkpoint_check_config(const checkpoint_reader *reader, const clip_config *config);

/* Reads the current adapters (/model) into ADAPTERS (clip_adapter_count floats). */
int checkpoint_read_model(checkpoint_reader *reader, const clip_config *config, float *adapters);
/* Reads the snapshot taken after TASK into ADAPTERS. */
int checkpoint_read_task_adapters(checkpoint_reader *reader, const clip_config *config, int task, float *adapters);
/* Reads TASK's ordered labels into *CLASSES (malloc'd; caller frees). */
int checkpoint_read_classes(checkpoint_reader *reader, int task, int **classes, int *count);

/* Describes TASK's null space of MODALITY (/tasks/task_TT/nullspace for
 * CLIP_VISUAL, nullspace_text for CLIP_TEXT); INFO->blocks is 0 when the
 * file has none. */
int checkpoint_read_nullspace_info(checkpoint_reader *reader, int task, clip_modality modality,
                                   checkpoint_nullspace_info *info);
/* Reads block BLOCK of TASK's null space of MODALITY: EIGVALS d doubles,
 * EIGVECS d*d floats (must be NULL when the file has none), TOP d*k
 * floats, with d the width of that encoder. Any output may be NULL to skip
 * it. */
int checkpoint_read_nullspace(checkpoint_reader *reader, int task, clip_modality modality, int block,
                              double *eigvals, float *eigvecs, float *top);
/* Reads TASK's [L, L] lambda into LAMBDA (L = vision_layers); *PRESENT is 0
 * (and LAMBDA untouched) when the task has none. */
int checkpoint_read_lambda(checkpoint_reader *reader, int task, float *lambda, int *present);
int checkpoint_read_metrics(checkpoint_reader *reader, int task, checkpoint_task_metrics *metrics);
/* TENSOR is "down_w" or "up_w". */
int checkpoint_read_stats(checkpoint_reader *reader, int task, clip_modality modality, int block, const char *tensor,
                          param_stats *stats);

/* 1 when /optimizer exists (a task was in progress), else 0. */
int checkpoint_has_optimizer(const checkpoint_reader *reader);
/* Reads /optimizer: INFO always; M and V (clip_adapter_count floats each),
 * LAMBDA ([L, L]) and TEXT_LAMBDA ([text layers, text layers]) when not
 * NULL and, for the lambdas, present in the file. */
int checkpoint_read_optimizer(checkpoint_reader *reader, const clip_config *config, checkpoint_optimizer_info *info,
                              float *m, float *v, double *lambda, double *text_lambda);

#endif

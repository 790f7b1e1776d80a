/* metrics: the accuracy matrix of a continual-learning run, the metrics
 * derived from it, and metrics.json.
 *
 * R[i][j] is the accuracy (percent) on task j's test set after training
 * task i, kept as correct and total sample counts. Entries j <= i are the
 * usual evaluation after task i; the entry j = i + 1 is task i + 1's test set
 * evaluated before training it (classifier over the classes up to the end of
 * task i + 1), which forward transfer needs. For step i:
 *   acc          correct / total over the test samples of tasks 0..i
 *   avg_acc      mean of acc over steps 0..i
 *   acc_per_task R[i][0..i]
 *   forgetting   mean over j < i of (max over l in j..i-1 of R[l][j]) - R[i][j]
 *                (Chaudhry et al. 2018); 0 for i = 0
 *   bwt          mean over pairs j < l <= i of R[l][j] - R[j][j]
 *                (Lopez-Paz and Ranzato 2017); 0 for i = 0
 *   fwt          mean over 1 <= l <= i of R[l-1][l]; 0 for i = 0
 * A metric whose entries were not all recorded is NAN (null in JSON).
 *
 * metrics.json has one JSON object per line, percent with two decimals:
 *   {"task": t, "acc": .., "avg_acc": .., "forgetting": .., "acc_per_task": [..],
 *    "bwt": .., "fwt": .., "nonfinite": N, "correct_per_task": [..],
 *    "samples_per_task": [..], "next_task_correct": C, "next_task_samples": S}
 * per finished task (the count fields let a resumed run restore R exactly;
 * the next_task fields are null when R[t][t+1] was not recorded), then
 *   {"summary": true, "last": .., "avg": .., "avg_forgetting": .., "dataset": "..",
 *    "method": "..", "wall_seconds": .., "ranks": N}
 * where last = acc, avg = avg_acc and avg_forgetting = forgetting of the
 * last task (Chaudhry's average forgetting at the end of the run). The file
 * is always rewritten whole and atomically.
 */
#ifndef DMNSP_METRICS_H
#define DMNSP_METRICS_H

typedef struct {
    int task_count;
    long *correct;  /* task_count × (task_count + 1), row i = after task i */
    long *total;    /* same shape */
    long *nonfinite; /* task_count: non-finite gradient/optimizer values seen in task i */
} metrics_matrix;

/* Metrics of one step. */
typedef struct {
    int task;
    double acc;
    double avg_acc;
    double forgetting;
    double bwt;
    double fwt;
} metrics_step;

typedef struct {
    const char *dataset;
    const char *method;
    double wall_seconds;
    int ranks;
} metrics_run_info;

/* Creates an empty matrix for TASK_COUNT tasks; free with metrics_free(). */
int metrics_init(metrics_matrix *m, int task_count);
void metrics_free(metrics_matrix *m);

/* Records R[AFTER_TASK][EVAL_TASK] as CORRECT of TOTAL samples. EVAL_TASK
 * may be 0 .. AFTER_TASK + 1 (the last for forward transfer). TOTAL 0 is
 * allowed and counts as a recorded empty test set. */
int metrics_record(metrics_matrix *m, int after_task, int eval_task, long correct, long total);

/* Stores the count of non-finite values seen while training TASK. */
int metrics_set_nonfinite(metrics_matrix *m, int task, long count);

/* R[i][j] in percent; NAN when not recorded or when the test set is empty. */
double metrics_accuracy(const metrics_matrix *m, int after_task, int eval_task);

/* Computes the metrics of step TASK (see the top of this file). */
int metrics_compute(const metrics_matrix *m, int task, metrics_step *out);

/* Writes metrics.json to PATH for tasks 0 .. TASKS_DONE - 1, plus the
 * summary line when INFO is not NULL, atomically (temporary file in the same
 * folder, fsync, rename). */
int metrics_write_json(const char *path, const metrics_matrix *m, int tasks_done, const metrics_run_info *info);

/* A metrics.json read back. Task lines are in file order; arrays are
 * malloc'd (free the whole with metrics_file_free). */
typedef struct {
    int task;
    double acc, avg_acc, forgetting, bwt, fwt; /* NAN for null */
    long nonfinite;
    int per_task_count;       /* task + 1 entries in each array below */
    double *acc_per_task;
    long *correct_per_task;   /* NULL when the line has no counts */
    long *samples_per_task;
    long next_task_correct;   /* -1 when null or absent */
    long next_task_samples;
} metrics_file_line;

typedef struct {
    int line_count;
    metrics_file_line *lines;
    int has_summary;
    double last, avg, avg_forgetting, wall_seconds;
    int ranks;
    char dataset[128];
    char method[64];
} metrics_file;

/* Parses the metrics.json at PATH. Fails with the line number and what is
 * wrong for malformed lines, task lines out of sequence, or anything after
 * the summary line. */
int metrics_read_json(const char *path, metrics_file *out);
void metrics_file_free(metrics_file *file);

/* Restores the counts of a matrix for TASK_COUNT tasks from the task lines
 * of FILE (which must carry the count fields). */
int metrics_restore(metrics_matrix *m, int task_count, const metrics_file *file);

#endif

/* scenario: the class-incremental split of a dataset into tasks.
 *
 * A class order lists dataset class ids; class class_order[k] gets the
 * ordered label k. Task 0 takes the first initial_increment classes of the
 * order and every later task the next increment classes; max_tasks > 0 keeps
 * only the first tasks (and their classes). The order may name a subset of
 * the dataset's classes. Per task the scenario gives its label range, the
 * prompts of its classes and the samples of its classes.
 *
 * Reading the class order from YAML is the config module's work: this
 * module takes int arrays. Errors follow dmnsp/error.h.
 */
#ifndef DMNSP_SCENARIO_H
#define DMNSP_SCENARIO_H

typedef struct {
    int dataset_class_count;
    int class_count;     /* classes in the used tasks: ordered labels 0 .. class_count - 1 */
    int *class_order;    /* class_count dataset class ids, by ordered label */
    int *label_of_class; /* dataset_class_count entries: ordered label or -1 */
    int task_count;
    int *task_begin; /* task_count + 1 entries: task t has labels task_begin[t] .. task_begin[t + 1] - 1 */
} scenario;

/* Samples of some tasks: dataset sample indices in file order and the
 * ordered label of each. */
typedef struct {
    long count;
    long *indices;
    int *labels;
} scenario_samples;

/* Builds the scenario. CLASS_ORDER (ORDER_LENGTH ids) may be NULL for the
 * order 0 .. dataset_class_count - 1. Fails when an id repeats or is out of
 * range, or when initial_increment and increment do not cover the order
 * exactly. MAX_TASKS 0 keeps all tasks. Free with scenario_free(). */
int scenario_init(scenario *sc, const int *class_order, int order_length, int dataset_class_count,
                  int initial_increment, int increment, int max_tasks);
void scenario_free(scenario *sc);

/* Ordered labels of TASK: [*begin, *end). */
int scenario_task_labels(const scenario *sc, int task, int *begin, int *end);

/* Ordered label of a dataset class, or -1 when the scenario does not use it. */
int scenario_label_of_class(const scenario *sc, int dataset_class);

/* Prompts for ordered labels LABEL_BEGIN .. LABEL_END - 1: TEMPLATE with its
 * one "{}" replaced by the class name (CLASS_NAMES is indexed by dataset
 * class id). *PROMPTS is a malloc'd array of malloc'd strings; free with
 * scenario_free_prompts(). */
int scenario_prompts(const scenario *sc, const char *const *class_names, const char *template_text,
                     int label_begin, int label_end, char ***prompts);
void scenario_free_prompts(char **prompts, int count);

/* Samples of tasks FIRST_TASK .. LAST_TASK among SAMPLE_COUNT samples whose
 * dataset labels are DATASET_LABELS, in file order. PER_CLASS_LIMIT > 0 keeps
 * only the first that many samples of each class (in file order). Free OUT
 * with scenario_samples_free(). */
int scenario_task_samples(const scenario *sc, const int *dataset_labels, long sample_count, int first_task,
                          int last_task, long per_class_limit, scenario_samples *out);
void scenario_samples_free(scenario_samples *samples);

#endif

/* scenario: class order, task splits, prompts and per-task samples (see
 * include/dmnsp/scenario.h). */
#include "dmnsp/scenario.h"

#include "dmnsp/error.h"

#include <stdlib.h>
#include <string.h>

void scenario_free(scenario *sc)
{
    if (sc == NULL)
        return;
    free(sc->class_order);
    free(sc->label_of_class);
    free(sc->task_begin);
    memset(sc, 0, sizeof *sc);
}

int scenario_init(scenario *sc, const int *class_order, int order_length, int dataset_class_count,
                  int initial_increment, int increment, int max_tasks)
{
    memset(sc, 0, sizeof *sc);
    if (dataset_class_count <= 0)
        return dmnsp_fail("scenario: the dataset has %d classes (expected at least one)", dataset_class_count);
    if (class_order == NULL)
        order_length = dataset_class_count;
    if (order_length <= 0)
        return dmnsp_fail("class order: empty (expected dataset class ids)");
    if (initial_increment <= 0 || increment <= 0)
        return dmnsp_fail("scenario: initial_increment %d and increment %d must be positive", initial_increment,
                          increment);
    if (max_tasks < 0)
        return dmnsp_fail("scenario: max_tasks %d is negative (expected 0 for all tasks or a task count)", max_tasks);

    /* The order: every id in range and used once. */
    int *label_of_class = dmnsp_malloc(sizeof(int) * (size_t)dataset_class_count, "class order lookup");
    if (label_of_class == NULL)
        return -1;
    for (int c = 0; c < dataset_class_count; c++)
        label_of_class[c] = -1;
    for (int k = 0; k < order_length; k++) {
        int id = class_order ? class_order[k] : k;
        if (id < 0 || id >= dataset_class_count) {
            free(label_of_class);
            return dmnsp_fail("class order: id %d at position %d is out of range for %d classes (expected 0..%d)", id,
                              k, dataset_class_count, dataset_class_count - 1);
        }
        if (label_of_class[id] >= 0) {
            int first = label_of_class[id];
            free(label_of_class);
            return dmnsp_fail("class order: duplicate id %d at position %d (first at position %d)", id, k, first);
        }
        label_of_class[id] = k;
    }

    /* Tasks: initial_increment, then increment each, covering the order. */
    if (initial_increment > order_length) {
        free(label_of_class);
        return dmnsp_fail("scenario: initial_increment %d exceeds the %d classes in the class order",
                          initial_increment, order_length);
    }
    int rest = order_length - initial_increment;
    if (rest % increment != 0) {
        free(label_of_class);
        return dmnsp_fail("scenario: initial_increment %d plus tasks of increment %d do not cover the %d classes in the "
                          "class order exactly (%d + %d x %d = %d, %d left over); choose increments that divide "
                          "the classes, or a class_order file that lists a subset of them",
                          initial_increment, increment, order_length, initial_increment, rest / increment, increment,
                          initial_increment + (rest / increment) * increment, rest % increment);
    }
    int task_count = 1 + rest / increment;
    if (max_tasks > 0 && max_tasks < task_count)
        task_count = max_tasks;
    int class_count = initial_increment + (task_count - 1) * increment;

    sc->task_begin = dmnsp_malloc(sizeof(int) * (size_t)(task_count + 1), "task boundaries");
    sc->class_order = dmnsp_malloc(sizeof(int) * (size_t)class_count, "class order");
    if (sc->task_begin == NULL || sc->class_order == NULL) {
        free(label_of_class);
        scenario_free(sc);
        return -1;
    }
    sc->task_begin[0] = 0;
    for (int t = 0; t < task_count; t++)
        sc->task_begin[t + 1] = initial_increment + t * increment;
    for (int k = 0; k < class_count; k++)
        sc->class_order[k] = class_order ? class_order[k] : k;
    /* Classes of dropped tasks are not part of the scenario. */
    for (int c = 0; c < dataset_class_count; c++)
        if (label_of_class[c] >= class_count)
            label_of_class[c] = -1;

    sc->label_of_class = label_of_class;
    sc->dataset_class_count = dataset_class_count;
    sc->class_count = class_count;
    sc->task_count = task_count;
    return 0;
}

int scenario_task_labels(const scenario *sc, int task, int *begin, int *end)
{
    if (task < 0 || task >= sc->task_count)
        return dmnsp_fail("scenario: task %d is out of range (the scenario has %d tasks)", task, sc->task_count);
    *begin = sc->task_begin[task];
    *end = sc->task_begin[task + 1];
    return 0;
}

int scenario_label_of_class(const scenario *sc, int dataset_class)
{
    if (dataset_class < 0 || dataset_class >= sc->dataset_class_count)
        return -1;
    return sc->label_of_class[dataset_class];
}

void scenario_free_prompts(char **prompts, int count)
{
    if (prompts == NULL)
        return;
    for (int i = 0; i < count; i++)
        free(prompts[i]);
    free(prompts);
}

int scenario_prompts(const scenario *sc, const char *const *class_names, const char *template_text,
                     int label_begin, int label_end, char ***prompts)
{
    *prompts = NULL;
    const char *slot = strstr(template_text, "{}");
    if (slot == NULL)
        return dmnsp_fail("prompt template '%s' has no '{}' (expected one, where the class name goes)", template_text);
    if (strstr(slot + 2, "{}") != NULL)
        return dmnsp_fail("prompt template '%s' has more than one '{}' (expected one, where the class name goes)",
                          template_text);
    if (label_begin < 0 || label_end > sc->class_count || label_begin > label_end)
        return dmnsp_fail("scenario: label range %d..%d is outside the %d classes of the scenario", label_begin,
                          label_end, sc->class_count);

    int count = label_end - label_begin;
    char **list = dmnsp_calloc((size_t)(count > 0 ? count : 1), sizeof(char *), "prompts");
    if (list == NULL)
        return -1;
    size_t prefix = (size_t)(slot - template_text);
    size_t suffix = strlen(slot + 2);
    for (int i = 0; i < count; i++) {
        const char *name = class_names[sc->class_order[label_begin + i]];
        if (name == NULL)
            name = "";
        size_t length = prefix + strlen(name) + suffix;
        list[i] = dmnsp_malloc(length + 1, "prompt");
        if (list[i] == NULL) {
            scenario_free_prompts(list, i);
            return -1;
        }
        memcpy(list[i], template_text, prefix);
        memcpy(list[i] + prefix, name, strlen(name));
        memcpy(list[i] + prefix + strlen(name), slot + 2, suffix + 1);
    }
    *prompts = list;
    return 0;
}

void scenario_samples_free(scenario_samples *samples)
{
    if (samples == NULL)
        return;
    free(samples->indices);
    free(samples->labels);
    memset(samples, 0, sizeof *samples);
}

int scenario_task_samples(const scenario *sc, const int *dataset_labels, long sample_count, int first_task,
                          int last_task, long per_class_limit, scenario_samples *out)
{
    memset(out, 0, sizeof *out);
    if (first_task < 0 || last_task >= sc->task_count || first_task > last_task)
        return dmnsp_fail("scenario: task range %d..%d is outside the %d tasks", first_task, last_task,
                          sc->task_count);
    int label_begin = sc->task_begin[first_task];
    int label_end = sc->task_begin[last_task + 1];

    long *taken_per_class = dmnsp_calloc((size_t)sc->class_count, sizeof(long), "per-class sample counts");
    if (taken_per_class == NULL)
        return -1;

    /* Two passes: count, then fill, so the arrays are sized up front. */
    long count = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            out->indices = dmnsp_malloc(sizeof(long) * (size_t)(count > 0 ? count : 1), "task sample indices");
            out->labels = dmnsp_malloc(sizeof(int) * (size_t)(count > 0 ? count : 1), "task sample labels");
            if (out->indices == NULL || out->labels == NULL) {
                free(taken_per_class);
                scenario_samples_free(out);
                return -1;
            }
            memset(taken_per_class, 0, sizeof(long) * (size_t)sc->class_count);
            count = 0;
        }
        for (long i = 0; i < sample_count; i++) {
            int label = scenario_label_of_class(sc, dataset_labels[i]);
            if (label < label_begin || label >= label_end)
                continue;
            if (per_class_limit > 0 && taken_per_class[label] >= per_class_limit)
                continue;
            taken_per_class[label]++;
            if (pass == 1) {
                out->indices[count] = i;
                out->labels[count] = label;
            }
            count++;
        }
    }
    free(taken_per_class);
    out->count = count;
    return 0;
}

/* metrics: accuracy matrix, continual-learning metrics and metrics.json
 * (see include/dmnsp/metrics.h). */
#include "dmnsp/metrics.h"

#include "dmnsp/error.h"
#include "dmnsp/rundir.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Row stride: entries j = 0 .. task_count (j = i + 1 for forward transfer). */
static int row_stride(const metrics_matrix *m) { return m->task_count + 1; }

int metrics_init(metrics_matrix *m, int task_count)
{
    memset(m, 0, sizeof *m);
    if (task_count <= 0)
        return dmnsp_fail("metrics: task count %d (expected at least one task)", task_count);
    size_t cells = (size_t)task_count * (size_t)(task_count + 1);
    m->task_count = task_count;
    m->correct = dmnsp_malloc(sizeof(long) * cells, "accuracy matrix");
    m->total = dmnsp_malloc(sizeof(long) * cells, "accuracy matrix");
    m->nonfinite = dmnsp_calloc((size_t)task_count, sizeof(long), "non-finite counts");
    if (m->correct == NULL || m->total == NULL || m->nonfinite == NULL) {
        metrics_free(m);
        return -1;
    }
    /* total = -1 marks an entry that was not recorded. */
    for (size_t i = 0; i < cells; i++) {
        m->correct[i] = 0;
        m->total[i] = -1;
    }
    return 0;
}

void metrics_free(metrics_matrix *m)
{
    if (m == NULL)
        return;
    free(m->correct);
    free(m->total);
    free(m->nonfinite);
    memset(m, 0, sizeof *m);
}

int metrics_record(metrics_matrix *m, int after_task, int eval_task, long correct, long total)
{
    if (after_task < 0 || after_task >= m->task_count)
        return dmnsp_fail("metrics: task %d is out of range (%d tasks)", after_task, m->task_count);
    if (eval_task < 0 || eval_task > after_task + 1 || eval_task >= m->task_count)
        return dmnsp_fail("metrics: evaluated task %d after task %d (expected 0..%d)", eval_task, after_task,
                          after_task + 1 < m->task_count ? after_task + 1 : after_task);
    if (total < 0 || correct < 0 || correct > total)
        return dmnsp_fail("metrics: %ld correct of %ld samples is invalid", correct, total);
    size_t cell = (size_t)after_task * (size_t)row_stride(m) + (size_t)eval_task;
    m->correct[cell] = correct;
    m->total[cell] = total;
    return 0;
}

int metrics_set_nonfinite(metrics_matrix *m, int task, long count)
{
    if (task < 0 || task >= m->task_count)
        return dmnsp_fail("metrics: task %d is out of range (%d tasks)", task, m->task_count);
    m->nonfinite[task] = count;
    return 0;
}

double metrics_accuracy(const metrics_matrix *m, int after_task, int eval_task)
{
    if (after_task < 0 || after_task >= m->task_count || eval_task < 0 || eval_task > m->task_count)
        return NAN;
    size_t cell = (size_t)after_task * (size_t)row_stride(m) + (size_t)eval_task;
    if (m->total[cell] <= 0)
        return NAN;
    return 100.0 * (double)m->correct[cell] / (double)m->total[cell];
}

/* Sample-weighted accuracy over tasks 0..i after task i; NAN when an entry
 * is missing or there are no samples. */
static double step_accuracy(const metrics_matrix *m, int i)
{
    long correct = 0, total = 0;
    for (int j = 0; j <= i; j++) {
        size_t cell = (size_t)i * (size_t)row_stride(m) + (size_t)j;
        if (m->total[cell] < 0)
            return NAN;
        correct += m->correct[cell];
        total += m->total[cell];
    }
    return total > 0 ? 100.0 * (double)correct / (double)total : NAN;
}

int metrics_compute(const metrics_matrix *m, int task, metrics_step *out)
{
    if (task < 0 || task >= m->task_count)
        return dmnsp_fail("metrics: task %d is out of range (%d tasks)", task, m->task_count);
    int i = task;
    out->task = i;
    out->acc = step_accuracy(m, i);

    double sum = 0.0;
    for (int s = 0; s <= i; s++)
        sum += step_accuracy(m, s);
    out->avg_acc = sum / (double)(i + 1);

    /* Forgetting: best earlier accuracy of each old task minus its current. */
    sum = 0.0;
    for (int j = 0; j < i; j++) {
        double best = -INFINITY;
        for (int l = j; l < i; l++) {
            double r = metrics_accuracy(m, l, j);
            best = isnan(r) ? NAN : (r > best ? r : best);
            if (isnan(best))
                break;
        }
        sum += best - metrics_accuracy(m, i, j);
    }
    out->forgetting = i > 0 ? sum / (double)i : 0.0;

    /* Backward transfer over pairs j < l <= i. */
    sum = 0.0;
    long pairs = 0;
    for (int l = 1; l <= i; l++) {
        for (int j = 0; j < l; j++) {
            sum += metrics_accuracy(m, l, j) - metrics_accuracy(m, j, j);
            pairs++;
        }
    }
    out->bwt = pairs > 0 ? sum / (double)pairs : 0.0;

    /* Forward transfer: accuracy on task l before training it. */
    sum = 0.0;
    for (int l = 1; l <= i; l++)
        sum += metrics_accuracy(m, l - 1, l);
    out->fwt = i > 0 ? sum / (double)i : 0.0;
    return 0;
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

typedef struct {
    char *data;
    size_t length;
    size_t capacity;
    int failed;
} text_buffer;

static void append(text_buffer *buffer, const char *fmt, ...) DMNSP_PRINTF(2, 3);

static void append(text_buffer *buffer, const char *fmt, ...)
{
    if (buffer->failed)
        return;
    for (;;) {
        va_list args;
        va_start(args, fmt);
        size_t room = buffer->capacity - buffer->length;
        int written = vsnprintf(buffer->data ? buffer->data + buffer->length : NULL, room, fmt, args);
        va_end(args);
        if (written < 0) {
            buffer->failed = 1;
            return;
        }
        if ((size_t)written < room) {
            buffer->length += (size_t)written;
            return;
        }
        size_t capacity = (buffer->capacity + (size_t)written + 1) * 2;
        char *bigger = realloc(buffer->data, capacity);
        if (bigger == NULL) {
            buffer->failed = 1;
            return;
        }
        buffer->data = bigger;
        buffer->capacity = capacity;
    }
}

/* A percentage with two decimals, or null. */
static void append_percent(text_buffer *buffer, double value)
{
    if (isfinite(value))
        append(buffer, "%.2f", value);
    else
        append(buffer, "null");
}

/* A JSON string with quotes and escapes. */
static void append_string(text_buffer *buffer, const char *text)
{
    append(buffer, "\"");
    for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            append(buffer, "\\%c", *p);
        else if (*p < 0x20)
            append(buffer, "\\u%04x", *p);
        else
            append(buffer, "%c", *p);
    }
    append(buffer, "\"");
}

int metrics_write_json(const char *path, const metrics_matrix *m, int tasks_done, const metrics_run_info *info)
{
    if (tasks_done < 0 || tasks_done > m->task_count)
        return dmnsp_fail("metrics: %s: %d finished tasks (expected 0..%d)", path, tasks_done, m->task_count);
    text_buffer buffer = {0};
    metrics_step step = {0};
    for (int i = 0; i < tasks_done; i++) {
        metrics_compute(m, i, &step);
        append(&buffer, "{\"task\": %d, \"acc\": ", i);
        append_percent(&buffer, step.acc);
        append(&buffer, ", \"avg_acc\": ");
        append_percent(&buffer, step.avg_acc);
        append(&buffer, ", \"forgetting\": ");
        append_percent(&buffer, step.forgetting);
        append(&buffer, ", \"acc_per_task\": [");
        for (int j = 0; j <= i; j++) {
            append(&buffer, j ? ", " : "");
            append_percent(&buffer, metrics_accuracy(m, i, j));
        }
        append(&buffer, "], \"bwt\": ");
        append_percent(&buffer, step.bwt);
        append(&buffer, ", \"fwt\": ");
        append_percent(&buffer, step.fwt);
        append(&buffer, ", \"nonfinite\": %ld, \"correct_per_task\": [", m->nonfinite[i]);
        const long *correct = m->correct + (size_t)i * (size_t)row_stride(m);
        const long *total = m->total + (size_t)i * (size_t)row_stride(m);
        for (int j = 0; j <= i; j++)
            append(&buffer, j ? ", %ld" : "%ld", total[j] < 0 ? -1 : correct[j]);
        append(&buffer, "], \"samples_per_task\": [");
        for (int j = 0; j <= i; j++)
            append(&buffer, j ? ", %ld" : "%ld", total[j]);
        append(&buffer, "]");
        if (i + 1 < m->task_count && total[i + 1] >= 0)
            append(&buffer, ", \"next_task_correct\": %ld, \"next_task_samples\": %ld", correct[i + 1], total[i + 1]);
        else
            append(&buffer, ", \"next_task_correct\": null, \"next_task_samples\": null");
        append(&buffer, "}\n");
    }
    if (info != NULL && tasks_done > 0) {
        metrics_compute(m, tasks_done - 1, &step);
        append(&buffer, "{\"summary\": true, \"last\": ");
        append_percent(&buffer, step.acc);
        append(&buffer, ", \"avg\": ");
        append_percent(&buffer, step.avg_acc);
        append(&buffer, ", \"avg_forgetting\": ");
        append_percent(&buffer, step.forgetting);
        append(&buffer, ", \"dataset\": ");
        append_string(&buffer, info->dataset);
        append(&buffer, ", \"method\": ");
        append_string(&buffer, info->method);
        append(&buffer, ", \"wall_seconds\": %.2f, \"ranks\": %d}\n", info->wall_seconds, info->ranks);
    }
    if (buffer.failed) {
        free(buffer.data);
        return dmnsp_fail("metrics: %s: out of memory formatting the file", path);
    }
    int status = rundir_write_atomic(path, buffer.data ? buffer.data : "", buffer.length);
    free(buffer.data);
    if (status != 0)
        return dmnsp_fail_prefix("metrics");
    return 0;
}

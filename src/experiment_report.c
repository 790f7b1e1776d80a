/* experiment_report: what rank 0 prints after each task and at the end. */
#include "experiment_internal.h"

#include "dmnsp/log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void format_percent(double value, char *buf, size_t size)
{
    if (isnan(value))
        snprintf(buf, size, "%7s", "-");
    else
        snprintf(buf, size, "%7.2f", value);
}

void experiment_log_task_result(const experiment *e, int task)
{
    char row[2048] = "";
    size_t used = 0;
    for (int j = 0; j <= task && used + 16 < sizeof row; j++)
        used += (size_t)snprintf(row + used, sizeof row - used, "%s%.2f", j ? " " : "",
                                 metrics_accuracy(&e->metrics, task, j));

    metrics_step step;
    if (metrics_compute(&e->metrics, task, &step) != 0)
        return;
    log_info("task %d: accuracy per task [%s]", task, row);
    log_info("task %d: acc %.2f  avg_acc %.2f  forgetting %.2f  bwt %.2f  fwt %.2f  non-finite %ld", task, step.acc,
             step.avg_acc, step.forgetting, step.bwt, step.fwt, e->metrics.nonfinite[task]);
    double next = task + 1 < e->sc.task_count ? metrics_accuracy(&e->metrics, task, task + 1) : NAN;
    if (!isnan(next))
        log_info("task %d: task %d before training it: %.2f", task, task + 1, next);
}

void experiment_log_summary(const experiment *e, int tasks_done)
{
    if (e->rank != 0 || tasks_done == 0)
        return;
    char cell[32];

    log_text("\nAccuracy (%%) after each task (rows) on each task's test set (columns);\n"
           "the entry right of the diagonal is the next task before training it.\n");
    log_text("%-8s", "after");
    for (int j = 0; j < tasks_done; j++)
        log_text("  task %-2d", j);
    log_text("\n");
    for (int i = 0; i < tasks_done; i++) {
        log_text("task %-3d", i);
        for (int j = 0; j <= i + 1 && j < e->sc.task_count && j < tasks_done + 1; j++) {
            format_percent(metrics_accuracy(&e->metrics, i, j), cell, sizeof cell);
            if (j == i + 1)
                log_text("  (%s)", cell + 1);
            else
                log_text("  %s", cell);
        }
        log_text("\n");
    }

    log_text("\n%-6s %8s %8s %11s %8s %8s %10s\n", "task", "acc", "avg_acc", "forgetting", "bwt", "fwt", "nonfinite");
    metrics_step step = {0};
    for (int i = 0; i < tasks_done; i++) {
        if (metrics_compute(&e->metrics, i, &step) != 0)
            continue;
        log_text("%-6d %8.2f %8.2f %11.2f %8.2f %8.2f %10ld\n", i, step.acc, step.avg_acc, step.forgetting, step.bwt,
               step.fwt, e->metrics.nonfinite[i]);
    }
    char wall[32];
    log_format_duration(log_now() - e->start_time, wall, sizeof wall);
    log_text("\n%s on %s: last %.2f  average %.2f  forgetting %.2f  bwt %.2f  fwt %.2f  wall %s  ranks %d\n\n",
           config_get_string(e->cfg, "method"), config_get_string(e->cfg, "dataset"), step.acc, step.avg_acc,
           step.forgetting, step.bwt, step.fwt, wall, e->ranks);
    fflush(stdout);
}

/* dmnsp compare: a table of the final metrics of several runs, read from
 * their metrics.json files (the README's demo prints it). */
#include "commands.h"

#include "dmnsp/error.h"
#include "dmnsp/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char compare_usage[] =
    "usage: dmnsp compare RUN_DIR...\n"
    "\n"
    "Prints one row per run folder (or metrics.json path): method, dataset,\n"
    "tasks, last accuracy, average accuracy, forgetting, bwt, fwt, non-finite\n"
    "values, wall time, ranks and the run, from the run's metrics.json.\n";

static void print_value(double value)
{
    if (isnan(value))
        printf(" %9s", "-");
    else
        printf(" %9.2f", value);
}

int cmd_compare(int argc, char **argv)
{
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        fputs(compare_usage, stdout);
        return 0;
    }
    if (argc < 1 || argv[0][0] == '-') {
        fprintf(stderr, "dmnsp: compare needs at least one run folder\n\n%s", compare_usage);
        return 2;
    }

    printf("%-14s %-13s %5s %9s %9s %9s %9s %9s %9s %8s %5s  %s\n", "method", "dataset", "tasks", "last", "average",
           "forget", "bwt", "fwt", "nonfinite", "wall_s", "ranks", "run");
    int failures = 0;
    for (int i = 0; i < argc; i++) {
        char path[4200];
        size_t n = strlen(argv[i]);
        if (n > 5 && strcmp(argv[i] + n - 5, ".json") == 0)
            snprintf(path, sizeof path, "%s", argv[i]);
        else
            snprintf(path, sizeof path, "%s/metrics.json", argv[i]);

        metrics_file file;
        if (metrics_read_json(path, &file) != 0) {
            fprintf(stderr, "dmnsp: error: %s\n", dmnsp_last_error());
            failures++;
            continue;
        }
        if (file.line_count == 0) {
            fprintf(stderr, "dmnsp: error: %s has no finished task\n", path);
            metrics_file_free(&file);
            failures++;
            continue;
        }
        const metrics_file_line *last = &file.lines[file.line_count - 1];
        long nonfinite = 0;
        for (int t = 0; t < file.line_count; t++)
            nonfinite += file.lines[t].nonfinite;
        printf("%-14s %-13s %5d", file.has_summary ? file.method : "(running)",
               file.has_summary ? file.dataset : "-", file.line_count);
        print_value(last->acc);
        print_value(last->avg_acc);
        print_value(last->forgetting);
        print_value(last->bwt);
        print_value(last->fwt);
        printf(" %9ld", nonfinite);
        if (file.has_summary)
            printf(" %8.1f %5d", file.wall_seconds, file.ranks);
        else
            printf(" %8s %5s", "-", "-");
        printf("  %s\n", argv[i]);
        metrics_file_free(&file);
    }
    return failures > 0 ? 1 : 0;
}

/* dmnsp analyze: offline analysis of finished or running experiments.
 * Reads each run folder's checkpoint.h5, metrics.json and config.yaml and
 * writes CSV tables, gnuplot PNGs and a report.md that links them. */
#include "cmd_analyze.h"
#include "commands.h"

#include "dmnsp/error.h"
#include "dmnsp/log.h"
#include "dmnsp/rundir.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char analyze_usage[] =
    "usage: dmnsp analyze RUN_DIR... [--out DIR] [--gnuplot PROGRAM] [--no-plots]\n"
    "\n"
    "Reads RUN_DIR/checkpoint.h5, RUN_DIR/metrics.json and RUN_DIR/config.yaml\n"
    "of each run and writes CSV tables, PNG plots and report.md:\n"
    "  per run:  param_stats.csv, param_histograms.csv, modality_summary.csv,\n"
    "            lambda.csv, accuracy_matrix.csv, metrics_per_task.csv and the\n"
    "            plots param_std, delta_norm, param_histograms_task_TT (last task),\n"
    "            lambda_task_TT, accuracy_matrix, forgetting\n"
    "  several runs: sweep.csv and sweep.png (last/avg accuracy and forgetting\n"
    "            per run, with the settings that differ between runs)\n"
    "\n"
    "A RUN_DIR without those files stands for its subfolders that have them\n"
    "(the root of a sweep written by jobs/sweep.sh).\n"
    "\n"
    "  --out DIR         output folder (default: RUN_DIR/analysis for one run or\n"
    "                    one sweep root, ./analysis for several; each run then\n"
    "                    gets OUT/NAME/)\n"
    "  --gnuplot PROGRAM gnuplot executable (default: gnuplot from PATH)\n"
    "  --no-plots        write CSV files and report.md only\n";

/* Keys that name files or folders of a run, not experiment settings. */
static int is_location_key(const char *key)
{
    static const char *const keys[] = {"output_dir", "log_path", "resume", "overwrite"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i]) == 0)
            return 1;
    return 0;
}

static int has_key(char **keys, int count, const char *key)
{
    for (int i = 0; i < count; i++)
        if (strcmp(keys[i], key) == 0)
            return 1;
    return 0;
}

/* The settings whose values differ between runs, in first-seen order;
 * "method" alone when all runs agree. Entries point into RUNS. */
static char **find_swept_keys(const analyze_run *runs, int count, int *swept_count)
{
    int capacity = 1;
    for (int r = 0; r < count; r++)
        capacity += runs[r].setting_count;
    char **keys = calloc((size_t)capacity, sizeof *keys);
    *swept_count = 0;
    if (keys == NULL)
        return NULL;
    for (int r = 0; r < count; r++) {
        for (int s = 0; s < runs[r].setting_count; s++) {
            const char *key = runs[r].settings[s].key;
            if (is_location_key(key) || has_key(keys, *swept_count, key))
                continue;
            const char *first = analyze_setting_value(&runs[0], key);
            for (int other = 0; other < count; other++) {
                const char *value = analyze_setting_value(&runs[other], key);
                int same = (first == NULL && value == NULL) ||
                           (first != NULL && value != NULL && strcmp(first, value) == 0);
                if (!same) {
                    keys[(*swept_count)++] = (char *)key;
                    break;
                }
            }
        }
    }
    if (*swept_count == 0)
        keys[(*swept_count)++] = "method";
    return keys;
}

/* Renames run R to NAME_R when an earlier run has the same folder name, so
 * that subfolders, tables and plot labels tell the two apart. */
static void make_names_unique(analyze_run *runs, int count)
{
    for (int r = 1; r < count; r++) {
        for (int other = 0; other < r; other++) {
            if (strcmp(runs[other].name, runs[r].name) == 0) {
                char unique[sizeof runs[r].name];
                snprintf(unique, sizeof unique, "%.*s_%d", (int)sizeof unique - 12, runs[r].name, r);
                snprintf(runs[r].name, sizeof runs[r].name, "%s", unique);
                break;
            }
        }
    }
}

/* Subfolder of run R under OUT: "" for one run, its name for several. */
static void run_subfolder(const analyze_run *runs, int count, int r, char *buf, size_t size)
{
    buf[0] = '\0';
    if (count > 1)
        snprintf(buf, size, "%s", runs[r].name);
}

/* ---------------------------------------------------------------------------
 * report.md
 * ------------------------------------------------------------------------- */
static void put_percent(FILE *f, double value)
{
    if (isfinite(value))
        fprintf(f, "%.2f", value);
    else
        fprintf(f, "-");
}

static void report_run(FILE *f, const analyze_run *run, const char *prefix, const analyze_file_list *pngs)
{
    fprintf(f, "## Run %s\n\n", run->name);
    fprintf(f, "- folder: `%s`\n", run->dir);
    fprintf(f, "- dataset: %s, method: %s, tasks: %d%s\n", run->dataset[0] ? run->dataset : "?",
            run->method[0] ? run->method : "?", run->tasks, run->finished ? "" : " (unfinished: no summary line)");
    if (run->tasks > 0) {
        fprintf(f, "- accuracy after the last task: ");
        put_percent(f, analyze_last_accuracy(run));
        fprintf(f, " %%, average over tasks: ");
        put_percent(f, analyze_average_accuracy(run));
        fprintf(f, " %%, forgetting after the last task: ");
        put_percent(f, run->forgetting[run->tasks - 1]);
        fprintf(f, " %%\n");
    }
    long nonfinite = 0;
    for (int t = 0; t < run->tasks; t++)
        nonfinite += run->nonfinite[t];
    fprintf(f, "- non-finite gradient or optimizer events: %ld\n", nonfinite);
    fprintf(f, "- accuracy source: %s\n", run->metrics_source ? run->metrics_source : "none");
    if (!run->has_checkpoint)
        fprintf(f, "- no checkpoint.h5: parameter statistics and lambda are not available\n");
    fprintf(f, "\nTables:");
    static const char *const checkpoint_tables[] = {"param_stats.csv", "param_histograms.csv",
                                                    "modality_summary.csv", "lambda.csv"};
    if (run->has_checkpoint)
        for (int i = 0; i < 4; i++)
            fprintf(f, " [%s](%s%s)", checkpoint_tables[i], prefix, checkpoint_tables[i]);
    fprintf(f, " [accuracy_matrix.csv](%saccuracy_matrix.csv) [metrics_per_task.csv](%smetrics_per_task.csv)\n\n",
            prefix, prefix);
    for (int i = 0; i < pngs->count; i++)
        fprintf(f, "![%s](%s)\n\n", pngs->names[i], pngs->names[i]);
}

static int write_report(const char *out_dir, const analyze_run *runs, int count, char **swept, int swept_count,
                        const analyze_file_list *run_pngs, const analyze_file_list *sweep_pngs, const char *plot_note)
{
    char path[4400];
    FILE *f = analyze_open(out_dir, "report.md", path, sizeof path);
    if (f == NULL)
        return -1;
    fprintf(f, "# dmnsp analysis\n\nWritten by `dmnsp analyze` (dmnsp %s) from %d run%s. Column meanings are in "
               "analysis/README.md of the dmnsp sources.\n\n",
            DMNSP_VERSION, count, count == 1 ? "" : "s");
    if (plot_note != NULL)
        fprintf(f, "Plots: %s\n\n", plot_note);

    if (count > 1) {
        fprintf(f, "## Sweep\n\n[sweep.csv](sweep.csv)\n\n| run |");
        for (int k = 0; k < swept_count; k++)
            fprintf(f, " %s |", swept[k]);
        fprintf(f, " last %% | avg %% | avg forgetting %% | finished |\n|---|");
        for (int k = 0; k < swept_count; k++)
            fprintf(f, "---|");
        fprintf(f, "---|---|---|---|\n");
        for (int r = 0; r < count; r++) {
            const analyze_run *run = &runs[r];
            fprintf(f, "| %s |", run->name);
            for (int k = 0; k < swept_count; k++) {
                const char *value = analyze_setting_value(run, swept[k]);
                fprintf(f, " %s |", value ? value : "");
            }
            fputc(' ', f);
            put_percent(f, analyze_last_accuracy(run));
            fprintf(f, " | ");
            put_percent(f, analyze_average_accuracy(run));
            fprintf(f, " | ");
            put_percent(f, run->finished ? run->avg_forgetting : NAN);
            fprintf(f, " | %s |\n", run->finished ? "yes" : "no");
        }
        fprintf(f, "\n");
        for (int i = 0; i < sweep_pngs->count; i++)
            fprintf(f, "![%s](%s)\n\n", sweep_pngs->names[i], sweep_pngs->names[i]);
    }
    for (int r = 0; r < count; r++) {
        char subfolder[300], prefix[310];
        run_subfolder(runs, count, r, subfolder, sizeof subfolder);
        snprintf(prefix, sizeof prefix, "%s%s", subfolder, subfolder[0] ? "/" : "");
        report_run(f, &runs[r], prefix, &run_pngs[r]);
    }
    return analyze_close(f, path);
}

/* ---------------------------------------------------------------------------
 * gnuplot lookup
 * ------------------------------------------------------------------------- */
static int program_available(const char *program)
{
    if (strchr(program, '/') != NULL)
        return access(program, X_OK) == 0;
    const char *path = getenv("PATH");
    if (path == NULL)
        return 0;
    char candidate[4400];
    while (*path) {
        size_t length = strcspn(path, ":");
        snprintf(candidate, sizeof candidate, "%.*s/%s", (int)length, path, program);
        if (length > 0 && access(candidate, X_OK) == 0)
            return 1;
        path += length;
        if (*path == ':')
            path++;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * The command
 * ------------------------------------------------------------------------- */
typedef struct {
    const char **run_dirs;
    int run_count;
    char **expanded; /* malloc'd run folders found under sweep roots */
    int expanded_count;
    const char *sweep_root; /* the single argument, when it was a sweep root */
    const char *out_dir;
    const char *gnuplot;
    int plots;
} analyze_options;

static int has_run_files(const char *dir)
{
    char path[4500];
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    if (access(path, F_OK) == 0)
        return 1;
    snprintf(path, sizeof path, "%s/checkpoint.h5", dir);
    return access(path, F_OK) == 0;
}

static int skip_hidden(const struct dirent *entry)
{
    return entry->d_name[0] != '.';
}

/* Appends DIR to the growing array *DIRS; 0 or -1. */
static int push_dir(const char ***dirs, int *count, int *capacity, const char *dir)
{
    if (*count == *capacity) {
        int grown_capacity = *capacity > 0 ? *capacity * 2 : 8;
        const char **grown = realloc(*dirs, (size_t)grown_capacity * sizeof *grown);
        if (grown == NULL)
            return dmnsp_fail("analyze: out of memory");
        *dirs = grown;
        *capacity = grown_capacity;
    }
    (*dirs)[(*count)++] = dir;
    return 0;
}

/* A folder without metrics.json or checkpoint.h5 whose subfolders have
 * them (the root of a sweep) stands for those subfolders, in name order.
 * The subfolder paths are owned by options->expanded. */
static int expand_sweep_roots(analyze_options *options)
{
    const char **dirs = NULL;
    int count = 0, capacity = 0, owned_capacity = 0, status = 0;
    for (int i = 0; status == 0 && i < options->run_count; i++) {
        const char *given = options->run_dirs[i];
        struct dirent **entries = NULL;
        int entry_count = has_run_files(given) ? 0 : scandir(given, &entries, skip_hidden, alphasort);
        int found = 0;
        for (int e = 0; e < entry_count; e++) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", given, entries[e]->d_name);
            free(entries[e]);
            if (status != 0 || !has_run_files(path))
                continue;
            char *copy = strdup(path);
            status = copy != NULL ? push_dir(&dirs, &count, &capacity, copy) : dmnsp_fail("analyze: out of memory");
            if (status == 0)
                status = push_dir((const char ***)&options->expanded, &options->expanded_count, &owned_capacity, copy);
            else
                free(copy);
            found++;
        }
        free(entries);
        if (status == 0 && found == 0)
            status = push_dir(&dirs, &count, &capacity, given);
        if (status == 0 && found > 0 && options->run_count == 1)
            options->sweep_root = given;
    }
    free(options->run_dirs);
    options->run_dirs = dirs;
    options->run_count = count;
    return status;
}

static int parse_options(int argc, char **argv, analyze_options *options)
{
    memset(options, 0, sizeof *options);
    options->gnuplot = "gnuplot";
    options->plots = 1;
    options->run_dirs = calloc((size_t)(argc > 0 ? argc : 1), sizeof *options->run_dirs);
    if (options->run_dirs == NULL) {
        fprintf(stderr, "dmnsp: error: out of memory\n");
        return 1;
    }
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(analyze_usage, stdout);
            return -1;
        } else if (strcmp(argv[i], "--out") == 0 || strcmp(argv[i], "--gnuplot") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "dmnsp analyze: %s needs a value\n\n%s", argv[i], analyze_usage);
                return 2;
            }
            if (strcmp(argv[i], "--out") == 0)
                options->out_dir = argv[++i];
            else
                options->gnuplot = argv[++i];
        } else if (strcmp(argv[i], "--no-plots") == 0) {
            options->plots = 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "dmnsp analyze: unknown option '%s'\n\n%s", argv[i], analyze_usage);
            return 2;
        } else {
            options->run_dirs[options->run_count++] = argv[i];
        }
    }
    if (options->run_count == 0) {
        fprintf(stderr, "dmnsp analyze: no run folder given\n\n%s", analyze_usage);
        return 2;
    }
    return 0;
}

static int analyze_all(const analyze_options *options, analyze_run *runs, analyze_file_list *run_pngs,
                       analyze_file_list *sweep_pngs)
{
    /* With several folders, one that contains no run files (a run that failed
     * at its start) is skipped instead of stopping the whole analysis. */
    int count = 0;
    for (int i = 0; i < options->run_count; i++) {
        const char *dir = options->run_dirs[i];
        if (options->run_count > 1 && !has_run_files(dir)) {
            log_warn("analyze: %s: skipped because checkpoint.h5 and metrics.json are missing", dir);
            continue;
        }
        analyze_run *run = &runs[count++];
        if (analyze_load_run(dir, run) != 0)
            return -1;
        log_info("analyze: %s: %d tasks (%s), checkpoint %s", run->dir, run->tasks,
                 run->finished ? "finished" : "unfinished", run->has_checkpoint ? "read" : "missing");
    }
    if (count == 0)
        return dmnsp_fail("analyze: checkpoint.h5 and metrics.json are missing in all %d folders", options->run_count);
    make_names_unique(runs, count);

    char out_dir[4200];
    if (options->out_dir != NULL)
        snprintf(out_dir, sizeof out_dir, "%s", options->out_dir);
    else if (options->sweep_root != NULL)
        snprintf(out_dir, sizeof out_dir, "%s/analysis", options->sweep_root);
    else if (count == 1)
        snprintf(out_dir, sizeof out_dir, "%s/analysis", runs[0].dir);
    else
        snprintf(out_dir, sizeof out_dir, "analysis");

    const char *plot_note = NULL;
    int plots = options->plots;
    if (!plots) {
        plot_note = "not drawn (--no-plots)";
    } else if (!program_available(options->gnuplot)) {
        plots = 0;
        plot_note = "not drawn: gnuplot was not found (install gnuplot-nox, or pass --gnuplot PROGRAM)";
        log_warn("analyze: %s not found; writing CSV files and report.md without plots", options->gnuplot);
    }

    for (int r = 0; r < count; r++) {
        char subfolder[300], dir[4600], plots_dir[4700];
        run_subfolder(runs, count, r, subfolder, sizeof subfolder);
        snprintf(dir, sizeof dir, "%s%s%s", out_dir, subfolder[0] ? "/" : "", subfolder);
        snprintf(plots_dir, sizeof plots_dir, "%s/plots", dir);
        DMNSP_TRY(rundir_make_folders(plots ? plots_dir : dir));
        DMNSP_TRY(analyze_write_run_csv(&runs[r], dir));
        if (plots) {
            analyze_file_list pngs = {NULL, 0};
            int status = analyze_plot_run(&runs[r], dir, options->gnuplot, &pngs);
            /* report.md lives in OUT, so a run's PNGs are linked through its subfolder. */
            for (int i = 0; status == 0 && i < pngs.count; i++) {
                char linked[700];
                snprintf(linked, sizeof linked, "%s%s%s", subfolder, subfolder[0] ? "/" : "", pngs.names[i]);
                status = analyze_list_add(&run_pngs[r], linked);
            }
            analyze_list_free(&pngs);
            DMNSP_TRY(status);
        }
    }

    int swept_count = 0;
    char **swept = NULL;
    if (count > 1) {
        swept = find_swept_keys(runs, count, &swept_count);
        if (swept == NULL)
            return dmnsp_fail("analyze: out of memory");
        char sweep_plots[4300];
        snprintf(sweep_plots, sizeof sweep_plots, "%s/plots", out_dir);
        int status = analyze_write_sweep_csv(runs, count, swept, swept_count, out_dir);
        if (status == 0 && plots)
            status = rundir_make_folders(sweep_plots);
        if (status == 0 && plots)
            status = analyze_plot_sweep(runs, count, out_dir, options->gnuplot, sweep_pngs);
        if (status != 0) {
            free(swept);
            return -1;
        }
    }
    int status = write_report(out_dir, runs, count, swept, swept_count, run_pngs, sweep_pngs, plot_note);
    free(swept);
    if (status == 0)
        log_info("analyze: wrote %s/report.md", out_dir);
    return status;
}

int cmd_analyze(int argc, char **argv)
{
    analyze_options options;
    int status = parse_options(argc, argv, &options);
    if (status != 0) {
        free(options.run_dirs);
        return status < 0 ? 0 : status;
    }

    if (expand_sweep_roots(&options) != 0) {
        fprintf(stderr, "dmnsp: error: %s\n", dmnsp_last_error());
        free(options.run_dirs);
        return 1;
    }
    int count = options.run_count;
    analyze_run *runs = calloc((size_t)count, sizeof *runs);
    analyze_file_list *run_pngs = calloc((size_t)count, sizeof *run_pngs);
    analyze_file_list sweep_pngs = {NULL, 0};
    if (runs == NULL || run_pngs == NULL)
        status = dmnsp_fail("analyze: out of memory");
    else
        status = analyze_all(&options, runs, run_pngs, &sweep_pngs);
    if (status != 0)
        fprintf(stderr, "dmnsp: error: %s\n", dmnsp_last_error());

    for (int r = 0; runs != NULL && r < count; r++) {
        analyze_free_run(&runs[r]);
        analyze_list_free(&run_pngs[r]);
    }
    analyze_list_free(&sweep_pngs);
    free(runs);
    free(run_pngs);
    for (int i = 0; i < options.expanded_count; i++)
        free(options.expanded[i]);
    free(options.expanded);
    free(options.run_dirs);
    return status == 0 ? 0 : 1;
}

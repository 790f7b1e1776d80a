/* dmnsp analyze on two fake three-task runs written through the checkpoint
 * API: run_a has metrics.json (with a summary line) and config.yaml, run_b
 * only its checkpoint, so its metrics are derived from the accuracy rows.
 *
 *   test_analyze_run tables   CSV headers, row counts and derived values
 *   test_analyze_run plots    PNG files (skipped when gnuplot is missing)
 */
#include "dmnsp/checkpoint.h"
#include "dmnsp/error.h"
#include "fake_run.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *metrics_a =
    "{\"task\": 0, \"acc\": 85.00, \"avg_acc\": 85.00, \"forgetting\": 0.00, \"acc_per_task\": [90.00], "
    "\"bwt\": 0.00, \"fwt\": 0.00, \"nonfinite\": 0}\n"
    "{\"task\": 1, \"acc\": 84.00, \"avg_acc\": 84.50, \"forgetting\": 10.00, \"acc_per_task\": [80.00, 90.25], "
    "\"bwt\": -10.00, \"fwt\": 21.00, \"nonfinite\": 0}\n"
    "{\"task\": 2, \"acc\": 83.00, \"avg_acc\": 84.00, \"forgetting\": 15.00, \"acc_per_task\": [70.00, 80.25, "
    "90.00], \"bwt\": -13.33, \"fwt\": 21.50, \"nonfinite\": 7}\n"
    "{\"summary\": true, \"last\": 83.00, \"avg\": 84.00, \"avg_forgetting\": 8.33, \"dataset\": \"fake\", "
    "\"method\": \"DMNSP\", \"wall_seconds\": 12.5, \"ranks\": 2}\n";

static const char *config_a = "dataset: fake\nmethod: DMNSP\ntop_select: 2\nlambda_scale: 10\n"
                              "nullspace:\n  solver: lapack\noutput_dir: runs/run_a\n";
static const char *config_b = "dataset: fake\nmethod: DMNSP\ntop_select: 2\nlambda_scale: 30\n"
                              "nullspace:\n  solver: lapack\noutput_dir: runs/run_b\n";

/* Reads PATH into lines; returns the number of lines (-1 when missing). */
static int read_lines(const char *path, char ***lines)
{
    *lines = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        test_report_failure(__FILE__, __LINE__, "%s: cannot open", path);
        return -1;
    }
    int count = 0, capacity = 0;
    char buffer[65536];
    while (fgets(buffer, sizeof buffer, f) != NULL) {
        buffer[strcspn(buffer, "\n")] = '\0';
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 64;
            *lines = realloc(*lines, (size_t)capacity * sizeof **lines);
        }
        (*lines)[count++] = strdup(buffer);
    }
    fclose(f);
    return count;
}

static void free_lines(char **lines, int count)
{
    for (int i = 0; i < count; i++)
        free(lines[i]);
    free(lines);
}

/* Checks the header and the number of data rows of a CSV file. */
static void check_csv(const char *path, const char *header, int rows)
{
    char **lines = NULL;
    int count = read_lines(path, &lines);
    if (count < 1) {
        test_report_failure(__FILE__, __LINE__, "%s: empty or missing", path);
        return;
    }
    if (strcmp(lines[0], header) != 0)
        test_report_failure(__FILE__, __LINE__, "%s: header '%s', expected '%s'", path, lines[0], header);
    if (count - 1 != rows)
        test_report_failure(__FILE__, __LINE__, "%s: %d data rows, expected %d", path, count - 1, rows);
    free_lines(lines, count);
}

/* Field COLUMN (0-based) of data row ROW (0-based) as a number; NAN if empty. */
static double csv_number(const char *path, int row, int column)
{
    char **lines = NULL;
    int count = read_lines(path, &lines);
    double value = NAN;
    if (row + 1 < count) {
        char *cursor = lines[row + 1];
        for (int c = 0; c < column && cursor != NULL; c++) {
            cursor = strchr(cursor, ',');
            if (cursor != NULL)
                cursor++;
        }
        if (cursor != NULL && *cursor != ',' && *cursor != '\0')
            value = strtod(cursor, NULL);
    }
    free_lines(lines, count);
    return value;
}

static void check_png(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        test_report_failure(__FILE__, __LINE__, "%s: missing", path);
        return;
    }
    unsigned char signature[8] = {0};
    size_t got = fread(signature, 1, 8, f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (got != 8 || memcmp(signature, png, 8) != 0)
        test_report_failure(__FILE__, __LINE__, "%s: no PNG signature", path);
    if (size <= 2048)
        test_report_failure(__FILE__, __LINE__, "%s: only %ld bytes, expected a real plot (> 2048)", path, size);
    else
        printf("%s: %ld bytes\n", path, size);
}

static void write_fake_runs(void)
{
    mkdir("runs", 0755);
    mkdir("runs/run_a", 0755);
    mkdir("runs/run_b", 0755);
    mkdir("runs/empty", 0755);
    char *output = NULL;
    CHECK_EQ_INT(test_run_command("rm -rf runs/analysis", &output), 0);
    free(output);
    remove("runs/run_a/checkpoint.h5");
    remove("runs/run_b/checkpoint.h5");
    /* run_a has the layout of files written before text null spaces were
     * stored; run_b adds them (DMNSP-both) and a task in progress. */
    fake_run run;
    CHECK_OK(fake_run_init(&run, 3));
    CHECK_OK(fake_run_write(&run, "runs/run_a/checkpoint.h5", config_a));
    run.text_nullspace = 1;
    CHECK_OK(fake_run_write(&run, "runs/run_b/checkpoint.h5", config_b));
    checkpoint_header header = {config_b, "v-test", 2};
    checkpoint_optimizer progress = {3, 5, run.moments[0], run.moments[1], run.optimizer_lambda,
                                     run.optimizer_text_lambda, 0};
    CHECK_OK(checkpoint_save_progress("runs/run_b/checkpoint.h5", &header, &run.config, run.snapshots[2], &progress));
    fake_run_free(&run);
    CHECK_OK(test_write_file("runs/run_a/metrics.json", metrics_a, strlen(metrics_a)));
    CHECK_OK(test_write_file("runs/run_a/config.yaml", config_a, strlen(config_a)));
}

static int run_analyze(const char *arguments, char **output)
{
    char command[4096];
    snprintf(command, sizeof command, "%s analyze %s", test_env("DMNSP_BINARY", "dmnsp"), arguments);
    int status = test_run_command(command, output);
    printf("$ %s -> %d\n%s", command, status, *output ? *output : "");
    return status;
}

static void check_tables(void)
{
    char *output = NULL;
    CHECK_EQ_INT(run_analyze("runs/run_a runs/run_b --out out_tables --no-plots", &output), 0);
    free(output);

    /* 3 tasks x (3 visual + 2 text blocks) x 2 tensors = 30 statistics rows. */
    const char *runs[2] = {"out_tables/run_a", "out_tables/run_b"};
    char path[512];
    for (int r = 0; r < 2; r++) {
        snprintf(path, sizeof path, "%s/param_stats.csv", runs[r]);
        check_csv(path, "task,modality,block,tensor,mean,std,min,max,norm,delta_norm,nonfinite_count", 30);
        snprintf(path, sizeof path, "%s/param_histograms.csv", runs[r]);
        check_csv(path, "task,modality,block,tensor,bin,left_edge,right_edge,count", 30 * 64);
        snprintf(path, sizeof path, "%s/modality_summary.csv", runs[r]);
        check_csv(path, "task,modality,tensor,mean_std,total_norm,total_delta_norm,relative_change", 12);
        snprintf(path, sizeof path, "%s/lambda.csv", runs[r]);
        check_csv(path, "task,projected_block,nullspace_block_00,nullspace_block_01,nullspace_block_02", 6);
        snprintf(path, sizeof path, "%s/accuracy_matrix.csv", runs[r]);
        check_csv(path, "after_task,task_00,task_01,task_02", 3);
        snprintf(path, sizeof path, "%s/metrics_per_task.csv", runs[r]);
        check_csv(path, "task,acc,avg_acc,forgetting,bwt,fwt,nonfinite_count", 3);
    }
    check_csv("out_tables/sweep.csv",
              "run,lambda_scale,dataset,method,finished,tasks,last,avg,avg_forgetting,forgetting_last,nonfinite_total,"
              "wall_seconds,"
              "ranks,run_dir",
              2);

    /* Values: task 0 statistics compare with nothing, so delta_norm is 0. */
    CHECK_NEAR(csv_number("out_tables/run_a/param_stats.csv", 0, 9), 0.0, 0.0);
    CHECK(csv_number("out_tables/run_a/param_stats.csv", 10, 9) > 0.0);
    CHECK_NEAR(csv_number("out_tables/run_a/accuracy_matrix.csv", 2, 2), 80.25, 1e-9);
    CHECK(isnan(csv_number("out_tables/run_a/accuracy_matrix.csv", 0, 2)));
    CHECK_NEAR(csv_number("out_tables/run_a/metrics_per_task.csv", 2, 4), -13.33, 1e-9);

    /* run_b has no metrics.json: forgetting, bwt and fwt come from its rows
     * R[t][j] = 90 - 10 (t - j) (+0.25 for odd j) and forward accuracies 21, 22. */
    const char *derived = "out_tables/run_b/metrics_per_task.csv";
    CHECK_NEAR(csv_number(derived, 2, 1), 83.0, 1e-9);
    CHECK_NEAR(csv_number(derived, 2, 2), 84.0, 1e-9);
    CHECK_NEAR(csv_number(derived, 2, 3), 15.0, 1e-9);
    CHECK_NEAR(csv_number(derived, 2, 4), -40.0 / 3.0, 1e-7);
    CHECK_NEAR(csv_number(derived, 2, 5), 21.5, 1e-9);
    CHECK_NEAR(csv_number(derived, 2, 6), 7.0, 0.0);
    CHECK_NEAR(csv_number(derived, 0, 3), 0.0, 0.0);

    /* Sweep rows: run_a finished with its summary values, run_b not, and
     * run_b's lambda_scale comes from the checkpoint's config attribute. */
    CHECK_NEAR(csv_number("out_tables/sweep.csv", 0, 1), 10.0, 0.0);
    CHECK_NEAR(csv_number("out_tables/sweep.csv", 1, 1), 30.0, 0.0);
    CHECK_NEAR(csv_number("out_tables/sweep.csv", 0, 4), 1.0, 0.0);
    CHECK_NEAR(csv_number("out_tables/sweep.csv", 1, 4), 0.0, 0.0);
    CHECK_NEAR(csv_number("out_tables/sweep.csv", 0, 8), 8.33, 1e-9);
    CHECK_NEAR(csv_number("out_tables/sweep.csv", 1, 6), 83.0, 1e-9);
    CHECK(isnan(csv_number("out_tables/sweep.csv", 1, 8)));
    CHECK_NEAR(csv_number("out_tables/sweep.csv", 1, 9), 15.0, 1e-9);

    FILE *report = fopen("out_tables/report.md", "r");
    CHECK(report != NULL);
    if (report != NULL) {
        char text[8192] = "";
        size_t got = fread(text, 1, sizeof text - 1, report);
        text[got] = '\0';
        fclose(report);
        CHECK_STR_CONTAINS(text, "[sweep.csv](sweep.csv)");
        CHECK_STR_CONTAINS(text, "[lambda.csv](run_b/lambda.csv)");
        CHECK_STR_CONTAINS(text, "not drawn (--no-plots)");
    }

    /* A folder of run folders (a sweep root) stands for its runs. */
    output = NULL;
    CHECK_EQ_INT(run_analyze("runs --no-plots", &output), 0);
    free(output);
    check_csv("runs/analysis/sweep.csv",
              "run,lambda_scale,dataset,method,finished,tasks,last,avg,avg_forgetting,forgetting_last,nonfinite_total,"
              "wall_seconds,ranks,run_dir",
              2);

    /* The same run given twice gets two names, two subfolders and two rows. */
    output = NULL;
    CHECK_EQ_INT(run_analyze("runs/run_a runs/run_a --out out_twice --no-plots", &output), 0);
    free(output);
    char *table = test_read_file("out_twice/sweep.csv", NULL);
    CHECK(table != NULL);
    CHECK_STR_CONTAINS(table ? table : "", "\nrun_a,");
    CHECK_STR_CONTAINS(table ? table : "", "\nrun_a_1,");
    free(table);
    check_csv("out_twice/run_a_1/metrics_per_task.csv", "task,acc,avg_acc,forgetting,bwt,fwt,nonfinite_count", 3);

    /* Among several folders, one without run files is skipped. */
    output = NULL;
    CHECK_EQ_INT(run_analyze("runs/run_a runs/empty --out out_skip --no-plots", &output), 0);
    CHECK_STR_CONTAINS(output ? output : "", "runs/empty: skipped");
    free(output);
    check_csv("out_skip/metrics_per_task.csv", "task,acc,avg_acc,forgetting,bwt,fwt,nonfinite_count", 3);

    /* Bad input: a folder without run files, and a damaged metrics.json. */
    output = NULL;
    CHECK_EQ_INT(run_analyze("runs/empty --out out_empty --no-plots", &output), 1);
    CHECK_STR_CONTAINS(output ? output : "", "runs/empty: neither checkpoint.h5 nor metrics.json");
    free(output);
    const char *damaged = "{\"task\": 0, \"acc\": 85.00, \"avg_acc\": 85.00, \"forgetting\": 0.00, "
                          "\"acc_per_task\": [90.00], \"bwt\": 0.00, \"fwt\": 0.00, \"nonfinite\": 0}\n"
                          "{\"task\": 1, \"acc\": \n";
    CHECK_OK(test_write_file("runs/empty/metrics.json", damaged, strlen(damaged)));
    output = NULL;
    CHECK_EQ_INT(run_analyze("runs/empty --out out_empty --no-plots", &output), 1);
    CHECK_STR_CONTAINS(output ? output : "", "runs/empty/metrics.json: line 2");
    free(output);
    remove("runs/empty/metrics.json");
}

static void check_plots(void)
{
    char *output = NULL;
    if (test_run_command("gnuplot --version", &output) != 0) {
        free(output);
        test_skip("gnuplot is not installed (Debian package gnuplot-nox)");
    }
    free(output);
    output = NULL;
    CHECK_EQ_INT(run_analyze("runs/run_a runs/run_b --out out_plots", &output), 0);
    free(output);
    const char *names[] = {"param_std.png",      "param_histograms_task_02.png", "delta_norm.png",
                           "lambda_task_01.png", "lambda_task_02.png",           "accuracy_matrix.png",
                           "forgetting.png"};
    char path[512];
    for (int r = 0; r < 2; r++)
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            snprintf(path, sizeof path, "out_plots/run_%c/%s", r == 0 ? 'a' : 'b', names[i]);
            check_png(path);
        }
    check_png("out_plots/sweep.png");
    struct stat info;
    CHECK(stat("out_plots/lambda_task_00.png", &info) != 0);
    CHECK(stat("out_plots/run_a/lambda_task_00.png", &info) != 0);

    /* One run: outputs go straight into --out, without a run subfolder. */
    output = NULL;
    CHECK_EQ_INT(run_analyze("runs/run_a --out out_single", &output), 0);
    free(output);
    check_png("out_single/param_std.png");
    check_csv("out_single/metrics_per_task.csv", "task,acc,avg_acc,forgetting,bwt,fwt,nonfinite_count", 3);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "tables";
    write_fake_runs();
    if (strcmp(mode, "plots") == 0)
        check_plots();
    else
        check_tables();
    return test_finish(strcmp(mode, "plots") == 0 ? "test_analyze_plots" : "test_analyze_tables");
}

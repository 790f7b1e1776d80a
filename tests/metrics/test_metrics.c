/* Metrics tests on a hand-made 3-task accuracy matrix whose values are
 * worked out by hand below, plus metrics.json writing, reading back,
 * restoring and the reader's errors. */
#include "dmnsp/error.h"
#include "dmnsp/metrics.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Test sets: task 0 has 100 samples, task 1 50, task 2 200.
 *   after task 0: R00 = 90/100 = 90      R01 = 10/50 = 20 (before training task 1)
 *   after task 1: R10 = 70/100 = 70      R11 = 40/50 = 80      R12 = 30/200 = 15
 *   after task 2: R20 = 60/100 = 60      R21 = 45/50 = 90      R22 = 150/200 = 75 */
static void fill_matrix(metrics_matrix *m)
{
    CHECK_OK(metrics_init(m, 3));
    CHECK_OK(metrics_record(m, 0, 0, 90, 100));
    CHECK_OK(metrics_record(m, 0, 1, 10, 50));
    CHECK_OK(metrics_record(m, 1, 0, 70, 100));
    CHECK_OK(metrics_record(m, 1, 1, 40, 50));
    CHECK_OK(metrics_record(m, 1, 2, 30, 200));
    CHECK_OK(metrics_record(m, 2, 0, 60, 100));
    CHECK_OK(metrics_record(m, 2, 1, 45, 50));
    CHECK_OK(metrics_record(m, 2, 2, 150, 200));
    CHECK_OK(metrics_set_nonfinite(m, 2, 3));
}

static void test_metrics_by_hand(void)
{
    metrics_matrix m;
    fill_matrix(&m);
    metrics_step step;

    CHECK_OK(metrics_compute(&m, 0, &step));
    CHECK_NEAR(step.acc, 90.0, 1e-12);
    CHECK_NEAR(step.avg_acc, 90.0, 1e-12);
    CHECK_NEAR(step.forgetting, 0.0, 1e-12);
    CHECK_NEAR(step.bwt, 0.0, 1e-12);
    CHECK_NEAR(step.fwt, 0.0, 1e-12);

    /* acc = (70 + 40) / 150; forgetting = 90 - 70; bwt = R10 - R00; fwt = R01. */
    CHECK_OK(metrics_compute(&m, 1, &step));
    CHECK_NEAR(step.acc, 110.0 / 150.0 * 100.0, 1e-12);
    CHECK_NEAR(step.avg_acc, (90.0 + 110.0 / 1.5) / 2.0, 1e-12);
    CHECK_NEAR(step.forgetting, 20.0, 1e-12);
    CHECK_NEAR(step.bwt, -20.0, 1e-12);
    CHECK_NEAR(step.fwt, 20.0, 1e-12);

    /* acc = 255 / 350; forgetting = ((90 - 60) + (80 - 90)) / 2;
     * bwt = ((70 - 90) + (60 - 90) + (90 - 80)) / 3; fwt = (20 + 15) / 2. */
    CHECK_OK(metrics_compute(&m, 2, &step));
    CHECK_NEAR(step.acc, 255.0 / 350.0 * 100.0, 1e-12);
    CHECK_NEAR(step.avg_acc, (90.0 + 110.0 / 1.5 + 25500.0 / 350.0) / 3.0, 1e-12);
    CHECK_NEAR(step.forgetting, 10.0, 1e-12);
    CHECK_NEAR(step.bwt, -40.0 / 3.0, 1e-12);
    CHECK_NEAR(step.fwt, 17.5, 1e-12);

    CHECK_NEAR(metrics_accuracy(&m, 1, 2), 15.0, 1e-12);
    CHECK(isnan(metrics_accuracy(&m, 0, 2)));

    CHECK_FAILS_WITH(metrics_record(&m, 0, 2, 1, 10), "evaluated task 2 after task 0 (expected 0..1)");
    CHECK_FAILS_WITH(metrics_record(&m, 3, 0, 1, 10), "task 3 is out of range (3 tasks)");
    CHECK_FAILS_WITH(metrics_record(&m, 1, 0, 11, 10), "11 correct of 10 samples is invalid");
    metrics_free(&m);
}

static void test_missing_entry_gives_null(void)
{
    metrics_matrix m;
    CHECK_OK(metrics_init(&m, 2));
    CHECK_OK(metrics_record(&m, 0, 0, 5, 10));
    CHECK_OK(metrics_record(&m, 1, 0, 4, 10));
    CHECK_OK(metrics_record(&m, 1, 1, 8, 10));
    metrics_step step;
    CHECK_OK(metrics_compute(&m, 1, &step));
    CHECK(isnan(step.fwt)); /* R01 was never recorded */
    CHECK_NEAR(step.acc, 60.0, 1e-12);
    CHECK_OK(metrics_write_json("missing.json", &m, 2, NULL));
    metrics_file file;
    CHECK_OK(metrics_read_json("missing.json", &file));
    CHECK_EQ_INT(file.line_count, 2);
    if (file.line_count == 2) {
        CHECK(isnan(file.lines[1].fwt));
        CHECK_EQ_INT(file.lines[0].next_task_samples, -1);
    }
    metrics_file_free(&file);
    metrics_free(&m);
}

static void test_json_write_read_restore(void)
{
    metrics_matrix m;
    fill_matrix(&m);
    CHECK_OK(metrics_write_json("metrics.json", &m, 2, NULL));
    char *text = test_read_file("metrics.json", NULL);
    CHECK(text != NULL);
    if (text != NULL) {
        CHECK_STR_CONTAINS(text, "{\"task\": 0, \"acc\": 90.00, \"avg_acc\": 90.00, \"forgetting\": 0.00, "
                                 "\"acc_per_task\": [90.00], \"bwt\": 0.00, \"fwt\": 0.00, \"nonfinite\": 0");
        CHECK_STR_CONTAINS(text, "{\"task\": 1, \"acc\": 73.33, \"avg_acc\": 81.67, \"forgetting\": 20.00, "
                                 "\"acc_per_task\": [70.00, 80.00], \"bwt\": -20.00, \"fwt\": 20.00");
        CHECK(strstr(text, "summary") == NULL);
    }
    free(text);

    metrics_run_info info = {"cifar100", "DMNSP", 12.5, 2};
    CHECK_OK(metrics_write_json("metrics.json", &m, 3, &info));
    CHECK(access("metrics.json.tmp", F_OK) != 0);
    text = test_read_file("metrics.json", NULL);
    if (text != NULL) {
        CHECK_STR_CONTAINS(text, "{\"task\": 2, \"acc\": 72.86, \"avg_acc\": 78.73, \"forgetting\": 10.00, "
                                 "\"acc_per_task\": [60.00, 90.00, 75.00], \"bwt\": -13.33, \"fwt\": 17.50, "
                                 "\"nonfinite\": 3");
        CHECK_STR_CONTAINS(text, "{\"summary\": true, \"last\": 72.86, \"avg\": 78.73, \"avg_forgetting\": 10.00, "
                                 "\"dataset\": \"cifar100\", \"method\": \"DMNSP\", \"wall_seconds\": 12.50, "
                                 "\"ranks\": 2}\n");
    }
    free(text);

    metrics_file file;
    CHECK_OK(metrics_read_json("metrics.json", &file));
    CHECK_EQ_INT(file.line_count, 3);
    CHECK(file.has_summary);
    CHECK_NEAR(file.last, 72.86, 1e-9);
    CHECK_NEAR(file.avg_forgetting, 10.0, 1e-9);
    CHECK_EQ_INT(file.ranks, 2);
    CHECK(strcmp(file.dataset, "cifar100") == 0);
    CHECK(strcmp(file.method, "DMNSP") == 0);
    if (file.line_count == 3) {
        CHECK_NEAR(file.lines[2].bwt, -13.33, 1e-9);
        CHECK_NEAR(file.lines[2].acc_per_task[1], 90.0, 1e-9);
        CHECK_EQ_INT(file.lines[2].nonfinite, 3);
        CHECK_EQ_INT(file.lines[1].next_task_correct, 30);
        CHECK_EQ_INT(file.lines[1].next_task_samples, 200);
    }

    /* Restoring gives back the same counts, so the same metrics. */
    metrics_matrix restored;
    CHECK_OK(metrics_restore(&restored, 3, &file));
    for (int i = 0; i < 3; i++) {
        metrics_step a, b;
        CHECK_OK(metrics_compute(&m, i, &a));
        CHECK_OK(metrics_compute(&restored, i, &b));
        CHECK_NEAR(a.acc, b.acc, 1e-12);
        CHECK_NEAR(a.forgetting, b.forgetting, 1e-12);
        CHECK_NEAR(a.bwt, b.bwt, 1e-12);
        CHECK_NEAR(a.fwt, b.fwt, 1e-12);
    }
    CHECK_EQ_INT(restored.nonfinite[2], 3);
    metrics_free(&restored);
    CHECK_FAILS_WITH(metrics_restore(&restored, 2, &file), "the file has 3 task lines but the run has 2 tasks");
    metrics_file_free(&file);
    metrics_free(&m);
}

static void test_reader_errors(void)
{
    metrics_file file;
    const char *broken = "{\"task\": 0, \"acc\": 90.00, \"acc_per_task\": [90.00]\n";
    CHECK_OK(test_write_file("broken.json", broken, strlen(broken)));
    CHECK_FAILS_WITH(metrics_read_json("broken.json", &file), "broken.json: line 1, column 50: expected ',' or '}'");

    const char *skipped = "{\"task\": 0, \"acc\": 90.00, \"acc_per_task\": [90.00]}\n"
                          "{\"task\": 2, \"acc\": 90.00, \"acc_per_task\": [90.00, 1, 2]}\n";
    CHECK_OK(test_write_file("skipped.json", skipped, strlen(skipped)));
    CHECK_FAILS_WITH(metrics_read_json("skipped.json", &file), "skipped.json: line 2 is task 2 (expected task 1");

    const char *after = "{\"task\": 0, \"acc\": 90.00, \"acc_per_task\": [90.00]}\n"
                        "{\"summary\": true, \"last\": 90.00}\n"
                        "{\"task\": 1, \"acc\": 90.00, \"acc_per_task\": [90.00, 80.00]}\n";
    CHECK_OK(test_write_file("after.json", after, strlen(after)));
    CHECK_FAILS_WITH(metrics_read_json("after.json", &file), "after.json: line 3 follows the summary line");

    const char *short_array = "{\"task\": 1, \"acc\": 90.00, \"acc_per_task\": [90.00]}\n";
    CHECK_OK(test_write_file("short.json", short_array, strlen(short_array)));
    CHECK_FAILS_WITH(metrics_read_json("short.json", &file), "\"acc_per_task\" length is not task + 1");

    /* Lines without counts can be read but not restored. */
    const char *no_counts = "{\"task\": 0, \"acc\": 90.00, \"acc_per_task\": [90.00]}\n";
    CHECK_OK(test_write_file("no_counts.json", no_counts, strlen(no_counts)));
    CHECK_OK(metrics_read_json("no_counts.json", &file));
    metrics_matrix m;
    CHECK_FAILS_WITH(metrics_restore(&m, 2, &file), "task line 0 has no correct_per_task/samples_per_task counts");
    metrics_file_free(&file);

    CHECK_FAILS_WITH(metrics_read_json("absent.json", &file), "metrics: absent.json: cannot open");
}

int main(void)
{
    test_metrics_by_hand();
    test_missing_entry_gives_null();
    test_json_write_read_restore();
    test_reader_errors();
    return test_finish("test_metrics");
}

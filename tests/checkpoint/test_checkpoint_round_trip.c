/* Round trip: three tasks plus mid-task progress are written through the
 * checkpoint API and every array is read back bit for bit, with and
 * without the text null spaces of DMNSP-both. */
#include "dmnsp/checkpoint.h"
#include "dmnsp/error.h"
#include "fake_run.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *config_yaml = "dataset: fake\nmethod: DMNSP\ntop_select: 2\nlambda_scale: 30\n";

static void check_stats_equal(const char *name, const param_stats *got, const param_stats *want)
{
    CHECK(got->mean == want->mean);
    CHECK(got->std == want->std);
    CHECK(got->min == want->min);
    CHECK(got->max == want->max);
    CHECK(got->norm == want->norm);
    CHECK(got->delta_norm == want->delta_norm);
    CHECK_EQ_INT(got->nonfinite_count, want->nonfinite_count);
    CHECK_EQ_INT(got->finite_count, want->finite_count);
    for (int i = 0; i < PARAM_STATS_BINS; i++)
        CHECK_EQ_INT(got->histogram[i], want->histogram[i]);
    test_compare_doubles(name, got->edges, want->edges, PARAM_STATS_BINS + 1, 0.0, 0.0);
}

/* Compares every block of task T's null space of MODALITY with RUN. */
static void check_nullspace(checkpoint_reader *reader, fake_run *run, int t, clip_modality modality, int keep_bases)
{
    const clip_config *c = &run->config;
    int text = modality == CLIP_TEXT;
    int d = text ? c->text_width : c->vision_width;
    checkpoint_nullspace_info info;
    CHECK_OK(checkpoint_read_nullspace_info(reader, t, modality, &info));
    CHECK_EQ_INT(info.blocks, text ? c->text_layers : c->vision_layers);
    CHECK_EQ_INT(info.d, d);
    CHECK_EQ_INT(info.k, run->k);
    CHECK_EQ_INT(info.has_eigvecs, keep_bases);

    char name[96];
    double eigvals[16];
    float eigvecs[16 * 16], top[16 * 2];
    for (int b = 0; b < info.blocks; b++) {
        CHECK_OK(checkpoint_read_nullspace(reader, t, modality, b, eigvals, keep_bases ? eigvecs : NULL, top));
        snprintf(name, sizeof name, "task %d %s block %d eigvals", t, text ? "text" : "visual", b);
        test_compare_doubles(name, eigvals, text ? run->text_eigvals[t][b] : run->eigvals[t][b], (size_t)d, 0.0,
                             0.0);
        snprintf(name, sizeof name, "task %d %s block %d top", t, text ? "text" : "visual", b);
        test_compare_floats(name, top, text ? run->text_top[t][b] : run->top[t][b], (size_t)d * run->k, 0.0, 0.0);
        if (keep_bases) {
            snprintf(name, sizeof name, "task %d %s block %d eigvecs", t, text ? "text" : "visual", b);
            test_compare_floats(name, eigvecs, text ? run->text_eigvecs[t][b] : run->eigvecs[t][b], (size_t)d * d,
                                0.0, 0.0);
        }
    }
    if (!keep_bases)
        CHECK_FAILS_WITH(checkpoint_read_nullspace(reader, t, modality, 0, NULL, eigvecs, NULL),
                         "no full eigenvectors");
}

static void check_task(checkpoint_reader *reader, fake_run *run, int t, int keep_bases, float *buffer)
{
    const clip_config *c = &run->config;
    char name[64];

    CHECK_OK(checkpoint_read_task_adapters(reader, c, t, buffer));
    snprintf(name, sizeof name, "task %d adapters", t);
    test_compare_floats(name, buffer, run->snapshots[t], run->adapter_count, 0.0, 0.0);

    int *classes = NULL, n_classes = 0;
    CHECK_OK(checkpoint_read_classes(reader, t, &classes, &n_classes));
    CHECK_EQ_INT(n_classes, FAKE_RUN_CLASSES_PER_TASK);
    for (int i = 0; i < n_classes && classes != NULL; i++)
        CHECK_EQ_INT(classes[i], run->classes[t][i]);
    free(classes);

    check_nullspace(reader, run, t, CLIP_VISUAL, keep_bases);
    if (run->text_nullspace) {
        check_nullspace(reader, run, t, CLIP_TEXT, keep_bases);
    } else {
        checkpoint_nullspace_info info;
        CHECK_OK(checkpoint_read_nullspace_info(reader, t, CLIP_TEXT, &info));
        CHECK_EQ_INT(info.blocks, 0);
        CHECK_FAILS_WITH(checkpoint_read_nullspace(reader, t, CLIP_TEXT, 0, NULL, NULL, NULL),
                         "has no text null space");
    }

    float lambda[9];
    int present = -1;
    CHECK_OK(checkpoint_read_lambda(reader, t, lambda, &present));
    CHECK_EQ_INT(present, t > 0);
    if (t > 0) {
        snprintf(name, sizeof name, "task %d lambda", t);
        test_compare_floats(name, lambda, run->lambda[t], 9, 0.0, 0.0);
    }

    checkpoint_task_metrics metrics;
    CHECK_OK(checkpoint_read_metrics(reader, t, &metrics));
    CHECK_EQ_INT(metrics.row_length, t + 1);
    if (metrics.accuracy_row != NULL && metrics.row_length == t + 1) {
        snprintf(name, sizeof name, "task %d accuracy row", t);
        test_compare_doubles(name, metrics.accuracy_row, run->accuracy_rows[t], (size_t)t + 1, 0.0, 0.0);
    }
    CHECK(metrics.accuracy == 85.0 - t);
    CHECK(t == 0 ? isnan(metrics.forward_accuracy) : metrics.forward_accuracy == 20.0 + t);
    CHECK_EQ_INT(metrics.nonfinite_count, t == 2 ? 7 : 0);
    free(metrics.accuracy_row);

    /* Statistics must equal a fresh computation on the same snapshots; the
     * change is measured against task t-1 when the file stores it. */
    int has_previous = t > 0 && checkpoint_task_stored(reader, t - 1);
    for (int modality = 0; modality < 2; modality++) {
        int layers = modality == CLIP_VISUAL ? c->vision_layers : c->text_layers;
        for (int b = 0; b < layers; b++) {
            clip_adapter_view now, before;
            clip_adapter_block(c, run->snapshots[t], (clip_modality)modality, b, &now);
            if (has_previous)
                clip_adapter_block(c, run->snapshots[t - 1], (clip_modality)modality, b, &before);
            size_t n = (size_t)now.width * now.bottleneck;
            param_stats want, got;
            param_stats_compute(now.down_w, has_previous ? before.down_w : NULL, n, &want);
            CHECK_OK(checkpoint_read_stats(reader, t, (clip_modality)modality, b, "down_w", &got));
            snprintf(name, sizeof name, "task %d modality %d block %d down_w edges", t, modality, b);
            check_stats_equal(name, &got, &want);
            if (!has_previous)
                CHECK(got.delta_norm == 0.0);
            else
                CHECK(got.delta_norm > 0.0);
            param_stats_compute(now.up_w, has_previous ? before.up_w : NULL, n, &want);
            CHECK_OK(checkpoint_read_stats(reader, t, (clip_modality)modality, b, "up_w", &got));
            snprintf(name, sizeof name, "task %d modality %d block %d up_w edges", t, modality, b);
            check_stats_equal(name, &got, &want);
        }
    }
}

int main(void)
{
    const char *path = "round_trip.h5";
    remove(path);
    fake_run run;
    CHECK_OK(fake_run_init(&run, 3));
    run.text_nullspace = 1;
    const clip_config *c = &run.config;
    checkpoint_header header = {config_yaml, "v-test", 2};
    float *buffer = malloc(run.adapter_count * sizeof(float));
    float *m = malloc(run.adapter_count * sizeof(float));
    float *v = malloc(run.adapter_count * sizeof(float));
    CHECK(buffer != NULL && m != NULL && v != NULL);

    /* Task 0 and 1 keep full bases, task 2 only the top vectors; progress
     * inside task 1 is saved between them. */
    checkpoint_task_record rec;
    fake_run_record(&run, 0, 1, &rec);
    CHECK_OK(checkpoint_append_task(path, &header, c, run.snapshots[0], NULL, &rec));

    checkpoint_optimizer opt = {1, 123, run.moments[0], run.moments[1], run.optimizer_lambda,
                                run.optimizer_text_lambda, 4};
    CHECK_OK(checkpoint_save_progress(path, &header, c, run.snapshots[1], &opt));
    checkpoint_reader *reader = NULL;
    CHECK_OK(checkpoint_open(path, &reader));
    if (reader != NULL) {
        CHECK_EQ_INT(checkpoint_task_count(reader), 1);
        CHECK_EQ_INT(checkpoint_has_optimizer(reader), 1);
        checkpoint_optimizer_info info;
        double lambda[9], text_lambda[4];
        CHECK_OK(checkpoint_read_optimizer(reader, c, &info, m, v, lambda, text_lambda));
        CHECK_EQ_INT(info.task, 1);
        CHECK_EQ_INT(info.step, 123);
        CHECK_EQ_INT(info.nonfinite_count, 4);
        CHECK_EQ_INT(info.has_lambda, 1);
        CHECK_EQ_INT(info.has_text_lambda, 1);
        test_compare_floats("optimizer m", m, run.moments[0], run.adapter_count, 0.0, 0.0);
        test_compare_floats("optimizer v", v, run.moments[1], run.adapter_count, 0.0, 0.0);
        /* Stored in double, so the coefficients come back without rounding. */
        test_compare_doubles("optimizer lambda", lambda, run.optimizer_lambda, 9, 0.0, 0.0);
        test_compare_doubles("optimizer text lambda", text_lambda, run.optimizer_text_lambda, 4, 0.0, 0.0);
        CHECK_OK(checkpoint_read_model(reader, c, buffer));
        test_compare_floats("model during task 1", buffer, run.snapshots[1], run.adapter_count, 0.0, 0.0);
        check_task(reader, &run, 0, 1, buffer);
        checkpoint_close(reader);
    }

    fake_run_record(&run, 1, 1, &rec);
    CHECK_OK(checkpoint_append_task(path, &header, c, run.snapshots[1], NULL, &rec));
    fake_run_record(&run, 2, 0, &rec);
    CHECK_OK(checkpoint_append_task(path, &header, c, run.snapshots[2], NULL, &rec));

    /* Appending out of order is rejected with the expected task number. */
    fake_run_record(&run, 1, 1, &rec);
    CHECK_FAILS_WITH(checkpoint_append_task(path, &header, c, run.snapshots[1], NULL, &rec), "next task to append is 3");

    /* Text null spaces of the wrong width are rejected before the file is touched. */
    fake_run_record(&run, 2, 1, &rec);
    rec.task = 3;
    rec.text_d = c->vision_width;
    CHECK_FAILS_WITH(checkpoint_append_task(path, &header, c, run.snapshots[2], NULL, &rec),
                     "text null space has 2 blocks of width 16, expected 2 blocks of width 8");

    reader = NULL;
    CHECK_OK(checkpoint_open(path, &reader));
    if (reader != NULL) {
        CHECK_EQ_INT(checkpoint_task_count(reader), 3);
        CHECK_EQ_INT(checkpoint_has_optimizer(reader), 0);
        CHECK_EQ_INT(checkpoint_ranks(reader), 2);
        CHECK(strcmp(checkpoint_config_text(reader), config_yaml) == 0);
        CHECK(strcmp(checkpoint_git_describe(reader), "v-test") == 0);
        CHECK_OK(checkpoint_read_model(reader, c, buffer));
        test_compare_floats("model after task 2", buffer, run.snapshots[2], run.adapter_count, 0.0, 0.0);
        for (int t = 0; t < 3; t++)
            check_task(reader, &run, t, t < 2, buffer);

        checkpoint_optimizer_info info;
        CHECK_FAILS_WITH(checkpoint_read_optimizer(reader, c, &info, m, v, NULL, NULL), "no /optimizer");
        CHECK_FAILS_WITH(checkpoint_read_task_adapters(reader, c, 3, buffer), "contains tasks 0..2");

        /* A model config with other shapes is rejected, naming the field. */
        clip_config other = *c;
        other.adapter_bottleneck = 8;
        CHECK_FAILS_WITH(checkpoint_read_model(reader, &other, buffer), "adapter_bottleneck is 4");
        checkpoint_close(reader);
    }

    /* A writer that stores only the last task: tasks 0 and 1 are completed
     * but have no group, and task 2's delta_norm has nothing to compare with. */
    const char *last_only = "last_only.h5";
    remove(last_only);
    run.text_nullspace = 0;
    fake_run_record(&run, 2, 1, &rec);
    CHECK_OK(checkpoint_append_task(last_only, &header, c, run.snapshots[2], NULL, &rec));
    reader = NULL;
    CHECK_OK(checkpoint_open(last_only, &reader));
    if (reader != NULL) {
        CHECK_EQ_INT(checkpoint_task_count(reader), 3);
        CHECK_EQ_INT(checkpoint_task_stored(reader, 0), 0);
        CHECK_EQ_INT(checkpoint_task_stored(reader, 1), 0);
        CHECK_EQ_INT(checkpoint_task_stored(reader, 2), 1);
        CHECK_FAILS_WITH(checkpoint_read_task_adapters(reader, c, 1, buffer), "task 1 was completed but not stored");
        check_task(reader, &run, 2, 1, buffer);
        param_stats stats;
        CHECK_OK(checkpoint_read_stats(reader, 2, CLIP_TEXT, 1, "up_w", &stats));
        CHECK(stats.delta_norm == 0.0);
        checkpoint_close(reader);
    }

    free(buffer);
    free(m);
    free(v);
    fake_run_free(&run);
    return test_finish("test_checkpoint_round_trip");
}

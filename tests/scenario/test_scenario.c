/* Scenario tests: class order checks, task splits, prompts and per-task
 * samples with a per-class limit. */
#include "dmnsp/error.h"
#include "dmnsp/scenario.h"
#include "test_util.h"

#include <stdio.h>
#include <string.h>

static void test_class_order_errors(void)
{
    scenario sc;
    int order_with_100[4] = {3, 0, 2, 100};
    CHECK_FAILS_WITH(scenario_init(&sc, order_with_100, 4, 100, 2, 2, 0),
                     "class order: id 100 at position 3 is out of range for 100 classes");
    int order_negative[2] = {-1, 0};
    CHECK_FAILS_WITH(scenario_init(&sc, order_negative, 2, 10, 1, 1, 0), "class order: id -1 at position 0");

    int order_duplicate[6] = {5, 17, 2, 3, 17, 9};
    CHECK_FAILS_WITH(scenario_init(&sc, order_duplicate, 6, 100, 2, 2, 0),
                     "class order: duplicate id 17 at position 4 (first at position 1)");

    int order[10] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
    CHECK_FAILS_WITH(scenario_init(&sc, order, 10, 10, 4, 4, 0),
                     "initial_increment 4 plus tasks of increment 4 do not cover the 10 classes in the class order "
                     "exactly (4 + 1 x 4 = 8, 2 left over)");
    CHECK_FAILS_WITH(scenario_init(&sc, order, 10, 10, 12, 2, 0),
                     "initial_increment 12 exceeds the 10 classes in the class order");
    CHECK_FAILS_WITH(scenario_init(&sc, order, 10, 10, 0, 2, 0), "must be positive");
}

static void test_task_splits_and_labels(void)
{
    scenario sc;
    int order[10] = {7, 3, 9, 0, 1, 5, 2, 8, 4, 6};
    CHECK_OK(scenario_init(&sc, order, 10, 10, 4, 2, 0));
    CHECK_EQ_INT(sc.task_count, 4);
    CHECK_EQ_INT(sc.class_count, 10);
    int begin = -1, end = -1;
    CHECK_OK(scenario_task_labels(&sc, 0, &begin, &end));
    CHECK_EQ_INT(begin, 0);
    CHECK_EQ_INT(end, 4);
    CHECK_OK(scenario_task_labels(&sc, 3, &begin, &end));
    CHECK_EQ_INT(begin, 8);
    CHECK_EQ_INT(end, 10);
    CHECK_FAILS_WITH(scenario_task_labels(&sc, 4, &begin, &end), "task 4 is out of range");
    CHECK_EQ_INT(scenario_label_of_class(&sc, 7), 0);
    CHECK_EQ_INT(scenario_label_of_class(&sc, 6), 9);
    CHECK_EQ_INT(scenario_label_of_class(&sc, 10), -1);
    scenario_free(&sc);

    /* max_tasks keeps the first two tasks and their six classes. */
    CHECK_OK(scenario_init(&sc, order, 10, 10, 4, 2, 2));
    CHECK_EQ_INT(sc.task_count, 2);
    CHECK_EQ_INT(sc.class_count, 6);
    CHECK_EQ_INT(scenario_label_of_class(&sc, 5), 5);
    CHECK_EQ_INT(scenario_label_of_class(&sc, 2), -1);
    scenario_free(&sc);

    /* No order: 0..C-1. A subset order: only its classes take part. */
    CHECK_OK(scenario_init(&sc, NULL, 0, 6, 2, 2, 0));
    CHECK_EQ_INT(sc.task_count, 3);
    CHECK_EQ_INT(sc.class_order[4], 4);
    scenario_free(&sc);
    int subset[4] = {8, 2, 5, 1};
    CHECK_OK(scenario_init(&sc, subset, 4, 10, 2, 2, 0));
    CHECK_EQ_INT(sc.class_count, 4);
    CHECK_EQ_INT(scenario_label_of_class(&sc, 0), -1);
    CHECK_EQ_INT(scenario_label_of_class(&sc, 5), 2);
    scenario_free(&sc);
}

static void test_prompts_use_order(void)
{
    scenario sc;
    int order[4] = {2, 0, 3, 1};
    const char *names[4] = {"apple", "bear", "cloud", "dolphin"};
    CHECK_OK(scenario_init(&sc, order, 4, 4, 2, 2, 0));
    char **prompts = NULL;
    CHECK_OK(scenario_prompts(&sc, names, "a bad photo of a {}.", 1, 4, &prompts));
    if (prompts != NULL) {
        CHECK(strcmp(prompts[0], "a bad photo of a apple.") == 0);
        CHECK(strcmp(prompts[1], "a bad photo of a dolphin.") == 0);
        CHECK(strcmp(prompts[2], "a bad photo of a bear.") == 0);
    }
    scenario_free_prompts(prompts, 3);
    CHECK_FAILS_WITH(scenario_prompts(&sc, names, "a photo", 0, 2, &prompts), "has no '{}'");
    CHECK_FAILS_WITH(scenario_prompts(&sc, names, "{} and {}", 0, 2, &prompts), "more than one '{}'");
    CHECK_FAILS_WITH(scenario_prompts(&sc, names, "{}", 0, 5, &prompts), "label range 0..5 is outside");
    scenario_free(&sc);
}

static void test_task_samples_with_limit(void)
{
    scenario sc;
    int order[4] = {3, 1, 0, 2};
    CHECK_OK(scenario_init(&sc, order, 4, 4, 2, 2, 0));
    /* Dataset labels of 12 samples in file order. */
    int labels[12] = {0, 1, 2, 3, 3, 1, 1, 0, 3, 2, 1, 3};
    scenario_samples samples;
    CHECK_OK(scenario_task_samples(&sc, labels, 12, 0, 0, 0, &samples));
    /* Task 0 = classes 3 and 1 (ordered labels 0 and 1). */
    long expected_all[8] = {1, 3, 4, 5, 6, 8, 10, 11};
    int expected_labels[8] = {1, 0, 0, 1, 1, 0, 1, 0};
    CHECK_EQ_INT(samples.count, 8);
    for (int i = 0; i < 8 && i < samples.count; i++) {
        CHECK_EQ_INT(samples.indices[i], expected_all[i]);
        CHECK_EQ_INT(samples.labels[i], expected_labels[i]);
    }
    scenario_samples_free(&samples);

    /* At most two per class: class 3 keeps samples 3, 4; class 1 keeps 1, 5. */
    CHECK_OK(scenario_task_samples(&sc, labels, 12, 0, 0, 2, &samples));
    long expected_limited[4] = {1, 3, 4, 5};
    CHECK_EQ_INT(samples.count, 4);
    for (int i = 0; i < 4 && i < samples.count; i++)
        CHECK_EQ_INT(samples.indices[i], expected_limited[i]);
    scenario_samples_free(&samples);

    /* Tasks 0..1 cover everything. */
    CHECK_OK(scenario_task_samples(&sc, labels, 12, 0, 1, 0, &samples));
    CHECK_EQ_INT(samples.count, 12);
    CHECK_EQ_INT(samples.labels[0], 2);
    CHECK_EQ_INT(samples.labels[9], 3);
    scenario_samples_free(&samples);
    CHECK_FAILS_WITH(scenario_task_samples(&sc, labels, 12, 1, 2, 0, &samples), "task range 1..2 is outside");
    scenario_free(&sc);
}

int main(void)
{
    test_class_order_errors();
    test_task_splits_and_labels();
    test_prompts_use_order();
    test_task_samples_with_limit();
    return test_finish("test_scenario");
}

/* config: defaults, files, overrides (flat and nested), interpolation,
 * and every class of invalid input with the file, key and position named. */
#include "dmnsp/config.h"
#include "dmnsp/error.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_text(const char *path, const char *text)
{
    CHECK(test_write_file(path, text, strlen(text)) == 0);
}

static void test_defaults_only(void)
{
    config *c = NULL;
    CHECK_OK(config_load(NULL, 0, NULL, &c));
    if (c == NULL)
        return;
    CHECK_EQ_INT(config_get_int(c, "seed"), 32);
    CHECK_EQ_INT(config_get_int(c, "increment"), 10); /* ${initial_increment} */
    CHECK_NEAR(config_get_float(c, "lambda_scale"), 30.0, 0);
    CHECK(strcmp(config_get_string(c, "output_dir"), "experiments/class/cifar100_10-10-DMNSP") == 0);
    CHECK(strcmp(config_source(c, "seed"), "defaults") == 0);
    config_free(c);
}

static void test_file_and_overrides(void)
{
    write_text("good.yaml",
               "# a comment\n"
               "dataset: fashionmnist\n"
               "initial_increment: 2\n"
               "method: finetune\n"
               "shuffle: no\n"
               "nullspace:\n"
               "  solver: lapack\n"
               "  basis_batches: 2\n"
               "output_dir: runs/${dataset}-${method}-${nullspace.solver}\n"
               "class_order: orders/x.yaml\n");
    char *overrides[] = {"lambda_scale=10", "nullspace.solver=slepc", "method=DMNSP"};
    config *c = NULL;
    CHECK_OK(config_load("good.yaml", 3, overrides, &c));
    if (c == NULL)
        return;
    CHECK_EQ_INT(config_get_int(c, "increment"), 2);
    CHECK_EQ_INT(config_get_int(c, "nullspace.basis_batches"), 2);
    CHECK_EQ_INT(config_get_bool(c, "shuffle"), 0);
    CHECK_NEAR(config_get_float(c, "lambda_scale"), 10.0, 0);
    CHECK(strcmp(config_get_string(c, "nullspace.solver"), "slepc") == 0);
    /* interpolation uses the overridden values */
    CHECK(strcmp(config_get_string(c, "output_dir"), "runs/fashionmnist-DMNSP-slepc") == 0);
    CHECK(strcmp(config_source(c, "lambda_scale"), "command line") == 0);
    CHECK(strcmp(config_source(c, "initial_increment"), "good.yaml") == 0);

    /* relative input paths are taken relative to the config file's folder */
    char cwd[4096], expected[4200];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    snprintf(expected, sizeof expected, "%s/orders/x.yaml", cwd);
    CHECK(strcmp(config_get_string(c, "class_order"), expected) == 0);

    /* the printed config loads again to the same values */
    char *yaml = config_to_yaml(c);
    CHECK(yaml != NULL);
    if (yaml != NULL) {
        CHECK_STR_CONTAINS(yaml, "nullspace:\n  solver: \"slepc\"\n");
        write_text("resolved.yaml", yaml);
        config *again = NULL;
        CHECK_OK(config_load("resolved.yaml", 0, NULL, &again));
        if (again != NULL) {
            char *yaml_again = config_to_yaml(again);
            CHECK(yaml_again != NULL);
            CHECK(yaml_again == NULL || strcmp(yaml, yaml_again) == 0);
            free(yaml_again);
            config_free(again);
        }
        free(yaml);
    }
    config_free(c);
}

static void expect_file_error(const char *name, const char *text, const char *needle)
{
    write_text(name, text);
    config *c = NULL;
    CHECK_FAILS_WITH(config_load(name, 0, NULL, &c), needle);
    CHECK(c == NULL);
    CHECK_STR_CONTAINS(dmnsp_last_error(), name);
}

static void expect_override_error(char *override, const char *needle)
{
    config *c = NULL;
    CHECK_FAILS_WITH(config_load(NULL, 1, &override, &c), needle);
    CHECK(c == NULL);
}

static void test_invalid_input(void)
{
    expect_file_error("unknown.yaml", "seed: 1\nlamda_scale: 10\n", "unknown.yaml:2:1: unknown key 'lamda_scale' (did you mean 'lambda_scale'?)");
    expect_file_error("bad_type.yaml", "seed: 1\nepochs: four\n", "bad_type.yaml:2:9: key 'epochs': expected an integer, found 'four'");
    expect_file_error("bad_float.yaml", "lr: fast\n", "key 'lr': expected a number");
    expect_file_error("bad_bool.yaml", "shuffle: maybe\n", "key 'shuffle': expected true or false");
    expect_file_error("bad_choice.yaml", "method: magic\n", "'magic' is not one of DMNSP|finetune");
    expect_file_error("range.yaml", "epochs: -1\n", "key 'epochs': -1 is outside the allowed range");
    expect_file_error("ratio.yaml", "top_k_ratio: 0\n", "key 'top_k_ratio': 0 is outside (0, 1]");
    expect_file_error("ratio2.yaml", "top_k_ratio: 1.5\n", "key 'top_k_ratio': 1.5 is outside (0, 1]");
    expect_file_error("malformed.yaml", "seed: [1, 2\nmethod: DMNSP\n", "malformed.yaml:");
    expect_file_error("malformed2.yaml", "seed: 1\n  method: x: y\n", "malformed YAML");
    expect_file_error("list.yaml", "seed: [1, 2]\n", "key 'seed' needs a single value");
    expect_file_error("twice.yaml", "seed: 1\nseed: 2\n", "key 'seed' is given twice");
    expect_file_error("section.yaml", "nullspace:\n  solvr: lapack\n", "unknown key 'nullspace.solvr' (did you mean 'nullspace.solver'?)");
    expect_file_error("not_mapping.yaml", "- a\n- b\n", "the top level must be a mapping");
    expect_file_error("cycle.yaml", "output_dir: ${log_path}\nlog_path: ${output_dir}/x\n", "reference cycle");
    expect_file_error("self.yaml", "increment: ${increment}\n", "reference cycle");
    expect_file_error("unknown_ref.yaml", "output_dir: runs/${nope}\n", "refers to unknown key '${nope}'");
    expect_file_error("unterminated.yaml", "output_dir: runs/${seed\n", "unterminated '${'");
    expect_file_error("template.yaml", "prompt_template: a photo\n", "has no {} for the class name");

    config *c = NULL;
    CHECK_FAILS_WITH(config_load("does_not_exist.yaml", 0, NULL, &c), "does_not_exist.yaml: cannot open config file");

    expect_override_error("lamda_scale=10", "command line: unknown key 'lamda_scale'");
    expect_override_error("epochs=abc", "command line: key 'epochs': expected an integer, found 'abc'");
    expect_override_error("nullspace=x", "'nullspace' is a section");
    expect_override_error("=3", "is not a key=value override");
}

static void test_int_list(void)
{
    write_text("order.yaml", "class_order: [3, 1,\n  2, 0]\n");
    int *values = NULL, count = 0;
    CHECK_OK(config_read_int_list("order.yaml", "class_order", &values, &count));
    CHECK_EQ_INT(count, 4);
    if (count == 4) {
        CHECK_EQ_INT(values[0], 3);
        CHECK_EQ_INT(values[3], 0);
    }
    free(values);

    write_text("order_bad.yaml", "class_order: [3, x]\n");
    CHECK_FAILS_WITH(config_read_int_list("order_bad.yaml", "class_order", &values, &count),
                     "order_bad.yaml:1:18: item 1 of 'class_order' is not an integer");
    CHECK_FAILS_WITH(config_read_int_list("order.yaml", "order", &values, &count), "key 'order' not found");
    CHECK_FAILS_WITH(config_read_int_list("no_such_order.yaml", "class_order", &values, &count),
                     "no_such_order.yaml: cannot open the class_order file");
}

int main(void)
{
    test_defaults_only();
    test_file_and_overrides();
    test_invalid_input();
    test_int_list();
    return test_finish("test_config");
}

/* dmnsp config: print the fully resolved config as YAML. Sweep scripts use
 * it as a dry run: it exits 1 with a message naming the key on any invalid
 * value. */
#include "cmd_args.h"
#include "commands.h"

#include "dmnsp/config.h"
#include "dmnsp/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char config_usage[] =
    "usage: dmnsp config CONFIG.yaml [key=value ...]\n"
    "       dmnsp config --keys\n"
    "\n"
    "Prints the configuration after defaults, the file and the overrides are\n"
    "merged and ${key} references resolved. Nested keys are overridden with\n"
    "dots: nullspace.solver=slepc. Exits 1 on an unknown key or invalid value.\n"
    "\n"
    "  --keys   print every key with its type, allowed values, default and\n"
    "           meaning as a Markdown table (configs/README.md holds a copy)\n";

static const char *type_name(const config_key *key)
{
    switch (key->type) {
    case CONFIG_STRING:
        return "string";
    case CONFIG_INT:
        return "integer";
    case CONFIG_FLOAT:
        return "number";
    case CONFIG_BOOL:
        return "true/false";
    case CONFIG_CHOICE:
        return "one of";
    case CONFIG_PATH:
        return "path";
    }
    return "?";
}

/* Prints the schema as a Markdown table, one row per key. */
static void print_keys(void)
{
    int count = 0;
    const config_key *schema = config_schema(&count);
    printf("| key | type | default | meaning |\n|---|---|---|---|\n");
    for (int i = 0; i < count; i++) {
        const config_key *k = &schema[i];
        printf("| `%s` | %s", k->key, type_name(k));
        if (k->type == CONFIG_CHOICE) {
            printf(" ");
            for (const char *c = k->choices; *c != '\0'; c++) {
                if (*c == '|')
                    printf(", ");
                else
                    putchar(*c);
            }
        } else if (k->min <= k->max) {
            printf(" in [%.10g, %.10g]", k->min, k->max);
        }
        printf(" | `%s` | ", k->default_value[0] ? k->default_value : "\"\"");
        for (const char *c = k->help; *c != '\0'; c++) {
            if (*c == '|')
                printf("\\|");
            else
                putchar(*c);
        }
        printf(" |\n");
    }
}

int cmd_config(int argc, char **argv)
{
    if (argc == 1 && strcmp(argv[0], "--keys") == 0) {
        print_keys();
        return 0;
    }
    cmd_args args;
    int status = cmd_args_split(argc, argv, config_usage, 0, &args);
    if (status != 0)
        return status == 1 ? 0 : status;

    config *c = NULL;
    if (config_load(args.config_path, args.override_count, args.overrides, &c) != 0) {
        fprintf(stderr, "dmnsp: error: %s\n", dmnsp_last_error());
        return 1;
    }
    char *yaml = config_to_yaml(c);
    config_free(c);
    if (yaml == NULL) {
        fprintf(stderr, "dmnsp: error: %s\n", dmnsp_last_error());
        return 1;
    }
    printf("# resolved from %s\n%s", args.config_path, yaml);
    free(yaml);
    return 0;
}

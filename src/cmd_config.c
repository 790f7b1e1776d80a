/* dmnsp config: print the fully resolved config as YAML. Sweep scripts use
 * it as a dry run: it exits 1 with a message naming the key on any invalid
 * value. */
#include "cmd_args.h"
#include "commands.h"

#include "dmnsp/config.h"
#include "dmnsp/error.h"

#include <stdio.h>
#include <stdlib.h>

static const char config_usage[] =
    "usage: dmnsp config CONFIG.yaml [key=value ...]\n"
    "\n"
    "Prints the configuration after defaults, the file and the overrides are\n"
    "merged and ${key} references resolved. Nested keys are overridden with\n"
    "dots: nullspace.solver=slepc. Exits 1 on an unknown key or invalid value.\n";

int cmd_config(int argc, char **argv)
{
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

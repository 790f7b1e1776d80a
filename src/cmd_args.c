/* cmd_args: splitting CONFIG.yaml, key=value overrides and PETSc options. */
#include "cmd_args.h"

#include <stdio.h>
#include <string.h>

int cmd_args_split(int argc, char **argv, const char *usage, int allow_petsc, cmd_args *out)
{
    memset(out, 0, sizeof *out);
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        fputs(usage, stdout);
        return 1;
    }
    if (argc < 1 || argv[0][0] == '-') {
        fprintf(stderr, "dmnsp: missing the config file\n\n%s", usage);
        return 2;
    }
    out->config_path = argv[0];

    int i = 1;
    out->overrides = argv + 1;
    while (i < argc && argv[i][0] != '-') {
        if (strchr(argv[i], '=') == NULL || argv[i][0] == '=') {
            fprintf(stderr, "dmnsp: '%s' is not a key=value override\n\n%s", argv[i], usage);
            return 2;
        }
        i++;
    }
    out->override_count = i - 1;

    if (i < argc) {
        if (!allow_petsc || strncmp(argv[i], "--", 2) == 0) {
            fprintf(stderr, "dmnsp: unknown option '%s'\n\n%s", argv[i], usage);
            return 2;
        }
        out->petsc_args = argv + i;
        out->petsc_count = argc - i;
    }
    return 0;
}

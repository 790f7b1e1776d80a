/* cmd_args: the shared command line of train, eval and config:
 *
 *   dmnsp COMMAND CONFIG.yaml [key=value ...] [-petsc_option [value] ...]
 *
 * The first argument is the config file, then key=value overrides; the
 * first argument that starts with '-' and everything after it are PETSc /
 * SLEPc options (-svd_type trlanczos, -log_view). */
#ifndef DMNSP_CMD_ARGS_H
#define DMNSP_CMD_ARGS_H

typedef struct {
    const char *config_path;
    int override_count;
    char **overrides;
    int petsc_count;
    char **petsc_args;
} cmd_args;

/* Splits ARGV (the arguments after the command name). Returns 0, or 2 after
 * printing USAGE and the problem to stderr. With --help/-h first, prints
 * USAGE to stdout and returns 1. ALLOW_PETSC = 0 rejects PETSc options. */
int cmd_args_split(int argc, char **argv, const char *usage, int allow_petsc, cmd_args *out);

#endif

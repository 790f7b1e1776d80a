/* dmnsp: the command-line front end. Dispatches to the subcommands in
 * src/cmd_*.c; see `dmnsp --help`. */
#include "commands.h"

#include "dmnsp/config.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
    {"train", "run a class-incremental experiment (under mpirun)", cmd_train},
    {"eval", "evaluate a saved run on its seen classes", cmd_eval},
    {"compare", "print the final metrics of several runs side by side", cmd_compare},
    {"config", "print the fully resolved config as YAML", cmd_config},
    {"analyze", "tables, plots and report.md from run folders (checkpoint.h5, metrics.json)", cmd_analyze},
    {"infer", "classify images with CLIP weights (plain or exported by export) and class names", cmd_infer},
    {"export", "write a run's model (frozen weights + adapters) as a safetensors file", cmd_export},
    {"preprocess", "decode, resize, crop and normalise images into a float32 tensor file", cmd_preprocess},
};

static const int command_count = (int)(sizeof commands / sizeof commands[0]);

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: dmnsp COMMAND [ARGS...]\n"
            "       dmnsp --help | --version | COMMAND --help\n"
            "\n"
            "DMNSP (Dynamic Multi-Layer Null Space Projection) continual learning for CLIP,\n"
            "data-parallel under MPI: mpirun -np N dmnsp train CONFIG.yaml [key=value ...]\n"
            "\n"
            "commands:\n");
    for (int i = 0; i < command_count; i++)
        fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("dmnsp %s (%s)\n", DMNSP_VERSION, DMNSP_GIT_DESCRIBE);
        return 0;
    }
    for (int i = 0; i < command_count; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 2, argv + 2);
    }
    const char *closest = NULL;
    int best = 3;
    for (int i = 0; i < command_count; i++) {
        int distance = config_edit_distance(argv[1], commands[i].name);
        if (distance < best) {
            best = distance;
            closest = commands[i].name;
        }
    }
    if (closest != NULL)
        fprintf(stderr, "dmnsp: unknown command '%s' (did you mean '%s'?)\n\n", argv[1], closest);
    else
        fprintf(stderr, "dmnsp: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return 2;
}

/* dmnsp export: writes the model of a finished (or interrupted) run as one
 * safetensors file that `dmnsp infer` and other CLIP tools can load. */
#include "commands.h"

#include "dmnsp/checkpoint.h"
#include "dmnsp/clip.h"
#include "dmnsp/config.h"
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/experiment.h"
#include "dmnsp/weights.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char export_usage[] =
    "usage: dmnsp export RUN_DIR --out FILE.safetensors [--task T] [key=value ...]\n"
    "\n"
    "Writes the model of a run as one safetensors file under OpenAI names: the\n"
    "frozen CLIP weights the run used (its `weights` file, or the `model_name`\n"
    "preset drawn from its `seed`) and the adapters after its last finished task,\n"
    "with the adapter scale in the file's metadata. Classify images with it:\n"
    "  dmnsp infer --weights FILE.safetensors [--vocab V] --classes \"a,b,c\" IMAGE...\n"
    "(pass the run's `vocab` as --vocab; an empty vocab is infer's default).\n"
    "\n"
    "  RUN_DIR        folder of the run, with config.yaml and checkpoint.h5\n"
    "  --out FILE     safetensors file to write (written atomically)\n"
    "  --task T       adapters as they were after task T (0-based) instead of\n"
    "                 the last finished task\n"
    "  key=value      overrides of the run's config.yaml, for example\n"
    "                 weights=/new/place/ViT-B-16.safetensors when the weights\n"
    "                 file has moved; an override that changes the model (seed,\n"
    "                 adapter.scale, another weights file name, ...) is rejected\n"
    "\n"
    "Exit status: 0 written, 1 the run could not be read or the file written,\n"
    "2 a usage error.\n";

typedef struct {
    const char *run_dir;
    const char *out;
    int task; /* -1: the last finished task */
    int override_count;
    char **overrides;
} export_options;

/* Prints "dmnsp: export: PROBLEM" and the usage; returns 2. */
static int usage_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *format, ...)
{
    fprintf(stderr, "dmnsp: export: ");
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fprintf(stderr, "\n\n%s", export_usage);
    return 2;
}

/* Returns 0, 1 after printing the help, or 2 after a usage error. */
static int parse_options(int argc, char **argv, export_options *o)
{
    memset(o, 0, sizeof *o);
    o->task = -1;
    o->overrides = calloc((size_t)argc + 1, sizeof *o->overrides);
    if (o->overrides == NULL) {
        fprintf(stderr, "dmnsp: export: out of memory\n");
        return 2;
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(export_usage, stdout);
            return 1;
        }
        if (strcmp(arg, "--out") == 0 || strcmp(arg, "--task") == 0) {
            if (i + 1 >= argc)
                return usage_error("%s needs a value", arg);
            const char *value = argv[++i];
            if (strcmp(arg, "--out") == 0) {
                o->out = value;
                continue;
            }
            char *end = NULL;
            errno = 0;
            long task = strtol(value, &end, 10);
            if (end == value || *end != '\0' || errno != 0 || task < 0 || task > INT_MAX)
                return usage_error("--task expects a task number >= 0, found '%s'", value);
            o->task = (int)task;
        } else if (arg[0] == '-') {
            return usage_error("unknown option '%s'", arg);
        } else if (strchr(arg, '=') != NULL) {
            o->overrides[o->override_count++] = argv[i];
        } else if (o->run_dir == NULL) {
            o->run_dir = arg;
        } else {
            return usage_error("more than one run folder ('%s')", arg);
        }
    }
    if (o->run_dir == NULL)
        return usage_error("a run folder is needed");
    if (o->out == NULL || o->out[0] == '\0')
        return usage_error("--out FILE.safetensors is needed");
    return 0;
}

/* Reads the adapters of TASK (or of the last finished task when TASK < 0)
 * from the run's checkpoint into the model. */
static int read_adapters(const config *cfg, const char *path, int task, clip_model *model, int *exported_task,
                         int *finished)
{
    checkpoint_reader *reader = NULL;
    DMNSP_TRY(checkpoint_open(path, &reader));
    const clip_config *mc = clip_model_config(model);
    int status = experiment_check_model_config(cfg, checkpoint_config_text(reader), path, "export");
    if (status == 0)
        status = checkpoint_check_config(reader, mc);
    *finished = checkpoint_task_count(reader);
    if (status == 0 && *finished == 0)
        status = dmnsp_fail("%s holds no finished task, so there are no trained adapters to export", path);
    if (status == 0 && task >= *finished)
        status = dmnsp_fail("%s finished tasks 0..%d; --task %d is not one of them", path, *finished - 1, task);
    if (status == 0 && task >= 0 && !checkpoint_task_stored(reader, task))
        status = dmnsp_fail("%s has no snapshot of task %d (the run kept only some tasks)", path, task);
    *exported_task = task >= 0 ? task : *finished - 1;
    if (status == 0)
        status = checkpoint_read_task_adapters(reader, mc, *exported_task, clip_model_adapters(model));
    checkpoint_close(reader);
    return status;
}

static int run_export(const export_options *o)
{
    char config_path[PATH_MAX], checkpoint_path[PATH_MAX];
    snprintf(config_path, sizeof config_path, "%s/config.yaml", o->run_dir);
    snprintf(checkpoint_path, sizeof checkpoint_path, "%s/checkpoint.h5", o->run_dir);

    config *cfg = NULL;
    DMNSP_TRY(config_load(config_path, o->override_count, o->overrides, &cfg));
    clip_config model_config;
    clip_model *model = NULL;
    int status = experiment_load_model(cfg, &model_config, &model);
    int task = -1, finished = 0;
    if (status == 0)
        status = read_adapters(cfg, checkpoint_path, o->task, model, &task, &finished);
    if (status == 0)
        status = weights_save(o->out, clip_model_config(model), clip_model_frozen(model), clip_model_adapters(model));
    if (status == 0) {
        const char *vocab = config_get_string(cfg, "vocab");
        printf("wrote %s: the adapters of %s after task %d (%d tasks finished)\n", o->out, o->run_dir, task,
               finished);
        printf("classify with: dmnsp infer --weights %s%s%s --classes \"...\" IMAGE...\n", o->out,
               vocab[0] ? " --vocab " : "", vocab);
    }
    clip_model_free(model);
    config_free(cfg);
    return status;
}

int cmd_export(int argc, char **argv)
{
    export_options options;
    int parsed = parse_options(argc, argv, &options);
    if (parsed != 0) {
        free(options.overrides);
        return parsed == 1 ? 0 : 2;
    }
    char threads[160];
    dist_default_threads(1, threads, sizeof threads);
    int status = run_export(&options);
    free(options.overrides);
    if (status != 0) {
        fprintf(stderr, "dmnsp: error: %s\n", dmnsp_last_error());
        return 1;
    }
    return 0;
}

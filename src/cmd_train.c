/* dmnsp train and dmnsp eval: the main job and the evaluation of a saved
 * run, both collective under mpirun. */
#include "cmd_args.h"
#include "commands.h"

#include "dmnsp/config.h"
#include "dmnsp/dist.h"
#include "dmnsp/error.h"
#include "dmnsp/experiment.h"
#include "dmnsp/log.h"

#include <stdio.h>
#include <string.h>

static const char train_usage[] =
    "usage: mpirun -np N dmnsp train CONFIG.yaml [key=value ...] [PETSc/SLEPc options]\n"
    "\n"
    "Runs a class-incremental experiment: for every task, trains the adapters,\n"
    "builds the null-space bases (DMNSP methods), evaluates all seen tasks and the\n"
    "next one, then writes metrics.json and checkpoint.h5 in output_dir.\n"
    "\n"
    "  key=value        override a config key (nested keys with dots:\n"
    "                   nullspace.solver=slepc); `dmnsp config` lists them all\n"
    "  resume=auto      continue the run in output_dir from its last checkpoint (after\n"
    "                   a task, or inside one: checkpoint.interval_minutes and\n"
    "                   checkpoint.interval_steps; SIGUSR1 asks for one)\n"
    "  resume=PATH      continue from the checkpoint at PATH\n"
    "  overwrite=true   replace a finished or unfinished run in output_dir\n"
    "  -svd_type ...    options from the first '-' on go to PETSc/SLEPc\n"
    "\n"
    "Exit status: 0 success, 1 a failure such as an invalid config key or value\n"
    "(message on stderr), 2 a usage error of the command line itself.\n";

static const char eval_usage[] =
    "usage: mpirun -np N dmnsp eval CONFIG.yaml checkpoint=PATH [key=value ...]\n"
    "\n"
    "Evaluates the adapters stored in checkpoint PATH (a run's checkpoint.h5) on\n"
    "the test sets of the tasks it finished, with a classifier over all their\n"
    "classes, and prints the accuracy per task. Writes nothing. Pass the run's\n"
    "own RUN_DIR/config.yaml as CONFIG, with key=value overrides for what may\n"
    "differ (dataset_root, eval_batch_size, test_per_class). A CONFIG whose\n"
    "dataset, class order, increments, model, weights, vocab, seed, prompt or\n"
    "adapter settings differ from the run's is rejected, naming the key; paths\n"
    "are compared by file name, so a moved file is accepted.\n";

/* Loads the config on every rank; one message if it fails anywhere. */
static int load_config(const cmd_args *args, int override_count, char **overrides, config **cfg)
{
    int status = config_load(args->config_path, override_count, overrides, cfg);
    return dist_check_all(status);
}

int cmd_train(int argc, char **argv)
{
    cmd_args args;
    int status = cmd_args_split(argc, argv, train_usage, 1, &args);
    if (status != 0)
        return status == 1 ? 0 : status;

    if (dist_init("dmnsp", args.petsc_count, args.petsc_args) != 0) {
        fprintf(stderr, "dmnsp: error: %s\n", dmnsp_last_error());
        return 1;
    }
    config *cfg = NULL;
    status = load_config(&args, args.override_count, args.overrides, &cfg);
    if (status == 0)
        status = dist_check_all(experiment_train(cfg));
    log_close_file(); /* after dist_check_all, which logs the error that ended the run */
    config_free(cfg);
    dist_finalize();
    return status == 0 ? 0 : 1;
}

int cmd_eval(int argc, char **argv)
{
    cmd_args args;
    int status = cmd_args_split(argc, argv, eval_usage, 1, &args);
    if (status != 0)
        return status == 1 ? 0 : status;

    /* checkpoint=PATH is an argument of eval, not a config key. */
    const char *checkpoint = NULL;
    char *overrides[256];
    int override_count = 0;
    for (int i = 0; i < args.override_count; i++) {
        if (strncmp(args.overrides[i], "checkpoint=", 11) == 0)
            checkpoint = args.overrides[i] + 11;
        else if (override_count < 256)
            overrides[override_count++] = args.overrides[i];
    }
    if (checkpoint == NULL || checkpoint[0] == '\0') {
        fprintf(stderr, "dmnsp: eval needs checkpoint=PATH\n\n%s", eval_usage);
        return 2;
    }

    if (dist_init("dmnsp", args.petsc_count, args.petsc_args) != 0) {
        fprintf(stderr, "dmnsp: error: %s\n", dmnsp_last_error());
        return 1;
    }
    log_info("threads per rank: %s", dist_thread_summary());
    config *cfg = NULL;
    status = load_config(&args, override_count, overrides, &cfg);
    if (status == 0)
        status = dist_check_all(experiment_eval(cfg, checkpoint));
    config_free(cfg);
    dist_finalize();
    return status == 0 ? 0 : 1;
}

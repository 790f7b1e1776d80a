/* experiment: one continual-learning run, as `dmnsp train` and `dmnsp eval`
 * run it. It is the only module that reads configs, manages run folders and
 * runs the task loop; the modules below it work on plain arrays.
 *
 * For every task t: train on task t's images (logits over its classes
 * only), build task t's null-space bases (projection methods), evaluate the
 * test sets of tasks 0..t with a classifier over all classes seen so far,
 * evaluate task t+1 before training it (forward transfer), then rewrite
 * metrics.json and append task t to checkpoint.h5. Every function here is
 * collective over MPI_COMM_WORLD; an error on any rank makes every rank
 * return -1 (the caller ends the job).
 */
#ifndef DMNSP_EXPERIMENT_H
#define DMNSP_EXPERIMENT_H

#include "dmnsp/clip.h"
#include "dmnsp/config.h"

/* Runs the whole experiment CONFIG describes (resume and overwrite rules of
 * rundir.h apply). Returns 0 or -1 on every rank. */
int experiment_train(const config *cfg);

/* Evaluates the adapters stored in CHECKPOINT_PATH on the test sets of the
 * tasks the checkpoint finished, with the classifier over all their
 * classes, and prints the accuracy per task. Writes nothing. */
int experiment_eval(const config *cfg, const char *checkpoint_path);

/* Builds the model CONFIG describes. The frozen weights come from the
 * `weights` file (architecture from its shapes, checked against
 * `model_name` unless that is "auto") or from the `model_name` preset drawn
 * from `seed`. Adapter settings come from the `adapter.*` keys, adapters
 * from the file or freshly initialised from `seed`. Local, not collective.
 * Returns 0, or -1 with *MODEL NULL. */
int experiment_load_model(const config *cfg, clip_config *model_config, clip_model **model);

/* Checks that CFG agrees with STORED_YAML (the config the checkpoint at
 * PATH was written with) on the keys that decide the model and the
 * classes: dataset, class_order, class_names, increments, model_name,
 * weights, vocab, seed, prompt_template, adapter.bottleneck and
 * adapter.scale. Path keys agree when their file names do. Returns 0, or
 * -1 with a message that starts with COMMAND and names the first key that
 * differs. */
int experiment_check_model_config(const config *cfg, const char *stored_yaml, const char *path, const char *command);

#endif

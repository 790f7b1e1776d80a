/* commands: the dmnsp subcommands, one function each (src/cmd_*.c).
 *
 * Each receives the arguments after the command name and returns the
 * process exit status: 0 success, 1 a runtime failure (message printed),
 * 2 a usage error (usage printed). */
#ifndef DMNSP_COMMANDS_H
#define DMNSP_COMMANDS_H

int cmd_config(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_export(int argc, char **argv);

#endif

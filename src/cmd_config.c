/* dmnsp config: print the fully resolved config (placeholder until the
 * config module lands in this commit series). */
#include "commands.h"

#include <stdio.h>

int cmd_config(int argc, char **argv)
{
    (void)argv;
    fprintf(stderr, "usage: dmnsp config CONFIG.yaml [key=value ...]\n");
    return argc < 1 ? 2 : 1;
}

/* check.c - `sluice check`: what this machine offers and lacks (shard/network issue). */
#include <stdio.h>

#include "control/cli.h"

int cmd_check(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "sluice check: not built yet\n");
    return 1;
}

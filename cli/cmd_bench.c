/*
 * cmd_bench.c - `mtpbench bench` (being written; see the runner engineer's report).
 */
#include <stdio.h> /* defines: fprintf */

#include "commands.h"

int mtp_cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "mtpbench: error: bench is not implemented yet\n");
    return 1;
}

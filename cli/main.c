/*
 * main.c - the mtpbench executable: dispatches to one subcommand per file
 * (cli/cmd_*.c). Every subcommand takes --help.
 */
#include <stdio.h>  /* defines: printf, fprintf */
#include <string.h> /* defines: strcmp */

#include "commands.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"inspect", mtp_cmd_inspect, "describe a model directory (config, parameters, cache, tensors)"},
    {"generate", mtp_cmd_generate, "generate a continuation of a prompt"},
    {"report", mtp_cmd_report, "tables from experiment logs (acceptance, speedup, latency, CIs)"},
    {"run", mtp_cmd_run, "run an experiment spec and log every request"},
    {"bench", mtp_cmd_bench, "measure prefill, decode, verify and draft costs and rooflines"},
    {"synth", mtp_cmd_synth, "write a random checkpoint of DeepSeek-V3 or GLM-4.7-Flash shapes"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: mtpbench COMMAND [options]\n\n"
               "Speculative decoding with the MTP modules of DeepSeek-V3-style models.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'mtpbench COMMAND --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "mtpbench: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

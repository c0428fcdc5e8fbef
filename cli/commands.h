/*
 * commands.h - the subcommands of the mtpbench executable, one per cli/cmd_*.c.
 * Each takes argc/argv with argv[0] = the command name and returns the process
 * exit status (0 success, 1 failure, 2 usage error).
 */
#ifndef MTP_COMMANDS_H
#define MTP_COMMANDS_H

int mtp_cmd_inspect(int argc, char **argv);
int mtp_cmd_generate(int argc, char **argv);
int mtp_cmd_report(int argc, char **argv);
int mtp_cmd_run(int argc, char **argv);
int mtp_cmd_bench(int argc, char **argv);
int mtp_cmd_synth(int argc, char **argv);

#endif

/*
 * cli_util.h - small helpers shared by the subcommands: strict number parsing
 * and error printing in one format ("mtpbench: error: ...").
 */
#ifndef MTP_CLI_UTIL_H
#define MTP_CLI_UTIL_H

#include <stdint.h>

/* Parse an integer option VALUE of option NAME within [lo, hi]; on failure
 * print a usage error and return -1. */
int mtp_cli_parse_int(const char *name, const char *value, long lo, long hi, long *out);
int mtp_cli_parse_double(const char *name, const char *value, double lo, double hi, double *out);

/* Parse "1,2,3" into a new array (caller frees). Returns -1 with a message. */
int mtp_cli_parse_ids(const char *name, const char *value, int32_t **ids, int *n);

/* getopt_long takes any unambiguous prefix of a long option ("--resum" for
 * "--resume"). For options that change what is read or written that is a
 * trap, so this refuses a prefix of any option named in EXACT (NULL-
 * terminated), before getopt_long sees ARGV. OPTS is the getopt_long table
 * (to skip option arguments). Prints a usage error and returns -1. */
struct option;
int mtp_cli_require_exact(int argc, char **argv, const struct option *opts,
                          const char *const *exact);

/* Print "mtpbench: error: <mtp_error_message()>" to stderr and return 1. */
int mtp_cli_fail(void);

#endif

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

/* Print "mtpbench: error: <mtp_error_message()>" to stderr and return 1. */
int mtp_cli_fail(void);

#endif

/* cli_util.c - strict option parsing for the subcommands (see cli_util.h). */
#include "cli_util.h"

#include <errno.h>  /* defines: errno */
#include <math.h>   /* defines: isfinite */
#include <stdio.h>  /* defines: fprintf */
#include <stdlib.h> /* defines: strtol, strtod */

#include "engine/error.h"

int mtp_cli_parse_int(const char *name, const char *value, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < lo || v > hi) {
        fprintf(stderr, "mtpbench: error: option %s: expected an integer in [%ld, %ld], found '%s'\n",
                name, lo, hi, value);
        return -1;
    }
    *out = v;
    return 0;
}

int mtp_cli_parse_double(const char *name, const char *value, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "mtpbench: error: option %s: expected a number in [%g, %g], found '%s'\n",
                name, lo, hi, value);
        return -1;
    }
    *out = v;
    return 0;
}

int mtp_cli_parse_ids(const char *name, const char *value, int32_t **ids, int *n)
{
    int cap = 16, count = 0;
    int32_t *out = mtp_xmalloc(sizeof *out * cap);
    const char *p = value;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            fprintf(stderr, "mtpbench: error: option %s: expected comma-separated token ids, "
                            "found '%s'\n", name, value);
            free(out);
            return -1;
        }
        if (count == cap)
            out = mtp_xrealloc(out, sizeof *out * (cap *= 2));
        out[count++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (count == 0) {
        fprintf(stderr, "mtpbench: error: option %s: no token ids given\n", name);
        free(out);
        return -1;
    }
    *ids = out;
    *n = count;
    return 0;
}

int mtp_cli_fail(void)
{
    fprintf(stderr, "mtpbench: error: %s\n", mtp_error_message());
    return 1;
}

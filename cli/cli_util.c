/* cli_util.c - strict option parsing for the subcommands (see cli_util.h). */
#include "cli_util.h"

#include <errno.h>  /* defines: errno */
#include <math.h>   /* defines: isfinite */
#include <stdio.h>  /* defines: fprintf */
#include <getopt.h> /* defines: struct option, required_argument */
#include <stdlib.h> /* defines: strtol, strtod */
#include <string.h> /* defines: strncmp, strcspn */

#include "core/error.h"

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

/* The getopt_long entry named exactly NAME[0..len), or NULL. */
static const struct option *option_named(const struct option *opts, const char *name, size_t len)
{
    for (; opts->name; opts++)
        if (strlen(opts->name) == len && strncmp(opts->name, name, len) == 0)
            return opts;
    return NULL;
}

int mtp_cli_require_exact(int argc, char **argv, const struct option *opts,
                          const char *const *exact)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            return 0; /* operands follow */
        if (strncmp(a, "--", 2) != 0)
            continue;
        const char *name = a + 2;
        size_t len = strcspn(name, "=");
        const struct option *o = option_named(opts, name, len);
        if (o) {
            if (o->has_arg == required_argument && name[len] != '=')
                i++; /* its argument, whatever it looks like */
            continue;
        }
        for (const char *const *e = exact; *e; e++)
            if (len > 0 && strncmp(*e, name, len) == 0) {
                fprintf(stderr, "mtpbench: error: option --%.*s: expected the full name --%s "
                                "(options that change what is read or written are never "
                                "abbreviated)\n", (int)len, name, *e);
                return -1;
            }
    }
    return 0;
}

int mtp_cli_fail(void)
{
    fprintf(stderr, "mtpbench: error: %s\n", mtp_error_message());
    return 1;
}

/*
 * shard.c - the deterministic, cost-balanced split of an experiment's work
 * units over ranks, and the rank log names (see shard.h).
 */
#include "shard.h"

#include <ctype.h>  /* defines: isdigit */
#include <stdio.h>  /* defines: snprintf, sscanf */
#include <stdlib.h> /* defines: qsort, free, strtol */
#include <string.h> /* defines: strlen, strncmp */

#include "../core/error.h"

#define MTP_SHARD_MAX 65536

int mtp_shard_parse(const char *name, const char *text, struct mtp_shard *out)
{
    char *end;
    long r = strtol(text, &end, 10);
    long n = -1;
    /* strtol alone would take " 1", "+1" and "-0": only digits are R/N. */
    if (isdigit((unsigned char)text[0]) && *end == '/' && isdigit((unsigned char)end[1])) {
        char *num = end + 1;
        n = strtol(num, &end, 10);
        if (*end != '\0')
            n = -1;
    }
    if (n < 1 || n > MTP_SHARD_MAX || r < 0 || r >= n)
        return mtp_error_set("%s: expected R/N with 0 <= R < N <= %d (e.g. 0/4), found '%s'", name,
                             MTP_SHARD_MAX, text);
    out->rank = (int)r;
    out->size = (int)n;
    return MTP_OK;
}

double mtp_shard_request_cost(int prompt_tokens, int max_new_tokens)
{
    double p = prompt_tokens, m = max_new_tokens;
    /* Decode: M steps, each a weight pass (1) plus attention over the
     * context (1/256 per position: attention is a small part of a step at
     * these lengths). Prefill: P tokens in batched forwards, about 1/8 of a
     * decode step per token. The constants are rough, not measured: the
     * split only needs the order of costs and their rough ratios. */
    return m * (1.0 + (p + m / 2) / 256.0) + p / 8.0;
}

struct shard_item {
    double cost;
    int unit;
};

/* Largest cost first; equal costs by unit index, so the order is total. */
static int by_cost_desc(const void *a, const void *b)
{
    const struct shard_item *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost < y->cost ? 1 : -1;
    return (x->unit > y->unit) - (x->unit < y->unit);
}

/* The rank with the least load (lowest index on ties). A linear scan: N is
 * at most a few thousand and units are decoded for seconds each. */
static int least_loaded(const double *load, int n_ranks)
{
    int best = 0;
    for (int k = 1; k < n_ranks; k++)
        if (load[k] < load[best])
            best = k;
    return best;
}

int *mtp_shard_split(const double *cost, int n_units, int n_ranks)
{
    int *owner = mtp_xmalloc((size_t)(n_units > 0 ? n_units : 1) * sizeof *owner);
    struct shard_item *items = mtp_xmalloc((size_t)(n_units > 0 ? n_units : 1) * sizeof *items);
    double *load = mtp_xcalloc((size_t)n_ranks, sizeof *load);
    int n = 0;
    for (int u = 0; u < n_units; u++) {
        owner[u] = -1;
        if (cost[u] > 0)
            items[n++] = (struct shard_item){.cost = cost[u], .unit = u};
    }
    qsort(items, (size_t)n, sizeof *items, by_cost_desc);
    for (int i = 0; i < n; i++) {
        int k = least_loaded(load, n_ranks);
        owner[items[i].unit] = k;
        load[k] += items[i].cost;
    }
    free(load);
    free(items);
    return owner;
}

char *mtp_shard_log_path(const char *dir, const char *name, int rank, int size)
{
    size_t n = strlen(dir) + strlen(name) + 64;
    char *p = mtp_xmalloc(n);
    snprintf(p, n, "%s/%s.rank-%d-of-%d.msgpack", dir, name, rank, size);
    return p;
}

bool mtp_shard_is_log_name(const char *file, const char *name, int *rank, int *size)
{
    size_t ln = strlen(name);
    if (strncmp(file, name, ln) != 0)
        return false;
    int r, n, used = 0;
    if (sscanf(file + ln, ".rank-%d-of-%d.msgpack%n", &r, &n, &used) != 2 || used == 0 ||
        file[ln + (size_t)used] != '\0' || r < 0 || n < 1 || r >= n)
        return false;
    /* Only the canonical spelling (no "+1", "01"): the name round-trips. */
    char canon[96];
    snprintf(canon, sizeof canon, ".rank-%d-of-%d.msgpack", r, n);
    if (strcmp(canon, file + ln) != 0)
        return false;
    if (rank)
        *rank = r;
    if (size)
        *size = n;
    return true;
}

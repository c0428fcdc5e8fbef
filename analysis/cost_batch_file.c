/*
 * cost_batch_file.c - reading the cost file's optional "batch" section
 * (cost_batch.h; written by bench/bench_batch_json.c). Like every other part
 * of the file, each number is checked before the model divides by it; the
 * ratios are taken within each round and their median over rounds kept (the
 * batch cases run interleaved, round by round, as the batch-1 curve does).
 */
#include <jansson.h> /* defines: json_t, json_object_get */
#include <math.h>    /* defines: isfinite, NAN */
#include <stdio.h>   /* defines: snprintf */
#include <stdlib.h>  /* defines: free, qsort */
#include <string.h>  /* defines: memset */

#include "cost_batch.h"
#include "cost_file.h"
#include "core/error.h"

#define MAX_NS 1e15 /* 11 days: anything above is a broken file, not a forward */

enum { NK = MTP_COST_BATCH_MAX_K + 1, MAX_ROUNDS = 1000 };

/* Per-round ns of one batch size, as read. */
struct b_rounds {
    double *fwd[NK];                          /* [rounds] F(B, K) */
    double *mod[NK][MTP_COST_BATCH_MAX_K];    /* [rounds] D_k(B, K+1) */
    double *singles;                          /* [rounds] or NULL */
    double experts[NK];
    bool seen[NK];
};

struct reader {
    const char *file;
    struct mtp_cost_batch *b;
    struct b_rounds r[MTP_COST_BATCH_N_B]; /* by index in mtp_cost_batch_sizes */
};

static int b_index(long long B)
{
    for (int i = 0; i < MTP_COST_BATCH_N_B; i++)
        if (mtp_cost_batch_sizes[i] == B)
            return i;
    return -1;
}

static const char *found_kind(json_t *v)
{
    return !v ? "nothing" : json_is_integer(v) ? "one out of range" : "another type";
}

/* An integer at KEY of O in LO..HI; WHERE ("batch", "batch.cases[3]") names O. */
static int int_at(const struct reader *rd, json_t *o, const char *where, const char *key,
                  long long lo, long long hi, int *dst)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return mtp_error_set("COSTS %s: key '%s.%s': expected an integer in %lld..%lld, found "
                             "%s", rd->file, where, key, lo, hi, found_kind(v));
    *dst = (int)json_integer_value(v);
    return MTP_OK;
}

/* A finite number in 0..1e6 at KEY (experts touched per layer). */
static int experts_at(const struct reader *rd, json_t *o, const char *where, const char *key,
                      double *dst)
{
    json_t *v = json_object_get(o, key);
    double x = json_number_value(v);
    if (!json_is_number(v) || !isfinite(x) || x < 0 || x > 1e6)
        return mtp_error_set("COSTS %s: key '%s.%s': expected a finite number in 0..1e6 "
                             "(experts per MoE layer), found %s%g", rd->file, where, key,
                             json_is_number(v) ? "" : "a non-number ", x);
    *dst = x;
    return MTP_OK;
}

/* O's "ns" summary and "ns_samples" (one per round, each finite, > 0 and at
 * most MAX_NS; the median inside their range) into a new array *DST. */
static int timed_at(const struct reader *rd, json_t *o, const char *where, double **dst)
{
    const struct mtp_cost_batch *b = rd->b;
    json_t *ns = json_object_get(o, "ns"), *med = json_object_get(ns, "median");
    json_t *s = json_object_get(o, "ns_samples");
    if (!json_is_object(ns) || !json_is_number(med))
        return mtp_error_set("COSTS %s: key '%s.ns': expected a summary object with a "
                             "numeric median, found %s", rd->file, where,
                             !ns ? "nothing" : json_is_object(ns) ? "no median" : "another type");
    if (mtp_costs_check_summary(rd->file, where, "ns", ns))
        return MTP_ERR;
    if (!json_is_array(s) || (int)json_array_size(s) != b->rounds)
        return mtp_error_set("COSTS %s: key '%s.ns_samples': expected an array of %d numbers "
                             "(one per round), found %d entries", rd->file, where, b->rounds,
                             json_is_array(s) ? (int)json_array_size(s) : -1);
    double *v = mtp_xmalloc(sizeof(double) * (size_t)b->rounds), lo = INFINITY, hi = -INFINITY;
    for (int r = 0; r < b->rounds; r++) {
        json_t *x = json_array_get(s, (size_t)r);
        v[r] = json_number_value(x);
        if (!json_is_number(x) || !isfinite(v[r]) || v[r] <= 0 || v[r] > MAX_NS) {
            free(v);
            return mtp_error_set("COSTS %s: key '%s.ns_samples[%d]': expected a finite number "
                                 "> 0 and <= 1e15 (ns), found %s%g", rd->file, where, r,
                                 json_is_number(x) ? "" : "a non-number ", json_number_value(x));
        }
        lo = v[r] < lo ? v[r] : lo;
        hi = v[r] > hi ? v[r] : hi;
    }
    double m = json_number_value(med), tol = 1e-9 * hi;
    if (m < lo - tol || m > hi + tol) {
        free(v);
        return mtp_error_set("COSTS %s: key '%s.ns.median' = %g lies outside its 'ns_samples' "
                             "[%g, %g]", rd->file, where, m, lo, hi);
    }
    *dst = v;
    return MTP_OK;
}

/* A case's "modules": one entry per module timed, module = index + 1. */
static int read_modules(struct reader *rd, json_t *c, const char *where, struct b_rounds *br,
                        int K)
{
    json_t *mods = json_object_get(c, "modules");
    int m = rd->b->modules;
    if (!json_is_array(mods) || (int)json_array_size(mods) != m)
        return mtp_error_set("COSTS %s: key '%s.modules': expected an array of %d entries "
                             "(batch.modules), found %d", rd->file, where, m,
                             json_is_array(mods) ? (int)json_array_size(mods) : -1);
    char sub[160];
    for (int k = 1; k <= m; k++) {
        json_t *o = json_array_get(mods, (size_t)(k - 1));
        int module;
        snprintf(sub, sizeof sub, "%s.modules[%d]", where, k - 1);
        if (int_at(rd, o, sub, "module", k, k, &module) || timed_at(rd, o, sub, &br->mod[K][k - 1]))
            return MTP_ERR;
    }
    return MTP_OK;
}

/* Case I of "cases". */
static int read_case(struct reader *rd, json_t *c, int i)
{
    char where[64];
    snprintf(where, sizeof where, "batch.cases[%d]", i);
    if (!json_is_object(c))
        return mtp_error_set("COSTS %s: key '%s': expected an object", rd->file, where);
    json_t *bv = json_object_get(c, "B");
    int bi = json_is_integer(bv) ? b_index(json_integer_value(bv)) : -1;
    if (bi < 0 && json_is_integer(bv))
        return mtp_error_set("COSTS %s: key '%s.B': expected one of 1, 2, 4, 8, 16, 32 (the "
                             "bench's batch sizes), found %lld", rd->file, where,
                             (long long)json_integer_value(bv));
    if (bi < 0)
        return mtp_error_set("COSTS %s: key '%s.B': expected one of 1, 2, 4, 8, 16, 32 (the "
                             "bench's batch sizes), found %s", rd->file, where, found_kind(bv));
    int B = mtp_cost_batch_sizes[bi], K = 0, T;
    struct b_rounds *br = &rd->r[bi];
    if (int_at(rd, c, where, "K", 0, MTP_COST_BATCH_MAX_K, &K))
        return MTP_ERR;
    if (int_at(rd, c, where, "T", B * (K + 1), B * (K + 1), &T)) /* T = B (K+1) */
        return MTP_ERR;
    if (br->seen[K])
        return mtp_error_set("COSTS %s: key '%s': a second case for B %d, K %d (expected one "
                             "per B and K)", rd->file, where, B, K);
    br->seen[K] = true;
    if (timed_at(rd, c, where, &br->fwd[K]) ||
        experts_at(rd, c, where, "experts_per_layer", &br->experts[K]) ||
        read_modules(rd, c, where, br, K))
        return MTP_ERR;
    json_t *sd = json_object_get(c, "single_decodes");
    if (!sd)
        return MTP_OK;
    char sub[96];
    int n;
    double e;
    snprintf(sub, sizeof sub, "%s.single_decodes", where);
    if (B != 8 || K != 0)
        return mtp_error_set("COSTS %s: key '%s': expected only with B 8, K 0 (the bench's "
                             "comparison), found it with B %d, K %d", rd->file, sub, B, K);
    return int_at(rd, sd, sub, "n", 8, 8, &n) || experts_at(rd, sd, sub, "experts_per_layer", &e) ||
                   timed_at(rd, sd, sub, &br->singles)
               ? MTP_ERR
               : MTP_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median over rounds of NUM[r] / DEN[r] (DEN NULL: of NUM[r]). */
static double median_ratio(const double *num, const double *den, int rounds)
{
    double *v = mtp_xmalloc(sizeof(double) * (size_t)rounds);
    for (int r = 0; r < rounds; r++)
        v[r] = den ? num[r] / den[r] : num[r];
    qsort(v, (size_t)rounds, sizeof *v, cmp_double);
    double m = rounds % 2 ? v[rounds / 2] : 0.5 * (v[rounds / 2 - 1] + v[rounds / 2]);
    free(v);
    return m;
}

/* (p90 - p10) / median of V [N], nearest-rank percentiles (bench_timer.c's). */
static double spread_of(const double *v, int n)
{
    double *x = mtp_xmalloc(sizeof(double) * (size_t)n);
    memcpy(x, v, sizeof(double) * (size_t)n);
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    int i10 = (int)ceil(0.10 * n) - 1, i90 = (int)ceil(0.90 * n) - 1;
    double med = n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
    double s = (x[i90 < 0 ? 0 : i90] - x[i10 < 0 ? 0 : i10]) / med;
    free(x);
    return s;
}

/* Every B present has K = 0..3; B = 1 is present (the unit conversion). */
static int check_complete(const struct reader *rd)
{
    if (!rd->r[0].seen[0])
        return mtp_error_set("COSTS %s: key 'batch.cases': expected a case with B 1, K 0 (the "
                             "one-sequence forward the batch units convert through), found "
                             "none", rd->file);
    for (int i = 0; i < MTP_COST_BATCH_N_B; i++)
        for (int K = 0; K < NK; K++)
            if (rd->r[i].seen[0] != rd->r[i].seen[K])
                return mtp_error_set("COSTS %s: key 'batch.cases': B %d has a case for K %d "
                                     "but not for K %d (expected K = 0..3 for every B)",
                                     rd->file, mtp_cost_batch_sizes[i],
                                     rd->r[i].seen[0] ? 0 : K, rd->r[i].seen[0] ? K : 0);
    return MTP_OK;
}

/* The medians of the per-round ratios (cost_batch.h) for every B present. */
static void summarise(struct reader *rd)
{
    struct mtp_cost_batch *b = rd->b;
    int R = b->rounds;
    b->singles_over_forward = NAN;
    b->forward1_spread = spread_of(rd->r[0].fwd[0], R);
    for (int i = 0; i < MTP_COST_BATCH_N_B; i++) {
        struct b_rounds *br = &rd->r[i];
        if (!br->seen[0])
            continue;
        int bi = b->n_b++;
        b->B[bi] = mtp_cost_batch_sizes[i];
        b->unit[bi] = median_ratio(rd->r[0].fwd[0], br->fwd[0], R);
        for (int K = 0; K < NK; K++) {
            b->experts[bi][K] = br->experts[K];
            b->forward_ns[bi][K] = median_ratio(br->fwd[K], NULL, R);
            b->verify[bi][K] = median_ratio(br->fwd[K], br->fwd[0], R);
            for (int k = 1; k <= b->modules; k++)
                b->draft[bi][K][k - 1] = median_ratio(br->mod[K][k - 1], br->fwd[0], R);
        }
        if (br->singles)
            b->singles_over_forward = median_ratio(br->singles, br->fwd[0], R);
    }
}

static void reader_free(struct reader *rd)
{
    for (int i = 0; i < MTP_COST_BATCH_N_B; i++) {
        for (int K = 0; K < NK; K++) {
            free(rd->r[i].fwd[K]);
            for (int k = 0; k < MTP_COST_BATCH_MAX_K; k++)
                free(rd->r[i].mod[K][k]);
        }
        free(rd->r[i].singles);
    }
}

static int read_section(struct reader *rd, json_t *sec, int model_modules)
{
    struct mtp_cost_batch *b = rd->b;
    int max_mod = model_modules < MTP_COST_BATCH_MAX_K ? model_modules : MTP_COST_BATCH_MAX_K;
    if (int_at(rd, sec, "batch", "context", 1, 1 << 30, &b->context) ||
        int_at(rd, sec, "batch", "rounds", 1, MAX_ROUNDS, &b->rounds) ||
        int_at(rd, sec, "batch", "modules", 0, max_mod, &b->modules) ||
        int_at(rd, sec, "batch", "n_moe_layers", 0, 1 << 20, &b->n_moe))
        return MTP_ERR;
    json_t *cases = json_object_get(sec, "cases");
    int n = json_is_array(cases) ? (int)json_array_size(cases) : -1;
    if (n < 1 || n > MTP_COST_BATCH_N_B * NK)
        return mtp_error_set("COSTS %s: key 'batch.cases': expected an array of 1..%d cases, "
                             "found %s", rd->file, MTP_COST_BATCH_N_B * NK,
                             n < 0 ? "no array" : n == 0 ? "none" : "more");
    for (int i = 0; i < n; i++)
        if (read_case(rd, json_array_get(cases, (size_t)i), i))
            return MTP_ERR;
    if (check_complete(rd))
        return MTP_ERR;
    summarise(rd);
    return MTP_OK;
}

int mtp_cost_batch_read(struct mtp_costs *out, json_t *root)
{
    json_t *sec = json_object_get(root, "batch");
    if (!sec)
        return MTP_OK; /* no --batch, or a file from before it */
    if (!json_is_object(sec))
        return mtp_error_set("COSTS %s: key 'batch': expected an object (the batch curve of "
                             "`mtpbench bench --batch`)", out->file);
    struct reader rd = {.file = out->file, .b = mtp_xcalloc(1, sizeof *rd.b)};
    int rc = read_section(&rd, sec, out->model_modules);
    reader_free(&rd);
    if (rc == MTP_OK)
        out->batch = rd.b;
    else
        free(rd.b);
    return rc;
}

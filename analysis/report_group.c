/*
 * report_group.c - split the loaded requests into groups by the --by keys,
 * split each group into prompts (the bootstrap's units), pair every request
 * with its baseline, and drive the metric computation.
 *
 * Pairing (spec/metrics.md "speedup"): a request is compared with the request
 * of the baseline decoder from the same run with the same sampling index,
 * dataset, prompt, repeat, turn and batch size (a request decoded in a batch
 * of 4 against the baseline in a batch of 4: the per-request speed of a
 * batch is not the speed of a lone request); same run means same machine,
 * backend and spec, so the ratio is never across runs. A request without such a partner is left
 * out of the speedup (on both sides), never compared with another run.
 * Requests that never decoded (EOS in the prefill) are no group's members and
 * no baseline's partner: they are counted, not measured (report_complete.c).
 */
#include "report_internal.h"

#include <math.h>   /* defines: NAN, isnan */
#include <stdarg.h> /* defines: va_list */
#include <stdlib.h> /* defines: qsort, bsearch, free */
#include <string.h> /* defines: strcmp, strtok_r */

#include "core/error.h" /* defines: mtp_error_set, mtp_xcalloc */

static const char *const key_names[MTP_REPORT_KEY_COUNT] = {
    [MTP_REPORT_KEY_DECODER] = "decoder",   [MTP_REPORT_KEY_TEMPERATURE] = "temperature",
    [MTP_REPORT_KEY_CATEGORY] = "category", [MTP_REPORT_KEY_DATASET] = "dataset",
    [MTP_REPORT_KEY_RUN] = "run",           [MTP_REPORT_KEY_WIRING] = "wiring",
    [MTP_REPORT_KEY_TURN] = "turn",         [MTP_REPORT_KEY_BATCH] = "batch",
};

const char *mtp_report_key_name(enum mtp_report_key k) { return key_names[k]; }

void mtp_report_options_default(struct mtp_report_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->n_by = 2;
    opt->by[0] = MTP_REPORT_KEY_DECODER;
    opt->by[1] = MTP_REPORT_KEY_TEMPERATURE;
    opt->bootstrap = MTP_REPORT_DEFAULT_BOOTSTRAP;
    opt->seed = 0;
    opt->latency = true;
}

int mtp_report_parse_by(const char *list, struct mtp_report_options *opt)
{
    char *copy = mtp_xstrdup(list), *save = NULL;
    int n = 0, rc = MTP_OK;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == MTP_OK;
         tok = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < MTP_REPORT_KEY_COUNT && strcmp(tok, key_names[k]) != 0)
            k++;
        if (k == MTP_REPORT_KEY_COUNT)
            rc = mtp_error_set("--by: unknown key '%s' (known: decoder, temperature, category, "
                               "dataset, run, wiring, turn, batch)", tok);
        for (int i = 0; i < n && rc == MTP_OK; i++)
            if (opt->by[i] == (enum mtp_report_key)k)
                rc = mtp_error_set("--by: key '%s' given twice", tok);
        if (rc == MTP_OK)
            opt->by[n++] = (enum mtp_report_key)k;
    }
    free(copy);
    if (rc == MTP_OK && n == 0)
        rc = mtp_error_set("--by: expected a comma-separated list of keys, found '%s'", list);
    if (rc == MTP_OK)
        opt->n_by = n;
    return rc;
}

static bool by_has(const struct mtp_report_options *opt, enum mtp_report_key k)
{
    for (int i = 0; i < opt->n_by; i++)
        if (opt->by[i] == k)
            return true;
    return false;
}

/* Batch sizes are 1..MTP_SPEC_MAX_BATCH in both records (the log readers
 * check them), so a table of flags holds the set. */
int mtp_report_batch_sizes(const struct mtp_report_data *d, int *out, int cap)
{
    bool seen[MTP_SPEC_MAX_BATCH + 1] = {false};
    for (int i = 0; i < d->n_requests; i++) {
        int b = d->requests[i].rec.batch_size;
        if (b >= 1 && b <= MTP_SPEC_MAX_BATCH)
            seen[b] = true;
    }
    for (int r = 0; r < d->n_runs; r++) {
        const struct mtp_log_plan *pl = &d->runs[r].plan;
        for (int i = 0; d->runs[r].has_plan && i < pl->n_batch_sizes; i++)
            if (pl->batch_sizes[i] >= 1 && pl->batch_sizes[i] <= MTP_SPEC_MAX_BATCH)
                seen[pl->batch_sizes[i]] = true;
    }
    int n = 0;
    for (int b = 1; b <= MTP_SPEC_MAX_BATCH; b++)
        if (seen[b]) {
            if (n < cap)
                out[n] = b;
            n++;
        }
    return n;
}

bool mtp_report_add_batch_key(const struct mtp_report_data *d, struct mtp_report_options *opt)
{
    int sizes[2];
    if (by_has(opt, MTP_REPORT_KEY_BATCH) || mtp_report_batch_sizes(d, sizes, 2) < 2 ||
        opt->n_by >= MTP_REPORT_KEY_COUNT)
        return false;
    opt->by[opt->n_by++] = MTP_REPORT_KEY_BATCH;
    return true;
}

/* ---- string keys ---------------------------------------------------------- */

/* Fields are joined with 0x1f, which no decoder name, stem or id contains in
 * practice; numbers are zero-padded so that strcmp orders them numerically. */
static char *pair_key(const struct mtp_report_request *q)
{
    const struct mtp_request_record *r = &q->rec;
    /* A turn pairs with the same turn of the baseline's conversation, a
     * request of a batch run with the baseline's request at the same B. */
    return mtp_report_xprintf("%08d\x1f%08d\x1f%s\x1f%s\x1f%08d\x1f%08d\x1f%08d", q->run,
                              r->sampling_index, r->dataset, r->prompt_id, r->repeat, r->turn,
                              r->batch_size);
}

static char *unit_key(const struct mtp_report_request *q)
{
    return mtp_report_xprintf("%08d\x1f%s\x1f%s", q->run, q->rec.dataset, q->rec.prompt_id);
}

/* "after_shared_head_norm,kept,previous_module", or "-" without wiring. */
char *mtp_report_wiring_label(const struct mtp_request_record *r)
{
    if (!r->wiring[0])
        return mtp_xstrdup("-");
    return mtp_report_xprintf("%s,%s,%s", r->wiring[0], r->wiring[1], r->wiring[2]);
}

char *mtp_report_group_key(const struct mtp_report_request *q,
                           const struct mtp_report_options *opt)
{
    const struct mtp_request_record *r = &q->rec;
    char *s = mtp_xstrdup("");
    for (int i = 0; i < opt->n_by; i++) {
        char *part = NULL;
        switch (opt->by[i]) {
        case MTP_REPORT_KEY_DECODER:
            /* The draft vocabulary is a decoder setting: runs that reuse a
             * name with another N are different decoders. */
            part = mtp_report_xprintf("%s\x1f%d\x1f%d\x1f%d\x1f%d", r->decoder, (int)r->mode,
                                      r->depth, (int)r->drafting, r->draft_vocab);
            break;
        case MTP_REPORT_KEY_TEMPERATURE:
            part = mtp_report_xprintf("%.17g\x1f%.17g\x1f%d", r->temperature, r->top_p, r->top_k);
            break;
        case MTP_REPORT_KEY_CATEGORY: part = mtp_xstrdup(r->category); break;
        case MTP_REPORT_KEY_DATASET: part = mtp_xstrdup(r->dataset); break;
        case MTP_REPORT_KEY_RUN: part = mtp_report_xprintf("%08d", q->run); break;
        case MTP_REPORT_KEY_WIRING: part = mtp_report_wiring_label(r); break;
        case MTP_REPORT_KEY_TURN: part = mtp_report_xprintf("%08d", r->turn); break;
        case MTP_REPORT_KEY_BATCH: part = mtp_report_xprintf("%08d", r->batch_size); break;
        default: part = mtp_xstrdup(""); break;
        }
        char *joined = mtp_report_xprintf("%s\x1e%s", s, part);
        free(s);
        free(part);
        s = joined;
    }
    return s;
}

struct keyed {
    char *key;
    int idx;
};

static int keyed_cmp(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static void keyed_free(struct keyed *k, int n)
{
    for (int i = 0; i < n; i++)
        free(k[i].key);
    free(k);
}

/* ---- baseline pairing ----------------------------------------------------- */

/* partner[i] = the baseline request paired with request i, or -1. */
static int *report_pair_baselines(const struct mtp_report_data *d)
{
    struct keyed *base = mtp_xcalloc((size_t)d->n_requests + 1, sizeof *base);
    int nb = 0;
    /* A baseline that never decoded has no decode time to compare with. */
    for (int i = 0; i < d->n_requests; i++)
        if (d->requests[i].rec.mode == MTP_SPEC_DECODER_BASELINE &&
            d->requests[i].rec.n_steps > 0)
            base[nb++] = (struct keyed){pair_key(&d->requests[i]), i};
    qsort(base, (size_t)nb, sizeof *base, keyed_cmp);
    int *partner = mtp_xcalloc((size_t)d->n_requests + 1, sizeof *partner);
    for (int i = 0; i < d->n_requests; i++) {
        struct keyed probe = {pair_key(&d->requests[i]), -1};
        /* The first baseline with this key (ties sort by index; idx -1 is below all). */
        int lo = 0, hi = nb;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (keyed_cmp(&base[mid], &probe) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        partner[i] = lo < nb && strcmp(base[lo].key, probe.key) == 0 ? base[lo].idx : -1;
        free(probe.key);
    }
    keyed_free(base, nb);
    return partner;
}

/* ---- units ---------------------------------------------------------------- */

static double experts_sum(const struct mtp_request_record *r, double *cells)
{
    double s = 0;
    size_t n = (size_t)r->n_steps * (size_t)r->n_moe_layers;
    for (size_t i = 0; i < n; i++)
        s += r->experts_touched[i];
    *cells = (double)n;
    return s;
}

static double decode_ns(const struct mtp_request_record *r)
{
    return r->total_ns > r->ttft_ns ? (double)(r->total_ns - r->ttft_ns) : 0.0;
}

/* Add request R (paired with baseline B, or NULL) to unit U. */
static void unit_add(struct mtp_report_unit *u, const struct mtp_request_record *r,
                     const struct mtp_request_record *b)
{
    double tok = r->n_output > 0 ? r->n_output - 1 : 0;
    mtp_metrics_add_request_drafted(&u->m, r->accepted, r->accepted_uncut, r->drafted,
                                    r->n_steps, r->n_output,
                                    r->total_ns > r->ttft_ns ? r->total_ns - r->ttft_ns : 0);
    double cells = 0, sum = r->experts_touched ? experts_sum(r, &cells) : 0;
    u->exp_sum += sum;
    u->exp_n += cells;
    if (!b)
        return;
    u->pair_tok += tok;
    u->pair_ns += decode_ns(r);
    u->base_tok += b->n_output > 0 ? b->n_output - 1 : 0;
    u->base_ns += decode_ns(b);
    if (r->experts_touched && b->experts_touched) {
        double bcells = 0, bsum = experts_sum(b, &bcells);
        u->pexp_sum += sum;
        u->pexp_n += cells;
        u->bexp_sum += bsum;
        u->bexp_n += bcells;
    }
}

/* Split G's requests into units ordered by unit key, and sum them. A request
 * that ended at EOS in the prefill (no decode step) has no tau, acceptance or
 * decode speed: it leaves the members (and so every metric and the prompt
 * count) and is counted in g->n_not_decoded instead, so that a prompt without
 * a decode step never passes for a prompt of the interval. */
static void group_units(const struct mtp_report_data *d, struct mtp_report_group *g,
                        const int *partner)
{
    struct keyed *ks = mtp_xcalloc((size_t)g->n_requests + 1, sizeof *ks);
    int n = 0;
    for (int i = 0; i < g->n_requests; i++) {
        if (d->requests[g->requests[i]].rec.n_steps == 0) {
            g->n_not_decoded++;
            continue;
        }
        ks[n++] = (struct keyed){unit_key(&d->requests[g->requests[i]]), g->requests[i]};
    }
    g->n_requests = n;
    qsort(ks, (size_t)g->n_requests, sizeof *ks, keyed_cmp);
    g->units = mtp_xcalloc((size_t)g->n_requests, sizeof *g->units);
    g->member_unit = mtp_xcalloc((size_t)g->n_requests, sizeof *g->member_unit);
    g->unit_keys = mtp_xcalloc((size_t)g->n_requests, sizeof *g->unit_keys);
    for (int i = 0; i < g->n_requests; i++) {
        if (i == 0 || strcmp(ks[i].key, ks[i - 1].key) != 0) {
            g->unit_keys[g->n_units] = mtp_xstrdup(ks[i].key);
            mtp_metrics_init(&g->units[g->n_units].m, g->k);
            g->n_units++;
        }
        g->requests[i] = ks[i].idx; /* members in unit order from here on */
        g->member_unit[i] = g->n_units - 1;
        const struct mtp_request_record *r = &d->requests[ks[i].idx].rec;
        int p = partner[ks[i].idx];
        unit_add(&g->units[g->n_units - 1], r, p >= 0 ? &d->requests[p].rec : NULL);
        g->n_steps += r->n_steps;
        g->n_tokens += r->n_output > 0 ? r->n_output - 1 : 0;
        g->has_baseline |= p >= 0;
        g->has_experts |= r->experts_touched != NULL;
    }
    keyed_free(ks, g->n_requests);
}

/* ---- groups --------------------------------------------------------------- */

/* The key fields of G from its first request; decoder fields that differ
 * between members (decoder not grouped on) become "mixed". */
static void group_describe(const struct mtp_report_data *d, struct mtp_report_group *g,
                           const struct mtp_report_options *opt)
{
    const struct mtp_report_request *q0 = &d->requests[g->requests[0]];
    const struct mtp_request_record *r0 = &q0->rec;
    g->decoder = by_has(opt, MTP_REPORT_KEY_DECODER) ? r0->decoder : NULL;
    g->mode = r0->mode;
    g->depth = r0->depth;
    g->drafting = r0->drafting;
    g->draft_vocab = r0->draft_vocab;
    g->k = 0;
    char *w0 = mtp_report_wiring_label(r0);
    for (int i = 0; i < g->n_requests; i++) {
        const struct mtp_request_record *r = &d->requests[g->requests[i]].rec;
        char *w = mtp_report_wiring_label(r);
        /* Acceptance of different decoders or depths is not one quantity
         * (issue 11: baseline steps pulled alpha_1 to 0.586). */
        if (strcmp(r->decoder, r0->decoder) || r->mode != r0->mode || r->depth != r0->depth ||
            r->drafting != r0->drafting || r->draft_vocab != r0->draft_vocab || strcmp(w, w0))
            g->mixed = true;
        free(w);
        if (r->depth != g->depth || r->drafting != g->drafting)
            g->depth = -1;
        if (r->depth > g->k)
            g->k = r->depth < MTP_METRICS_MAX_DEPTH ? r->depth : MTP_METRICS_MAX_DEPTH;
    }
    g->wiring = by_has(opt, MTP_REPORT_KEY_WIRING) ? w0 : NULL;
    if (!g->wiring)
        free(w0);
    bool by_t = by_has(opt, MTP_REPORT_KEY_TEMPERATURE);
    g->temperature = by_t ? r0->temperature : NAN;
    g->top_p = by_t ? r0->top_p : NAN;
    g->top_k = by_t ? r0->top_k : -1;
    g->category = by_has(opt, MTP_REPORT_KEY_CATEGORY) ? r0->category : NULL;
    g->dataset = by_has(opt, MTP_REPORT_KEY_DATASET) ? r0->dataset : NULL;
    g->run = by_has(opt, MTP_REPORT_KEY_RUN) ? q0->run : -1;
    g->turn = by_has(opt, MTP_REPORT_KEY_TURN) ? q0->rec.turn : -1;
    g->batch_size = by_has(opt, MTP_REPORT_KEY_BATCH) ? q0->rec.batch_size : -1;
}

/* Groups of D by OPT->by: members listed, units summed. */
static int report_make_groups(const struct mtp_report_data *d,
                              const struct mtp_report_options *opt, struct mtp_report *out)
{
    struct keyed *ks = mtp_xcalloc((size_t)d->n_requests + 1, sizeof *ks);
    for (int i = 0; i < d->n_requests; i++)
        ks[i] = (struct keyed){mtp_report_group_key(&d->requests[i], opt), i};
    qsort(ks, (size_t)d->n_requests, sizeof *ks, keyed_cmp);
    int *partner = report_pair_baselines(d);
    out->groups = mtp_xcalloc((size_t)d->n_requests + 1, sizeof *out->groups);
    char **gkeys = mtp_xcalloc((size_t)d->n_requests + 1, sizeof *gkeys); /* sorted */
    for (int i = 0; i < d->n_requests;) {
        int j = i;
        while (j < d->n_requests && strcmp(ks[j].key, ks[i].key) == 0)
            j++;
        gkeys[out->n_groups] = ks[i].key;
        struct mtp_report_group *g = &out->groups[out->n_groups++];
        g->n_requests = j - i;
        g->requests = mtp_xcalloc((size_t)g->n_requests, sizeof *g->requests);
        for (int m = i; m < j; m++)
            g->requests[m - i] = ks[m].idx;
        group_describe(d, g, opt);
        group_units(d, g, partner);
        i = j;
    }
    free(partner);
    /* What the plans held for each group; groups that only the plans know
     * (a category whose every prompt was skipped) are added. */
    mtp_report_complete_groups(d, opt, out, gkeys);
    free(gkeys);
    keyed_free(ks, d->n_requests);
    return MTP_OK;
}

static int cmp_str(const char *a, const char *b)
{
    if (!a || !b)
        return (a != NULL) - (b != NULL);
    return strcmp(a, b);
}

static int cmp_num(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) - isnan(b);
    return (a > b) - (a < b);
}

/* Baseline, then exact by depth, then chain by depth, then by name. */
static int cmp_decoder(const struct mtp_report_group *a, const struct mtp_report_group *b)
{
    int c = (int)a->mode - (int)b->mode;
    if (!c)
        c = (int)a->drafting - (int)b->drafting;
    if (!c)
        c = (a->depth > b->depth) - (a->depth < b->depth);
    return c ? c : cmp_str(a->decoder, b->decoder);
}

int mtp_report_group_cmp(const struct mtp_report_group *a, const struct mtp_report_group *b)
{
    int c = a->decoder && b->decoder ? cmp_decoder(a, b) : cmp_str(a->decoder, b->decoder);
    if (!c)
        c = cmp_num(a->temperature, b->temperature);
    if (!c)
        c = cmp_num(a->top_p, b->top_p);
    if (!c)
        c = (a->top_k > b->top_k) - (a->top_k < b->top_k);
    if (!c)
        c = cmp_str(a->category, b->category);
    if (!c)
        c = cmp_str(a->dataset, b->dataset);
    if (!c)
        c = cmp_str(a->wiring, b->wiring);
    if (!c)
        c = (a->batch_size > b->batch_size) - (a->batch_size < b->batch_size);
    return c ? c : (a->run > b->run) - (a->run < b->run);
}

static int group_qsort_cmp(const void *a, const void *b)
{
    return mtp_report_group_cmp(a, b);
}

int mtp_report_build(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                     struct mtp_report *out)
{
    memset(out, 0, sizeof *out);
    out->data = d;
    out->opt = *opt;
    if (d->n_requests == 0)
        return mtp_error_set("REPORT: no request records in the logs: nothing to report");
    report_make_groups(d, opt, out);
    for (int i = 0; i < out->n_groups; i++) {
        struct mtp_report_group *g = &out->groups[i];
        g->n_metrics = MTP_REPORT_M_COUNT + 2 * g->k;
        mtp_report_stats_prepare(d, g, opt->latency);
        mtp_report_bootstrap(g, opt->bootstrap, opt->seed);
        mtp_report_stats_release(g);
    }
    qsort(out->groups, (size_t)out->n_groups, sizeof *out->groups, group_qsort_cmp);
    return MTP_OK;
}

void mtp_report_group_release(struct mtp_report_group *g)
{
    for (int u = 0; u < g->n_units; u++)
        free(g->unit_keys[u]);
    free(g->units);
    free(g->unit_keys);
    free(g->requests);
    free(g->member_unit);
    free(g->wiring);
    free(g->metrics);
    free(g->samples);
    mtp_report_stats_release(g);
    memset(g, 0, sizeof *g);
}

void mtp_report_free(struct mtp_report *r)
{
    for (int i = 0; i < r->n_groups; i++)
        mtp_report_group_release(&r->groups[i]);
    free(r->groups);
    memset(r, 0, sizeof *r);
}

int mtp_report_alpha_index(const struct mtp_report_group *g, int j)
{
    return j >= 1 && j <= g->k ? MTP_REPORT_M_COUNT + j - 1 : -1;
}

int mtp_report_beta_index(const struct mtp_report_group *g, int j)
{
    return j >= 1 && j <= g->k ? MTP_REPORT_M_COUNT + g->k + j - 1 : -1;
}

static bool same_units(const struct mtp_report_group *a, const struct mtp_report_group *b)
{
    if (a->n_units != b->n_units)
        return false;
    for (int u = 0; u < a->n_units; u++)
        if (strcmp(a->unit_keys[u], b->unit_keys[u]) != 0)
            return false;
    return true;
}

struct mtp_report_stat mtp_report_paired_diff(const struct mtp_report_group *a,
                                              const struct mtp_report_group *b, int m)
{
    struct mtp_report_stat s = {NAN, NAN, NAN};
    if (m < 0 || m >= a->n_metrics || m >= b->n_metrics)
        return s;
    s.value = a->metrics[m].value - b->metrics[m].value;
    if (!same_units(a, b) || a->n_samples == 0 || a->n_samples != b->n_samples)
        return s;
    double *diff = mtp_xcalloc((size_t)a->n_samples, sizeof *diff);
    for (int i = 0; i < a->n_samples; i++)
        diff[i] = a->samples[(size_t)i * (size_t)a->n_metrics + (size_t)m] -
                  b->samples[(size_t)i * (size_t)b->n_metrics + (size_t)m];
    mtp_report_interval(diff, a->n_samples, 1, 0.025, 0.975, &s.lo, &s.hi);
    free(diff);
    return s;
}

/*
 * report_complete.c - what a report's logs leave out (issue 26, "a report is
 * complete about its inputs"): per run and per group, the prompts the runner
 * skipped and why, the requests that never decoded, the planned requests
 * that are not in the logs, and the rank logs that were not read.
 *
 * The source is the "plan" record (experiments/log_plan.h): its decoders,
 * sampling settings, batch sizes, prompts and repeats are the planned
 * requests (a request per batch size: a group of one B plans the decoders'
 * requests at that B alone), and each
 * is put in the group its record would be in. A planned request has no record
 * of its own, so its decoder's mode, depth and wiring come from a request of
 * the same run and decoder that is present; a decoder none of whose requests
 * is present gets a group of its own, keyed by its name. Logs written before
 * the plan record have none: their plan and skips are unknown (-1), never
 * guessed from the requests present.
 */
#include "report_internal.h"

#include <math.h>   /* defines: NAN */
#include <stdlib.h> /* defines: free, bsearch */
#include <string.h> /* defines: strcmp, memset */

#include "core/error.h" /* defines: mtp_error_set, mtp_xcalloc */

static bool by_has(const struct mtp_report_options *opt, enum mtp_report_key k)
{
    for (int i = 0; i < opt->n_by; i++)
        if (opt->by[i] == k)
            return true;
    return false;
}

/* ---- run level ------------------------------------------------------------------ */

static bool has_rank(const struct mtp_report_run *run, int rank, int size)
{
    for (int i = 0; i < run->n_ranks; i++)
        if (run->ranks[i].rank == rank && run->ranks[i].size == size)
            return true;
    return false;
}

/* Every DIR/NAME.rank-R-of-N.msgpack not read, for each N some rank log of
 * the run was read with: N processes wrote N logs. */
static void missing_ranks(const struct mtp_report_run *run, struct mtp_report_gaps *out)
{
    for (int i = 0; i < run->n_ranks; i++) {
        int size = run->ranks[i].size;
        bool first = true; /* each N once */
        for (int j = 0; j < i; j++)
            first &= run->ranks[j].size != size;
        for (int r = 0; first && r < size; r++) {
            if (has_rank(run, r, size))
                continue;
            out->missing = mtp_xrealloc(out->missing,
                                        (size_t)(out->n_missing + 1) * sizeof *out->missing);
            out->missing[out->n_missing++] = mtp_report_xprintf(
                "%s.rank-%d-of-%d.msgpack", run->shard_group, r, size);
        }
    }
}

void mtp_report_gaps(const struct mtp_report_data *d, int run, struct mtp_report_gaps *out)
{
    memset(out, 0, sizeof *out);
    const struct mtp_report_run *ru = &d->runs[run];
    for (int i = 0; i < d->n_requests; i++) {
        if (d->requests[i].run != run)
            continue;
        out->present++;
        out->not_decoded += d->requests[i].rec.n_steps == 0;
    }
    for (int why = 0; why < MTP_PLAN_SKIP_COUNT; why++)
        out->skipped[why] = ru->has_plan ? mtp_log_plan_count(&ru->plan, why) : -1;
    out->planned = ru->has_plan ? ru->plan.requests : ru->finished ? out->present : -1;
    if (ru->shard_group)
        missing_ranks(ru, out);
}

void mtp_report_gaps_free(struct mtp_report_gaps *g)
{
    for (int i = 0; i < g->n_missing; i++)
        free(g->missing[i]);
    free(g->missing);
    memset(g, 0, sizeof *g);
}

bool mtp_report_gaps_complete(const struct mtp_report_gaps *g)
{
    return g->planned >= 0 && g->present >= g->planned && g->n_missing == 0;
}

static bool gaps_any(const struct mtp_report_gaps *g)
{
    bool skips = false;
    for (int why = 0; why < MTP_PLAN_SKIP_COUNT; why++)
        skips |= g->skipped[why] != 0;
    return skips || g->not_decoded > 0 || !mtp_report_gaps_complete(g);
}

/* ": rag 80, summarization 76": the run's skips of WHY by category, most
 * first (a handful of categories: quadratic is fine). */
static void skips_by_category(FILE *f, const struct mtp_log_plan *pl, enum mtp_plan_skip why)
{
    int n = 0;
    const char **cat = mtp_xcalloc((size_t)pl->n_prompts + 1, sizeof *cat);
    int *count = mtp_xcalloc((size_t)pl->n_prompts + 1, sizeof *count);
    for (int i = 0; i < pl->n_prompts; i++) {
        if (pl->prompts[i].skip != why)
            continue;
        int j = 0;
        while (j < n && strcmp(cat[j], pl->prompts[i].category) != 0)
            j++;
        if (j == n)
            cat[n++] = pl->prompts[i].category;
        count[j]++;
    }
    for (int k = 0; k < n; k++) {
        int best = k; /* selection sort: most first, then by name */
        for (int j = k + 1; j < n; j++)
            if (count[j] > count[best] || (count[j] == count[best] && strcmp(cat[j], cat[best]) < 0))
                best = j;
        const char *tc = cat[k];
        int tn = count[k];
        cat[k] = cat[best];
        count[k] = count[best];
        cat[best] = tc;
        count[best] = tn;
        fprintf(f, "%s%s %d", k ? ", " : ": ", cat[k], count[k]);
    }
    free(cat);
    free(count);
}

/* "6 of 966 planned requests (partial)", and the rest, on one line. */
static void gaps_line(FILE *f, const struct mtp_report_run *run, const struct mtp_report_gaps *g)
{
    fprintf(f, "run %s: ", run->label);
    if (g->planned < 0)
        fprintf(f, "%lld requests of an unknown plan (no plan record and no finished summary: "
                   "unfinished?)", (long long)g->present);
    else
        fprintf(f, "%lld of %lld planned requests%s", (long long)g->present,
                (long long)g->planned, g->present < g->planned ? " (partial run)" : "");
    if (g->skipped[0] < 0)
        fprintf(f, "; skipped prompts unknown (log without a plan record)");
    for (int why = 0; why < MTP_PLAN_SKIP_COUNT; why++)
        if (g->skipped[why] > 0) {
            fprintf(f, "; %d prompts skipped (%s", g->skipped[why],
                    mtp_plan_skip_name((enum mtp_plan_skip)why));
            skips_by_category(f, &run->plan, (enum mtp_plan_skip)why);
            fprintf(f, ")");
        }
    if (g->not_decoded > 0)
        fprintf(f, "; %d requests never decoded (EOS before the first decode step: left out "
                   "of every metric and of the prompt counts)", g->not_decoded);
    for (int i = 0; i < g->n_missing; i++)
        fprintf(f, "%s%s", i ? ", " : "; missing rank logs: ", g->missing[i]);
    fprintf(f, "\n");
}

void mtp_report_gaps_print(FILE *f, const struct mtp_report_data *d, const char *prefix)
{
    for (int i = 0; i < d->n_runs; i++) {
        struct mtp_report_gaps g;
        mtp_report_gaps(d, i, &g);
        if (gaps_any(&g)) {
            fputs(prefix, f);
            gaps_line(f, &d->runs[i], &g);
        }
        mtp_report_gaps_free(&g);
    }
}

/* Prompts of PL that run exactly N turns. */
static int prompts_with_turns(const struct mtp_log_plan *pl, int n)
{
    int k = 0;
    for (int i = 0; i < pl->n_prompts; i++)
        k += pl->prompts[i].skip == MTP_PLAN_RUN && pl->prompts[i].turns == n;
    return k;
}

void mtp_report_turns_print(FILE *f, const struct mtp_report_data *d, const char *prefix)
{
    for (int r = 0; r < d->n_runs; r++) {
        const struct mtp_log_plan *pl = &d->runs[r].plan;
        int most = 0, not_run = 0;
        for (int i = 0; d->runs[r].has_plan && i < pl->n_prompts; i++) {
            const struct mtp_plan_prompt *p = &pl->prompts[i];
            if (p->skip != MTP_PLAN_RUN)
                continue;
            most = p->turns_total > most ? p->turns_total : most;
            not_run += p->turns_total - p->turns;
        }
        if (most < 2)
            continue;
        fprintf(f, "%srun %s: ", prefix, d->runs[r].label);
        const char *sep = "";
        for (int n = most; n >= 1; n--) {
            int k = prompts_with_turns(pl, n);
            if (k > 0)
                fprintf(f, "%s%d prompts x %d turn%s", sep, k, n, n == 1 ? "" : "s");
            if (k > 0)
                sep = ", ";
        }
        if (not_run > 0)
            fprintf(f, "; %d later turns not run (%s: the conversation would not fit)", not_run,
                    mtp_plan_skip_name(MTP_PLAN_SKIP_POSITIONS));
        fprintf(f, "; each turn is a request (report --by turn)\n");
    }
}

int mtp_report_check_complete(const struct mtp_report_data *d, bool strict, bool allow_partial)
{
    int rc = MTP_OK;
    for (int i = 0; rc == MTP_OK && i < d->n_runs; i++) {
        struct mtp_report_gaps g;
        mtp_report_gaps(d, i, &g);
        const char *run = d->runs[i].label;
        if (g.n_missing > 0 && (strict || !allow_partial))
            rc = mtp_error_set("REPORT: run %s: rank log %s%s is missing (a partial run: pass "
                               "--allow-partial to report it anyway, marked partial)",
                               run, g.missing[0], g.n_missing > 1 ? " and others" : "");
        else if (strict && g.planned < 0)
            rc = mtp_error_set("REPORT: run %s: its plan is unknown (no plan record, no finished "
                               "summary) (--strict)", run);
        else if (strict && g.present < g.planned)
            rc = mtp_error_set("REPORT: run %s: %lld of %lld planned requests: a partial run "
                               "(--strict)", run, (long long)g.present, (long long)g.planned);
        else if (strict && g.not_decoded > 0)
            rc = mtp_error_set("REPORT: run %s: %d requests never decoded (EOS before the first "
                               "decode step) (--strict)", run, g.not_decoded);
        for (int why = 0; rc == MTP_OK && strict && why < MTP_PLAN_SKIP_COUNT; why++)
            if (g.skipped[why] != 0)
                rc = g.skipped[why] < 0
                         ? mtp_error_set("REPORT: run %s: skipped prompts unknown (a log without "
                                         "a plan record) (--strict)", run)
                         : mtp_error_set("REPORT: run %s: %d prompts skipped (%s) (--strict)",
                                         run, g.skipped[why],
                                         mtp_plan_skip_name((enum mtp_plan_skip)why));
        mtp_report_gaps_free(&g);
    }
    return rc;
}

/* ---- group level --------------------------------------------------------------- */

/* Where planned keys land: the groups built from requests (keys sorted) and
 * groups only the plans know (appended to out->groups). */
struct placer {
    const struct mtp_report_data *d;
    const struct mtp_report_options *opt;
    struct mtp_report *out;
    char **gkeys;   /* [n_old] sorted */
    int n_old;
    char **new_keys; /* [out->n_groups - n_old] */
    int *run_stamp;  /* [groups] last run that added its missing rank logs */
    int *prompt_stamp; /* [groups] last skipped prompt counted */
    int cap;
};

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void placer_grow(struct placer *p)
{
    if (p->out->n_groups < p->cap)
        return;
    p->cap = p->out->n_groups * 2 + 8;
    p->out->groups = mtp_xrealloc(p->out->groups, (size_t)p->cap * sizeof *p->out->groups);
    p->new_keys = mtp_xrealloc(p->new_keys, (size_t)p->cap * sizeof *p->new_keys);
    p->run_stamp = mtp_xrealloc(p->run_stamp, (size_t)p->cap * sizeof *p->run_stamp);
    p->prompt_stamp = mtp_xrealloc(p->prompt_stamp, (size_t)p->cap * sizeof *p->prompt_stamp);
}

/* A group for a key no request has, described from the planned request Q. */
static int new_group(struct placer *p, char *key, const struct mtp_report_request *q,
                     bool has_template)
{
    placer_grow(p);
    int gi = p->out->n_groups++;
    struct mtp_report_group *g = &p->out->groups[gi];
    const struct mtp_request_record *r = &q->rec;
    const struct mtp_report_options *opt = p->opt;
    memset(g, 0, sizeof *g);
    g->decoder = by_has(opt, MTP_REPORT_KEY_DECODER) ? r->decoder : NULL;
    g->mode = r->mode;
    g->depth = has_template ? r->depth : -1;
    g->drafting = r->drafting;
    g->draft_vocab = r->draft_vocab;
    g->wiring = by_has(opt, MTP_REPORT_KEY_WIRING) ? mtp_report_wiring_label(r) : NULL;
    bool by_t = by_has(opt, MTP_REPORT_KEY_TEMPERATURE);
    g->temperature = by_t ? r->temperature : NAN;
    g->top_p = by_t ? r->top_p : NAN;
    g->top_k = by_t ? r->top_k : -1;
    g->category = by_has(opt, MTP_REPORT_KEY_CATEGORY) ? r->category : NULL;
    g->dataset = by_has(opt, MTP_REPORT_KEY_DATASET) ? r->dataset : NULL;
    g->run = by_has(opt, MTP_REPORT_KEY_RUN) ? q->run : -1;
    g->turn = by_has(opt, MTP_REPORT_KEY_TURN) ? r->turn : -1;
    g->batch_size = by_has(opt, MTP_REPORT_KEY_BATCH) ? r->batch_size : -1;
    p->new_keys[gi] = key;
    p->run_stamp[gi] = p->prompt_stamp[gi] = -1;
    return gi;
}

/* The group of the (planned or present) request Q; created when new. */
static int place(struct placer *p, const struct mtp_report_request *q, bool has_template)
{
    char *key = mtp_report_group_key(q, p->opt);
    char **hit = p->n_old ? bsearch(&key, p->gkeys, (size_t)p->n_old, sizeof *p->gkeys, cmp_key)
                          : NULL;
    if (hit) {
        free(key);
        return (int)(hit - p->gkeys);
    }
    for (int i = p->n_old; i < p->out->n_groups; i++)
        if (strcmp(p->new_keys[i], key) == 0) {
            free(key);
            return i;
        }
    return new_group(p, key, q, has_template);
}

/* The first present request of each (run RUN, planned decoder): the mode,
 * depth and wiring a planned request of that decoder would have. */
static const struct mtp_request_record **templates(const struct mtp_report_data *d, int run)
{
    const struct mtp_log_plan *pl = &d->runs[run].plan;
    const struct mtp_request_record **t = mtp_xcalloc((size_t)pl->n_decoders + 1, sizeof *t);
    for (int i = 0; i < d->n_requests; i++) {
        if (d->requests[i].run != run)
            continue;
        for (int k = 0; k < pl->n_decoders; k++)
            if (!t[k] && strcmp(pl->decoders[k], d->requests[i].rec.decoder) == 0)
                t[k] = &d->requests[i].rec;
    }
    return t;
}

/* A request of run RUN as the plan describes it (strings borrowed). */
static void planned_request(int run, const struct mtp_request_record *tmpl, const char *decoder,
                            int samp, const struct mtp_plan_sampling *s,
                            const struct mtp_plan_prompt *p, struct mtp_report_request *q)
{
    memset(q, 0, sizeof *q);
    q->run = run;
    if (tmpl)
        q->rec = *tmpl; /* mode, depth, drafting, draft vocabulary, wiring */
    else
        q->rec.mode = MTP_SPEC_DECODER_MTP;
    q->rec.decoder = (char *)decoder;
    q->rec.sampling_index = samp;
    q->rec.temperature = s->temperature;
    q->rec.top_p = s->top_p;
    q->rec.top_k = s->top_k;
    q->rec.dataset = p->dataset;
    q->rec.category = p->category;
    q->rec.prompt_id = p->prompt_id;
}

/* Once per (group, run): the run's missing rank logs count for the group. */
static void add_missing(struct placer *p, int gi, int run, int n_missing)
{
    if (p->run_stamp[gi] == run)
        return;
    p->run_stamp[gi] = run;
    p->out->groups[gi].missing_ranks += n_missing;
}

/* Count the planned request Q (prompt PI of plan PL) in its group. */
static void place_planned(struct placer *p, const struct mtp_log_plan *pl, int pi,
                          const struct mtp_report_request *q, bool has_template, int n_missing)
{
    const struct mtp_plan_prompt *pr = &pl->prompts[pi];
    int gi = place(p, q, has_template);
    struct mtp_report_group *g = &p->out->groups[gi];
    add_missing(p, gi, q->run, n_missing);
    if (pr->skip == MTP_PLAN_RUN) {
        if (g->planned >= 0)
            g->planned += pl->repeats;
    } else if (p->prompt_stamp[gi] != pi && g->skipped[pr->skip] >= 0) {
        p->prompt_stamp[gi] = pi; /* a prompt counts once per group */
        g->skipped[pr->skip]++;
    }
}

static void place_plan(struct placer *p, int run, int n_missing)
{
    const struct mtp_log_plan *pl = &p->d->runs[run].plan;
    const struct mtp_request_record **t = templates(p->d, run);
    static const int one = 1; /* a plan without batch sizes ran at B = 1 */
    int n_b = pl->n_batch_sizes > 0 ? pl->n_batch_sizes : 1;
    const int *sizes = pl->n_batch_sizes > 0 ? pl->batch_sizes : &one;
    for (int gi = 0; gi < p->out->n_groups; gi++)
        p->prompt_stamp[gi] = -1;
    for (int pi = 0; pi < pl->n_prompts; pi++) {
        const struct mtp_plan_prompt *pr = &pl->prompts[pi];
        /* Each planned turn is a request; a skipped prompt counts once. */
        int turns = pr->skip == MTP_PLAN_RUN ? pr->turns : 1;
        for (int k = 0; k < pl->n_decoders; k++)
            for (int s = 0; s < pl->n_sampling; s++)
                for (int b = 0; b < n_b; b++)
                    for (int turn = 0; turn < turns; turn++) {
                        struct mtp_report_request q;
                        planned_request(run, t[k], pl->decoders[k], s, &pl->sampling[s], pr,
                                        &q);
                        q.rec.turn = turn;
                        q.rec.batch_size = sizes[b];
                        place_planned(p, pl, pi, &q, t[k] != NULL, n_missing);
                    }
    }
    free(t);
}

/* Groups with requests of a run without a plan: skips unknown, and the plan
 * too unless a summary says the run finished (then what is there was planned). */
static void place_unplanned(struct placer *p, int run, int n_missing)
{
    bool finished = p->d->runs[run].finished;
    for (int i = 0; i < p->d->n_requests; i++) {
        if (p->d->requests[i].run != run)
            continue;
        int gi = place(p, &p->d->requests[i], true);
        struct mtp_report_group *g = &p->out->groups[gi];
        add_missing(p, gi, run, n_missing);
        if (!finished)
            g->planned = -1;
        else if (g->planned >= 0)
            g->planned++;
        for (int why = 0; why < MTP_PLAN_SKIP_COUNT; why++)
            g->skipped[why] = -1;
    }
}

void mtp_report_complete_groups(const struct mtp_report_data *d,
                                const struct mtp_report_options *opt, struct mtp_report *out,
                                char **gkeys)
{
    struct placer p = {.d = d, .opt = opt, .out = out, .gkeys = gkeys, .n_old = out->n_groups};
    out->groups = mtp_xrealloc(out->groups, (size_t)(out->n_groups + 1) * sizeof *out->groups);
    p.cap = out->n_groups + 1;
    p.new_keys = mtp_xcalloc((size_t)p.cap, sizeof *p.new_keys);
    p.run_stamp = mtp_xcalloc((size_t)p.cap, sizeof *p.run_stamp);
    p.prompt_stamp = mtp_xcalloc((size_t)p.cap, sizeof *p.prompt_stamp);
    for (int gi = 0; gi < out->n_groups; gi++) {
        struct mtp_report_group *g = &out->groups[gi];
        g->present = g->n_requests + g->n_not_decoded;
        p.run_stamp[gi] = p.prompt_stamp[gi] = -1;
    }
    for (int run = 0; run < d->n_runs; run++) {
        struct mtp_report_gaps gaps;
        mtp_report_gaps(d, run, &gaps);
        if (d->runs[run].has_plan)
            place_plan(&p, run, gaps.n_missing);
        else
            place_unplanned(&p, run, gaps.n_missing);
        mtp_report_gaps_free(&gaps);
    }
    for (int i = p.n_old; i < out->n_groups; i++)
        free(p.new_keys[i]);
    free(p.new_keys);
    free(p.run_stamp);
    free(p.prompt_stamp);
}

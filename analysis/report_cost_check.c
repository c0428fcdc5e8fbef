/*
 * report_cost_check.c - the cost-model view's checks (report_cost_check.h).
 */
#include "report_cost_check.h"

#include <math.h>   /* defines: isnan, NAN */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strcmp */

#include "engine/engine_tree.h" /* defines: MTP_TREE_MAX_NODES */
#include "core/error.h"
#include "report_internal.h"

/* One count of step S of request R: FIELD = V must lie in LO..HI. */
static int check_count(const struct mtp_report_data *d, const struct mtp_report_request *q,
                       int s, const char *field, long long v, long long lo, long long hi)
{
    if (v >= lo && v <= hi)
        return MTP_OK;
    const struct mtp_request_record *r = &q->rec;
    char step[32] = "";
    if (s >= 0)
        snprintf(step, sizeof step, "step %d: ", s);
    return mtp_error_set("report: cost model: %s: request (decoder %s, prompt %s, repeat %d): "
                         "%s'%s' = %lld, expected %lld..%lld", d->runs[q->run].file,
                         r->decoder ? r->decoder : "?", r->prompt_id ? r->prompt_id : "?",
                         r->repeat, step, field, v, lo, hi);
}

static int check_steps(const struct mtp_report_data *d, const struct mtp_report_request *q)
{
    const struct mtp_request_record *r = &q->rec;
    for (int s = 0; s < r->n_steps; s++) {
        int k = r->drafted ? r->drafted[s] : r->depth;
        int a = r->accepted[s], u = r->accepted_uncut ? r->accepted_uncut[s] : a;
        if ((r->drafted && check_count(d, q, s, "drafted", k, 0, r->depth)) ||
            check_count(d, q, s, "accepted", a, 0, k) ||
            (r->accepted_uncut && check_count(d, q, s, "accepted_uncut", u, a, k)) ||
            (r->tree_nodes && check_count(d, q, s, "tree_nodes", r->tree_nodes[s], (long long)u + 1,
                                          MTP_TREE_MAX_NODES)))
            return MTP_ERR;
    }
    return MTP_OK;
}

int mtp_report_cost_check_records(const struct mtp_report_data *d)
{
    for (int i = 0; i < d->n_requests; i++) {
        const struct mtp_report_request *q = &d->requests[i];
        if (check_count(d, q, -1, "depth", q->rec.depth, 0, MTP_SPEC_MAX_DEPTH) ||
            check_count(d, q, -1, "n_steps", q->rec.n_steps, 0, 1LL << 30) ||
            check_steps(d, q))
            return MTP_ERR;
    }
    return MTP_OK;
}

bool mtp_report_cost_is_tree(const struct mtp_report_data *d, const struct mtp_report_group *g)
{
    for (int i = 0; i < g->n_requests; i++)
        if (d->requests[g->requests[i]].rec.tree)
            return true;
    return false;
}

double mtp_report_cost_verified_per_step(const struct mtp_report_data *d,
                                         const struct mtp_report_group *g)
{
    double steps = 0, verified = 0;
    for (int i = 0; i < g->n_requests; i++) {
        const struct mtp_request_record *r = &d->requests[g->requests[i]].rec;
        for (int s = 0; s < r->n_steps; s++)
            verified += r->tree_nodes ? r->tree_nodes[s]
                                      : (r->drafted ? r->drafted[s] : r->depth) + 1;
        steps += r->n_steps;
    }
    return steps > 0 ? verified / steps : NAN;
}

/* The first tree shape among G's members. */
static const char *tree_shape(const struct mtp_report_data *d, const struct mtp_report_group *g)
{
    for (int i = 0; i < g->n_requests; i++)
        if (d->requests[g->requests[i]].rec.tree)
            return d->requests[g->requests[i]].rec.tree;
    return "?";
}

char *mtp_report_cost_unpriced(const struct mtp_report_data *d, const struct mtp_report_group *g,
                               const struct mtp_costs *costs, const struct mtp_cost_decoder *dec)
{
    if (g->mixed || g->depth < 0)
        return mtp_report_xprintf("not priced: its requests mix decoders (depth, drafting or "
                                  "wiring differ)");
    /* A tree verifies all its nodes and drafts a width per expanded node:
     * neither is a chain of its depth, and the bench times no tree draft. */
    if (mtp_report_cost_is_tree(d, g))
        return mtp_report_xprintf(
            "not priced: tree decoder %s verifies %.2f tokens per step (a chain of its depth "
            "verifies %d); the bench times chain-shaped drafts only (see --table tree)",
            tree_shape(d, g), mtp_report_cost_verified_per_step(d, g), g->depth + 1);
    const char *why = mtp_cost_unpriceable(costs, dec, g->depth);
    if (why)
        return mtp_report_xprintf("not priced: %s decoder of depth %d%s: %s (the file times %d "
                                  "of the model's %d modules)",
                                  mtp_spec_drafting_name(dec->drafting), g->depth,
                                  dec->drafting == MTP_SPEC_DRAFTING_CHAIN ? " (chain module)" : "",
                                  why, costs->n_modules, costs->model_modules);
    return NULL;
}

/* Append one sentence to *OUT (owned, may be NULL). */
static void add_sentence(char **out, char *s)
{
    char *joined = mtp_report_xprintf("%s%s%s", *out ? *out : "", *out ? " " : "", s);
    free(*out);
    free(s);
    *out = joined;
}

char *mtp_report_cost_warnings(const struct mtp_report_data *d, const struct mtp_costs *costs)
{
    char *out = NULL;
    bool threads = false, cpu = false, host = false;
    for (int i = 0; i < d->n_runs; i++) {
        const struct mtp_report_run *r = &d->runs[i];
        if (!threads && r->threads > 0 && r->threads != costs->threads) { /* 0: not logged */
            threads = true;
            add_sentence(&out, mtp_report_xprintf(
                "WARNING: the bench ran %d threads, run %s ran %d: costs depend on the thread "
                "count.", costs->threads, r->label, r->threads));
        }
        if (!cpu && r->cpu && r->cpu[0] && costs->cpu[0] && strcmp(r->cpu, costs->cpu)) {
            cpu = true;
            add_sentence(&out, mtp_report_xprintf("WARNING: the bench's CPU is '%s', run %s's "
                                                  "is '%s'.", costs->cpu, r->label, r->cpu));
        }
        if (!host && strcmp(r->host, costs->host)) {
            host = true;
            add_sentence(&out, mtp_report_xprintf("WARNING: the bench ran on host '%s', run %s "
                                                  "on '%s'.", costs->host, r->label, r->host));
        }
    }
    const char *why;
    if (mtp_costs_noisy(costs, &why))
        add_sentence(&out, mtp_report_xprintf("WARNING: NOISY BENCH: %s; its intervals carry "
                                              "that spread.", why));
    return out;
}

char *mtp_report_cost_bench_label(const struct mtp_costs *c)
{
    char load[96] = "load not recorded", spread[64] = "";
    if (!isnan(c->load_start[0]))
        snprintf(load, sizeof load, "load %.2f -> %.2f", c->load_start[0], c->load_end[0]);
    if (!isnan(c->verify1_spread))
        snprintf(spread, sizeof spread, ", verify/n=1 spread %.0f%%", 100 * c->verify1_spread);
    return mtp_report_xprintf("%s (%s), %s, %d threads, %s%s", c->host, c->cpu, c->backend,
                              c->threads, load, spread);
}

/*
 * bench_ops.c - the ops section of `mtpbench bench --ops` (bench_ops.h).
 *
 * Its engine runs on a backend of its own (same kind and thread count as the
 * bench's) wrapped by the profiler, so the cost curve's engine is never
 * slowed by the profiler's clock reads and synchronizes.
 */
#include "bench_ops.h"

#include <jansson.h> /* defines: json_pack */
#include <stdio.h>   /* defines: printf, snprintf */
#include <stdlib.h>  /* defines: free */
#include <string.h>  /* defines: memset */

#include "engine/engine.h"
#include "core/error.h"
#include "engine/backend_profile.h"

/* The verification widths profiled: enough to see which terms grow with n. */
enum { OPS_N_VERIFY = 4, OPS_MAX_CASES = OPS_N_VERIFY + 1 };
static const int ops_verify_n[OPS_N_VERIFY] = {1, 2, 4, 8};

/* One run of a case: its wall time and what the profiler saw. */
struct ops_sample {
    double wall;
    struct mtp_prof_counts c;
};

struct ops_run {
    struct mtp_bench_ctx *x;
    struct mtp_backend *prof;
    const struct mtp_bench_case *cases; /* the array the loop calls into */
    int cap;                            /* runs per case: (warmup + rounds) * inner */
    int used[OPS_MAX_CASES];
    struct ops_sample *s[OPS_MAX_CASES]; /* [cap], in call order */
};

/* The summaries of one op kind in one case. */
struct ops_kind {
    long calls;
    struct mtp_bench_stats ns, share, ratio; /* ratio: to the kind at n = 1, same round */
    int has_ratio;
};

/* The section's extra: what is printed and written under "per_op". */
struct ops_table {
    int n_cases;
    const struct mtp_bench_case *cases; /* the section's (names, n, module) */
    struct mtp_bench_stats wall[OPS_MAX_CASES], untimed[OPS_MAX_CASES], untimed_share[OPS_MAX_CASES];
    double experts[OPS_MAX_CASES]; /* mean experts touched per MoE layer (main forwards) */
    struct ops_kind k[OPS_MAX_CASES][MTP_PROF_N];
    /* The moe_ffn split by the shared probe (backend_profile.h): the shared
     * expert alone (share: of moe_ffn) and moe_ffn minus it (share: of the
     * forward), both estimates. */
    struct ops_kind shared[OPS_MAX_CASES], routed[OPS_MAX_CASES];
};

static int run_ops(void *p, const struct mtp_bench_case *c, double *ns)
{
    struct ops_run *o = p;
    int i = (int)(c - o->cases);
    MTP_CHECK(i >= 0 && i < OPS_MAX_CASES && o->used[i] < o->cap);
    mtp_backend_profile_reset(o->prof);
    mtp_backend_profile_enable(o->prof, 1);
    int rc = c->module ? mtp_bench_run_module(o->x, c, ns) : mtp_bench_run_forward(o->x, c, ns);
    mtp_backend_profile_enable(o->prof, 0);
    struct ops_sample *s = &o->s[i][o->used[i]++];
    mtp_backend_profile_read(o->prof, &s->c);
    *ns -= s->c.shared_probe_ns; /* the probe is extra work, not the forward's */
    s->wall = *ns;
    return rc;
}

/* The run of round R the loop kept for case I: the fastest of its INNER runs. */
static const struct ops_sample *kept(const struct ops_run *o, int i, int r, int warmup,
                                     int inner)
{
    const struct ops_sample *best = NULL;
    for (int j = (warmup + r) * inner; j < (warmup + r + 1) * inner; j++)
        if (!best || o->s[i][j].wall < best->wall)
            best = &o->s[i][j];
    return best;
}

static double ops_sum(const struct mtp_prof_counts *c)
{
    double t = 0;
    for (int k = 0; k < MTP_PROF_N; k++)
        t += c->ns[k];
    return t;
}

/* The shared-probe time of run S (ROUTED: moe_ffn minus it), and its share
 * (of moe_ffn for the shared part, of the forward for the routed). */
static double moe_part(const struct ops_sample *s, int routed, double *share)
{
    double moe = s->c.ns[MTP_PROF_MOE], sh = s->c.shared_probe_ns;
    double v = routed ? moe - sh : sh;
    *share = routed ? v / s->wall : moe > 0 ? sh / moe : 0;
    return v;
}

static void split_moe(const struct ops_run *o, const struct mtp_bench_setup *su, int i,
                      struct ops_table *t)
{
    int R = su->repeats;
    double *v = mtp_xmalloc(sizeof *v * 3 * (size_t)R), *sh = v + R, *ra = v + 2 * R;
    for (int part = 0; part < 2; part++) {
        struct ops_kind *q = part ? &t->routed[i] : &t->shared[i];
        q->calls = kept(o, i, 0, su->warmup, su->inner)->c.shared_probe_calls;
        q->has_ratio = !t->cases[i].module && q->calls > 0;
        for (int r = 0; r < R; r++) {
            double x;
            v[r] = moe_part(kept(o, i, r, su->warmup, su->inner), part, &sh[r]);
            double base = moe_part(kept(o, 0, r, su->warmup, su->inner), part, &x);
            ra[r] = q->has_ratio && base > 0 ? v[r] / base : 0;
        }
        q->ns = mtp_bench_stats_of(v, R, 1);
        q->share = mtp_bench_stats_of(sh, R, 1);
        q->ratio = mtp_bench_stats_of(ra, R, 1);
    }
    free(v);
}

static void summarise(const struct ops_run *o, const struct mtp_bench_setup *su,
                      struct ops_table *t)
{
    int R = su->repeats;
    double *v = mtp_xmalloc(sizeof *v * 3 * (size_t)R), *sh = v + R, *ra = v + 2 * R;
    for (int i = 0; i < t->n_cases; i++) {
        for (int r = 0; r < R; r++) {
            const struct ops_sample *s = kept(o, i, r, su->warmup, su->inner);
            v[r] = s->wall - ops_sum(&s->c);
            sh[r] = v[r] / s->wall;
            ra[r] = s->wall;
        }
        t->untimed[i] = mtp_bench_stats_of(v, R, 1);
        t->untimed_share[i] = mtp_bench_stats_of(sh, R, 1);
        t->wall[i] = mtp_bench_stats_of(ra, R, 1);
        t->experts[i] = t->cases[i].module ? 0 : o->x->experts[t->cases[i].n];
        for (int k = 0; k < MTP_PROF_N; k++) {
            struct ops_kind *q = &t->k[i][k];
            q->calls = kept(o, i, 0, su->warmup, su->inner)->c.calls[k];
            /* Ratios to n = 1 only between main forwards (case 0 is n = 1). */
            q->has_ratio = !t->cases[i].module && t->k[0][k].calls > 0;
            for (int r = 0; r < R; r++) {
                const struct ops_sample *s = kept(o, i, r, su->warmup, su->inner);
                v[r] = s->c.ns[k];
                sh[r] = s->c.ns[k] / s->wall;
                double base = kept(o, 0, r, su->warmup, su->inner)->c.ns[k];
                /* A tiny op can read 0 ns at n = 1; JSON has no infinity. */
                ra[r] = q->has_ratio && base > 0 ? s->c.ns[k] / base : 0;
            }
            q->ns = mtp_bench_stats_of(v, R, 1);
            q->share = mtp_bench_stats_of(sh, R, 1);
            q->ratio = mtp_bench_stats_of(ra, R, 1);
        }
        split_moe(o, su, i, t);
    }
    free(v);
}

/* Whether any of cases [FROM, TO) ran op kind K. */
static int kind_used(const struct ops_table *t, int k, int from, int to)
{
    for (int i = from; i < to; i++)
        if (t->k[i][k].calls > 0)
            return 1;
    return 0;
}

/* The two estimate rows under moe_ffn (shared probe, backend_profile.h). */
static void print_split(const struct ops_table *t, int n_verify)
{
    for (int part = 0; part < 2; part++) {
        printf("  %-15s", part ? " routed (est.)" : " shared (probe)");
        for (int i = 0; i < n_verify; i++) {
            const struct ops_kind *q = part ? &t->routed[i] : &t->shared[i];
            printf("  %8.4f %5.1f%% x%5.2f", q->ns.median * 1e-6, 100 * q->share.median,
                   q->ratio.median);
        }
        printf("  %s\n", part ? "(moe_ffn minus the probe; share of the forward)"
                              : "(share of moe_ffn)");
    }
}

static void print_table(const struct ops_table *t, const struct mtp_bench_setup *su, int n_verify)
{
    printf("ops (main forward of n tokens at position %d, per op kind; median over %d rounds: "
           "ms, share of the forward, ratio to n = 1; calls per forward):\n",
           su->context, su->repeats);
    printf("  %-15s", "kind");
    for (int i = 0; i < n_verify; i++)
        printf("  %-8s n = %-2d        ", "", t->cases[i].n);
    printf("  calls (n=1)\n");
    for (int k = 0; k < MTP_PROF_N; k++) {
        if (!kind_used(t, k, 0, n_verify))
            continue;
        printf("  %-15s", mtp_prof_op_name(k));
        for (int i = 0; i < n_verify; i++) {
            const struct ops_kind *q = &t->k[i][k];
            printf("  %8.4f %5.1f%% x%5.2f", q->ns.median * 1e-6, 100 * q->share.median,
                   q->has_ratio ? q->ratio.median : 0.0);
        }
        printf("  %ld\n", t->k[0][k].calls);
        if (k == MTP_PROF_MOE && t->shared[0].calls > 0)
            print_split(t, n_verify);
    }
    printf("  %-15s", "untimed");
    for (int i = 0; i < n_verify; i++)
        printf("  %8.4f %5.1f%%       ", t->untimed[i].median * 1e-6,
               100 * t->untimed_share[i].median);
    printf("  (host work, dispatch, profiler clock reads)\n  %-15s", "forward (wall)");
    for (int i = 0; i < n_verify; i++)
        printf("  %8.4f        x%5.2f", t->wall[i].median * 1e-6,
               t->wall[i].median / t->wall[0].median);
    printf("\n  %-15s", "experts/layer");
    for (int i = 0; i < n_verify; i++)
        printf("  %8.1f               ", t->experts[i]);
    printf("  (distinct routed experts touched per MoE layer)\n");
    for (int i = n_verify; i < t->n_cases; i++) {
        printf("ops of one draft of MTP module %d (n = %d; ms, share, calls):\n",
               t->cases[i].module, t->cases[i].n);
        for (int k = 0; k < MTP_PROF_N; k++) {
            if (t->k[i][k].calls > 0)
                printf("  %-15s  %8.4f %5.1f%%  %ld\n", mtp_prof_op_name(k),
                       t->k[i][k].ns.median * 1e-6, 100 * t->k[i][k].share.median,
                       t->k[i][k].calls);
            if (k == MTP_PROF_MOE && t->shared[i].calls > 0)
                printf("  %-15s  %8.4f %5.1f%%  (of moe_ffn)\n  %-15s  %8.4f %5.1f%%\n",
                       " shared (probe)", t->shared[i].ns.median * 1e-6,
                       100 * t->shared[i].share.median, " routed (est.)",
                       t->routed[i].ns.median * 1e-6, 100 * t->routed[i].share.median);
        }
        printf("  %-15s  %8.4f %5.1f%%\n  %-15s  %8.4f\n", "untimed",
               t->untimed[i].median * 1e-6, 100 * t->untimed_share[i].median,
               "forward (wall)", t->wall[i].median * 1e-6);
    }
}

static json_t *stats_json(const struct mtp_bench_stats *s)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "median", s->median, "mean",
                     s->mean, "sd", s->sd, "p10", s->p10, "p90", s->p90, "min", s->min, "max",
                     s->max);
}

static json_t *kind_json(const struct ops_kind *q)
{
    json_t *o = json_pack("{s:I, s:o, s:o}", "calls", (json_int_t)q->calls, "ns",
                          stats_json(&q->ns), "share", stats_json(&q->share));
    if (q->has_ratio)
        json_object_set_new(o, "ratio_to_n1", stats_json(&q->ratio));
    return o;
}

static json_t *table_json(const void *p)
{
    const struct ops_table *t = p;
    json_t *kinds = json_array(), *cases = json_array();
    for (int k = 0; k < MTP_PROF_N; k++)
        json_array_append_new(kinds, json_string(mtp_prof_op_name(k)));
    for (int i = 0; i < t->n_cases; i++) {
        json_t *ops = json_object();
        for (int k = 0; k < MTP_PROF_N; k++) {
            const struct ops_kind *q = &t->k[i][k];
            if (q->calls == 0)
                continue;
            json_object_set_new(ops, mtp_prof_op_name(k), kind_json(q));
        }
        const struct mtp_bench_case *c = &t->cases[i];
        json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:o, s:o, s:o, s:o}", "name", c->name,
                              "kind", c->kind, "n", c->n, "module", c->module, "wall_ns",
                              stats_json(&t->wall[i]), "untimed_ns", stats_json(&t->untimed[i]),
                              "untimed_share", stats_json(&t->untimed_share[i]), "ops", ops);
        if (!c->module)
            json_object_set_new(o, "experts_touched", json_real(t->experts[i]));
        if (t->shared[i].calls > 0) {
            json_object_set_new(o, "shared_expert_probe", kind_json(&t->shared[i]));
            json_object_set_new(o, "routed_experts_estimate", kind_json(&t->routed[i]));
        }
        json_array_append_new(cases, o);
    }
    return json_pack("{s:o, s:o}", "kinds", kinds, "cases", cases);
}

static void add_case(struct mtp_bench_section *s, const char *kind, int module, int n)
{
    struct mtp_bench_case *c = &s->cases[s->n_cases++];
    *c = (struct mtp_bench_case){.kind = kind, .module = module, .n = n, .run = run_ops};
    if (module)
        snprintf(c->name, sizeof c->name, "draft/module=%d/n=%d", module, n);
    else
        snprintf(c->name, sizeof c->name, "verify/n=%d", n);
}

/* The section's cases timed on engine X of profiler PROF, summarised into OUT. */
static int ops_measure(const struct mtp_bench_setup *su, struct mtp_bench_ctx *x,
                       struct mtp_backend *prof, struct mtp_bench_section *out)
{
    int D = su->model->cfg.num_nextn_predict_layers;
    out->cases = mtp_xcalloc(OPS_MAX_CASES, sizeof *out->cases);
    for (int i = 0; i < OPS_N_VERIFY; i++)
        add_case(out, "verify", 0, ops_verify_n[i]);
    if (D >= 1)
        add_case(out, "draft", 1, 1);
    struct ops_run o = {.x = x, .prof = prof, .cases = out->cases,
                        .cap = (su->warmup + su->repeats) * su->inner};
    for (int i = 0; i < out->n_cases; i++)
        o.s[i] = mtp_xcalloc((size_t)o.cap, sizeof *o.s[i]);
    int rc = mtp_bench_interleave(out->cases, out->n_cases, 0, su->warmup, su->repeats,
                                  su->inner, &o, &out->res);
    if (!rc) {
        struct ops_table *t = mtp_xcalloc(1, sizeof *t);
        t->n_cases = out->n_cases;
        t->cases = out->cases;
        summarise(&o, su, t);
        print_table(t, su, OPS_N_VERIFY);
        out->extra = t;
        out->extra_free = free;
        out->extra_json = table_json;
    }
    for (int i = 0; i < out->n_cases; i++)
        free(o.s[i]);
    return rc;
}

int mtp_bench_ops(const struct mtp_bench_setup *su, struct mtp_bench_section *out)
{
    memset(out, 0, sizeof *out);
    out->name = "ops";
    struct mtp_backend *inner = NULL, *prof = NULL;
    struct mtp_engine *e = NULL;
    struct mtp_bench_ctx x = {0};
    struct mtp_engine_options opt = {.max_positions = su->context + MTP_BENCH_MAX_N + 8,
                                     .max_batch = su->context > 64 ? su->context : 64};
    int rc = mtp_backend_create(su->backend, su->threads, &inner);
    if (!rc)
        rc = mtp_backend_profile_create(inner, su->model, &prof);
    if (!rc)
        mtp_backend_profile_probe_shared(prof, 1);
    if (!rc)
        rc = mtp_engine_create(su->model, prof, &opt, &e);
    int ready = !rc;
    if (!rc)
        rc = mtp_bench_ctx_init(&x, e, su->context);
    if (!rc)
        rc = ops_measure(su, &x, prof, out);
    if (ready)
        mtp_bench_ctx_free(&x);
    mtp_engine_free(e);
    mtp_backend_free(prof);
    mtp_backend_free(inner);
    return rc;
}

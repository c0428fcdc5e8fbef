/*
 * bench_batch_json.c - the "batch" section of the cost file (bench_batch.h):
 *
 *   "batch": {"context": P, "rounds": R, "modules": M, "n_moe_layers": L,
 *             "cases": [{"B", "K", "T", "experts_per_layer",
 *                        "ns": {summary}, "ns_samples": [R],
 *                        "modules": [{"module": k, "ns": {summary}, "ns_samples": [R]}],
 *                        "single_decodes": {...}   (B = 8, K = 0 only)}]}
 *
 * Per-round samples, not only medians: the reader takes each ratio
 * (forward(B, K) / forward(B, 0), module over forward) within a round, the
 * way the main curve is re-based round by round.
 */
#include <jansson.h> /* defines: json_pack */

#include "bench_batch.h"
#include "bench_timer.h" /* defines: mtp_bench_stats_of */

static json_t *summary_json(const double *v, int n)
{
    struct mtp_bench_stats s = mtp_bench_stats_of(v, n, 1);
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "median", s.median, "mean", s.mean,
                     "sd", s.sd, "p10", s.p10, "p90", s.p90, "min", s.min, "max", s.max);
}

static json_t *samples_json(const double *v, int n)
{
    json_t *a = json_array();
    for (int r = 0; r < n; r++)
        json_array_append_new(a, json_real(v[r]));
    return a;
}

/* {"ns": summary, "ns_samples": [...]} plus KEY: VALUE. */
static json_t *timed_json(const double *v, int n, const char *key, json_t *value)
{
    return json_pack("{s:o, s:o, s:o}", key, value, "ns", summary_json(v, n), "ns_samples",
                     samples_json(v, n));
}

static json_t *case_json(const struct mtp_bench_batch_curve *c, int bi, int K)
{
    int B = mtp_bench_batch_sizes[bi], R = c->rounds;
    json_t *o = timed_json(c->ns + mtp_bench_batch_at(c, bi, K, 0), R, "T",
                           json_integer(B * (K + 1)));
    json_object_set_new(o, "B", json_integer(B));
    json_object_set_new(o, "K", json_integer(K));
    json_object_set_new(o, "experts_per_layer", json_real(c->experts[bi][K]));
    json_t *mods = json_array();
    for (int k = 1; k <= c->modules; k++)
        json_array_append_new(mods, timed_json(c->module_ns +
                                                   mtp_bench_batch_module_at(c, bi, K, k, 0),
                                               R, "module", json_integer(k)));
    json_object_set_new(o, "modules", mods);
    if (B == MTP_BENCH_BATCH_SINGLES && K == 0) {
        json_t *s = timed_json(c->single_ns, R, "n", json_integer(MTP_BENCH_BATCH_SINGLES));
        json_object_set_new(s, "experts_per_layer", json_real(c->single_experts));
        json_object_set_new(o, "single_decodes", s);
    }
    return o;
}

json_t *mtp_bench_batch_json(const struct mtp_bench_batch_curve *c)
{
    json_t *cases = json_array();
    for (int bi = 0; bi < MTP_BENCH_BATCH_N_B; bi++)
        for (int K = 0; K <= MTP_BENCH_BATCH_MAX_K; K++)
            json_array_append_new(cases, case_json(c, bi, K));
    return json_pack("{s:i, s:i, s:i, s:i, s:o}", "context", c->context, "rounds", c->rounds,
                     "modules", c->modules, "n_moe_layers", c->n_moe, "cases", cases);
}

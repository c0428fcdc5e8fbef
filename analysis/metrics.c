/*
 * metrics.c - spec/metrics.md acceptance and speed metrics from per-step
 * accepted counts (see metrics.h).
 */
#include "metrics.h"

#include <math.h>   /* defines: NAN */
#include <stdbool.h>
#include <string.h> /* defines: memset */

#include "core/error.h" /* defines: MTP_CHECK */

void mtp_metrics_init(struct mtp_metrics *m, int K)
{
    MTP_CHECK(K >= 0 && K <= MTP_METRICS_MAX_DEPTH);
    memset(m, 0, sizeof *m);
    m->K = K;
}

static int clamp_depth(int a, int K) { return a < 0 ? 0 : a > K ? K : a; }

/* One step: A drafts accepted, positions 1..OBS observed (OBS = K unless the
 * step is censored). */
static void add_step(struct mtp_metrics *m, int a, int obs)
{
    a = a < obs ? a : obs;
    m->accepted += a;
    for (int j = 0; j <= a; j++)
        m->reach[j]++;
    for (int j = 1; j <= obs; j++) {
        m->observed[j]++;
        if (a >= j - 1)
            m->tried[j]++;
    }
}

void mtp_metrics_add_request(struct mtp_metrics *m, const int32_t *accepted,
                             const int32_t *uncut, int n_steps, int n_output,
                             uint64_t decode_ns)
{
    mtp_metrics_add_request_drafted(m, accepted, uncut, NULL, n_steps, n_output, decode_ns);
}

void mtp_metrics_add_request_drafted(struct mtp_metrics *m, const int32_t *accepted,
                                     const int32_t *uncut, const int32_t *drafted, int n_steps,
                                     int n_output, uint64_t decode_ns)
{
    /* Without uncut counts: the steps emitted sum(a_s + 1) tokens unless the
     * last one was cut, which then hides its positions after a. */
    int64_t full = 0;
    for (int s = 0; s < n_steps; s++)
        full += clamp_depth(accepted[s], m->K) + 1;
    bool last_cut = !uncut && n_steps > 0 && full > (int64_t)(n_output > 0 ? n_output - 1 : 0);
    for (int s = 0; s < n_steps; s++) {
        int a = clamp_depth(uncut ? uncut[s] : accepted[s], m->K);
        /* Adaptive depth: positions past the step's own drafts were never
         * drafted, so they are unobserved, not rejected. */
        int obs = drafted ? clamp_depth(drafted[s], m->K) : m->K;
        add_step(m, a, last_cut && s == n_steps - 1 && a < obs ? a : obs);
    }
    m->steps += n_steps;
    m->emitted += n_output > 0 ? n_output - 1 : 0;
    m->decode_ns += decode_ns;
    m->requests++;
}

void mtp_metrics_merge(struct mtp_metrics *m, const struct mtp_metrics *o)
{
    MTP_CHECK(m->K == o->K);
    m->steps += o->steps;
    m->emitted += o->emitted;
    m->accepted += o->accepted;
    for (int j = 0; j <= m->K; j++) {
        m->reach[j] += o->reach[j];
        m->tried[j] += o->tried[j];
        m->observed[j] += o->observed[j];
    }
    m->decode_ns += o->decode_ns;
    m->requests += o->requests;
}

static double ratio(double num, double den) { return den > 0 ? num / den : NAN; }

double mtp_metrics_tau(const struct mtp_metrics *m) { return ratio(m->emitted, m->steps); }

double mtp_metrics_alpha(const struct mtp_metrics *m, int j)
{
    if (j < 1 || j > m->K)
        return NAN;
    return ratio(m->reach[j], m->tried[j]);
}

double mtp_metrics_beta(const struct mtp_metrics *m, int j)
{
    if (j < 1 || j > m->K)
        return NAN;
    return ratio(m->reach[j], m->observed[j]);
}

double mtp_metrics_accept_rate(const struct mtp_metrics *m)
{
    int64_t positions = 0;
    for (int j = 1; j <= m->K; j++)
        positions += m->observed[j];
    return ratio(m->accepted, (double)positions);
}

double mtp_metrics_tokens_per_s(const struct mtp_metrics *m)
{
    return ratio(m->emitted, m->decode_ns * 1e-9);
}

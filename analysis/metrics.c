/*
 * metrics.c - spec/metrics.md acceptance and speed metrics from per-step
 * accepted counts (see metrics.h).
 */
#include "metrics.h"

#include <math.h>   /* defines: NAN */
#include <string.h> /* defines: memset */

#include "engine/error.h" /* defines: MTP_CHECK */

void mtp_metrics_init(struct mtp_metrics *m, int K)
{
    MTP_CHECK(K >= 0 && K <= MTP_METRICS_MAX_DEPTH);
    memset(m, 0, sizeof *m);
    m->K = K;
}

void mtp_metrics_add_request(struct mtp_metrics *m, const int32_t *accepted, int n_steps,
                             int n_output, uint64_t decode_ns)
{
    for (int s = 0; s < n_steps; s++) {
        int a = accepted[s] < 0 ? 0 : accepted[s] > m->K ? m->K : accepted[s];
        m->accepted += a;
        for (int j = 0; j <= a; j++)
            m->reach[j]++;
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
    for (int j = 0; j <= m->K; j++)
        m->reach[j] += o->reach[j];
    m->decode_ns += o->decode_ns;
    m->requests += o->requests;
}

static double ratio(double num, double den) { return den > 0 ? num / den : NAN; }

double mtp_metrics_tau(const struct mtp_metrics *m) { return ratio(m->emitted, m->steps); }

double mtp_metrics_alpha(const struct mtp_metrics *m, int j)
{
    if (j < 1 || j > m->K)
        return NAN;
    return ratio(m->reach[j], m->reach[j - 1]);
}

double mtp_metrics_beta(const struct mtp_metrics *m, int j)
{
    if (j < 1 || j > m->K)
        return NAN;
    return ratio(m->reach[j], m->steps);
}

double mtp_metrics_accept_rate(const struct mtp_metrics *m)
{
    return ratio(m->accepted, (double)m->K * m->steps);
}

double mtp_metrics_tokens_per_s(const struct mtp_metrics *m)
{
    return ratio(m->emitted, m->decode_ns * 1e-9);
}

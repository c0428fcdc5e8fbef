/*
 * sampling.c - logits to distributions, inverse-CDF sampling, and the
 * speculative-sampling acceptance rule (see sampling.h for the contracts).
 *
 * Sums are accumulated in double in id order, so a distribution and a draw
 * depend only on the input values, never on threads or vector widths.
 */
#include "sampling.h"

#include <math.h>   /* defines: exp */
#include <stdlib.h> /* defines: qsort, free */

#include "../core/error.h" /* defines: mtp_xmalloc */

int mtp_sampling_argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* Sort order for qsort: probabilities descending, ties to the lower id (a
 * total order, so the result does not depend on qsort's algorithm). qsort
 * has no user pointer: the array is passed in thread-local storage, which
 * keeps concurrent decoders on different threads independent. */
static _Thread_local const float *sort_probs;

static int by_prob_desc(const void *a, const void *b)
{
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    float pi = sort_probs[i], pj = sort_probs[j];
    if (pi != pj)
        return pi > pj ? -1 : 1;
    return (i > j) - (i < j);
}

static void normalize(float *p, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += p[i];
    if (sum <= 0)
        return;
    for (int i = 0; i < n; i++)
        p[i] = (float)(p[i] / sum);
}

/* Zero all but the top_k most probable ids, then cut the tail beyond top_p
 * mass; ORDER [n] is scratch. */
static void apply_filters(const struct mtp_sampling *s, float *probs, int n, int32_t *order)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    sort_probs = probs;
    qsort(order, (size_t)n, sizeof *order, by_prob_desc);
    int keep = n;
    if (s->top_k > 0 && s->top_k < keep)
        keep = s->top_k;
    double kept_mass = 0;
    for (int r = 0; r < keep; r++)
        kept_mass += probs[order[r]];
    if (s->top_p < 1.0f && kept_mass > 0) {
        /* top_p is measured on the top-k renormalised distribution. */
        double target = (double)s->top_p * kept_mass, cum = 0;
        int r = 0;
        while (r < keep) {
            cum += probs[order[r++]];
            if (cum >= target)
                break;
        }
        keep = r;
    }
    for (int r = keep; r < n; r++)
        probs[order[r]] = 0.0f;
    normalize(probs, n);
}

void mtp_sampling_probs(const struct mtp_sampling *s, const float *logits, int n, float *probs,
                        int32_t *work)
{
    if (mtp_sampling_is_greedy(s)) {
        int best = mtp_sampling_argmax(logits, n);
        for (int i = 0; i < n; i++)
            probs[i] = i == best ? 1.0f : 0.0f;
        return;
    }
    float mx = logits[mtp_sampling_argmax(logits, n)];
    double inv_t = 1.0 / (double)s->temperature, sum = 0;
    for (int i = 0; i < n; i++) {
        double v = exp(((double)logits[i] - mx) * inv_t);
        probs[i] = (float)v;
        sum += v;
    }
    for (int i = 0; i < n; i++)
        probs[i] = (float)(probs[i] / sum);
    bool filtered = (s->top_k > 0 && s->top_k < n) || s->top_p < 1.0f;
    if (!filtered)
        return;
    int32_t *order = work ? work : mtp_xmalloc((size_t)n * sizeof *order);
    apply_filters(s, probs, n, order);
    if (!work)
        free(order);
}

int mtp_sampling_sample(const float *probs, int n, float u)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        total += probs[i];
    double target = (double)u * total, cum = 0;
    int last = 0;
    for (int i = 0; i < n; i++) {
        if (probs[i] <= 0.0f)
            continue;
        cum += probs[i];
        last = i;
        if (cum > target)
            return i;
    }
    /* Rounding left cum <= target at the end: the last id with mass. */
    return last;
}

bool mtp_sampling_accept_greedy(const float *target, int n, int d)
{
    return mtp_sampling_argmax(target, n) == d;
}

bool mtp_sampling_accept(float p_d, float q_d, float u)
{
    return (double)u * (double)q_d < (double)p_d;
}

bool mtp_sampling_residual(const float *p, const float *q, int n, float *out)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        float r = p[i] - q[i];
        out[i] = r > 0.0f ? r : 0.0f;
        sum += out[i];
    }
    if (sum <= 0) {
        for (int i = 0; i < n; i++)
            out[i] = p[i];
        return false;
    }
    for (int i = 0; i < n; i++)
        out[i] = (float)(out[i] / sum);
    return true;
}

int mtp_sampling_verify(const float *p, const float *q, const int32_t *drafts, int K, int n,
                        const float *u, float *work, int32_t *final_token)
{
    for (int j = 1; j <= K; j++) {
        const float *pj = p + (size_t)(j - 1) * n, *qj = q + (size_t)(j - 1) * n;
        int d = drafts[j - 1];
        if (mtp_sampling_accept(pj[d], qj[d], u[j - 1]))
            continue;
        mtp_sampling_residual(pj, qj, n, work);
        *final_token = mtp_sampling_sample(work, n, u[K]);
        return j - 1;
    }
    *final_token = mtp_sampling_sample(p + (size_t)K * n, n, u[K]);
    return K;
}

int mtp_sampling_verify_greedy(const float *logits, const int32_t *drafts, int K, int n,
                               int32_t *final_token)
{
    for (int j = 1; j <= K; j++) {
        int best = mtp_sampling_argmax(logits + (size_t)(j - 1) * n, n);
        if (drafts[j - 1] != best) {
            *final_token = best;
            return j - 1;
        }
    }
    *final_token = mtp_sampling_argmax(logits + (size_t)K * n, n);
    return K;
}

double mtp_sampling_token_prob(const float *logits, int n, int token)
{
    double mx = logits[0], sum = 0;
    for (int i = 1; i < n; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < n; i++)
        sum += exp((double)logits[i] - mx);
    return exp((double)logits[token] - mx) / sum;
}

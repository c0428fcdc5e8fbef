/*
 * tree_accept.c - sibling drafting and recursive rejection sampling over
 * siblings (tree_accept.h). The proof that the emitted token is distributed as
 * p is in spec/decoding.md ("Lossless acceptance over siblings"); in short:
 * stage i emits y by acceptance with probability min(q_i(y), r_i(y)) and is
 * rejected with probability Z = sum_y max(r_i(y) - q_i(y), 0); if the stages
 * after it emit r_{i+1} = max(r_i - q_i, 0) / Z whatever x_i was, stage i
 * emits min(q_i, r_i) + max(r_i - q_i, 0) = r_i. The last stage (the residual
 * draw) emits its r exactly, so by induction stage 1 emits r_1 = p. The
 * residual must use q_i: with q instead (the with-replacement formula) the
 * mass q_i(y) - q(y) > 0 that later candidates carry is counted wrongly and
 * the output is biased (tests/test_tree_sampling.c measures it).
 */
#include <stdbool.h>
#include <string.h> /* defines: memcpy */

#include "../core/error.h"
#include "sampling.h"
#include "tree_accept.h"

void mtp_tree_top_k(const float *x, int n, int k, int32_t *out)
{
    MTP_CHECK(k >= 0 && k <= n);
    for (int i = 0; i < k; i++) {
        int best = -1;
        for (int v = 0; v < n; v++) {
            bool taken = false;
            for (int j = 0; j < i && !taken; j++)
                taken = out[j] == v;
            if (!taken && (best < 0 || x[v] > x[best]))
                best = v;
        }
        out[i] = best;
    }
}

/* Q without the tokens C[0..k) into OUT, renormalised; false if no mass is left. */
static bool remove_drawn(const float *q, int n, const int32_t *c, int k, float *out)
{
    memcpy(out, q, (size_t)n * sizeof(float));
    for (int i = 0; i < k; i++)
        out[c[i]] = 0.0f;
    double sum = 0;
    for (int v = 0; v < n; v++)
        sum += out[v];
    if (sum <= 0)
        return false;
    for (int v = 0; v < n; v++)
        out[v] = (float)(out[v] / sum);
    return true;
}

int mtp_tree_draw_siblings(const float *q, int n, int k, const float *u, int32_t *out,
                           float *work)
{
    for (int i = 0; i < k; i++) {
        if (!remove_drawn(q, n, out, i, work))
            return i;
        out[i] = mtp_sampling_sample(work, n, u[i]);
    }
    return k;
}

int mtp_tree_accept_node(const float *p, const float *q, const int32_t *c, int k, int n,
                         const float *u, float *work, int32_t *final_token)
{
    float *r = work, *qi = work + n, *next = work + 2 * (size_t)n;
    memcpy(r, p, (size_t)n * sizeof(float));
    for (int i = 0; i < k; i++) {
        /* q_i: the distribution candidate i was drawn from. */
        if (!remove_drawn(q, n, c, i, qi))
            break;
        if (mtp_sampling_accept(r[c[i]], qi[c[i]], u[i]))
            return i;
        /* r <- normalize(max(r - q_i, 0)); with no mass left rejection had
         * probability 0, and r stays (mtp_sampling_residual's fallback). */
        if (mtp_sampling_residual(r, qi, n, next))
            memcpy(r, next, (size_t)n * sizeof(float));
    }
    *final_token = mtp_sampling_sample(r, n, u[k]);
    return -1;
}

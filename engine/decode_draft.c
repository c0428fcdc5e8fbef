/*
 * decode_draft.c - the rules of drafting with the MTP modules: exact (module
 * k drafts token k, docs/design.md §5 "Exact drafting") and chained (one module
 * reused K times), the module-cache prefill, the choice of a draft, adaptive
 * depth, and the module-cache rollback. The module forwards of a step run in
 * decode_batch.c, batched across the sessions of a batch.
 *
 * ---- Index algebra of exact drafting ---------------------------------------
 * t[] is the token sequence; seq[0..m] are accepted (m pending). Module k at
 * position j reads Emb(t[j+k]) and g_{k-1}[j] (g_0 = main hidden h, g_k =
 * module k's post-shared_head.norm hidden) and predicts t[j+k+1]. Unrolled,
 * module k's row j depends on exactly t[j+1..j+k] (and h[j], i.e. t[0..j]).
 *
 *   - Row j is TRUE (final, cached for good) iff j + k <= m: every token it
 *     reads is accepted. True rows of module k: j = 0 .. m-k.
 *   - Rows j = m-k+1 .. m-1 read drafts: t[j+k] = d_{j+k-m} for j+k > m,
 *     with j+k-m <= k-1, so module k needs only d_1..d_{k-1}, which modules
 *     1..k-1 produce earlier in the same step.
 *   - The draft d_k is read from module k's logits at row m-1 (reading
 *     t[m-1+k], which is seq[m] for k = 1 and d_{k-1} otherwise).
 *
 * Cache length c_k of module k = number of valid leading rows. Per step,
 * module k runs ONE batched forward over rows c_k .. m-1 (the newly true rows
 * and the draft-dependent ones); its hidden input rows c_k..m-1 of g_{k-1}
 * are valid because c_k <= c_{k-1} (below) and module k-1 has just computed
 * rows c_{k-1}..m-1 with the same drafts.
 *
 * After verification accepted a drafts, the new pending index is
 * m' = m + a + 1 and t[m+1..m+a] = d_1..d_a, t[m'] != d_{a+1}. Row j of module
 * k stays valid iff all of t[j+1..j+k] were right: j + k <= m + a, i.e.
 * j <= m'-1-k. Rows were computed only up to m-1, so
 *        c_k <- min(m, max(0, m' - k)).
 * For k = 1 this is m (row m-1 read the true pending token). Kept rows are
 * bitwise equal to a recompute, since the inputs are equal and every op is
 * batch invariant (backend.h), which is what invariant (c) tests. Since
 * c_k <= m'-1 (k >= 1), each module computes at least row m'-1 next step,
 * and c_k is non-increasing in k, as claimed above.
 *
 * Prefill over a prompt of n tokens (m = n after the first token is chosen,
 * but the modules are filled from the prompt only): module k over rows
 * 0 .. n-1-k with tokens seq[k..n-1], i.e. c_k = max(0, n - k) = the true rows
 * for m = n. The first step then computes rows n-k .. n-1.
 *
 * Wiring (wiring.h): with module_hidden "main_model" (MiMo) module k reads
 * h[j] instead of g_{k-1}[j]; row j then depends on t[0..j] and t[j+k] only,
 * a subset of the above, so the same cache rule stays correct (it may
 * recompute a row it could have kept, never keep a stale one). With
 * draft_hidden "before_shared_head_norm" (vLLM) every g_k is the module's
 * block output before shared_head.norm (the engine writes it so); the
 * algebra is unchanged.
 *
 * ---- Chained drafting -------------------------------------------------------
 * Module M (default 1) is used as a one-step predictor at every depth. Its
 * true rows are j = 0..m-1 with Emb(t[j+1]) and the main hidden h[j] (as
 * module 1 sees them, whichever M is chosen). Draft i >= 2 runs it at
 * position m+i-2 with Emb(d_{i-1}) and its own hidden at m+i-3. After
 * verification the draft rows (positions >= m) are dropped, even for
 * accepted drafts: the next step recomputes those positions from the main
 * model's hidden states, as vLLM and SGLang do ("draft extend").
 */
#include <math.h>   /* defines: INFINITY */
#include <string.h> /* defines: memcpy */

#include "decode_internal.h"
#include "draft_vocab.h"
#include "../core/error.h"

static int min_int(int a, int b) { return a < b ? a : b; }
static int max_int(int a, int b) { return a > b ? a : b; }

/* t[i] of the sequence extended by this step's drafts (seq up to m, then d_1..). */
int32_t mtp_decode_token_at(const struct mtp_decode *d, int i)
{
    int m = d->n_seq - 1;
    return i <= m ? d->seq[i] : d->drafts[i - m - 1];
}

/* Choose draft K from module logits ROW [V] (greedy argmax, or a sample from
 * q_K kept for acceptance), then let a test hook see it.
 * With a draft vocabulary ROW holds the N subset logits: the choice (softmax,
 * filters, argmax, sample) runs over N, and q_K is scattered to the full
 * vocabulary with 0 outside the subset. That q_K is exactly what the draft
 * was drawn from, so min(1, p/q) and the residual max(p - q, 0) stay exact:
 * ids outside the subset are emitted only by the residual, at rate p. */
void mtp_decode_pick_draft(struct mtp_decode *d, int k, const float *row)
{
    float *logits = d->draft_logits + (size_t)(k - 1) * d->V;
    float *q = d->q + (size_t)(k - 1) * d->V;
    if (d->dv) {
        const int32_t *ids = d->dv->ids;
        int n = d->dv->n;
        /* One uniform per sampled draft, none when greedy: the same stream
         * order as the full-vocabulary path (decode.h). */
        float u = mtp_sampling_is_greedy(&d->p.sampling) ? 0.0f : mtp_rng_uniform(&d->p.rng);
        d->drafts[k - 1] = mtp_draft_vocab_choose(&d->p.sampling, ids, n, row, u, d->work,
                                                  d->iwork, q, d->V, &d->draft_sub[k - 1]);
        mtp_draft_vocab_scatter(ids, n, row, -INFINITY, logits, d->V);
    } else {
        memcpy(logits, row, (size_t)d->V * sizeof(float));
        d->drafts[k - 1] = mtp_decode_choose(d, row, q);
    }
    if (d->p.draft_hook) {
        int32_t before = d->drafts[k - 1];
        d->p.draft_hook(d->p.draft_hook_user, k, &d->drafts[k - 1]);
        if (d->drafts[k - 1] != before)
            d->draft_sub[k - 1] = -1;
    }
}

/* The hidden states module K reads in exact drafting: module K-1's (the
 * paper), or the main model's for every module (MiMo NEXTN). */
const float *mtp_decode_module_input(const struct mtp_decode *d, int k)
{
    if (d->p.wiring.module_hidden == MTP_WIRING_MODULE_HIDDEN_MAIN_MODEL)
        return d->hid[0];
    return d->hid[k - 1];
}

int mtp_decode_prefill_modules(struct mtp_decode *d)
{
    int n = d->n_seq;
    if (d->p.drafting == MTP_DECODE_DRAFTING_CHAIN) {
        if (n < 2)
            return MTP_OK;
        return mtp_engine_seq_mtp_forward(d->e, d->seq_id, d->module, d->seq + 1, d->hid[0],
                                          n - 1, 0, NULL, d->hid[d->module]);
    }
    for (int k = 1; k <= d->K && n - k > 0; k++)
        if (mtp_engine_seq_mtp_forward(d->e, d->seq_id, k, d->seq + k,
                                       mtp_decode_module_input(d, k), n - k, 0, NULL, d->hid[k]))
            return mtp_error_wrap("decode: prefill of MTP module %d: ", k);
    return MTP_OK;
}

/* Adaptive depth: whether drafting stops after draft I (chosen from ROW).
 * *CUM carries the product of the drafts' probabilities. */
bool mtp_decode_stop_after(const struct mtp_decode *d, int i, const float *row, double *cum)
{
    if (d->p.adaptive == MTP_DECODE_ADAPTIVE_OFF)
        return false;
    double p;
    if (!d->dv)
        p = mtp_sampling_token_prob(row, d->V, d->drafts[i - 1]);
    else if (d->draft_sub[i - 1] >= 0) /* the subset's own softmax, over N */
        p = mtp_sampling_token_prob(row, d->dv->n, d->draft_sub[i - 1]);
    else /* a test hook's draft: the scattered logits, 0 outside the subset */
        p = mtp_sampling_token_prob(d->draft_logits + (size_t)(i - 1) * d->V, d->V,
                                    d->drafts[i - 1]);
    *cum *= p;
    double v = d->p.adaptive == MTP_DECODE_ADAPTIVE_CUMULATIVE ? *cum : p;
    return v < d->p.adaptive_threshold;
}

void mtp_decode_rollback_modules(struct mtp_decode *d, int m, int a)
{
    int m_next = m + a + 1;
    if (d->p.drafting == MTP_DECODE_DRAFTING_CHAIN) {
        mtp_engine_seq_truncate(d->e, d->seq_id, d->module, m);
        return;
    }
    for (int k = 1; k <= d->K; k++)
        mtp_engine_seq_truncate(d->e, d->seq_id, k, min_int(m, max_int(0, m_next - k)));
}

/*
 * decode_mtp.c - one MTP speculative step (docs/design.md §5):
 *   1. draft d_1..d_K with the MTP modules (decode_draft.c);
 *   2. verify: one main forward of [seq[m], d_1..d_K] at positions m..m+K
 *      gives target logits for t[m+1..m+K+1] and the main hidden h[m..m+K];
 *   3. accept: greedy (d_j == argmax) or speculative sampling
 *      (sampling.h mtp_sampling_verify), then emit d_1..d_a and the final
 *      token (residual sample or bonus), cut by EOS / max_new_tokens;
 *   4. roll back: main cache to m+a+1 positions (h[m..m+a] stay valid: their
 *      tokens are accepted), module caches per decode_draft.c.
 * Each phase is timed separately into the step record. Drafting and
 * verification run in decode_batch.c, here as a batch of one session.
 */
#include "decode_internal.h"
#include "decode_tree.h" /* defines: mtp_decode_finish_tree */
#include "../core/error.h"

/* Step 3: the acceptance pass; returns a and writes the final token. */
static int accept_drafts(struct mtp_decode *d, int32_t *final_token)
{
    int K = d->k_step, V = d->V;
    if (mtp_sampling_is_greedy(&d->p.sampling))
        return mtp_sampling_verify_greedy(d->logits, d->drafts, K, V, final_token);
    for (int j = 0; j <= K; j++)
        mtp_sampling_probs(&d->p.sampling, d->logits + (size_t)j * V, V,
                           d->p_target + (size_t)j * V, d->iwork);
    float u[MTP_DECODE_MAX_DEPTH + 1];
    for (int j = 0; j <= K; j++)
        u[j] = mtp_rng_uniform(&d->p.rng);
    return mtp_sampling_verify(d->p_target, d->q, d->drafts, K, V, u, d->work, final_token);
}

/* Emit d_1..d_a then FINAL, stopping at EOS or the token limit; returns the
 * number of tokens appended. */
static int emit_step(struct mtp_decode *d, int a, int32_t final_token)
{
    int n = 0;
    for (int j = 0; j < a; j++) {
        n++;
        if (mtp_decode_emit(d, d->drafts[j], true))
            return n;
    }
    mtp_decode_emit(d, final_token, false);
    return n + 1;
}

void mtp_decode_finish_mtp(struct mtp_decode *d, int s)
{
    struct mtp_decode_result *r = &d->r;
    int m = d->n_seq - 1;
    uint64_t t2 = mtp_decode_now_ns();
    int32_t final_token;
    int a = accept_drafts(d, &final_token);
    r->emitted[s] = emit_step(d, a, final_token);
    /* spec/metrics.md: a draft that was not emitted (past EOS or the token
     * limit) is not counted as accepted, so e_s <= a_s + 1 always holds and
     * a_s <= e_s. */
    r->accepted[s] = a < r->emitted[s] ? a : r->emitted[s];
    r->accepted_uncut[s] = a; /* what the verifier decided, for unbiased acceptance rates */
    uint64_t t3 = mtp_decode_now_ns();

    mtp_engine_seq_truncate(d->e, d->seq_id, 0, m + a + 1);
    mtp_decode_rollback_modules(d, m, a);
    uint64_t t4 = mtp_decode_now_ns();
    r->accept_ns[s] = t3 - t2;
    r->update_ns[s] = t4 - t3;
}

void mtp_decode_finish_baseline(struct mtp_decode *d, int s)
{
    uint64_t t0 = mtp_decode_now_ns();
    mtp_decode_emit(d, mtp_decode_choose(d, d->logits, NULL), false);
    d->r.accept_ns[s] = mtp_decode_now_ns() - t0;
    d->r.emitted[s] = 1;
}

/* One session's speculative step, chain or tree: the batched phases with a
 * batch of one. */
int mtp_decode_step_mtp(struct mtp_decode *d)
{
    struct mtp_decode_result *r = &d->r;
    int s = mtp_decode_step_begin(d);
    uint64_t t0 = mtp_decode_now_ns();
    if (mtp_decode_draft_sessions(&d, 1, &d->batch_work))
        return mtp_error_wrap("decode: step %d: ", s);
    uint64_t t1 = mtp_decode_now_ns();
    if (mtp_decode_verify_sessions(&d, &s, 1, &d->batch_work, NULL))
        return MTP_ERR;
    uint64_t t2 = mtp_decode_now_ns();
    r->draft_ns[s] = t1 - t0;
    r->verify_ns[s] = t2 - t1;
    if (d->tree)
        mtp_decode_finish_tree(d, s);
    else
        mtp_decode_finish_mtp(d, s);
    return MTP_OK;
}

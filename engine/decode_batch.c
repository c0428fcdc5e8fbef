/*
 * decode_batch.c - the engine-facing phases of a decoding step over N
 * sessions at once (decode_internal.h): each session lives on its own engine
 * sequence, and every module forward and the verification forward is one
 * batched engine call covering all of them (engine.h "Sequences"). A single
 * session's step (decode.c, decode_mtp.c) is the case N = 1, so there is one
 * drafting and one verification code path.
 *
 * What each session computes is what it computes alone: the engine's forward
 * is batch invariant, and each session draws from its own RNG stream in its
 * own order (decode.h), so a request's tokens do not depend on its batch.
 *
 * The index algebra (which module rows each step runs) is decode_draft.c's.
 */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memcpy */

#include "decode_internal.h"
#include "decode_tree.h" /* defines: mtp_decode_tree_draft, mtp_decode_tree_segment */
#include "draft_vocab.h" /* defines: struct mtp_draft_vocab */
#include "../core/error.h"

void mtp_decode_work_free(struct mtp_decode_work *w)
{
    free(w->tokens);
    free(w->hin);
    free(w->hout);
    free(w->logits);
    free(w->segs);
    memset(w, 0, sizeof *w);
}

/* Room for TOKENS tokens, ROWS logit rows of WIDTH and SEGS segments. */
static void work_reserve(struct mtp_decode_work *w, int tokens, int dm, int rows, int width,
                         int segs)
{
    if (tokens > w->cap_tokens) {
        w->tokens = mtp_xrealloc(w->tokens, (size_t)tokens * sizeof(int32_t));
        w->hin = mtp_xrealloc(w->hin, (size_t)tokens * dm * sizeof(float));
        w->hout = mtp_xrealloc(w->hout, (size_t)tokens * dm * sizeof(float));
        w->cap_tokens = tokens;
    }
    if ((size_t)rows * width > (size_t)w->cap_rows) {
        w->logits = mtp_xrealloc(w->logits, (size_t)rows * width * sizeof(float));
        w->cap_rows = rows * width;
    }
    if (segs > w->cap_segs) {
        w->segs = mtp_xrealloc(w->segs, (size_t)segs * sizeof *w->segs);
        w->cap_segs = segs;
    }
}

/* The logits width of a module forward: V, or the draft vocabulary's size. */
static int draft_width(const struct mtp_decode *d) { return d->dv ? d->dv->n : d->V; }

/* One batched module forward: segment i is session S[idx[i]]'s rows
 * c_i..c_i+n_i-1 of MODULE with tokens t[j + SHIFT] (SHIFT < 0: the session's
 * last draft, one row), hidden input IN(session)[j] and output OUT(session)[j];
 * then draft K of each from the last row's logits. */
struct module_pass {
    int module, shift, k;
    const float *(*in)(const struct mtp_decode *d, int module);
    float *(*out)(const struct mtp_decode *d, int module);
};

static const float *in_exact(const struct mtp_decode *d, int k)
{
    return mtp_decode_module_input(d, k);
}
static const float *in_main(const struct mtp_decode *d, int k) { return d->hid[0]; }
static const float *in_own(const struct mtp_decode *d, int k) { return d->hid[k]; }
static float *out_own(const struct mtp_decode *d, int k) { return d->hid[k]; }

/* Rows of session D for PASS: the module cache's valid rows up to m-1, or
 * (shift < 0) the one chained row at POS. */
static void pass_rows(const struct mtp_decode *d, const struct module_pass *ps, int *first,
                      int *rows)
{
    int m = d->n_seq - 1;
    if (ps->shift < 0) {
        *first = m + ps->k - 2;
        *rows = 1;
        return;
    }
    *first = mtp_engine_seq_cache_len(d->e, d->seq_id, ps->module);
    *rows = m - *first;
}

static int module_pass(struct mtp_decode **S, const int *idx, int n, struct mtp_decode_work *w,
                       const struct module_pass *ps)
{
    struct mtp_decode *d0 = S[idx[0]];
    int dm = d0->dm, total = 0;
    for (int i = 0; i < n; i++) {
        int first, rows;
        pass_rows(S[idx[i]], ps, &first, &rows);
        MTP_CHECK(rows >= 1);
        total += rows;
    }
    work_reserve(w, total, dm, n, draft_width(d0), n);
    int t = 0;
    for (int i = 0; i < n; i++) {
        struct mtp_decode *d = S[idx[i]];
        int first, rows;
        pass_rows(d, ps, &first, &rows);
        for (int r = 0; r < rows; r++)
            w->tokens[t + r] = ps->shift < 0 ? d->drafts[ps->k - 2]
                                             : mtp_decode_token_at(d, first + r + ps->shift);
        /* Chained rows read the module's own hidden one position back. */
        const float *in = ps->in(d, ps->module) + (size_t)(first - (ps->shift < 0)) * dm;
        memcpy(w->hin + (size_t)t * dm, in, (size_t)rows * dm * sizeof(float));
        w->segs[i] = (struct mtp_segment){.seq = d->seq_id, .n = rows, .start_pos = first};
        t += rows;
    }
    /* One session: the chunked form (its rows may exceed max_batch); the same forward. */
    int rc = n == 1 ? mtp_engine_seq_mtp_forward_draft(d0->e, d0->seq_id, ps->module, d0->dv,
                                                       w->tokens, w->hin, w->segs[0].n,
                                                       w->segs[0].start_pos, w->logits, w->hout)
                    : mtp_engine_mtp_forward_batch(d0->e, ps->module, d0->dv, w->tokens, w->hin,
                                                   w->segs, n, true, w->logits, w->hout);
    if (rc)
        return mtp_error_wrap("decode: MTP module %d, draft %d: ", ps->module, ps->k);
    t = 0;
    for (int i = 0; i < n; i++) {
        struct mtp_decode *d = S[idx[i]];
        memcpy(ps->out(d, ps->module) + (size_t)w->segs[i].start_pos * dm,
               w->hout + (size_t)t * dm, (size_t)w->segs[i].n * dm * sizeof(float));
        t += w->segs[i].n;
        mtp_decode_pick_draft(d, ps->k, w->logits + (size_t)i * draft_width(d));
    }
    return MTP_OK;
}

/* Exact drafting: module k drafts d_k for every session, k = 1..K. */
static int draft_exact(struct mtp_decode **S, const int *idx, int n, struct mtp_decode_work *w)
{
    for (int k = 1; k <= S[idx[0]]->K; k++) {
        struct module_pass ps = {.module = k, .shift = k, .k = k, .in = in_exact, .out = out_own};
        if (module_pass(S, idx, n, w, &ps))
            return MTP_ERR;
    }
    return MTP_OK;
}

/* Chained drafting: module M over the new rows (draft 1), then one row per
 * further draft for the sessions whose adaptive depth has not stopped. */
static int draft_chain(struct mtp_decode **S, int *idx, int n, struct mtp_decode_work *w)
{
    struct mtp_decode *d0 = S[idx[0]];
    int M = d0->module;
    double cum[MTP_DECODE_MAX_BATCH];
    struct module_pass first = {.module = M, .shift = 1, .k = 1, .in = in_main, .out = out_own};
    if (module_pass(S, idx, n, w, &first))
        return MTP_ERR;
    int live = 0;
    for (int i = 0; i < n; i++) {
        struct mtp_decode *d = S[idx[i]];
        d->k_step = 1;
        cum[live] = 1;
        if (!mtp_decode_stop_after(d, 1, w->logits + (size_t)i * draft_width(d), &cum[live]))
            idx[live++] = idx[i];
    }
    for (int k = 2; k <= d0->K && live > 0; k++) {
        struct module_pass ps = {.module = M, .shift = -1, .k = k, .in = in_own, .out = out_own};
        if (module_pass(S, idx, live, w, &ps))
            return MTP_ERR;
        int still = 0;
        for (int i = 0; i < live; i++) {
            struct mtp_decode *d = S[idx[i]];
            d->k_step = k;
            double c = cum[i];
            if (!mtp_decode_stop_after(d, k, w->logits + (size_t)i * draft_width(d), &c)) {
                cum[still] = c;
                idx[still++] = idx[i];
            }
        }
        live = still;
    }
    return MTP_OK;
}

/* Tree drafting: each session grows its own tree (its module forwards are
 * tree-shaped over its own rows, decode_tree_draft.c), one after another. */
static int draft_trees(struct mtp_decode **S, int n)
{
    for (int i = 0; i < n; i++) {
        struct mtp_decode *d = S[i];
        if (mtp_decode_tree_draft(d))
            return mtp_error_wrap("tree drafting: ");
        d->k_step = d->tree->t.n - 1;
        d->r.drafted[d->r.n_steps - 1] = d->k_step;
    }
    return MTP_OK;
}

int mtp_decode_draft_sessions(struct mtp_decode **S, int n, struct mtp_decode_work *w)
{
    int idx[MTP_DECODE_MAX_BATCH];
    MTP_CHECK(n >= 1 && n <= MTP_DECODE_MAX_BATCH);
    if (S[0]->tree)
        return draft_trees(S, n);
    for (int i = 0; i < n; i++) {
        idx[i] = i;
        S[i]->k_step = S[i]->K;
    }
    int rc = S[0]->p.drafting == MTP_DECODE_DRAFTING_EXACT ? draft_exact(S, idx, n, w)
                                                           : draft_chain(S, idx, n, w);
    for (int i = 0; i < n; i++) {
        S[i]->last_K = S[i]->k_step;
        S[i]->r.drafted[S[i]->r.n_steps - 1] = S[i]->k_step;
    }
    return rc;
}

/* Tree verification: every session's tree is one tree-shaped segment of one
 * main forward (engine.h); each takes its nodes' logits and hidden rows. */
static int verify_trees(struct mtp_decode **S, const int *s_step, int n,
                        struct mtp_decode_work *w, int32_t *all_touched)
{
    struct mtp_decode *d0 = S[0];
    int dm = d0->dm, V = d0->V, total = 0, n_moe = d0->n_moe;
    for (int i = 0; i < n; i++)
        total += S[i]->tree->t.n;
    work_reserve(w, total, dm, total, V, n);
    for (int i = 0, t = 0; i < n; i++) {
        w->segs[i] = mtp_decode_tree_segment(S[i]);
        memcpy(w->tokens + t, S[i]->tree->lists.tokens, (size_t)w->segs[i].n * sizeof(int32_t));
        t += w->segs[i].n;
    }
    if (mtp_engine_forward_batch(d0->e, w->tokens, w->segs, n, w->logits, w->hout))
        return n == 1 ? mtp_error_wrap("decode: step %d: tree verification at position %d: ",
                                       s_step[0], w->segs[0].start_pos)
                      : mtp_error_wrap("decode: tree verification of %d sequences: ", n);
    if (all_touched)
        mtp_engine_last_experts_touched(d0->e, all_touched, n_moe);
    for (int i = 0, t = 0; i < n; i++) {
        struct mtp_decode *d = S[i];
        mtp_decode_tree_take(d, w->logits + (size_t)t * V, w->hout + (size_t)t * dm);
        mtp_engine_last_experts_touched_segment(
            d->e, i, d->r.experts_touched + (size_t)s_step[i] * n_moe, n_moe);
        t += w->segs[i].n;
    }
    return MTP_OK;
}

int mtp_decode_verify_sessions(struct mtp_decode **S, const int *s_step, int n,
                               struct mtp_decode_work *w, int32_t *all_touched)
{
    struct mtp_decode *d0 = S[0];
    if (d0->tree)
        return verify_trees(S, s_step, n, w, all_touched);
    int dm = d0->dm, V = d0->V, total = 0;
    bool mtp = d0->K > 0;
    for (int i = 0; i < n; i++)
        total += (mtp ? S[i]->k_step : 0) + 1;
    work_reserve(w, total, dm, total, V, n);
    int t = 0;
    for (int i = 0; i < n; i++) {
        struct mtp_decode *d = S[i];
        int m = d->n_seq - 1, K = mtp ? d->k_step : 0;
        w->tokens[t] = d->seq[m];
        for (int j = 0; j < K; j++)
            w->tokens[t + 1 + j] = d->drafts[j];
        w->segs[i] = (struct mtp_segment){.seq = d->seq_id, .n = K + 1, .start_pos = m};
        t += K + 1;
    }
    float *hout = mtp ? w->hout : NULL;
    if (n == 1) { /* the chunked form: a deep verification may exceed max_batch */
        if (mtp_engine_seq_forward(d0->e, d0->seq_id, w->tokens, w->segs[0].n,
                                   w->segs[0].start_pos, w->logits, hout))
            return mtp_error_wrap("decode: step %d: verify at position %d: ", s_step[0],
                                  w->segs[0].start_pos);
    } else if (mtp_engine_forward_batch(d0->e, w->tokens, w->segs, n, w->logits, hout)) {
        return mtp_error_wrap("decode: verification of %d sequences: ", n);
    }
    int n_moe = d0->n_moe;
    if (all_touched)
        mtp_engine_last_experts_touched(d0->e, all_touched, n_moe);
    t = 0;
    for (int i = 0; i < n; i++) {
        struct mtp_decode *d = S[i];
        int rows = w->segs[i].n, m = w->segs[i].start_pos;
        memcpy(d->logits, w->logits + (size_t)t * V, (size_t)rows * V * sizeof(float));
        if (mtp) /* h[m..m+K]: the next step's module inputs */
            memcpy(d->hid[0] + (size_t)m * dm, w->hout + (size_t)t * dm,
                   (size_t)rows * dm * sizeof(float));
        mtp_engine_last_experts_touched_segment(
            d->e, i, d->r.experts_touched + (size_t)s_step[i] * n_moe, n_moe);
        t += rows;
    }
    return MTP_OK;
}

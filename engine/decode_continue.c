/*
 * decode_continue.c - the next turn of a conversation on the same session
 * (decode.h mtp_decode_continue): keep the cache rows the new prompt shares
 * with the sequence the session ended with, run the main model over the rest
 * and bring the MTP module caches up to the new prompt.
 *
 * Why this is exact: a kept row was computed from the same tokens at the same
 * positions as the new prompt has there, by batch-invariant forwards
 * (prefill, decode or verification), so it is a row of the model for this
 * prompt. The rest runs through mtp_engine_forward, the batch-invariant path,
 * so every decoder (baseline or speculative) that ended the previous turn
 * with the same tokens holds bitwise the same caches afterwards; greedy
 * equality carries over from turn to turn. A fresh prefill of the whole
 * prompt would compute the kept rows again with the faster prefill kernels,
 * equal up to rounding (docs/design.md §4 "Batch invariance").
 *
 * Which rows stay valid, with L the common prefix of the old sequence and
 * the new prompt (tokens t[0..L) unchanged) and c0 the main cache length:
 *   main model  rows j < keep = min(L, c0, m) (m the old pending position);
 *   module k    row j reads t[j+1..j+k] and rows j of h / g_{k-1}
 *               (decode_draft.c), so it stays iff j + k < L and j < keep;
 *   chain       module M's row j reads t[j+1] and h[j]: j + 1 < L, j < keep.
 * Then module k is filled up to row n-1-k (chain: n-2), as the prefill fills
 * it. Tree decoders carry no other state between steps (their tree rows are
 * moved into place or dropped at the end of each step, decode_tree_draft.c),
 * so the same rules hold for them.
 */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memcpy */

#include "decode_internal.h"
#include "../core/error.h"

/* Tokens the main forward takes at once here: bounds the logits buffer. */
enum { CONTINUE_CHUNK = 64 };

static int min_int(int a, int b) { return a < b ? a : b; }
static int max_int(int a, int b) { return a > b ? a : b; }

/* Main model over seq[keep..n) at positions keep..n-1; the last row's logits
 * land in d->logits, hidden rows in hid[0] (speculative decoders). */
static int main_rows(struct mtp_decode *d, int keep, int n)
{
    float *logits = mtp_xmalloc((size_t)CONTINUE_CHUNK * d->V * sizeof(float));
    int rc = MTP_OK;
    for (int at = keep; rc == MTP_OK && at < n; at += CONTINUE_CHUNK) {
        int len = min_int(CONTINUE_CHUNK, n - at);
        float *hid = d->hid[0] ? d->hid[0] + (size_t)at * d->dm : NULL;
        rc = mtp_engine_forward(d->e, d->seq + at, len, at, logits, hid);
        if (rc == MTP_OK && at + len == n)
            memcpy(d->logits, logits + (size_t)(len - 1) * d->V, (size_t)d->V * sizeof(float));
    }
    free(logits);
    return rc ? mtp_error_wrap("decode: next turn, positions %d..%d: ", keep, n - 1) : MTP_OK;
}

/* Module caches: drop rows that read a changed token, fill up to the prompt. */
static int module_rows(struct mtp_decode *d, int L, int keep, int n)
{
    if (d->p.drafting == MTP_DECODE_DRAFTING_CHAIN) {
        int M = d->module;
        int c = min_int(mtp_engine_cache_len(d->e, M), min_int(max_int(0, L - 1), keep));
        mtp_engine_truncate(d->e, M, c);
        if (n - 1 - c <= 0)
            return MTP_OK;
        return mtp_engine_mtp_forward(d->e, M, d->seq + c + 1, d->hid[0] + (size_t)c * d->dm,
                                      n - 1 - c, c, NULL, d->hid[M] + (size_t)c * d->dm);
    }
    for (int k = 1; k <= d->K; k++) {
        int c = min_int(mtp_engine_cache_len(d->e, k), min_int(max_int(0, L - k), keep));
        mtp_engine_truncate(d->e, k, c);
        const float *in = d->p.wiring.module_hidden == MTP_WIRING_MODULE_HIDDEN_MAIN_MODEL
                              ? d->hid[0] : d->hid[k - 1];
        if (n - k - c > 0 &&
            mtp_engine_mtp_forward(d->e, k, d->seq + c + k, in + (size_t)c * d->dm, n - k - c,
                                   c, NULL, d->hid[k] + (size_t)c * d->dm))
            return mtp_error_wrap("decode: next turn, MTP module %d: ", k);
    }
    return MTP_OK;
}

int mtp_decode_continue(struct mtp_decode *d, const int32_t *prompt, int n, int *cached)
{
    *cached = 0;
    if (n < 1)
        return mtp_error_set("decode: the prompt is empty");
    int L = 0;
    while (L < d->n_seq && L < n && d->seq[L] == prompt[L])
        L++;
    /* Rows up to the pending token only, so every decoder keeps the same
     * rows (a speculative one may also hold rows of drafts accepted past a
     * cut); at least the last prompt token runs: its logits choose the first
     * token. */
    int keep = min_int(min_int(L, mtp_engine_cache_len(d->e, 0)), min_int(d->n_seq - 1, n - 1));
    if (d->n_seq == 0 || keep == 0)
        return mtp_decode_prefill(d, prompt, n);
    if (mtp_decode_check_request(d, prompt, n))
        return MTP_ERR;
    mtp_decode_reset_request(d, n, true);
    memcpy(d->seq, prompt, (size_t)n * sizeof(int32_t));
    d->n_seq = n;
    mtp_engine_set_mtp_wiring(d->e, &d->p.wiring);
    uint64_t t0 = mtp_decode_now_ns();
    mtp_engine_truncate(d->e, 0, keep);
    if (main_rows(d, keep, n) || (d->K > 0 && module_rows(d, L, keep, n)))
        return MTP_ERR;
    d->r.prefill_ns = mtp_decode_now_ns() - t0;
    mtp_decode_emit(d, mtp_decode_choose(d, d->logits, NULL), false);
    d->r.ttft_ns = mtp_decode_now_ns() - t0;
    d->r.total_ns = d->r.ttft_ns;
    *cached = keep;
    return MTP_OK;
}

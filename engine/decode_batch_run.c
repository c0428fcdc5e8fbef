/*
 * decode_batch_run.c - continuous batching (decode_batch.h): B sessions bound
 * to engine sequences 0..B-1, admission of waiting requests into free
 * sequences, one batched step at a time (decode_batch.c), and the batch
 * records.
 */
#include "decode_batch.h"

#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memset */

#include "decode_internal.h"
#include "decode_tree.h" /* defines: mtp_decode_finish_tree */
#include "../core/error.h"

void mtp_decode_batch_log_free(struct mtp_decode_batch_log *log)
{
    if (!log)
        return;
    free(log->n_seqs);
    free(log->tokens);
    free(log->member_off);
    free(log->members);
    free(log->experts_touched);
    free(log->prefill_ns);
    free(log->draft_ns);
    free(log->verify_ns);
    free(log->accept_ns);
    memset(log, 0, sizeof *log);
}

static void *grow(void *p, int cap, size_t elem) { return mtp_xrealloc(p, (size_t)cap * elem); }

/* Append a step record of the N sessions S (their requests REQ_OF_SLOT). */
static int log_step(struct mtp_decode_batch_log *log, struct mtp_decode **S, int n,
                    const int *req_of_slot, int tokens)
{
    if (log->n_steps == log->capacity) {
        int cap = log->capacity ? 2 * log->capacity : 64;
        size_t moe = (size_t)(log->n_moe_layers > 0 ? log->n_moe_layers : 1);
        log->n_seqs = grow(log->n_seqs, cap, sizeof(int32_t));
        log->tokens = grow(log->tokens, cap, sizeof(int32_t));
        log->member_off = grow(log->member_off, cap + 1, sizeof(int32_t));
        log->experts_touched = grow(log->experts_touched, cap, moe * sizeof(int32_t));
        log->prefill_ns = grow(log->prefill_ns, cap, sizeof(uint64_t));
        log->draft_ns = grow(log->draft_ns, cap, sizeof(uint64_t));
        log->verify_ns = grow(log->verify_ns, cap, sizeof(uint64_t));
        log->accept_ns = grow(log->accept_ns, cap, sizeof(uint64_t));
        log->capacity = cap;
        if (log->n_steps == 0)
            log->member_off[0] = 0;
    }
    int s = log->n_steps++, off = log->member_off[s];
    if (off + n > log->member_capacity) {
        log->member_capacity = 2 * (off + n);
        log->members = grow(log->members, log->member_capacity, sizeof(int32_t));
    }
    for (int i = 0; i < n; i++)
        log->members[off + i] = req_of_slot[S[i]->seq_id];
    log->member_off[s + 1] = off + n;
    log->n_seqs[s] = n;
    log->tokens[s] = tokens;
    return s;
}

struct batch {
    struct mtp_engine *e;
    const struct mtp_decode_request *reqs;
    int n_reqs, next, B;
    struct mtp_decode *slot[MTP_DECODE_MAX_BATCH];
    int req_of_slot[MTP_DECODE_MAX_BATCH]; /* -1: free */
    struct mtp_decode_result *results;
    struct mtp_decode_work work;
    const struct mtp_decode_batch_hooks *hooks; /* may be NULL */
};

/* Move slot I's finished request to its result, tell the caller, and free
 * the slot. */
static int retire(struct batch *b, int i)
{
    struct mtp_decode *d = b->slot[i];
    int r = b->req_of_slot[i];
    b->results[r] = d->r;
    memset(&d->r, 0, sizeof d->r);
    b->req_of_slot[i] = -1;
    if (b->hooks && b->hooks->done && b->hooks->done(b->hooks->ctx, r, &b->results[r]))
        return mtp_error_wrap("batch: request %d: ", r);
    return MTP_OK;
}

static bool stopping(const struct batch *b)
{
    return b->hooks && b->hooks->stop && b->hooks->stop(b->hooks->ctx);
}

/* Prefill waiting requests into free slots (a request that stops at its
 * first token is retired at once). */
static int admit(struct batch *b)
{
    for (int i = 0; i < b->B; i++) {
        while (b->req_of_slot[i] < 0 && b->next < b->n_reqs && !stopping(b)) {
            int r = b->next++;
            struct mtp_decode *d = b->slot[i];
            d->p.rng = b->reqs[r].rng;
            b->req_of_slot[i] = r;
            if (mtp_decode_prefill(d, b->reqs[r].prompt, b->reqs[r].n_prompt))
                return mtp_error_wrap("batch: request %d: ", r);
            if (d->r.stop != MTP_DECODE_STOP_NONE && retire(b, i))
                return MTP_ERR;
        }
    }
    return MTP_OK;
}

/* One batched step over the occupied slots; returns MTP_OK with *N = 0 when
 * none is left. */
static int step(struct batch *b, struct mtp_decode_batch_log *log, uint64_t prefill_ns, int *n)
{
    struct mtp_decode *S[MTP_DECODE_MAX_BATCH];
    int s_step[MTP_DECODE_MAX_BATCH];
    *n = 0;
    for (int i = 0; i < b->B; i++)
        if (b->req_of_slot[i] >= 0) {
            S[*n] = b->slot[i];
            s_step[*n] = mtp_decode_step_begin(b->slot[i]);
            (*n)++;
        }
    if (*n == 0)
        return MTP_OK;
    bool mtp = S[0]->K > 0;
    uint64_t t0 = mtp_decode_now_ns();
    if (mtp && mtp_decode_draft_sessions(S, *n, &b->work))
        return mtp_error_wrap("batch: drafting: ");
    uint64_t t1 = mtp_decode_now_ns();
    int32_t *touched = NULL, tokens = 0;
    for (int i = 0; i < *n; i++)
        tokens += (mtp ? S[i]->k_step : 0) + 1;
    int ls = log ? log_step(log, S, *n, b->req_of_slot, tokens) : -1;
    if (log)
        touched = log->experts_touched + (size_t)ls * log->n_moe_layers;
    if (mtp_decode_verify_sessions(S, s_step, *n, &b->work, touched))
        return mtp_error_wrap("batch: verification: ");
    uint64_t t2 = mtp_decode_now_ns();
    for (int i = 0; i < *n; i++) {
        S[i]->r.draft_ns[s_step[i]] = t1 - t0;
        S[i]->r.verify_ns[s_step[i]] = t2 - t1;
        if (S[i]->tree)
            mtp_decode_finish_tree(S[i], s_step[i]);
        else if (mtp)
            mtp_decode_finish_mtp(S[i], s_step[i]);
        else
            mtp_decode_finish_baseline(S[i], s_step[i]);
    }
    uint64_t t3 = mtp_decode_now_ns();
    for (int i = 0; i < *n; i++)
        S[i]->r.total_ns += t3 - t0; /* the step's wall time: what the request waited */
    if (log) {
        log->prefill_ns[ls] = prefill_ns;
        log->draft_ns[ls] = t1 - t0;
        log->verify_ns[ls] = t2 - t1;
        log->accept_ns[ls] = t3 - t2;
    }
    for (int i = 0; i < b->B; i++)
        if (b->req_of_slot[i] >= 0 && b->slot[i]->r.stop != MTP_DECODE_STOP_NONE &&
            retire(b, i))
            return MTP_ERR;
    return MTP_OK;
}

static int check_batch(const struct mtp_engine *e, const struct mtp_decode_params *p, int B)
{
    if (B < 1 || B > MTP_DECODE_MAX_BATCH)
        return mtp_error_set("batch: batch_size %d; expected 1..%d", B, MTP_DECODE_MAX_BATCH);
    if (B > mtp_engine_max_seqs(e))
        return mtp_error_set("batch: batch_size %d but the engine holds %d sequences "
                             "(max_seqs)", B, mtp_engine_max_seqs(e));
    return MTP_OK;
}

static int run(struct batch *b, const struct mtp_decode_params *p,
               struct mtp_decode_batch_log *log)
{
    for (int i = 0; i < b->B; i++) {
        if (mtp_decode_create(b->e, p, &b->slot[i]))
            return MTP_ERR;
        b->slot[i]->seq_id = i;
        b->req_of_slot[i] = -1;
    }
    if (log) {
        memset(log, 0, sizeof *log);
        log->n_moe_layers = b->slot[0]->n_moe;
    }
    for (;;) {
        bool waiting[MTP_DECODE_MAX_BATCH];
        for (int i = 0; i < b->B; i++)
            waiting[i] = b->req_of_slot[i] >= 0;
        uint64_t t0 = mtp_decode_now_ns();
        if (admit(b))
            return MTP_ERR;
        uint64_t admit_ns = mtp_decode_now_ns() - t0;
        /* A request in flight waits while newcomers are prefilled (they
         * are not chunked into the steps): that is part of its latency. */
        for (int i = 0; i < b->B; i++)
            if (waiting[i] && b->req_of_slot[i] >= 0)
                b->slot[i]->r.total_ns += admit_ns;
        int n;
        if (step(b, log, admit_ns, &n))
            return MTP_ERR;
        if (n == 0)
            return MTP_OK;
    }
}

int mtp_decode_batch_run(struct mtp_engine *e, const struct mtp_decode_params *p, int batch_size,
                         const struct mtp_decode_request *reqs, int n_reqs,
                         struct mtp_decode_result *results, struct mtp_decode_batch_log *log,
                         const struct mtp_decode_batch_hooks *hooks)
{
    memset(results, 0, (size_t)n_reqs * sizeof *results);
    if (check_batch(e, p, batch_size) || mtp_decode_check(e, p))
        return MTP_ERR;
    struct batch *b = mtp_xcalloc(1, sizeof *b);
    *b = (struct batch){.e = e, .reqs = reqs, .n_reqs = n_reqs, .B = batch_size,
                        .results = results, .hooks = hooks};
    int rc = run(b, p, log);
    for (int i = 0; i < b->B; i++)
        mtp_decode_free(b->slot[i]);
    mtp_decode_work_free(&b->work);
    free(b);
    if (rc) {
        for (int r = 0; r < n_reqs; r++)
            mtp_decode_result_free(&results[r]);
        mtp_decode_batch_log_free(log);
    }
    return rc;
}

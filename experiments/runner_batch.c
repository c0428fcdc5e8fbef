/*
 * runner_batch.c - the request loop at batch size B > 1 (runner.h): for each
 * (sampling setting, batch size), every decoder's planned prompts and repeats
 * not yet in the log, B in flight with continuous batching
 * (engine/decode_batch.h), in batch runs of at most BATCH_RUN_PER_B x B
 * requests with the decoders taking turns run by run (the first one rotated),
 * so that slow drifts of machine load hit every decoder alike, as the
 * prompt-by-prompt interleaving does at B = 1. Each request is logged as it
 * retires, with its batch size, so a killed run loses at most the requests
 * in flight; each batch run's steps follow as one "batch" record
 * (log_batch.h).
 *
 * A request's random stream is keyed exactly as at batch 1 (the batch size
 * is not part of the key), so a sampled request emits the same tokens at
 * every batch size: the engine's forward is batch invariant.
 */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memset */

#include "../core/error.h"
#include "../engine/decode_batch.h"
#include "log_batch.h"
#include "runner_internal.h"
#include "runner_shard.h"
#include "spec_tree.h" /* defines: mtp_spec_decoder_step_drafts */

/* Requests per batch run, in units of B: enough that the run spends most of
 * its steps with B in flight (the last requests drain with fewer), few
 * enough that decoders alternate every few seconds. */
enum { BATCH_RUN_PER_B = 4 };

/* One decoder's pending requests, in admission order, and the slice
 * [first, first + n) that the current batch run decodes. */
struct batch_run {
    struct mtp_runner *r;
    int dec, samp, B;
    int total;                            /* pending requests */
    int first, n;                         /* the current run's slice */
    const struct mtp_run_prompt **prompt; /* [total] */
    int *repeat;                          /* [total] */
    bool *logged;                         /* [total] retired and logged */
};

static int on_done(void *ctx, int i, const struct mtp_decode_result *res)
{
    struct batch_run *b = ctx;
    i += b->first;
    const struct mtp_run_prompt *p = b->prompt[i];
    struct mtp_runner_turn turn = {.index = 0, .ids = p->ids, .n = p->n, .cached = 0,
                                   .batch_size = b->B};
    if (mtp_runner_log_request(b->r, b->dec, b->samp, p, b->repeat[i], &turn, res))
        return MTP_ERR;
    b->logged[i] = true;
    return MTP_OK;
}

/* Admit nothing more after a signal or once max_requests are logged; the
 * requests in flight still finish and are logged. */
static bool on_stop(void *ctx)
{
    const struct batch_run *b = ctx;
    return mtp_runner_should_stop(b->r);
}

/* The planned (prompt, repeat) pairs this process owns and the log lacks. */
static void collect(struct batch_run *b)
{
    struct mtp_runner *r = b->r;
    const struct mtp_spec *s = &r->spec;
    size_t cap = (size_t)r->n_prompts * (size_t)s->repeats + 1;
    b->prompt = mtp_xcalloc(cap, sizeof *b->prompt);
    b->repeat = mtp_xcalloc(cap, sizeof *b->repeat);
    b->logged = mtp_xcalloc(cap, sizeof *b->logged);
    for (int pi = 0; pi < r->n_prompts; pi++)
        for (int rep = 0; rep < s->repeats; rep++) {
            const struct mtp_run_prompt *p = &r->prompts[pi];
            if (r->shard && !mtp_runner_shard_owns(r, b->samp, pi, rep))
                continue;
            if (mtp_log_keyset_contains_batch(r->finished, s->decoders[b->dec].name, b->samp,
                                              s->dataset_names[p->dataset], p->p->id, rep, 0,
                                              b->B))
                continue;
            b->prompt[b->total] = p;
            b->repeat[b->total++] = rep;
        }
}

/* The batch record of LOG: its requests are those that ran (logged), the
 * members renumbered into that list. */
static int write_record(struct batch_run *b, const struct mtp_decode_batch_log *log,
                        uint64_t wall_ns)
{
    const struct mtp_spec *s = &b->r->spec;
    const struct mtp_spec_decoder *d = &s->decoders[b->dec];
    int *index = mtp_xcalloc((size_t)b->n + 1, sizeof *index);
    struct mtp_log_batch_request *reqs = mtp_xcalloc((size_t)b->n + 1, sizeof *reqs);
    int n = 0;
    for (int i = 0; i < b->n; i++) {
        int q = b->first + i;
        index[i] = -1;
        if (!b->logged[q])
            continue;
        index[i] = n;
        reqs[n++] = (struct mtp_log_batch_request){
            .dataset = s->dataset_names[b->prompt[q]->dataset],
            .prompt_id = (char *)b->prompt[q]->p->id, .repeat = b->repeat[q]};
    }
    int n_members = log->n_steps > 0 ? log->member_off[log->n_steps] : 0;
    int32_t *members = mtp_xcalloc((size_t)n_members + 1, sizeof *members);
    for (int m = 0; m < n_members; m++)
        members[m] = index[log->members[m]];
    struct mtp_log_batch_record rec = {
        .decoder = d->name, .sampling_index = b->samp, .batch_size = b->B,
        .depth = mtp_spec_decoder_step_drafts(d), /* a tree: its drafted nodes */
        .n_requests = n, .requests = reqs, .n_steps = log->n_steps,
        .n_moe_layers = log->n_moe_layers, .n_seqs = log->n_seqs, .tokens = log->tokens,
        .members = members, .experts_touched = log->n_moe_layers > 0 ? log->experts_touched : NULL,
        .prefill_ns = log->prefill_ns, .draft_ns = log->draft_ns, .verify_ns = log->verify_ns,
        .accept_ns = log->accept_ns, .wall_ns = wall_ns};
    int rc = mtp_log_write_batch(b->r->log, &rec);
    free(members);
    free(reqs);
    free(index);
    return rc;
}

static int run_requests(struct batch_run *b)
{
    struct mtp_runner *r = b->r;
    struct mtp_decode_request *reqs = mtp_xcalloc((size_t)b->n, sizeof *reqs);
    struct mtp_decode_result *res = mtp_xcalloc((size_t)b->n, sizeof *res);
    for (int i = 0; i < b->n; i++) {
        const struct mtp_run_prompt *p = b->prompt[b->first + i];
        struct mtp_decode_params dp =
            mtp_runner_decode_params(r, b->dec, b->samp, p, b->repeat[b->first + i]);
        reqs[i] = (struct mtp_decode_request){.prompt = p->ids, .n_prompt = p->n, .rng = dp.rng};
    }
    /* The parameters of any request but its stream: each brings its own. */
    struct mtp_decode_params dp =
        mtp_runner_decode_params(r, b->dec, b->samp, b->prompt[b->first], 0);
    struct mtp_decode_batch_log log;
    memset(&log, 0, sizeof log);
    struct mtp_decode_batch_hooks hooks = {.ctx = b, .done = on_done, .stop = on_stop};
    uint64_t t0 = mtp_runner_now_ns();
    int rc = mtp_decode_batch_run(r->engine, &dp, b->B, reqs, b->n, res, &log, &hooks);
    uint64_t wall = mtp_runner_now_ns() - t0;
    if (rc)
        rc = mtp_error_wrap("%s at batch size %d, sampling %d: ",
                            r->spec.decoders[b->dec].name, b->B, b->samp);
    else
        rc = write_record(b, &log, wall);
    for (int i = 0; rc == MTP_OK && i < b->n; i++)
        mtp_decode_result_free(&res[i]);
    mtp_decode_batch_log_free(&log);
    free(res);
    free(reqs);
    return rc;
}

int mtp_runner_run_batches(struct mtp_runner *r, int samp, int B)
{
    int n_dec = r->spec.n_decoders, per_run = BATCH_RUN_PER_B * B, n_runs = 0;
    struct batch_run *runs = mtp_xcalloc((size_t)n_dec, sizeof *runs);
    for (int d = 0; d < n_dec; d++) {
        runs[d] = (struct batch_run){.r = r, .dec = d, .samp = samp, .B = B};
        collect(&runs[d]);
        int k = (runs[d].total + per_run - 1) / per_run;
        n_runs = k > n_runs ? k : n_runs;
    }
    int rc = MTP_OK;
    for (int c = 0; rc == MTP_OK && c < n_runs; c++)
        for (int k = 0; rc == MTP_OK && k < n_dec; k++) {
            struct batch_run *b = &runs[(k + c) % n_dec];
            b->first = c * per_run;
            b->n = b->total - b->first < per_run ? b->total - b->first : per_run;
            if (b->n > 0 && !on_stop(b))
                rc = run_requests(b);
        }
    for (int d = 0; d < n_dec; d++) {
        free(runs[d].prompt);
        free(runs[d].repeat);
        free(runs[d].logged);
    }
    free(runs);
    return rc;
}

/*
 * log_batch.h - the "batch" record of a log (spec/log-format.md, "batch"):
 * the steps of one batch run at batch size B > 1 (engine/decode_batch.h),
 * which the request records alone cannot give: which requests shared each
 * step, the tokens its verification forward covered, the routed experts that
 * forward touched for the whole batch, and the wall time of its phases.
 *
 * The runner writes one record per (sampling setting, batch size, decoder)
 * batch run, after the run's last request record; a run interrupted and
 * resumed writes one for each part that ran. Members name requests by their
 * index into the record's own "requests" list (dataset, prompt_id, repeat),
 * so the record stands alone and a report can join it to the request
 * records by key.
 *
 * Every count and index is checked when the record is decoded (a bit flip is
 * damage named by key and step, never an out-of-range read).
 */
#ifndef MTP_LOG_BATCH_H
#define MTP_LOG_BATCH_H

#include <msgpack.h> /* defines: msgpack_object */
#include <stdint.h>

#include "log.h" /* defines: struct mtp_log_writer */

struct mtp_log_batch_request {
    char *dataset, *prompt_id;
    int repeat;
};

struct mtp_log_batch_record {
    char *decoder;
    int sampling_index;
    int batch_size;            /* B: sequences in flight at most (1..MTP_SPEC_MAX_BATCH) */
    int depth;                 /* the most drafts a sequence verifies in a step: K (a tree:
                                * its drafted nodes); 0 for the baseline */
    int n_requests;
    struct mtp_log_batch_request *requests; /* [n_requests] what members index */
    int n_steps;
    int n_moe_layers;          /* columns of experts_touched (0: none recorded) */
    int32_t *n_seqs;           /* [n_steps] sequences in the step, 1..B */
    int32_t *tokens;           /* [n_steps] tokens in the verification forward,
                                * n_seqs..n_seqs * (depth + 1) */
    int32_t *members;          /* [sum n_seqs] request indices, step by step; distinct
                                * within a step */
    int32_t *experts_touched;  /* [n_steps][n_moe_layers] distinct routed experts the
                                * step's verification read, whole batch; NULL when none */
    uint64_t *prefill_ns;      /* [n_steps] prefills of the requests admitted before it */
    uint64_t *draft_ns;        /* [n_steps] batched module forwards and draft choice */
    uint64_t *verify_ns;       /* [n_steps] the batched main forward */
    uint64_t *accept_ns;       /* [n_steps] acceptance, emission and rollback */
    uint64_t wall_ns;          /* the whole batch run, first admission to last retirement */
    int64_t time_unix_ns;      /* when it ended; 0 -> the writer's clock */
};

/* Append R to W as a "batch" record. MTP_ERR when the write fails or R's
 * arrays are inconsistent (the same checks the decoder applies). */
int mtp_log_write_batch(struct mtp_log_writer *w, const struct mtp_log_batch_record *r);

/* Decode a "batch" record into OUT (zeroed first; free with
 * mtp_log_batch_free, also after a failure): MTP_ERR naming the key, the
 * step and what was expected and found. */
int mtp_log_batch_decode(const msgpack_object *rec, struct mtp_log_batch_record *out);

/* The consistency rules alone (used by both directions). */
int mtp_log_batch_check(const struct mtp_log_batch_record *r);

void mtp_log_batch_free(struct mtp_log_batch_record *r);

#endif

/*
 * runner_internal.h - the runner's state, shared by runner.c (setup, the
 * request loop, logging) and runner_table.c (the end-of-run table).
 */
#ifndef MTP_RUNNER_INTERNAL_H
#define MTP_RUNNER_INTERNAL_H

#include <stdint.h>

#include "../engine/decode.h"
#include "../engine/tokenizer.h"
#include "chat_template.h"
#include "dataset.h"
#include "log.h"
#include "log_plan.h"
#include "progress.h"
#include "runner.h"
#include "spec.h"

/* A prompt that will be decoded: tokenized, within max_prompt_tokens. */
struct mtp_run_prompt {
    int dataset;              /* index into spec.datasets */
    const struct mtp_prompt *p;
    int index;                /* over all datasets, in spec order (not part of RNG keys) */
    int32_t *ids;             /* turn 0's ids (conversation.h) */
    int n;
    int n_turns;              /* turns that run, in order (>= 1; later ones do not fit) */
    int max_n;                /* a bound on the longest planned turn's prompt tokens */
};

struct mtp_runner {
    const struct mtp_runner_options *opt;
    struct mtp_spec spec;
    struct mtp_dataset *ds;     /* [spec.n_datasets] */
    struct mtp_run_prompt *prompts;
    int n_prompts;
    struct mtp_model *model;
    struct mtp_tokenizer *tok;
    struct mtp_chat_template *templates; /* [spec.n_datasets] (chat_template.h) */
    struct mtp_backend *be;
    struct mtp_engine *engine;
    int eos;
    char *log_path;
    struct mtp_log_writer *log;
    struct mtp_log_keyset *finished;
    struct mtp_progress *progress;
    int64_t total, done, tokens, steps;
    int logged;                 /* requests logged by this process */
    struct mtp_log_plan plan;   /* the prompts that run and those skipped, logged as "plan" */
    struct mtp_runner_shard *shard; /* sharded runs only (runner_shard.c); else NULL */
    bool log_closed;            /* this process's log already says finished: it takes no
                                 * more records (a sharded resume with --allow-partial) */
};

/* runner_prompts.c: the datasets, then the prompts that run (r->prompts) and
 * the plan with every skip (r->plan); one line per skip reason for the user. */
int mtp_runner_load_datasets(struct mtp_runner *r);
int mtp_runner_prepare_prompts(struct mtp_runner *r);
void mtp_runner_print_skips(const struct mtp_runner *r, FILE *f);
/* Whether this process prints warnings for the job (not --quiet; under MPI
 * rank 0 only). Valid from the start of setup. */
bool mtp_runner_speaks(const struct mtp_runner *r);
/* The deepest decoder's drafts per step (a tree: its nodes). */
int mtp_runner_max_depth(const struct mtp_spec *s);
/* Every dataset's chat template (r->templates), once the tokenizer is loaded. */
int mtp_runner_load_templates(struct mtp_runner *r);

/* runner.c: a request's decoding parameters (its random stream keyed by the
 * request, turn 0 of a conversation), and whether SIGINT/SIGTERM arrived. */
struct mtp_decode_params mtp_runner_decode_params(const struct mtp_runner *r, int dec, int samp,
                                                  const struct mtp_run_prompt *p, int repeat);
bool mtp_runner_interrupted(void);
/* Whether the request loop takes no more work: SIGINT/SIGTERM arrived, or
 * max_requests requests are logged by this process. */
bool mtp_runner_should_stop(const struct mtp_runner *r);
/* CLOCK_MONOTONIC in nanoseconds (wall times of runs and batch runs). */
uint64_t mtp_runner_now_ns(void);

/* One decoded turn, as the request record gives it. */
struct mtp_runner_turn {
    int index;            /* 0-based */
    const int32_t *ids;   /* the prompt as the model saw it [n] */
    int n;
    int cached;           /* leading positions kept from the previous turn (0: prefill) */
    int batch_size;       /* B of the batch run that decoded it (0 means 1) */
};

/* Log RES as the request (DEC, SAMP, P, REPEAT, TURN) and count it in the
 * progress display. */
int mtp_runner_log_request(struct mtp_runner *r, int dec, int samp,
                           const struct mtp_run_prompt *p, int repeat,
                           const struct mtp_runner_turn *turn,
                           const struct mtp_decode_result *res);

/* runner_turns.c: one conversation, every planned turn in order on one
 * decoding session, each turn logged as a request (those already in the log
 * are decoded again, not logged: later turns need their answers). */
int mtp_runner_run_conversation(struct mtp_runner *r, int dec, int samp,
                                const struct mtp_run_prompt *p, int repeat);
/* runner_batch.c: every decoder under sampling setting SAMP at batch size
 * B > 1 over every planned prompt and repeat this process owns and the log
 * lacks (multi-turn prompts run at batch size 1 only), in batch runs that
 * alternate between the decoders; each request logged as it retires, each
 * batch run followed by its "batch" record. */
int mtp_runner_run_batches(struct mtp_runner *r, int samp, int B);

/* Whether every planned turn of the conversation is in the log already. */
bool mtp_runner_conversation_done(const struct mtp_runner *r, int dec, int samp,
                                  const struct mtp_run_prompt *p, int repeat);

#endif

/*
 * runner_internal.h - the runner's state, shared by runner.c (setup, the
 * request loop, logging) and runner_table.c (the end-of-run table).
 */
#ifndef MTP_RUNNER_INTERNAL_H
#define MTP_RUNNER_INTERNAL_H

#include <stdint.h>

#include "../engine/decode.h"
#include "../engine/tokenizer.h"
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
    int32_t *ids;
    int n;
};

struct mtp_runner {
    const struct mtp_runner_options *opt;
    struct mtp_spec spec;
    struct mtp_dataset *ds;     /* [spec.n_datasets] */
    struct mtp_run_prompt *prompts;
    int n_prompts;
    struct mtp_model *model;
    struct mtp_tokenizer *tok;
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

#endif

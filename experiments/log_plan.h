/*
 * log_plan.h - the "plan" record of a log (spec/log-format.md, "plan"): what
 * the runner set out to do, so that a report can say what is missing.
 *
 * Written once, right after the "run" record of a new log (every rank log of
 * a sharded run carries the plan of the whole job). It lists the decoders,
 * the sampling settings, the repeats, every prompt that was selected to run,
 * and every prompt the runner skipped with the reason. The planned requests
 * are decoders x sampling settings x batch sizes x planned turns x repeats.
 *
 * Logs written before the record existed have none: readers then report the
 * plan as unknown rather than guessing it from the requests present.
 */
#ifndef MTP_LOG_PLAN_H
#define MTP_LOG_PLAN_H

#include <msgpack.h> /* defines: msgpack_object, msgpack_packer */
#include <stdint.h>

#include "log.h" /* defines: struct mtp_log_writer */

/* Why a prompt did not run (log key "reason"). */
enum mtp_plan_skip {
    MTP_PLAN_RUN = -1,              /* not skipped: the prompt is planned */
    MTP_PLAN_SKIP_POSITIONS = 0,    /* "position_limit": prompt + max_new_tokens + depth exceed
                                     * the model's positions */
    MTP_PLAN_SKIP_PROMPT_TOKENS,    /* "max_prompt_tokens": longer than the spec's limit */
    MTP_PLAN_SKIP_COUNT,
};

const char *mtp_plan_skip_name(enum mtp_plan_skip reason);

struct mtp_plan_prompt {
    char *dataset, *prompt_id, *category; /* owned */
    int prompt_tokens;                    /* of the first turn */
    enum mtp_plan_skip skip;              /* MTP_PLAN_RUN for a planned prompt */
    int turns;                            /* planned prompts: turns that run (>= 1); later
                                           * turns whose bound on positions (conversation.h)
                                           * exceeds the model's are not run */
    int turns_total;                      /* the prompt's turns in the dataset (>= turns) */
};

struct mtp_plan_sampling {
    double temperature, top_p;
    int top_k;
};

struct mtp_log_plan {
    int64_t requests;                  /* planned requests of the whole job */
    int repeats;
    int n_decoders;
    char **decoders;                   /* [n_decoders] names, spec order (owned) */
    int n_sampling;
    struct mtp_plan_sampling *sampling; /* [n_sampling], spec order */
    int n_prompts;
    struct mtp_plan_prompt *prompts;   /* planned prompts, then skipped ones (owned) */
    int n_batch_sizes;
    int *batch_sizes;                  /* [n_batch_sizes] the spec's batch_size axis (owned);
                                        * the key is omitted when it is [1], and plans
                                        * without it read as [1] */
    int max_prompts, max_prompts_per_category; /* the selection that chose the prompts */
    uint64_t seed;                     /* the spec's seed (per-category sampling uses it) */
};

/* Append PLAN to W as a "plan" record. MTP_ERR when the write fails. */
int mtp_log_write_plan(struct mtp_log_writer *w, const struct mtp_log_plan *plan);

/* Decode a "plan" record into OUT (zeroed first; free with mtp_log_plan_free,
 * also after a failure). Fails naming the key that is missing or of the
 * wrong type, or a count that disagrees with the lists. */
int mtp_log_plan_decode(const msgpack_object *rec, struct mtp_log_plan *out);

/* Add a prompt to PLAN (strings copied). */
void mtp_log_plan_add_prompt(struct mtp_log_plan *plan, const char *dataset,
                             const char *prompt_id, const char *category, int prompt_tokens,
                             enum mtp_plan_skip skip);

/* Prompts with SKIP (MTP_PLAN_RUN: the planned ones). */
int mtp_log_plan_count(const struct mtp_log_plan *plan, enum mtp_plan_skip skip);

/* The turns that run over all planned prompts (each planned prompt >= 1):
 * requests = decoders x sampling x batch sizes x repeats x this. */
int64_t mtp_log_plan_turns(const struct mtp_log_plan *plan);

/* PLAN's batch sizes: N copied from SIZES (the default [1] when N = 0). */
void mtp_log_plan_set_batch_sizes(struct mtp_log_plan *plan, const int *sizes, int n);

void mtp_log_plan_free(struct mtp_log_plan *plan);

#endif

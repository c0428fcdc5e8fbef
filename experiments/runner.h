/*
 * runner.h - `mtpbench run`: an experiment spec from start to log
 * (docs/design.md §2, §7, §8).
 *
 * Order of work: load and validate the spec, every dataset, the model's
 * config (depth check), the tokenizer and every prompt's tokens before any
 * decoding, so a typo fails in a second rather than an hour in. Then warm-up
 * requests (not logged), then the Cartesian product
 *     decoder x sampling x dataset x prompt x repeat
 * (outermost first), one "request" record each, flushed as it is written;
 * a prompt of several turns is a conversation: its turns run in order on one
 * decoding session, one record per turn (runner_turns.c, conversation.h).
 * With resume, requests whose key is already in the log are skipped.
 * At the end: a "summary" record and a table per (sampling, decoder) on OUT:
 * tau, alpha_1..alpha_K, accept_rate, tokens/s and speedup over the baseline
 * decoder of the same sampling setting in the same log (spec/metrics.md).
 *
 * Each request's random stream is PCG32 seeded from (spec seed, dataset name,
 * question_id, repeat, decoder name, sampling values) (mtp_rng_seed_request),
 * so a request's tokens do not depend on which other requests ran before it
 * or exist at all (resume gives the same log; adding a decoder or a prompt
 * leaves the others unchanged). Warm-up runs every decoder under every
 * sampling setting; the decoder order is rotated per (prompt, repeat).
 * The log is <output_dir>/<spec name>.msgpack; a sharded run (MPI ranks or
 * --shard R/N: opt->shard) writes <spec name>.rank-R-of-N.msgpack per process
 * and runs only its share (experiments/runner_shard.h).
 */
#ifndef MTP_RUNNER_H
#define MTP_RUNNER_H

#include <stdbool.h>
#include <stdio.h> /* defines: FILE */

#include "shard.h" /* defines: struct mtp_shard */

struct mtp_runner_options {
    bool resume;          /* continue an existing log (else an existing log is an error) */
    bool quiet;           /* no progress display */
    bool verbose;         /* a warning line for every skipped prompt (else the first few) */
    bool allow_partial;   /* --resume: go on when a rank log of the run is missing */
    const char *out_dir;  /* overrides the spec's output_dir (NULL: the spec's) */
    int max_requests;     /* stop cleanly after logging this many requests in this process
                           * (summary finished = false); 0 = no limit */
    FILE *out;            /* the end-of-run table (NULL = stdout) */
    struct mtp_shard shard; /* this process's share (size 0: all of it, one log
                           * <name>.msgpack); else the log <name>.rank-R-of-N.msgpack
                           * (experiments/runner_shard.h) */
    bool mpi;             /* the shard is this MPI rank of the world (else --shard R/N) */
    int device;           /* CUDA device index (backend "cuda"; MPI: from the local rank) */
};

/* Run the experiment SPEC_PATH. Returns MTP_OK or MTP_ERR (message set). An
 * interruption (SIGINT/SIGTERM, or max_requests) finishes the current
 * request, writes a summary with finished = false and returns MTP_OK. */
int mtp_runner_run(const char *spec_path, const struct mtp_runner_options *opt);

/* The log path for SPEC_NAME in OUT_DIR, newly allocated. */
char *mtp_runner_log_path(const char *out_dir, const char *spec_name);

/* Print the per-(sampling, decoder) table of the log at PATH to OUT. */
int mtp_runner_print_table(const char *path, FILE *out);

/* The same table over the requests of N_PATHS logs (the rank logs of one
 * run); with ORDER (decoder names, may be NULL) rows are sorted by sampling
 * index, then by position in ORDER, as one log of the whole run shows them. */
int mtp_runner_print_table_files(const char *const *paths, int n_paths, const char *const *order,
                                 int n_order, FILE *out);

#endif

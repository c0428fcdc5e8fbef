/*
 * shard.h - splitting an experiment's work over N processes (MPI ranks or
 * `--shard R/N` job-array tasks), deterministically and balanced by expected
 * cost (spec/experiment-spec.md, "Ranks and shards").
 *
 * The unit of work is a (sampling, prompt, repeat) with every decoder of the
 * spec: one process runs all decoders of a prompt back to back, as a
 * single-process run does, so the speedup pairs of the report compare
 * requests timed on one machine under the same load.
 *
 * The split is longest-processing-time-first: units by expected cost,
 * largest first (ties: lower unit index first), each to the rank with the
 * least cost so far (ties: lower rank). It depends only on the costs and N,
 * never on timing, so every process computes the same split by itself. Its
 * most loaded rank exceeds the mean by at most the largest unit's cost.
 */
#ifndef MTP_SHARD_H
#define MTP_SHARD_H

#include <stdbool.h>

/* Which share of the work a process does: RANK of SIZE; SIZE 0 = not sharded. */
struct mtp_shard {
    int rank;
    int size;
};

/* Parse "R/N" (0 <= R < N <= 65536) from the option NAME into OUT.
 * MTP_ERR with a message naming NAME, the expected form and what was found. */
int mtp_shard_parse(const char *name, const char *text, struct mtp_shard *out);

/* The expected cost of decoding one request: MAX_NEW forwards of the main
 * model (weights dominate on every backend) over an average context of
 * PROMPT + MAX_NEW/2 positions (attention grows with it), plus the prefill of
 * PROMPT tokens. In arbitrary units; only ratios matter. */
double mtp_shard_request_cost(int prompt_tokens, int max_new_tokens);

/* The owner rank of each of N_UNITS units with costs COST (>= 0; a unit of
 * cost 0 has nothing left to do and gets owner -1) over N_RANKS >= 1, newly
 * allocated. Never fails (aborts on OOM). */
int *mtp_shard_split(const double *cost, int n_units, int n_ranks);

/* The log file of RANK of SIZE for the spec NAME in DIR, newly allocated:
 * DIR/NAME.rank-R-of-N.msgpack. */
char *mtp_shard_log_path(const char *dir, const char *name, int rank, int size);

/* True when FILE (a base name) is a rank log of spec NAME; *RANK and *SIZE get
 * its numbers (either may be NULL). */
bool mtp_shard_is_log_name(const char *file, const char *name, int *rank, int *size);

#endif

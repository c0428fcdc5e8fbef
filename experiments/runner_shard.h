/*
 * runner_shard.h - the runner's hooks for sharded runs: MPI ranks
 * (`mpirun -n N mtpbench run SPEC`) and job-array tasks (`--shard R/N`).
 * runner.c calls these only when opt->shard.size > 0 (spec/experiment-spec.md,
 * "Ranks and shards"; spec/log-format.md, "Rank logs").
 *
 * - Each process writes <output_dir>/<name>.rank-R-of-N.msgpack through the
 *   ordinary log API (same records, same crash safety, one file per process).
 * - The work units (sampling x prompt x repeat, every decoder) are split by
 *   shard.h. A fresh run, MPI or --shard, splits the whole spec, so both give
 *   the same split.
 * - --resume reads every rank log of the run in output_dir, whatever N wrote
 *   it; their requests count as finished. Under MPI, rank 0 reads them before
 *   any rank opens its log for writing and broadcasts what is done; the
 *   missing requests are then split over the new N. A --shard task cannot
 *   know what other tasks do meanwhile, so it keeps the split of the whole
 *   spec and skips what any log already has.
 * - A summary says finished = true only when the whole job is done (MPI: the
 *   ranks add up what they logged; --shard: what this task saw plus logged).
 * - Progress: under MPI rank 0 alone shows the whole job, from count messages
 *   (requests, tokens, steps) the other ranks send at most twice a second.
 */
#ifndef MTP_RUNNER_SHARD_H
#define MTP_RUNNER_SHARD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h> /* defines: FILE */

struct mtp_runner;

/* Before the runner opens its log: choose the log path (r->log_path), check
 * for a conflicting earlier run (without --resume), read what every rank log
 * holds (with --resume) and compute the split. MTP_ERR with a message. */
int mtp_runner_shard_prepare(struct mtp_runner *r, const char *dir);

/* After the log is open: r->finished becomes every request found in the rank
 * logs; *COMPLETE says whether the whole job is done. OWN_COMPLETE: this
 * process's log already had a finished summary. */
int mtp_runner_shard_adopt(struct mtp_runner *r, bool own_complete, bool *complete);

/* True when the unit (SAMP, PROMPT, REP) is this process's work. */
bool mtp_runner_shard_owns(const struct mtp_runner *r, int samp, int prompt, int rep);

/* The progress display's total and already-done counts, and whether this
 * process shows one at all. */
void mtp_runner_shard_progress_setup(struct mtp_runner *r, int64_t *total, int64_t *done,
                                     bool *quiet);

/* After each request: update the display (rank 0 / --shard) or send counts. */
void mtp_runner_shard_progress(struct mtp_runner *r, const char *label);

/* After the request loop (also when interrupted): MPI ranks send their final
 * counts and rank 0 collects all of them. Returns the requests of the whole
 * job now in the logs (the summary's finished flag compares it with the total). */
int64_t mtp_runner_shard_end(struct mtp_runner *r);

/* The end-of-run table over every rank log of the run (MPI: after all ranks
 * closed their logs; rank 0 prints). */
int mtp_runner_shard_print_table(struct mtp_runner *r, FILE *out);

/* True when this process owns a request that no log has yet (else it skips
 * the warm-up). */
bool mtp_runner_shard_has_work(const struct mtp_runner *r);

/* True for the process that prints for the job (MPI rank 0; every --shard task). */
bool mtp_runner_shard_leader(const struct mtp_runner *r);

void mtp_runner_shard_free(struct mtp_runner *r);

#endif

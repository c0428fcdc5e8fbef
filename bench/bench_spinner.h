/*
 * bench_spinner.h - the competing process of `mtpbench bench --contended`:
 * a child that burns one CPU, so that decode can be timed the way it runs on
 * a shared machine (another job holding a core).
 *
 * The child is pinned (sched_setaffinity) to one CPU of the set this process
 * may use, the last one, and starts stopped; the bench resumes it around each
 * contended sample and stops it again, so quiet and contended cases can be
 * interleaved in one loop. It dies with its parent in every case: stopped
 * explicitly at the end, and PR_SET_PDEATHSIG kills it if the bench exits by
 * an error, a signal or abort. Linux only (elsewhere start fails with a message).
 */
#ifndef MTP_BENCH_SPINNER_H
#define MTP_BENCH_SPINNER_H

#include <sys/types.h> /* defines: pid_t */

struct mtp_bench_spinner {
    pid_t pid; /* 0 when not running */
    int cpu;   /* the CPU it is pinned to */
};

/* Fork the child, pinned and stopped. Returns MTP_OK or MTP_ERR (message set). */
int mtp_bench_spinner_start(struct mtp_bench_spinner *s);

/* Let it run (and give the scheduler a millisecond to put it on its CPU), or
 * stop it. Both do nothing when it is not running. */
void mtp_bench_spinner_resume(struct mtp_bench_spinner *s);
void mtp_bench_spinner_pause(struct mtp_bench_spinner *s);

/* Kill and reap it. Safe to call twice. */
void mtp_bench_spinner_stop(struct mtp_bench_spinner *s);

#endif

/*
 * bench_timer.h - the timing loop of `mtpbench bench`: interleaved repeats.
 *
 * Every figure bench reports is a "case": a function that runs one operation
 * (a decode, a verification of n tokens, a draft, an acceptance pass) and
 * returns its nanoseconds. Cases are not timed one after another, R times
 * each; instead round r runs every case once, in a fresh seeded random order
 * (so no case always follows the same neighbour and inherits its cache state). Slow drift of the machine (frequency, a background job, thermal)
 * then hits every case of a round alike, and each case's ratio to the
 * reference case *of the same round* cancels it. Summaries are median, mean
 * and spread (standard deviation, p10, p90, min, max) over rounds, of the
 * nanoseconds and of the per-round ratios.
 *
 * Within a round a case runs INNER times back to back and its sample is the
 * fastest of them: contention from other processes only ever adds time and
 * comes in bursts shorter than a round, so the minimum of a few runs is the
 * least disturbed figure, while the interleaving cancels the slow drift.
 *
 * Issue 16 extends the same design with contended, multi-threaded and
 * truncated-model cases (bench_threads.h): more case lists for the same loop
 * (their names say the condition), so the loop and the summaries stay as
 * they are.
 */
#ifndef MTP_BENCH_TIMER_H
#define MTP_BENCH_TIMER_H

enum { MTP_BENCH_NAME_CAP = 64 };

/* One timed operation. RUN writes the nanoseconds of one sample of the
 * operation to *NS and returns MTP_OK or MTP_ERR (message set). */
struct mtp_bench_case {
    char name[MTP_BENCH_NAME_CAP]; /* unique: "decode", "verify/n=3", "draft/module=1/n=2" */
    const char *kind;              /* "verify", "draft", ... (static string; JSON "kind") */
    int module, n;                 /* parameters (0 when not used) */
    int threads, contended, layers; /* bench_threads.c's cases: CPU threads, competing
                                     * process running (1) or not, main layers run (0 = all) */
    int (*run)(void *ctx, const struct mtp_bench_case *c, double *ns);
};

/* Summary of R values. */
struct mtp_bench_stats {
    double median, mean, sd, p10, p90, min, max;
};

/* The samples of one loop. */
struct mtp_bench_result {
    int n_cases, rounds, ref; /* ref: the case every ratio divides by */
    double *ns;               /* [rounds][n_cases] */
    double *ratio;            /* [rounds][n_cases] ns / ns of ref in the same round */
};

/* Run WARMUP discarded rounds, then ROUNDS measured rounds of the N cases of
 * CASES (a random order per round, see above; INNER >= 1 runs per case and round, the
 * fastest kept) with context CTX. Fills OUT (free with
 * mtp_bench_result_free). Returns MTP_OK or the first case's failure. */
int mtp_bench_interleave(const struct mtp_bench_case *cases, int n, int ref, int warmup,
                         int rounds, int inner, void *ctx, struct mtp_bench_result *out);
void mtp_bench_result_free(struct mtp_bench_result *r);

/* Summary of V[0], V[STRIDE], ... (N values); nearest-rank p10/p90, the
 * median averages the two middle values when N is even. */
struct mtp_bench_stats mtp_bench_stats_of(const double *v, int n, int stride);

/* The index of case NAME, or -1. */
int mtp_bench_find(const struct mtp_bench_case *cases, int n, const char *name);

#endif

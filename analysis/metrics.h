/*
 * metrics.h - the acceptance and speed metrics of spec/metrics.md (docs/design.md
 * §6), accumulated from per-step accepted counts: tau, alpha_j, beta_j,
 * accept_rate, tokens/s. Small and dependency-free, so the runner's end-of-run
 * table and the report compute the same numbers.
 *
 * Everything is a ratio of sums over the steps added, so accumulators of
 * several requests (or prompts) merge by adding.
 *
 * Censoring: acceptance uses the verifier's outcome per draft position. With
 * the log's accepted_uncut every position 1..K of every step is observed.
 * Older logs only have the emitted count, capped when EOS or max_new_tokens
 * cut the request's last step after its a-th draft; positions after a are
 * then unobserved (censored) and left out, never counted as rejections.
 */
#ifndef MTP_METRICS_H
#define MTP_METRICS_H

#include <stdint.h>

enum { MTP_METRICS_MAX_DEPTH = 64 };

struct mtp_metrics {
    int K;                 /* draft depth (0 = baseline) */
    int64_t steps;         /* N */
    int64_t emitted;       /* sum e_s = sum over requests of (n_output - 1) */
    int64_t accepted;      /* sum a_s over observed positions */
    int64_t reach[MTP_METRICS_MAX_DEPTH + 1]; /* reach[j] = #{s : a_s >= j}; reach[0] = N */
    int64_t tried[MTP_METRICS_MAX_DEPTH + 1]; /* tried[j] = #{s : a_s >= j-1, position j
                                               * observed} (alpha_j's denominator) */
    int64_t observed[MTP_METRICS_MAX_DEPTH + 1]; /* observed[j] = #{s : position j observed} */
    uint64_t decode_ns;    /* sum of (total_ns - ttft_ns) */
    int64_t requests;
};

/* Zero M for depth K (0..MTP_METRICS_MAX_DEPTH). */
void mtp_metrics_init(struct mtp_metrics *m, int K);

/* Add one request: its per-step ACCEPTED [n_steps] (emitted drafts), the
 * verifier's UNCUT counts [n_steps] or NULL (older logs: the last step is
 * treated as censored when the request was cut), N_OUTPUT tokens (the first
 * comes from the prefill, so the steps emitted n_output - 1) and its decode
 * time (total_ns - ttft_ns). */
void mtp_metrics_add_request(struct mtp_metrics *m, const int32_t *accepted,
                             const int32_t *uncut, int n_steps, int n_output,
                             uint64_t decode_ns);

/* The same for a decoder whose steps draft DRAFTED[s] <= K positions (adaptive
 * depth; NULL = every step drafts K): position j of step s is observed only
 * when j <= DRAFTED[s]. */
void mtp_metrics_add_request_drafted(struct mtp_metrics *m, const int32_t *accepted,
                                     const int32_t *uncut, const int32_t *drafted, int n_steps,
                                     int n_output, uint64_t decode_ns);

/* M += O (same K). */
void mtp_metrics_merge(struct mtp_metrics *m, const struct mtp_metrics *o);

/* Metrics; NaN when undefined (no steps, alpha_j with no step reaching j-1).
 * tau counts emitted tokens; alpha_j, beta_j and accept_rate count observed
 * positions only (spec/metrics.md). */
double mtp_metrics_tau(const struct mtp_metrics *m);
double mtp_metrics_alpha(const struct mtp_metrics *m, int j); /* j = 1..K */
double mtp_metrics_beta(const struct mtp_metrics *m, int j);  /* j = 1..K */
double mtp_metrics_accept_rate(const struct mtp_metrics *m);
double mtp_metrics_tokens_per_s(const struct mtp_metrics *m);

#endif

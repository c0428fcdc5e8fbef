/*
 * bench_ops.h - `mtpbench bench --ops`: where a forward's time goes, per op
 * kind (backend_profile.h), for the main model's forward of n = 1, 2, 4, 8
 * tokens at the bench context and for one draft of MTP module 1.
 *
 * Why: the cost curve says verify(n) costs x decodes; this section says which
 * term grows with n (the routed experts, which n tokens touch more of) and
 * which does not (attention projections, lm_head: one weight read per forward).
 *
 * The cases are ordinary bench cases in the interleaved loop (bench_timer.h),
 * run on an engine of their own whose backend is wrapped by the profiler; each
 * run records its per-op times, and for every round the run the loop kept
 * (the fastest of INNER) gives that round's per-op sample. Per kind:
 * median ns over rounds, median share of the forward, median per-round ratio
 * to the same kind at n = 1, and the "untimed" remainder (forward wall minus
 * the ops: engine host work, dispatch, the profiler's own clock reads).
 */
#ifndef MTP_BENCH_OPS_H
#define MTP_BENCH_OPS_H

#include "bench_threads.h"

/* Run and print the ops section into OUT (free with mtp_bench_section_free;
 * the per-op table is OUT->extra, written by OUT->extra_json). */
int mtp_bench_ops(const struct mtp_bench_setup *su, struct mtp_bench_section *out);

#endif

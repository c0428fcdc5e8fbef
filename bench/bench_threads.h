/*
 * bench_threads.h - the two extra sections of `mtpbench bench` (issue 16):
 *   - "overheads" (always): decode of the main model truncated to its first
 *     layer against the full model (engine option main_layers), giving the
 *     fixed cost of a forward (intercept: embedding, final norm, head, the
 *     engine's own work) and the cost per layer (slope); and the CPU pool's
 *     cost per parallel_for, with the workers awake and asleep;
 *   - "threads" (--contended): decode at 1 thread and at the bench's thread
 *     count, each quiet and with a CPU-bound competitor pinned to one CPU
 *     (bench_spinner.h), and their ratios; contended N threads over contended
 *     1 thread is the figure that says whether threads pay on a shared machine.
 * Both are case lists run by the same interleaved loop as the cost curve
 * (bench_timer.h); the derived figures (ratios, intercept, slope) are
 * computed per round, then summarised like every other figure.
 */
#ifndef MTP_BENCH_THREADS_H
#define MTP_BENCH_THREADS_H

#include "bench_costs.h"
#include "bench_timer.h"
#include "engine/model.h"

struct json_t; /* jansson's, for mtp_bench_section.extra_json */

enum { MTP_BENCH_MAX_FIGURES = 8 };

/* A figure derived per round from a section's samples. */
struct mtp_bench_figure {
    char name[MTP_BENCH_NAME_CAP]; /* "fixed_ns", "contended_ratio", ... (JSON key) */
    const char *unit;              /* "ns" or "ratio" */
    struct mtp_bench_stats s;
};

struct mtp_bench_section {
    const char *name;              /* "overheads", "threads" */
    struct mtp_bench_case *cases;  /* [n_cases], owned */
    int n_cases;
    struct mtp_bench_result res;
    struct mtp_bench_figure fig[MTP_BENCH_MAX_FIGURES];
    int n_fig;
    /* Optional results that are not cases or figures (the ops section's
     * per-op table, bench_ops.h): freed by extra_free, written under the
     * section's "per_op" key by extra_json (a jansson json_t). */
    void *extra;
    void (*extra_free)(void *extra);
    struct json_t *(*extra_json)(const void *extra);
};

/* What the sections need from the bench command. */
struct mtp_bench_setup {
    struct mtp_model *model;
    const char *backend;
    int threads;           /* resolved (>= 1): the bench engine's thread count */
    int context, repeats, warmup, inner;
    struct mtp_bench_ctx *main; /* the bench engine's context, primed */
};

/* Run and print the overheads section into OUT (free with
 * mtp_bench_section_free). Returns MTP_OK or MTP_ERR. */
int mtp_bench_overheads(const struct mtp_bench_setup *su, struct mtp_bench_section *out);

/* Run and print the threads section (starts and always stops the competitor). */
int mtp_bench_threads(const struct mtp_bench_setup *su, struct mtp_bench_section *out);

void mtp_bench_section_free(struct mtp_bench_section *s);

#endif

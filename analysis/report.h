/*
 * report.h - tables from experiment logs: every metric of spec/metrics.md
 * (docs/design.md §6) per group of requests, each with a 95% bootstrap confidence
 * interval over prompts, rendered as Markdown, CSV, LaTeX or JSON.
 *
 * Pipeline (one concern per file):
 *   report_load.c      logs -> struct mtp_report_data (merged; cut-off logs
 *                      read to their last whole record with a warning; each
 *                      run's plan record; rank logs of two specs refused)
 *   report_complete.c  what the logs leave out, per run and per group:
 *                      requests of those planned, skipped prompts by reason,
 *                      requests never decoded, missing rank logs
 *   report_group.c     requests -> groups by the --by keys, prompts
 *                      ("units") inside each group, the baseline request
 *                      each request is paired with (same run, sampling,
 *                      dataset, prompt, repeat, turn, batch size)
 *   report_stats.c     one group + prompt weights -> its metric vector
 *   report_bootstrap.c point estimates and percentile intervals
 *   report_table.c     groups -> tables (full report, acceptance view,
 *                      exact-vs-chain ablation)
 *   report_batch.c     groups by batch size + the "batch" records -> the
 *                      batch view (throughput, experts per verification)
 *   report_format.c    tables -> md / csv / tex;  report_json.c -> json
 *
 * Bootstrap procedure (tests/test_report.c reimplements it): a group's units
 * (prompts) are ordered by (run index, dataset, prompt_id) with strcmp. For
 * each group, a PCG32 generator is seeded with mtp_rng_seed(&rng, seed,
 * MTP_REPORT_BOOT_STREAM); each of the B resamples draws n_units indices with
 * mtp_report_draw_index (unbiased rejection sampling, see below), turns them
 * into per-unit multiplicities, and recomputes every metric as a ratio of
 * sums over the weighted units (percentiles over the weighted steps). The
 * interval is the nearest-rank 2.5% and 97.5% percentiles of the resampled
 * values that are defined. Every group restarts the same generator, so two
 * groups over the same prompts see the same resamples (a paired bootstrap:
 * differences between decoders get their own intervals).
 *
 * Percentiles (latency p50/p90/p99, the per-prompt median speedup) use the
 * nearest-rank definition: the smallest value whose cumulative count reaches
 * ceil(p * n), which is exact under integer resampling weights.
 */
#ifndef MTP_REPORT_H
#define MTP_REPORT_H

#include <stdbool.h>
#include <stdint.h> /* defines: int64_t, uint64_t */
#include <stdio.h>  /* defines: FILE */

#include "engine/rng.h"      /* defines: struct mtp_rng */
#include "experiments/log.h" /* defines: struct mtp_request_record */
#include "experiments/log_batch.h" /* defines: struct mtp_log_batch_record */
#include "experiments/log_plan.h" /* defines: struct mtp_log_plan */

#define MTP_REPORT_SCHEMA "mtpbench-report/1"

/* PCG32 stream selector of the bootstrap ("boot" in ASCII). */
#define MTP_REPORT_BOOT_STREAM 0x626f6f74u

enum { MTP_REPORT_DEFAULT_BOOTSTRAP = 1000 };

/* ---- loading logs ------------------------------------------------------- */

/* One "run" record. Two files holding the same run record (same host and
 * start time, e.g. shards of one run) share one run. */
struct mtp_report_run {
    char *file;           /* first log it came from */
    char *name;           /* spec "name" ("" when absent) */
    char *host;
    int64_t start_unix_ns;
    char *label;          /* "<name>@<UTC start>" for tables */
    char *model_dir, *backend, *cpu, *git_commit; /* provenance ("" when absent) */
    int threads;
    char *shard_group;    /* rank logs DIR/NAME.rank-R-of-N.msgpack: "DIR/NAME" (every rank
                           * and every N of one run share it), else NULL */
    char *spec_json;      /* the run record's spec, sorted compact JSON (NULL: none) */
    bool has_plan;        /* a "plan" record was read (logs before it have none: unknown) */
    struct mtp_log_plan plan; /* the first plan of the run (every rank log holds the job's) */
    bool finished;        /* some log of the run has a summary with finished = true */
    int n_ranks;          /* rank logs of the run read (shard_group runs only) */
    struct mtp_shard_id { int rank, size; } *ranks; /* [n_ranks] */
};

struct mtp_report_request {
    int run;                       /* index into mtp_report_data.runs */
    struct mtp_request_record rec; /* decoded and owned */
};

/* One "batch" record (experiments/log_batch.h) of run RUN. */
struct mtp_report_batch {
    int run;                         /* index into mtp_report_data.runs */
    struct mtp_log_batch_record rec; /* decoded and owned */
};

struct mtp_report_data {
    int n_files;
    char **files;
    int n_runs;
    struct mtp_report_run *runs;
    int n_requests, cap_requests;
    struct mtp_report_request *requests;
    int n_batches;
    struct mtp_report_batch *batches; /* every "batch" record, in file order */
    int n_duplicates;          /* request records skipped: same run and request key seen before */
    bool skip_damaged;         /* set before loading: skip damaged records (report --skip-damaged) */
    int n_damaged;             /* records skipped as damaged, all files */
    struct mtp_log_keyset *seen; /* (run:decoder, sampling, dataset, prompt, repeat) */
};

/* Append the requests of log PATH to D (zeroed before the first call). A log
 * whose last record is cut off is read to its last whole record, and a
 * warning naming PATH and the byte offset goes to WARN (may be NULL), as do
 * a missing summary and duplicate requests. Damage that is not a cut-off
 * tail (unless D->skip_damaged: then it is skipped, counted in D->n_damaged
 * and warned about with the count and offset), a first record that is not
 * "run", or a request that does not decode fail with MTP_ERR (message names
 * the file and offset); D then keeps what was read from earlier files. */
int mtp_report_data_load(struct mtp_report_data *d, const char *path, FILE *warn);
void mtp_report_data_free(struct mtp_report_data *d);

/* ---- completeness (report_complete.c) ------------------------------------ */

/* What the logs of one run hold against what it set out to do. */
struct mtp_report_gaps {
    int64_t present;   /* request records read */
    int64_t planned;   /* from the plan record; -1 unknown (no plan: a log older than the
                        * record, unless a summary says finished: then = present) */
    int not_decoded;   /* requests that ended at EOS before any decode step */
    int skipped[MTP_PLAN_SKIP_COUNT]; /* prompts skipped by the runner; -1 unknown */
    int n_missing;     /* rank logs of the run that were not read */
    char **missing;    /* [n_missing] their paths, DIR/NAME.rank-R-of-N.msgpack */
};

/* The gaps of run RUN of D (free with mtp_report_gaps_free). */
void mtp_report_gaps(const struct mtp_report_data *d, int run, struct mtp_report_gaps *out);
void mtp_report_gaps_free(struct mtp_report_gaps *g);

/* True when every planned request of the gaps is present and no rank log is
 * missing (unknown plans are not complete). */
bool mtp_report_gaps_complete(const struct mtp_report_gaps *g);

/* One line per run of D that misses something (skips, requests never
 * decoded, unfinished, missing rank logs), each starting with PREFIX, to F. */
void mtp_report_gaps_print(FILE *f, const struct mtp_report_data *d, const char *prefix);

/* For each run whose plan has a prompt of more than one turn, one line to F
 * starting with PREFIX: how many prompts ran how many turns, and the later
 * turns not run ("run a: 67 prompts x 2 turns, 10 x 1 turn; 10 later turns
 * not run (position_limit)"). Nothing for single-turn runs. */
void mtp_report_turns_print(FILE *f, const struct mtp_report_data *d, const char *prefix);

/* The rule for a report: a missing rank log fails unless ALLOW_PARTIAL;
 * with STRICT, every gap (skips, requests never decoded, an unfinished or
 * unknown run, a missing rank log) fails. MTP_ERR with a message naming the
 * run and what is missing. */
int mtp_report_check_complete(const struct mtp_report_data *d, bool strict, bool allow_partial);

/* ---- grouping and metrics ----------------------------------------------- */

enum mtp_report_key {
    MTP_REPORT_KEY_DECODER,     /* decoder name, mode, depth K and drafting */
    MTP_REPORT_KEY_TEMPERATURE, /* the sampling setting: temperature, top_p, top_k */
    MTP_REPORT_KEY_CATEGORY,
    MTP_REPORT_KEY_DATASET,
    MTP_REPORT_KEY_RUN,
    MTP_REPORT_KEY_WIRING,      /* the MTP conventions (log key "wiring"; "-" for baseline) */
    MTP_REPORT_KEY_TURN,        /* the turn of a multi-turn prompt (shown 1-based) */
    MTP_REPORT_KEY_BATCH,       /* the batch size B the request was decoded at (column "B") */
    MTP_REPORT_KEY_COUNT,
};

struct mtp_report_options {
    int n_by;
    enum mtp_report_key by[MTP_REPORT_KEY_COUNT]; /* in column order */
    int bootstrap;     /* B resamples; 0 = point estimates only */
    uint64_t seed;     /* bootstrap seed */
    bool latency;      /* compute latency percentiles (off: faster, acceptance views only) */
};

/* Defaults: by decoder,temperature; B = 1000; seed 0; latency on. */
void mtp_report_options_default(struct mtp_report_options *opt);

/* Parse "decoder,category,temperature" into OPT->by (names: decoder,
 * temperature, category, dataset, run, wiring, turn, batch; no repeats).
 * MTP_ERR with a message. */
int mtp_report_parse_by(const char *list, struct mtp_report_options *opt);

/* The distinct batch sizes of D's requests and of its runs' plans, ascending,
 * into OUT (at most CAP); returns how many there are (may exceed CAP). */
int mtp_report_batch_sizes(const struct mtp_report_data *d, int *out, int cap);

/* When D holds more than one batch size and OPT->by does not name batch,
 * append batch to OPT->by (so no group merges batch sizes) and return true. */
bool mtp_report_add_batch_key(const struct mtp_report_data *d, struct mtp_report_options *opt);
const char *mtp_report_key_name(enum mtp_report_key k);

enum { MTP_REPORT_NPCT = 3 }; /* p50, p90, p99 */
extern const double mtp_report_pcts[MTP_REPORT_NPCT];

enum mtp_report_phase {
    MTP_REPORT_PHASE_DRAFT,
    MTP_REPORT_PHASE_VERIFY,
    MTP_REPORT_PHASE_ACCEPT,
    MTP_REPORT_PHASE_UPDATE,
    MTP_REPORT_PHASE_COUNT,
};
extern const char *const mtp_report_phase_names[MTP_REPORT_PHASE_COUNT];

/* Indices into a group's metric vector. alpha_j is at MTP_REPORT_M_COUNT +
 * j - 1 and beta_j at MTP_REPORT_M_COUNT + depth + j - 1 (j = 1..depth).
 * Latencies are in nanoseconds; tokens_per_s in tokens per second. */
enum mtp_report_metric {
    MTP_REPORT_M_TAU,
    MTP_REPORT_M_ACCEPT_RATE,
    MTP_REPORT_M_TOKENS_PER_S,
    MTP_REPORT_M_SPEEDUP,         /* ratio of sums against the paired baseline */
    MTP_REPORT_M_SPEEDUP_MEDIAN,  /* median over prompts of the per-prompt ratio */
    MTP_REPORT_M_EXPERTS,         /* mean distinct routed experts per step and MoE layer */
    MTP_REPORT_M_EXPERTS_RATIO,   /* ... over the paired baseline's mean */
    MTP_REPORT_M_TTFT,            /* + 0..2: p50, p90, p99 over requests */
    MTP_REPORT_M_TPOT = MTP_REPORT_M_TTFT + MTP_REPORT_NPCT,
    MTP_REPORT_M_PHASE = MTP_REPORT_M_TPOT + MTP_REPORT_NPCT, /* + phase * 3 + pct, over steps */
    MTP_REPORT_M_COUNT = MTP_REPORT_M_PHASE + MTP_REPORT_PHASE_COUNT * MTP_REPORT_NPCT,
};

/* A value with its interval; NaN when undefined (lo/hi NaN without bootstrap). */
struct mtp_report_stat {
    double value, lo, hi;
};

struct mtp_report_unit; /* one prompt's sufficient statistics (report_internal.h) */

struct mtp_report_group {
    /* The key. Fields of keys not grouped on: NULL, -1 or NaN. */
    const char *decoder;                /* borrowed from the data */
    enum mtp_spec_decoder_type mode;
    int depth;                          /* -1 when decoders are mixed */
    enum mtp_spec_drafting drafting;
    int draft_vocab;                    /* N of the members' draft vocabulary; 0 = full */
    double temperature, top_p;          /* NaN unless grouped by temperature */
    int top_k;
    const char *category, *dataset;
    int run;                            /* -1 unless grouped by run */
    int turn;                           /* 0-based; -1 unless grouped by turn */
    int batch_size;                     /* B; -1 unless grouped by batch */
    char *wiring;                       /* owned "draft_hidden,position0,module_hidden" label
                                         * ("-" for baseline); NULL unless grouped by wiring */
    bool mixed;                         /* members differ in decoder, depth, drafting or
                                         * wiring: acceptance columns are printed "mixed" */
    /* The members. */
    int n_requests;
    int *requests;                      /* indices into data->requests, in unit order */
    int *member_unit;                   /* [n_requests] the unit of each member */
    int n_units;
    struct mtp_report_unit *units;      /* ordered as the bootstrap needs */
    char **unit_keys;                   /* [n_units] "run\x1fdataset\x1fprompt_id" */
    int64_t n_steps, n_tokens;          /* decode steps; tokens emitted after the first */
    bool has_baseline;                  /* some request was paired with a baseline request */
    bool has_experts;
    /* Completeness (report_complete.c): what the plans of its runs held for
     * this group, and what is not in the metrics. */
    int n_not_decoded;                  /* requests that ended at EOS before any decode step:
                                         * not members, left out of every metric */
    int64_t planned;                    /* requests planned; -1 unknown (a run without plan) */
    int64_t present;                    /* requests in the logs (members + not decoded) */
    int skipped[MTP_PLAN_SKIP_COUNT];   /* prompts skipped by the runner, by reason; -1 unknown */
    int missing_ranks;                  /* rank logs missing from its runs */
    /* The results. */
    int k;                              /* positions with alpha/beta: the largest depth */
    int n_metrics;                      /* MTP_REPORT_M_COUNT + 2 k */
    struct mtp_report_stat *metrics;    /* [n_metrics] */
    int n_samples;                      /* B */
    double *samples;                    /* [B][n_metrics] resampled values (NaN: undefined) */
    void *priv;                         /* percentile inputs (report_stats.c) */
};

struct mtp_report {
    const struct mtp_report_data *data; /* borrowed */
    struct mtp_report_options opt;
    int n_groups;
    struct mtp_report_group *groups;    /* ordered: baseline, exact by K, chain by K; T; ... */
};

/* Group D's requests by OPT->by and compute every metric with its interval.
 * D must outlive OUT. Returns MTP_ERR only when there is nothing to report. */
int mtp_report_build(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                     struct mtp_report *out);
void mtp_report_free(struct mtp_report *r);

/* The metric vector index of alpha_j / beta_j (j = 1..g->k), or -1. */
int mtp_report_alpha_index(const struct mtp_report_group *g, int j);
int mtp_report_beta_index(const struct mtp_report_group *g, int j);

/* Paired difference A - B of metric M: the point estimates' difference and,
 * when both groups hold the same prompts (so resample b picked the same
 * prompts in both), the percentile interval of the per-resample differences;
 * otherwise lo = hi = NaN. */
struct mtp_report_stat mtp_report_paired_diff(const struct mtp_report_group *a,
                                              const struct mtp_report_group *b, int m);

/* The bootstrap's index draw: uniform in [0, n) from one PCG32 output per
 * try, rejecting outputs below 2^32 mod n (so every index is equally likely). */
uint32_t mtp_report_draw_index(struct mtp_rng *rng, uint32_t n);

/* The nearest-rank percentile interval [P_lo, P_hi] of the defined (non-NaN)
 * values of V[0..n) with stride STRIDE; sorts a copy. NaN when none is defined. */
void mtp_report_interval(const double *v, int n, int stride, double p_lo, double p_hi,
                         double *lo, double *hi);

/* ---- tables -------------------------------------------------------------- */

enum mtp_report_cell_kind {
    MTP_REPORT_CELL_EMPTY,
    MTP_REPORT_CELL_TEXT,
    MTP_REPORT_CELL_INT,
    MTP_REPORT_CELL_NUM,  /* a number without interval */
    MTP_REPORT_CELL_STAT, /* value [lo, hi] */
};

/* How a column's numbers print in md/tex (csv and json print full precision). */
enum mtp_report_fmt {
    MTP_REPORT_FMT_PLAIN, /* %g */
    MTP_REPORT_FMT_2,     /* 2 decimals: tau, alpha, speedup, ms */
    MTP_REPORT_FMT_3,     /* 3 decimals */
    MTP_REPORT_FMT_1,     /* 1 decimal: tokens/s, experts */
};

struct mtp_report_cell {
    enum mtp_report_cell_kind kind;
    char *text;                  /* TEXT (owned) */
    int64_t i;                   /* INT */
    struct mtp_report_stat stat; /* NUM (value only) and STAT */
};

struct mtp_report_column {
    char *key;   /* machine name: csv header, json key ("alpha_1", "ttft_ms_p50") */
    char *label; /* markdown header ("alpha_1", "TTFT p50 ms") */
    char *tex;   /* LaTeX header ("$\\alpha_{1}$") */
    int section; /* 0: key column, repeated in every section; >= 1: metric section */
    enum mtp_report_fmt fmt;
};

struct mtp_report_table {
    char *name;            /* "full", "acceptance", "ablation" */
    char *title;
    int n_sections;        /* sections 1..n_sections-1 have titles; md/tex print one table each */
    char **section_titles; /* [n_sections]; [0] unused */
    int n_cols, cap_cols;
    struct mtp_report_column *cols;
    int n_rows;
    struct mtp_report_cell *cells; /* [n_rows][n_cols] */
    char *note;            /* printed under the table in md/tex (may be NULL) */
};

/* Every metric of every group of R: one row per group. */
int mtp_report_table_full(const struct mtp_report *r, struct mtp_report_table *t);

/* Rows: decoder x sampling setting; columns: tau and alpha_1 per category,
 * then overall tau and speedup. Groups D itself (OPT's keys are not used). */
int mtp_report_table_acceptance(const struct mtp_report_data *d,
                                const struct mtp_report_options *opt,
                                struct mtp_report_table *t);

/* Exact drafting with K trained modules against one module chained K times:
 * rows sampling setting x K, columns tau, accept_rate, speedup for each and
 * the paired difference of tau. */
int mtp_report_table_ablation(const struct mtp_report_data *d,
                              const struct mtp_report_options *opt,
                              struct mtp_report_table *t);

/* Tree ablation (report_tree.c): per decoder and sampling setting, tokens
 * verified per step, tau, tokens per verified token, speedup, beta_j and
 * depth-1 acceptance by sibling rank; rows by sampling, then budget. */
int mtp_report_table_tree(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                          struct mtp_report_table *t);

/* Acceptance by position (report_position.c): per decoder and sampling
 * setting, tau and alpha_1..4 of the steps in bins of context length (prompt
 * + tokens emitted before the step) and of generation position, with
 * bootstrap intervals over prompts. */
int mtp_report_table_position(const struct mtp_report_data *d,
                              const struct mtp_report_options *opt, struct mtp_report_table *t);

/* Batch sizes (report_batch.c): rows sampling setting x batch size x decoder
 * (baseline first at each B, then by K); tau, TPOT per request, throughput
 * of the batch runs, speedup against the baseline at the same B, and the
 * distinct experts per verification step against the baseline's; a note
 * counts the requests at B > 1 no batch record covers. Groups D itself by
 * decoder, temperature and batch (OPT's keys are not used). */
int mtp_report_table_batch(const struct mtp_report_data *d, const struct mtp_report_options *opt,
                           struct mtp_report_table *t);

void mtp_report_table_free(struct mtp_report_table *t);

/* ---- output formats ----------------------------------------------------- */

enum mtp_report_format {
    MTP_REPORT_FORMAT_MD,
    MTP_REPORT_FORMAT_CSV,
    MTP_REPORT_FORMAT_TEX,
    MTP_REPORT_FORMAT_JSON,
};

int mtp_report_format_parse(const char *s, enum mtp_report_format *out);

/* What the output says about where the numbers came from. */
struct mtp_report_meta {
    const struct mtp_report_data *data;
    const struct mtp_report_options *opt;
};

/* Render T to F. md/tex: a heading, one table per section, the note; csv: one
 * header row and one row per table row (stat cells as KEY, KEY_lo, KEY_hi);
 * json: {"schema", "table", "logs", "runs", "by", "bootstrap", "rows": [...]}
 * with stat cells as {"value", "lo", "hi"} (null when undefined). */
int mtp_report_write(FILE *f, const struct mtp_report_table *t, enum mtp_report_format fmt,
                     const struct mtp_report_meta *meta);
int mtp_report_write_json(FILE *f, const struct mtp_report_table *t,
                          const struct mtp_report_meta *meta);

#endif

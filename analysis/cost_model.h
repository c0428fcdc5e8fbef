/*
 * cost_model.h - the speculative-decoding cost model (spec/metrics.md "Cost
 * model"): expected tokens per step from per-position conditional acceptance,
 * divided by the expected step cost in decode units, over the baseline's
 * tokens per decode (Leviathan et al. 2023, §3.4, with measured costs in
 * place of the constant draft-cost ratio).
 *
 * Costs come from `mtpbench bench --json` (schema mtpbench-costs/1). The
 * file's ratios are to its "decode" case; the loader re-bases every round on
 * that round's verify/n=1 instead, so that the unit ("one decode") is the
 * same operation, measured the same way, as every other point of the verify
 * curve and as the baseline's step: ONE reference (spec/metrics.md "Cost
 * model"). Medians are taken over the re-based rounds; the per-round values
 * are kept so that intervals can carry the cost spread.
 */
#ifndef MTP_COST_MODEL_H
#define MTP_COST_MODEL_H

#include <stdbool.h>

#include "experiments/spec.h" /* defines: enum mtp_spec_drafting */

/* Verification is timed for n = 1..16 tokens, so K <= 15; an exact decoder
 * of depth K needs modules 1..K, so no more than 15 modules are ever read. */
enum { MTP_COST_MAX_N = 16, MTP_COST_MAX_MODULES = MTP_COST_MAX_N - 1 };

/* The largest ratio to a decode a cost file may hold: anything above is a
 * broken file, not a measurement (and would print as a 300-digit cell). */
#define MTP_COST_MAX_RATIO 1e6

/* Draft vocabularies the bench times ("draft_vocab/module=k/N=n", as
 * bench/bench_costs.h), in this order. */
enum { MTP_COST_N_VOCABS = 3 };
static const int mtp_cost_vocabs[MTP_COST_N_VOCABS] = {2048, 1024, 512};

/* One set of costs, each relative to a decode. */
struct mtp_cost_point {
    double verify[MTP_COST_MAX_N + 1];                         /* [n]: main forward of n tokens */
    double draft[MTP_COST_MAX_MODULES + 1][MTP_COST_MAX_N + 1]; /* [k][n]: module k over n rows */
    double draft_vocab[MTP_COST_MAX_MODULES + 1][MTP_COST_N_VOCABS]; /* [k][v]: one row of module
                                      * k, head over mtp_cost_vocabs[v] ids; 0 = not measured */
    double argmax;       /* per row: greedy acceptance and baseline choice */
    double argmax_probs; /* per row: a greedy draft (argmax + its distribution) */
    double sampled;      /* per row: softmax + sample (T > 0; adaptive confidence) */
    double update;       /* per step: cache rollback */
};

struct mtp_costs {
    char *file, *host, *cpu, *backend, *model_dir;
    int threads, context;
    int n_modules;                /* modules timed (the model's, at most MTP_COST_MAX_MODULES) */
    int model_modules;            /* the model's num_nextn_predict_layers */
    struct mtp_cost_point median; /* the per-case medians over the re-based rounds */
    int rounds;
    struct mtp_cost_point *round; /* [rounds]: each round's ratios to its verify/n=1 */
    double decode_over_verify1;   /* median over rounds of the file's "decode" / verify/n=1:
                                   * the discrepancy the single reference removes */
    double verify1_spread;        /* (p90 - p10) / median of verify/n=1's ns over rounds, NaN if
                                   * the file has no ns summary: the bench's own noise */
    double load_start[3], load_end[3]; /* getloadavg at the bench's start and end; NaN: not
                                        * recorded (older files) */
    int cpus;                     /* CPUs online on the bench machine; 0: not recorded */
    struct mtp_cost_batch *batch; /* the batch curve (cost_batch.h); NULL: the file has none */
};

/* Whether the bench looks noisy: its verify/n=1 spread over rounds exceeds
 * 10%, or other processes kept more CPUs busy at its start than it left idle
 * (load average > cpus - threads). *WHY gets a short reason (static). */
bool mtp_costs_noisy(const struct mtp_costs *c, const char **why);

struct mtp_cost_batch;

/* Read a cost file (opened as every user input is: regular files only, no
 * blocking on a FIFO). Every value is checked: ratios finite, > 0 for
 * forwards and >= 0 for the per-row and per-step overheads, at most
 * MTP_COST_MAX_RATIO; each case's ratio summary ordered (min <= p10 <=
 * median <= p90 <= max) and its median inside its samples' range; counts
 * in range; the optional batch curve as cost_batch.h says. Errors name the
 * file and the case or key, with what was expected and found. Free with
 * mtp_costs_free (also after a failure). */
int mtp_costs_load(const char *path, struct mtp_costs *out);

/* The same from a parsed document ROOT; NAME stands for the file in messages. */
struct json_t; /* jansson's document type */
int mtp_costs_from_json(const char *name, struct json_t *root, struct mtp_costs *out);
void mtp_costs_free(struct mtp_costs *c);

/* A decoder as the model sees it. */
struct mtp_cost_decoder {
    enum mtp_spec_drafting drafting; /* EXACT or CHAIN */
    bool adaptive;                   /* adaptive depth: a confidence per draft */
    int module;                      /* chain: the module reused (1-based) */
    bool greedy;                     /* temperature 0 */
    int draft_vocab;                 /* N of a draft vocabulary; 0 = full head */
};

/* Expected step cost, by term, in decodes. */
struct mtp_cost_terms {
    double draft, verify, accept, update, total;
};

/* E[tokens per step] = 1 + sum_{i=1..K} prod_{j<=i} alpha_j. */
double mtp_cost_tokens(const double *alpha, int K);

/* P(a = i), i = 0..K, of a step of depth K: prod_{j<=i} alpha_j (1 - alpha_{i+1}),
 * alpha_{K+1} = 0. Writes PA [K+1]. */
void mtp_cost_accept_dist(const double *alpha, int K, double *pa);

/* The step cost when a fraction P_DRAFTED[k] (k = 0..kmax) of steps verify
 * k drafts and the previous step accepted i drafts with probability
 * P_PREV[i] (i = 0..kmax): this sets how many catch-up rows the modules run. */
void mtp_cost_step_mix(const struct mtp_cost_point *c, const struct mtp_cost_decoder *d,
                       const double *p_drafted, const double *p_prev, int kmax,
                       struct mtp_cost_terms *t);

/* A fixed depth K with acceptance ALPHA [K]. */
void mtp_cost_step(const struct mtp_cost_point *c, const struct mtp_cost_decoder *d,
                   const double *alpha, int K, struct mtp_cost_terms *t);

/* Why decoder D cannot be priced at depth K with COSTS (exact drafting
 * deeper than the modules timed, a chain module not timed, K outside
 * 0..MTP_COST_MAX_N - 1), or NULL when it can. The text is static. */
const char *mtp_cost_unpriceable(const struct mtp_costs *costs, const struct mtp_cost_decoder *d,
                                 int K);

/* The baseline's step: one forward of one token (V(1), the reference) and one choice. */
double mtp_cost_baseline(const struct mtp_cost_point *c, bool greedy);

/* Predicted speedup of depth K (K = 0: 1). */
double mtp_cost_speedup(const struct mtp_cost_point *c, const struct mtp_cost_decoder *d,
                        const double *alpha, int K);

/* K* in 0..KMAX maximising mtp_cost_speedup with the first K of ALPHA [KMAX]
 * (K = 0: no speculation); *BEST gets its speedup. Ties go to the smaller K. */
int mtp_cost_best_depth(const struct mtp_cost_point *c, const struct mtp_cost_decoder *d,
                        const double *alpha, int kmax, double *best);

#endif

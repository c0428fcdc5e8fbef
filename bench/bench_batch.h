/*
 * bench_batch.h - `mtpbench bench --batch`: the cost of one forward over B
 * sequences (engine.h "Sequences"), each verifying K+1 tokens of real text
 * after its own context, for B = 1, 2, 4, 8, 16, 32 and K = 0..3, with the
 * routed experts the forward touches; the cost of each MTP module (1..3) over
 * the same B segments of K+1 rows (a batched drafting pass: the head runs on
 * each segment's last row); and the ratios of a forward of 8 single-token
 * sequences to 8 single decodes, in time and in experts. With --json the
 * curve goes into the cost file's "batch" section (bench_batch_json.c).
 */
#ifndef MTP_BENCH_BATCH_H
#define MTP_BENCH_BATCH_H

#include "engine/engine.h" /* defines: struct mtp_model, mtp_backend */

enum {
    MTP_BENCH_BATCH_N_B = 6,     /* batch sizes timed: mtp_bench_batch_sizes */
    MTP_BENCH_BATCH_MAX_K = 3,   /* K = 0..3: K+1 tokens per sequence */
    MTP_BENCH_BATCH_SINGLES = 8, /* B of the single-decode comparison */
};
static const int mtp_bench_batch_sizes[MTP_BENCH_BATCH_N_B] = {1, 2, 4, 8, 16, 32};

/* The measured curve, per round (rounds interleave every case). */
struct mtp_bench_batch_curve {
    int context, rounds, n_moe;
    int modules; /* MTP modules timed: the model's, at most MTP_BENCH_BATCH_MAX_K */
    double *ns;  /* [N_B][MAX_K + 1][rounds]: main forward of B x (K+1) tokens */
    double *module_ns; /* [N_B][MAX_K + 1][MAX_K][rounds]: module k+1 over the same rows */
    double experts[MTP_BENCH_BATCH_N_B][MTP_BENCH_BATCH_MAX_K + 1]; /* mean over MoE layers */
    double *single_ns;     /* [rounds]: MTP_BENCH_BATCH_SINGLES one-token decodes, summed */
    double single_experts; /* the same decodes: experts summed over them, mean over layers */
};

/* Element (bi, K, round) of CURVE's ns, and (bi, K, module k, round) of module_ns. */
static inline size_t mtp_bench_batch_at(const struct mtp_bench_batch_curve *c, int bi, int K,
                                        int r)
{
    return ((size_t)bi * (MTP_BENCH_BATCH_MAX_K + 1) + (size_t)K) * (size_t)c->rounds +
           (size_t)r;
}
static inline size_t mtp_bench_batch_module_at(const struct mtp_bench_batch_curve *c, int bi,
                                               int K, int k, int r)
{
    return (((size_t)bi * (MTP_BENCH_BATCH_MAX_K + 1) + (size_t)K) * MTP_BENCH_BATCH_MAX_K +
            (size_t)(k - 1)) * (size_t)c->rounds + (size_t)r;
}

/* Tokens of DATASET (MODEL_DIR's tokenizer) give every sequence its CONTEXT
 * positions and its verified tokens; ROUNDS interleaved rounds after one
 * warm-up, medians printed. Builds its own engine (32 sequences) on BACKEND.
 * Fills *OUT (free with mtp_bench_batch_free; may be NULL: printed only).
 * MTP_OK or MTP_ERR. */
int mtp_bench_batch(struct mtp_model *model, struct mtp_backend *backend, const char *model_dir,
                    const char *dataset, int context, int rounds,
                    struct mtp_bench_batch_curve *out);
void mtp_bench_batch_free(struct mtp_bench_batch_curve *c);

/* The cost file's "batch" section (docs/reports.md "Cost file"), owned by the caller. */
struct json_t;
struct json_t *mtp_bench_batch_json(const struct mtp_bench_batch_curve *c);

#endif

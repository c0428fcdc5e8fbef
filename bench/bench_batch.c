/*
 * bench_batch.c - the batch cost curve (bench_batch.h). Every sequence s holds
 * its own window of the text as context (tokens [s*stride, s*stride + P)), in
 * the main model's cache and in each timed module's; a case (B, K) runs one
 * mtp_engine_forward_batch of B segments of K+1 tokens (the text after each
 * context) at position P, then each module over the same B segments, and
 * truncates the caches back to P. Cases run interleaved round by round, so
 * machine noise hits them alike; medians are printed. Experts touched are per
 * MoE layer of the main model, averaged over the layers (the same in every
 * round: routing is deterministic).
 *
 * The modules' inputs are what exact drafting feeds them: module 1 the main
 * model's hidden states, module k the hidden states module k-1 wrote, both
 * computed once before the rounds over all 32 sequences (the engine is batch
 * invariant, so the rows of a smaller batch are the same numbers).
 */
#include "bench_batch.h"

#include <stdio.h>  /* defines: printf */
#include <stdlib.h> /* defines: qsort, free */
#include <string.h> /* defines: memcpy, memset */
#include <time.h>   /* defines: clock_gettime */

#include "bench_json.h"    /* defines: mtp_bench_load_average */
#include "bench_sharing.h" /* defines: mtp_bench_text_tokens */
#include "bench_timer.h"   /* defines: mtp_bench_stats_of */
#include "core/error.h"
#include "engine/engine.h"
#include "engine/model.h"

enum { BB_MAX_SEQS = 32, BB_MAX_K = MTP_BENCH_BATCH_MAX_K, BB_N_B = MTP_BENCH_BATCH_N_B,
       BB_SINGLES = MTP_BENCH_BATCH_SINGLES, BB_ROWS = BB_MAX_K + 1 };

struct bb {
    struct mtp_engine *e;
    const int32_t *ids;
    int P, stride, d, V;
    struct mtp_bench_batch_curve *c;
    float *hidden[BB_MAX_K + 1]; /* [BB_MAX_SEQS * BB_ROWS][d]: main (0), module k's output */
    int32_t *tokens;             /* scratch [BB_MAX_SEQS * BB_ROWS] */
    float *hin, *hout, *logits;  /* scratch: rows x d, rows x d, BB_MAX_SEQS x V */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Mean over the MoE layers of the experts the last forward touched. */
static double mean_touched(struct bb *b)
{
    int counts[256], n = b->c->n_moe < 256 ? b->c->n_moe : 256;
    if (n == 0)
        return 0;
    mtp_engine_last_experts_touched(b->e, counts, n);
    double sum = 0;
    for (int l = 0; l < n; l++)
        sum += counts[l];
    return sum / n;
}

/* Sequences 0..B-1 back to P positions in the main model and module MODULE
 * (0: the main model only). */
static void rollback(struct bb *b, int B, int module)
{
    for (int s = 0; s < B; s++)
        mtp_engine_seq_truncate(b->e, s, module, b->P);
}

/* Token j of sequence s's verified run, read by module k (k = 0: the main model). */
static int32_t text_token(const struct bb *b, int s, int j, int k)
{
    return b->ids[s * b->stride + b->P + j + k];
}

/* The B segments of K+1 tokens at P; TOKENS as module K_MOD reads them. */
static void fill_segments(struct bb *b, int B, int K, int k_mod, struct mtp_segment *segs)
{
    for (int s = 0; s < B; s++) {
        segs[s] = (struct mtp_segment){.seq = s, .n = K + 1, .start_pos = b->P};
        for (int j = 0; j <= K; j++)
            b->tokens[s * (K + 1) + j] = text_token(b, s, j, k_mod);
    }
}

/* One main-model case: B sequences, K+1 tokens each. */
static int run_case(struct bb *b, int bi, int K, int round)
{
    int B = mtp_bench_batch_sizes[bi];
    struct mtp_segment segs[BB_MAX_SEQS];
    fill_segments(b, B, K, 0, segs);
    uint64_t t0 = now_ns();
    int rc = mtp_engine_forward_batch(b->e, b->tokens, segs, B, NULL, NULL);
    b->c->ns[mtp_bench_batch_at(b->c, bi, K, round)] = (double)(now_ns() - t0);
    b->c->experts[bi][K] = mean_touched(b);
    rollback(b, B, 0);
    return rc;
}

/* Module K_MOD over the same B segments of K+1 rows, its input rows gathered
 * from the hidden states computed before the rounds. The logits of each
 * segment's last row are read (the draft), and the hidden output written, as
 * a drafting pass does (engine/decode_batch.c). */
static int run_module_case(struct bb *b, int bi, int K, int k_mod, int round)
{
    int B = mtp_bench_batch_sizes[bi];
    struct mtp_segment segs[BB_MAX_SEQS];
    fill_segments(b, B, K, k_mod, segs);
    for (int s = 0; s < B; s++)
        memcpy(b->hin + (size_t)s * (K + 1) * b->d,
               b->hidden[k_mod - 1] + (size_t)s * BB_ROWS * b->d,
               sizeof(float) * (size_t)(K + 1) * b->d);
    uint64_t t0 = now_ns();
    int rc = mtp_engine_mtp_forward_batch(b->e, k_mod, NULL, b->tokens, b->hin, segs, B, true,
                                          b->logits, b->hout);
    b->c->module_ns[mtp_bench_batch_module_at(b->c, bi, K, k_mod, round)] =
        (double)(now_ns() - t0);
    rollback(b, B, k_mod);
    return rc;
}

/* BB_SINGLES one-token decodes, one per sequence, back to back. */
static int run_singles(struct bb *b, int round)
{
    uint64_t total = 0;
    double experts = 0;
    for (int s = 0; s < BB_SINGLES; s++) {
        uint64_t t0 = now_ns();
        int rc = mtp_engine_seq_forward(b->e, s, &b->ids[s * b->stride + b->P], 1, b->P, NULL,
                                        NULL);
        total += now_ns() - t0;
        if (rc)
            return MTP_ERR;
        experts += mean_touched(b);
    }
    b->c->single_ns[round] = (double)total;
    b->c->single_experts = experts;
    rollback(b, BB_SINGLES, 0);
    return MTP_OK;
}

static int run_rounds(struct bb *b)
{
    for (int r = -1; r < b->c->rounds; r++) { /* round -1 warms up, not kept */
        int keep = r < 0 ? 0 : r;
        for (int bi = 0; bi < BB_N_B; bi++)
            for (int K = 0; K <= BB_MAX_K; K++) {
                if (run_case(b, bi, K, keep))
                    return MTP_ERR;
                for (int k = 1; k <= b->c->modules; k++)
                    if (run_module_case(b, bi, K, k, keep))
                        return MTP_ERR;
            }
        if (run_singles(b, keep))
            return MTP_ERR;
    }
    return MTP_OK;
}

static double median_ms(const double *v, int n)
{
    return mtp_bench_stats_of(v, n, 1).median * 1e-6;
}

static void print_row(const struct mtp_bench_batch_curve *c, int bi, int K)
{
    int B = mtp_bench_batch_sizes[bi], T = B * (K + 1);
    double ms = median_ms(c->ns + mtp_bench_batch_at(c, bi, K, 0), c->rounds);
    printf("  %3d %2d %4d %10.3f %14.4f %13.4f %14.2f", B, K, T, ms, ms / B, ms / T,
           c->experts[bi][K]);
    for (int k = 1; k <= c->modules; k++)
        printf(" %9.3f", median_ms(c->module_ns + mtp_bench_batch_module_at(c, bi, K, k, 0),
                                   c->rounds));
    printf("\n");
}

static void print_table(const struct bb *b)
{
    const struct mtp_bench_batch_curve *c = b->c;
    double load[3];
    mtp_bench_load_average(load);
    printf("batch verification over B sequences at position %d (K+1 real-text tokens each; "
           "median of %d rounds; load average %.2f at the end; module k: ms of MTP module k "
           "over the same rows):\n", b->P, c->rounds, load[0]);
    printf("  %3s %2s %4s %10s %14s %13s %14s", "B", "K", "T", "ms", "ms/sequence", "ms/token",
           "experts/layer");
    for (int k = 1; k <= c->modules; k++)
        printf("  module %d", k);
    printf("\n");
    for (int bi = 0; bi < BB_N_B; bi++)
        for (int K = 0; K <= BB_MAX_K; K++)
            print_row(c, bi, K);
    int b8 = 3; /* mtp_bench_batch_sizes[3] == BB_SINGLES */
    double single_ms = median_ms(c->ns + mtp_bench_batch_at(c, b8, 0, 0), c->rounds);
    double singles = median_ms(c->single_ns, c->rounds);
    printf("  forward of %d single-token sequences / %d single decodes: time %.3f / %.3f ms = "
           "%.3f; experts per layer %.2f / %.2f = %.3f\n", BB_SINGLES, BB_SINGLES, single_ms,
           singles, singles > 0 ? single_ms / singles : 0.0,
           c->experts[b8][0], c->single_experts,
           c->single_experts > 0 ? c->experts[b8][0] / c->single_experts : 0.0);
}

/* Sequence S's context in the main model and in modules 1..modules, each
 * module fed the previous one's hidden states (exact drafting's inputs). */
static int prefill_sequence(struct bb *b, int s, float *h_in, float *h_out)
{
    const int32_t *ctx = b->ids + (size_t)s * b->stride;
    if (mtp_engine_seq_prefill(b->e, s, ctx, b->P, NULL, h_in))
        return MTP_ERR;
    for (int k = 1; k <= b->c->modules; k++) {
        if (mtp_engine_seq_mtp_forward(b->e, s, k, ctx + k, h_in, b->P, 0, NULL, h_out))
            return MTP_ERR;
        float *t = h_in;
        h_in = h_out;
        h_out = t;
    }
    return MTP_OK;
}

/* The main model's and each module's hidden states over all sequences'
 * BB_ROWS verified rows (the modules' inputs in the rounds), then back to P. */
static int capture_hidden(struct bb *b)
{
    struct mtp_segment segs[BB_MAX_SEQS];
    fill_segments(b, BB_MAX_SEQS, BB_MAX_K, 0, segs);
    int rc = mtp_engine_forward_batch(b->e, b->tokens, segs, BB_MAX_SEQS, NULL, b->hidden[0]);
    for (int k = 1; !rc && k <= b->c->modules; k++) {
        fill_segments(b, BB_MAX_SEQS, BB_MAX_K, k, segs);
        rc = mtp_engine_mtp_forward_batch(b->e, k, NULL, b->tokens, b->hidden[k - 1], segs,
                                          BB_MAX_SEQS, true, b->logits, b->hidden[k]);
        rollback(b, BB_MAX_SEQS, k);
    }
    rollback(b, BB_MAX_SEQS, 0);
    return rc;
}

static int setup(struct bb *b)
{
    size_t rows = (size_t)BB_MAX_SEQS * BB_ROWS, d = (size_t)b->d;
    for (int k = 0; k <= b->c->modules; k++)
        b->hidden[k] = mtp_xcalloc(rows * d, sizeof(float));
    b->tokens = mtp_xcalloc(rows, sizeof *b->tokens);
    b->hin = mtp_xcalloc(rows * d, sizeof(float));
    b->hout = mtp_xcalloc(rows * d, sizeof(float));
    b->logits = mtp_xcalloc((size_t)BB_MAX_SEQS * (size_t)b->V, sizeof(float));
    float *h_in = mtp_xcalloc((size_t)b->P * d, sizeof(float));
    float *h_out = mtp_xcalloc((size_t)b->P * d, sizeof(float));
    int rc = MTP_OK;
    for (int s = 0; !rc && s < BB_MAX_SEQS; s++)
        rc = prefill_sequence(b, s, h_in, h_out);
    free(h_in);
    free(h_out);
    return rc ? MTP_ERR : capture_hidden(b);
}

static void bb_free(struct bb *b)
{
    for (int k = 0; k <= BB_MAX_K; k++)
        free(b->hidden[k]);
    free(b->tokens);
    free(b->hin);
    free(b->hout);
    free(b->logits);
}

void mtp_bench_batch_free(struct mtp_bench_batch_curve *c)
{
    free(c->ns);
    free(c->module_ns);
    free(c->single_ns);
    memset(c, 0, sizeof *c);
}

static void curve_alloc(struct mtp_bench_batch_curve *c)
{
    size_t cases = (size_t)BB_N_B * (BB_MAX_K + 1) * (size_t)c->rounds;
    c->ns = mtp_xcalloc(cases, sizeof *c->ns);
    c->module_ns = mtp_xcalloc(cases * BB_MAX_K, sizeof *c->module_ns);
    c->single_ns = mtp_xcalloc((size_t)c->rounds, sizeof *c->single_ns);
}

int mtp_bench_batch(struct mtp_model *model, struct mtp_backend *backend, const char *model_dir,
                    const char *dataset, int context, int rounds,
                    struct mtp_bench_batch_curve *out)
{
    struct mtp_bench_batch_curve local;
    struct mtp_bench_batch_curve *c = out ? out : &local;
    const struct mtp_config *cfg = &model->cfg;
    memset(c, 0, sizeof *c);
    c->context = context;
    c->rounds = rounds;
    c->modules = cfg->num_nextn_predict_layers < BB_MAX_K ? cfg->num_nextn_predict_layers
                                                          : BB_MAX_K;
    /* Room after each context for K+1 verified tokens and module k's shift by k. */
    struct bb b = {.P = context, .stride = context + 2 * BB_MAX_K + 1, .c = c,
                   .d = cfg->hidden_size, .V = cfg->vocab_size};
    int32_t *ids = NULL;
    int n_ids = 0;
    if (mtp_bench_text_tokens(model_dir, dataset, BB_MAX_SEQS * b.stride, &ids, &n_ids))
        return MTP_ERR;
    b.ids = ids;
    struct mtp_engine_options opt = {.max_positions = b.stride, .max_seqs = BB_MAX_SEQS,
                                     .max_batch = context > BB_MAX_SEQS * BB_ROWS
                                                      ? context
                                                      : BB_MAX_SEQS * BB_ROWS};
    int rc = mtp_engine_create(model, backend, &opt, &b.e);
    if (!rc) {
        c->n_moe = mtp_engine_num_moe_layers(b.e);
        curve_alloc(c);
        rc = setup(&b);
    }
    if (!rc)
        rc = run_rounds(&b);
    if (!rc)
        print_table(&b);
    bb_free(&b);
    mtp_engine_free(b.e);
    free(ids);
    if (rc || !out)
        mtp_bench_batch_free(c);
    return rc;
}

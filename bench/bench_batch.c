/*
 * bench_batch.c - the batch cost curve (bench_batch.h). Every sequence s holds
 * its own window of the text as context (tokens [s*stride, s*stride + P));
 * a case (B, K) runs one mtp_engine_forward_batch of B segments of K+1 tokens
 * (the text after each context) at position P, then truncates the caches back
 * to P. Cases run interleaved round by round, so machine noise hits them alike;
 * medians are printed. Experts touched are per MoE layer of the main model,
 * averaged over the layers (the same in every round: routing is
 * deterministic).
 */
#include "bench_batch.h"

#include <stdio.h>  /* defines: printf */
#include <stdlib.h> /* defines: qsort, free */
#include <time.h>   /* defines: clock_gettime */

#include "bench_json.h"    /* defines: mtp_bench_load_average */
#include "bench_sharing.h" /* defines: mtp_bench_text_tokens */
#include "core/error.h"
#include "engine/engine.h"

enum { BB_MAX_SEQS = 32, BB_MAX_K = 3, BB_N_B = 6, BB_SINGLES = 8 };
static const int batch_sizes[BB_N_B] = {1, 2, 4, 8, 16, 32};

struct bb {
    struct mtp_engine *e;
    const int32_t *ids;
    int P, stride, rounds, n_moe;
    uint64_t *ns;       /* [BB_N_B][BB_MAX_K + 1][rounds] */
    double experts[BB_N_B][BB_MAX_K + 1]; /* mean over MoE layers of the batch's union */
    uint64_t *single_ns; /* [rounds]: BB_SINGLES one-token decodes, summed */
    double single_experts; /* the same decodes: experts summed over them, mean over layers */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double median_ms(uint64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    return (double)v[n / 2] * 1e-6;
}

/* Mean over the MoE layers of the experts the last forward touched. */
static double mean_touched(struct bb *b, int seg)
{
    int counts[256], n = b->n_moe < 256 ? b->n_moe : 256;
    if (n == 0)
        return 0;
    if (seg < 0)
        mtp_engine_last_experts_touched(b->e, counts, n);
    else
        mtp_engine_last_experts_touched_segment(b->e, seg, counts, n);
    double sum = 0;
    for (int l = 0; l < n; l++)
        sum += counts[l];
    return sum / n;
}

static void rollback(struct bb *b, int B)
{
    for (int s = 0; s < B; s++)
        mtp_engine_seq_truncate(b->e, s, 0, b->P);
}

/* One case: B sequences, K+1 tokens each. */
static int run_case(struct bb *b, int bi, int K, int round)
{
    int B = batch_sizes[bi];
    struct mtp_segment segs[BB_MAX_SEQS];
    int32_t tokens[BB_MAX_SEQS * (BB_MAX_K + 1)];
    for (int s = 0; s < B; s++) {
        segs[s] = (struct mtp_segment){.seq = s, .n = K + 1, .start_pos = b->P};
        for (int j = 0; j <= K; j++)
            tokens[s * (K + 1) + j] = b->ids[s * b->stride + b->P + j];
    }
    uint64_t t0 = now_ns();
    int rc = mtp_engine_forward_batch(b->e, tokens, segs, B, NULL, NULL);
    b->ns[((size_t)bi * (BB_MAX_K + 1) + K) * b->rounds + round] = now_ns() - t0;
    b->experts[bi][K] = mean_touched(b, -1);
    rollback(b, B);
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
        experts += mean_touched(b, -1);
    }
    b->single_ns[round] = total;
    b->single_experts = experts;
    rollback(b, BB_SINGLES);
    return MTP_OK;
}

static int run_rounds(struct bb *b)
{
    for (int r = -1; r < b->rounds; r++) { /* round -1 warms up, not kept */
        int keep = r < 0 ? 0 : r;
        for (int bi = 0; bi < BB_N_B; bi++)
            for (int K = 0; K <= BB_MAX_K; K++)
                if (run_case(b, bi, K, keep))
                    return MTP_ERR;
        if (run_singles(b, keep))
            return MTP_ERR;
    }
    return MTP_OK;
}

static void print_table(struct bb *b)
{
    double load[3];
    mtp_bench_load_average(load);
    printf("batch verification over B sequences at position %d (K+1 real-text tokens each; "
           "median of %d rounds; load average %.2f at the end):\n", b->P, b->rounds, load[0]);
    printf("  %3s %2s %4s %10s %14s %13s %14s\n", "B", "K", "T", "ms", "ms/sequence",
           "ms/token", "experts/layer");
    double single_ms = 0;
    for (int bi = 0; bi < BB_N_B; bi++)
        for (int K = 0; K <= BB_MAX_K; K++) {
            int B = batch_sizes[bi], T = B * (K + 1);
            double ms = median_ms(b->ns + ((size_t)bi * (BB_MAX_K + 1) + K) * b->rounds,
                                  b->rounds);
            printf("  %3d %2d %4d %10.3f %14.4f %13.4f %14.2f\n", B, K, T, ms, ms / B, ms / T,
                   b->experts[bi][K]);
            if (B == BB_SINGLES && K == 0)
                single_ms = ms;
        }
    double singles = median_ms(b->single_ns, b->rounds);
    printf("  forward of %d single-token sequences / %d single decodes: time %.3f / %.3f ms = "
           "%.3f; experts per layer %.2f / %.2f = %.3f\n", BB_SINGLES, BB_SINGLES, single_ms,
           singles, singles > 0 ? single_ms / singles : 0.0,
           b->experts[3][0], b->single_experts,
           b->single_experts > 0 ? b->experts[3][0] / b->single_experts : 0.0);
}

int mtp_bench_batch(struct mtp_model *model, struct mtp_backend *backend, const char *model_dir,
                    const char *dataset, int context, int rounds)
{
    struct bb b = {.P = context, .stride = context + BB_MAX_K + 1, .rounds = rounds};
    int32_t *ids = NULL;
    int n_ids = 0;
    if (mtp_bench_text_tokens(model_dir, dataset, BB_MAX_SEQS * b.stride, &ids, &n_ids))
        return MTP_ERR;
    b.ids = ids;
    struct mtp_engine_options opt = {.max_positions = b.stride, .max_seqs = BB_MAX_SEQS,
                                     .max_batch = context > BB_MAX_SEQS * (BB_MAX_K + 1)
                                                      ? context
                                                      : BB_MAX_SEQS * (BB_MAX_K + 1)};
    int rc = mtp_engine_create(model, backend, &opt, &b.e);
    for (int s = 0; !rc && s < BB_MAX_SEQS; s++)
        rc = mtp_engine_seq_prefill(b.e, s, ids + (size_t)s * b.stride, context, NULL, NULL);
    if (!rc) {
        b.n_moe = mtp_engine_num_moe_layers(b.e);
        b.ns = mtp_xcalloc((size_t)BB_N_B * (BB_MAX_K + 1) * rounds, sizeof *b.ns);
        b.single_ns = mtp_xcalloc((size_t)rounds, sizeof *b.single_ns);
        rc = run_rounds(&b);
        if (!rc)
            print_table(&b);
    }
    free(b.ns);
    free(b.single_ns);
    mtp_engine_free(b.e);
    free(ids);
    return rc;
}

/*
 * inspect_cost.c - bytes per decoded token and the bandwidth-bound decode
 * time, for `mtpbench inspect` (inspect_cost.h). The bound is bytes per
 * token / triad bandwidth: no decode can be faster, and at real dimensions
 * a decode that reads its weights once approaches it (docs/design.md,
 * "Memory-bound decode").
 */
#include "inspect_cost.h"

#include <stdio.h> /* defines: printf */

#include "analysis/roofline.h"   /* defines: mtp_roofline_triad, mtp_roofline_llc_bytes */
#include "analysis/token_cost.h" /* defines: mtp_token_cost_main, mtp_token_cost_module */
#include "kernels/backend.h"     /* defines: mtp_backend_cpu_threads */

enum { DRAFT_VOCAB_ROWS = 2048, BOUND_CONTEXT = 512, TRIAD_REPEATS = 3 };

static double mb(double bytes)
{
    return bytes * 1e-6;
}

void mtp_inspect_print_token_cost(const struct mtp_model *m, bool measure)
{
    struct mtp_token_cost main = mtp_token_cost_main(m, 1);
    double per_pos = main.cache_bytes;
    main = mtp_token_cost_main(m, BOUND_CONTEXT);
    printf("decode reads per token (weights in their stored dtypes, FP8 scales excluded)\n");
    printf("  main model: %.1f MB of weights + %.1f KB of latent cache per context position "
           "(%.1f MB at context %d)\n", mb(main.weight_bytes), per_pos * 1e-3,
           mb(main.cache_bytes), BOUND_CONTEXT);
    int D = m->cfg.num_nextn_predict_layers, V = m->cfg.vocab_size;
    int dv = V > DRAFT_VOCAB_ROWS ? DRAFT_VOCAB_ROWS : V;
    for (int k = 1; k <= D; k++) {
        struct mtp_token_cost full = mtp_token_cost_module(m, k, BOUND_CONTEXT, V);
        struct mtp_token_cost small = mtp_token_cost_module(m, k, BOUND_CONTEXT, dv);
        printf("  MTP module %d draft: %.1f MB (full head), %.1f MB (draft vocabulary %d)\n", k,
               mb(full.weight_bytes), mb(small.weight_bytes), dv);
    }
    if (!measure)
        return;
    size_t bytes = 4 * mtp_roofline_llc_bytes();
    if (bytes > ((size_t)1 << 30))
        bytes = (size_t)1 << 30;
    int threads[2] = {1, mtp_backend_cpu_threads(0)};
    double total = main.weight_bytes + main.cache_bytes;
    printf("bandwidth bound on this machine (triad over %zu MiB, median of %d; at context %d)\n",
           bytes >> 20, TRIAD_REPEATS, BOUND_CONTEXT);
    for (int i = 0; i < (threads[1] > 1 ? 2 : 1); i++) {
        double bw = mtp_roofline_triad(threads[i], bytes, TRIAD_REPEATS);
        printf("  %d thread%s: triad %.1f GB/s -> decode >= %.2f ms per token (<= %.1f "
               "tokens/s)\n", threads[i], threads[i] > 1 ? "s" : "", bw * 1e-9,
               total / bw * 1e3, bw / total);
    }
}

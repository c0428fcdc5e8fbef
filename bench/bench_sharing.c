/*
 * bench_sharing.c - how many routed experts a verification of n real tokens
 * reads, against the expectation if tokens chose experts independently and
 * uniformly: E * (1 - (1 - K/E)^n) per MoE layer (each token picks K of E, so
 * an expert is missed by one token with probability 1 - K/E).
 *
 * That gap mixes two things: adjacent tokens sharing experts, which is what
 * would keep MoE verification cost below n separate decodes, and experts'
 * popularity, which makes any n tokens of real text overlap. The baseline that
 * separates them is n tokens of the same text drawn apart (no two adjacent,
 * positions drawn with a fixed seed), each routed in its own real context:
 * adjacent/apart is the adjacency effect, apart/independent the popularity.
 * With DeepSeek-V3's routing (K 8 of E 256) 8 independent tokens would touch
 * 57.8 experts, 7.2 times one token's.
 *
 * Random token ids route almost independently, so the walk uses real text: the
 * prompts of a dataset, tokenized and concatenated. For each n = 1..8 the
 * text after a prefilled context is walked in consecutive forwards of n tokens
 * (each one verification-shaped, with the true causal context in the cache),
 * and the distinct experts per MoE layer of every forward are averaged. The
 * n = 8 walk also records every token's routing (the engine's router_idx
 * trace); the apart tuples are drawn from that record (analysis/expert_sharing.h).
 */
#include <math.h>   /* defines: pow */
#include <stdio.h>  /* defines: printf, snprintf */
#include <stdlib.h> /* defines: free, realloc */
#include <string.h> /* defines: memcpy, strlen */

#include "analysis/expert_sharing.h"
#include "bench_sharing.h"
#include "engine/engine.h"
#include "core/error.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "experiments/dataset.h"

enum { SHARING_MAX_N = 8, SHARING_MAX_LAYERS = 256, SHARING_DRAWS = 4096, SHARING_SEED = 1 };

/* The routing of every token of a walk, filled by the engine's router_idx trace. */
struct route_record {
    int32_t *idx;        /* [tokens, layers, k], as struct mtp_routes */
    int tokens, layers, k, main_layers;
    int cursor;          /* walk position of the forward's first token */
    int slot_of[SHARING_MAX_LAYERS]; /* HF layer index -> MoE slot + 1 (0: none yet) */
    int slots;
};

static void record_routes(void *user, const char *name, int layer, const int32_t *data,
                          int rows, int cols)
{
    struct route_record *rr = user;
    if (strcmp(name, "router_idx") || layer < 0 || layer >= rr->main_layers ||
        layer >= SHARING_MAX_LAYERS)
        return;
    if (!rr->slot_of[layer] && rr->slots < rr->layers)
        rr->slot_of[layer] = ++rr->slots; /* MoE layers come in order in every forward */
    int slot = rr->slot_of[layer] - 1, k = cols < rr->k ? cols : rr->k;
    for (int r = 0; slot >= 0 && r < rows && rr->cursor + r < rr->tokens; r++)
        memcpy(rr->idx + ((size_t)(rr->cursor + r) * rr->layers + slot) * rr->k,
               data + (size_t)r * cols, sizeof *data * (size_t)k);
}

/* Token ids of the dataset's prompts, concatenated, until at least NEED. */
int mtp_bench_text_tokens(const char *model_dir, const char *path, int need, int32_t **out,
                          int *n_out)
{
    char tpath[4096];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", model_dir);
    struct mtp_tokenizer *tok = NULL;
    struct mtp_dataset ds = {0};
    int32_t *all = NULL;
    int n = 0, rc = mtp_tokenizer_load(tpath, &tok);
    if (!rc)
        rc = mtp_dataset_load(path, 0, &ds);
    for (int i = 0; !rc && i < ds.n_prompts && n < need; i++) {
        int32_t *ids = NULL;
        int m = 0;
        const char *t = ds.prompts[i].text;
        rc = mtp_tokenizer_encode(tok, t, strlen(t), false, &ids, &m);
        if (!rc) {
            all = realloc(all, sizeof *all * (size_t)(n + m));
            if (!all)
                rc = mtp_error_set("out of memory reading %s", path);
            else
                memcpy(all + n, ids, sizeof *ids * (size_t)m);
            n += m;
        }
        free(ids);
    }
    if (!rc && n < need)
        rc = mtp_error_set("%s: its prompts hold %d tokens, the bench needs %d "
                           "(use a larger dataset or a smaller --context)", path, n, need);
    mtp_dataset_free(&ds);
    mtp_tokenizer_free(tok);
    if (rc) {
        free(all);
        return MTP_ERR;
    }
    *out = all;
    *n_out = n;
    return MTP_OK;
}

/* Mean distinct experts per MoE layer over WINDOWS forwards of N tokens; RR,
 * if not NULL, records every token's routing. */
static int sharing_walk(struct mtp_engine *e, const int32_t *ids, int P, int n, int windows,
                        float *logits, struct route_record *rr, double *mean)
{
    int touched[SHARING_MAX_LAYERS], layers = 0, rc = MTP_OK;
    double sum = 0;
    if (mtp_engine_prefill(e, ids, P, logits, NULL))
        return MTP_ERR;
    if (rr)
        mtp_engine_set_trace(e, NULL, record_routes, rr);
    for (int w = 0; !rc && w < windows; w++) {
        int pos = P + w * n;
        if (rr)
            rr->cursor = w * n;
        rc = mtp_engine_forward(e, ids + pos, n, pos, logits, NULL);
        layers = rc ? 0 : mtp_engine_last_experts_touched(e, touched, SHARING_MAX_LAYERS);
        for (int l = 0; l < layers && l < SHARING_MAX_LAYERS; l++)
            sum += touched[l];
    }
    mtp_engine_set_trace(e, NULL, NULL, NULL);
    mtp_engine_truncate(e, 0, 0);
    if (rc)
        return rc;
    *mean = layers ? sum / ((double)windows * (layers < SHARING_MAX_LAYERS ? layers
                                                                            : SHARING_MAX_LAYERS))
                   : 0;
    return MTP_OK;
}

/* got[n-1], n = 1..8: the adjacent walks; the n = 8 one fills RR. */
static int sharing_adjacent(struct mtp_engine *e, const int32_t *ids, int context, int windows,
                            struct route_record *rr, double *got)
{
    float *logits = malloc(sizeof(float) * (size_t)SHARING_MAX_N *
                           mtp_engine_model(e)->cfg.vocab_size);
    int rc = logits ? MTP_OK : mtp_error_set("out of memory");
    for (int n = 1; !rc && n <= SHARING_MAX_N; n++)
        rc = sharing_walk(e, ids, context, n, windows, logits, n == SHARING_MAX_N ? rr : NULL,
                          &got[n - 1]);
    free(logits);
    if (!rc && rr->slots != rr->layers)
        rc = mtp_error_set("expert sharing: the router trace gave %d MoE layers, the engine "
                           "counts %d", rr->slots, rr->layers);
    return rc;
}

static void sharing_print(const char *dataset, int windows, int context, int E, int K,
                          const double *got, const double *apart)
{
    printf("experts touched per MoE layer by a verification of n real tokens (%s, %d forwards "
           "each after %d tokens of context), against n tokens of the same text drawn apart "
           "(no two adjacent, %d draws per n, seed %d, each token routed in its own context "
           "along the n = %d walk) and against independent uniform routing E(1-(1-K/E)^n), "
           "E %d, K %d:\n",
           dataset, windows, context, SHARING_DRAWS, SHARING_SEED, SHARING_MAX_N, E, K);
    printf("         adjacent (x one token's)    apart (x)        independent (x)   "
           "adjacent/apart  apart/independent\n");
    for (int n = 1; n <= SHARING_MAX_N; n++) {
        double indep = E * (1 - pow(1 - (double)K / E, n)), one = got[0] > 0 ? got[0] : 1;
        printf("  n = %d: %6.2f (x%.2f)            %6.2f (x%.2f)    %6.2f (x%.2f)     "
               "%.3f           %.3f\n",
               n, got[n - 1], got[n - 1] / one, apart[n - 1], apart[n - 1] / one, indep,
               indep / K, apart[n - 1] > 0 ? got[n - 1] / apart[n - 1] : 0,
               indep > 0 ? apart[n - 1] / indep : 0);
    }
    printf("  adjacent/apart below 1: neighbours share experts beyond their popularity; "
           "apart/independent below 1: popular experts\n");
}

int mtp_bench_expert_sharing(struct mtp_engine *e, const char *model_dir, const char *dataset,
                             int context, int windows)
{
    const struct mtp_config *c = &mtp_engine_model(e)->cfg;
    int layers = mtp_engine_num_moe_layers(e);
    if (layers == 0) {
        printf("expert sharing: the main model has no MoE layer\n");
        return MTP_OK;
    }
    if (SHARING_MAX_N * windows < 2 * SHARING_MAX_N - 1)
        return mtp_error_set("--windows %d: the apart baseline draws %d non-adjacent tokens "
                             "from the n = %d walk's %d x W tokens, so W must be at least 2",
                             windows, SHARING_MAX_N, SHARING_MAX_N, SHARING_MAX_N);
    int need = context + SHARING_MAX_N * windows, n_ids = 0;
    int32_t *ids = NULL;
    if (mtp_bench_text_tokens(model_dir, dataset, need, &ids, &n_ids))
        return MTP_ERR;
    struct route_record rr = {.tokens = SHARING_MAX_N * windows, .layers = layers,
                              .k = c->num_experts_per_tok, .main_layers = c->num_hidden_layers};
    rr.idx = malloc(sizeof *rr.idx * (size_t)rr.tokens * layers * rr.k);
    double got[SHARING_MAX_N], apart[SHARING_MAX_N];
    int rc = rr.idx ? sharing_adjacent(e, ids, context, windows, &rr, got)
                    : mtp_error_set("out of memory");
    struct mtp_routes routes = {.idx = rr.idx, .tokens = rr.tokens, .layers = layers,
                                .k = rr.k, .n_experts = c->n_routed_experts};
    for (int n = 1; !rc && n <= SHARING_MAX_N; n++)
        rc = mtp_routes_apart_mean(&routes, n, SHARING_DRAWS, SHARING_SEED, &apart[n - 1]);
    if (!rc)
        sharing_print(dataset, windows, context, c->n_routed_experts, c->num_experts_per_tok,
                      got, apart);
    free(rr.idx);
    free(ids);
    return rc;
}

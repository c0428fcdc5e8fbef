/*
 * bench_sharing.c - how many routed experts a verification of n real tokens
 * reads, against the expectation if tokens chose experts independently and
 * uniformly: E * (1 - (1 - K/E)^n) per MoE layer (each token picks K of E, so
 * an expert is missed by one token with probability 1 - K/E).
 *
 * The gap between the two measures how much adjacent tokens share experts,
 * which is what keeps MoE verification cost below n separate decodes: with
 * DeepSeek-V3's routing (K 8 of E 256) 8 independent tokens would touch 57.8
 * experts, 7.2 times one token's.
 *
 * Random token ids route almost independently, so the walk uses real text: the
 * prompts of a dataset, tokenized and concatenated. For each n = 1..8 the
 * text after a prefilled context is walked in consecutive forwards of n tokens
 * (each one verification-shaped, with the true causal context in the cache),
 * and the distinct experts per MoE layer of every forward are averaged.
 */
#include <math.h>   /* defines: pow */
#include <stdio.h>  /* defines: printf, snprintf */
#include <stdlib.h> /* defines: free, realloc */
#include <string.h> /* defines: memcpy, strlen */

#include "bench_sharing.h"
#include "engine/engine.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "experiments/dataset.h"

enum { SHARING_MAX_N = 8, SHARING_MAX_LAYERS = 256 };

/* Token ids of the dataset's prompts, concatenated, until at least NEED. */
static int sharing_tokens(const char *model_dir, const char *path, int need, int32_t **out,
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
        rc = mtp_error_set("%s: its prompts hold %d tokens, the expert-sharing walk needs %d "
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

/* Mean distinct experts per MoE layer over WINDOWS forwards of N tokens. */
static int sharing_walk(struct mtp_engine *e, const int32_t *ids, int P, int n, int windows,
                        float *logits, double *mean)
{
    int touched[SHARING_MAX_LAYERS], layers = 0;
    double sum = 0;
    if (mtp_engine_prefill(e, ids, P, logits, NULL))
        return MTP_ERR;
    for (int w = 0; w < windows; w++) {
        int pos = P + w * n;
        if (mtp_engine_forward(e, ids + pos, n, pos, logits, NULL))
            return MTP_ERR;
        layers = mtp_engine_last_experts_touched(e, touched, SHARING_MAX_LAYERS);
        for (int l = 0; l < layers && l < SHARING_MAX_LAYERS; l++)
            sum += touched[l];
    }
    mtp_engine_truncate(e, 0, 0);
    *mean = layers ? sum / ((double)windows * (layers < SHARING_MAX_LAYERS ? layers
                                                                            : SHARING_MAX_LAYERS))
                   : 0;
    return MTP_OK;
}

int mtp_bench_expert_sharing(struct mtp_engine *e, const char *model_dir, const char *dataset,
                             int context, int windows)
{
    const struct mtp_config *c = &mtp_engine_model(e)->cfg;
    if (mtp_engine_num_moe_layers(e) == 0) {
        printf("expert sharing: the main model has no MoE layer\n");
        return MTP_OK;
    }
    int need = context + SHARING_MAX_N * windows, n_ids = 0;
    int32_t *ids = NULL;
    if (sharing_tokens(model_dir, dataset, need, &ids, &n_ids))
        return MTP_ERR;
    float *logits = malloc(sizeof(float) * (size_t)SHARING_MAX_N * c->vocab_size);
    double E = c->n_routed_experts, K = c->num_experts_per_tok, one = 0;
    printf("experts touched per MoE layer by a verification of n real tokens (%s, %d forwards "
           "each after %d tokens of context), against independent uniform routing "
           "E(1-(1-K/E)^n), E %d, K %d:\n",
           dataset, windows, context, c->n_routed_experts, c->num_experts_per_tok);
    int rc = logits ? MTP_OK : mtp_error_set("out of memory");
    for (int n = 1; !rc && n <= SHARING_MAX_N; n++) {
        double got;
        rc = sharing_walk(e, ids, context, n, windows, logits, &got);
        if (rc)
            break;
        if (n == 1)
            one = got;
        double indep = E * (1 - pow(1 - K / E, n));
        printf("  n = %d: %6.2f experts (x%.2f one token's); independent %6.2f (x%.2f); "
               "measured/independent %.3f\n",
               n, got, one > 0 ? got / one : 0, indep, indep / K, indep > 0 ? got / indep : 0);
    }
    free(logits);
    free(ids);
    return rc;
}

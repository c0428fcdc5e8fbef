/*
 * bench_costs.c - the timed cases of the cost curve (bench_costs.h).
 *
 * Each case leaves the caches as it found them (truncating what it wrote), so
 * the cases can run in any order, which the interleaved loop needs.
 */
#include "bench_costs.h"

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */
#include <time.h>   /* defines: clock_gettime */

#include "core/error.h"
#include "engine/model.h"
#include "engine/sampling.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int mtp_bench_ctx_init(struct mtp_bench_ctx *ctx, struct mtp_engine *e, int P)
{
    const struct mtp_config *c = &mtp_engine_model(e)->cfg;
    int D = c->num_nextn_predict_layers, rows = P + MTP_BENCH_MAX_N;
    *ctx = (struct mtp_bench_ctx){.e = e, .c = c, .P = P};
    ctx->tokens = mtp_xmalloc(sizeof(int32_t) * (size_t)(rows + D + 1));
    uint64_t x = 0x9e3779b97f4a7c15ull; /* fixed pseudo-random ids */
    for (int i = 0; i < rows + D + 1; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ctx->tokens[i] = (int32_t)((x >> 33) % (uint64_t)c->vocab_size);
    }
    ctx->hid = mtp_xcalloc((size_t)D + 1, sizeof *ctx->hid);
    for (int k = 0; k <= D; k++) /* zeroed: rows past a module's cache are inputs too */
        ctx->hid[k] = mtp_xcalloc((size_t)rows * c->hidden_size, sizeof(float));
    ctx->logits = mtp_xmalloc(sizeof(float) * (size_t)MTP_BENCH_MAX_N * c->vocab_size);
    ctx->hrows = mtp_xmalloc(sizeof(float) * (size_t)MTP_BENCH_MAX_N * c->hidden_size);
    ctx->probs = mtp_xmalloc(sizeof(float) * (size_t)c->vocab_size);
    ctx->iwork = mtp_xmalloc(sizeof(int32_t) * (size_t)c->vocab_size);
    ctx->module_start = mtp_xcalloc((size_t)D + 1, sizeof(int));
    /* Draft vocabularies are optional here: a model without frequencies
     * still benches the rest, with a note. */
    for (int i = 0; i < MTP_BENCH_N_VOCABS && D > 0; i++)
        if (mtp_bench_draft_vocabs[i] < c->vocab_size &&
            mtp_engine_draft_vocab(e, mtp_bench_draft_vocabs[i], &ctx->dv[i])) {
            fprintf(stderr, "bench: no draft-vocabulary rows: %s\n", mtp_error_message());
            break;
        }
    return mtp_bench_ctx_prime(ctx);
}

int mtp_bench_ctx_prime(struct mtp_bench_ctx *ctx)
{
    struct mtp_engine *e = ctx->e;
    int P = ctx->P, D = ctx->c->num_nextn_predict_layers;
    if (mtp_engine_prefill(e, ctx->tokens, P, ctx->logits, ctx->hid[0]))
        return MTP_ERR;
    /* Module k over positions 0..P-1-k with true tokens and module k-1's
     * hidden, as exact drafting keeps it; its timed rows start 16 earlier so
     * that n = 1..16 rows read real inputs and end where a step's would. */
    for (int k = 1; k <= D; k++) {
        int n = P - k;
        if (n < MTP_BENCH_MAX_N + 1)
            return mtp_error_set("bench: --context %d is too short to time %d rows of MTP "
                                 "module %d; expected at least %d", P, MTP_BENCH_MAX_N, k,
                                 MTP_BENCH_MAX_N + 1 + k);
        if (mtp_engine_mtp_forward(e, k, ctx->tokens + k, ctx->hid[k - 1], n, 0, NULL,
                                   ctx->hid[k]))
            return MTP_ERR;
        ctx->module_start[k] = n - MTP_BENCH_MAX_N;
        mtp_engine_truncate(e, k, ctx->module_start[k]);
    }
    return MTP_OK;
}

void mtp_bench_ctx_free(struct mtp_bench_ctx *ctx)
{
    for (int k = 0; ctx->hid && k <= ctx->c->num_nextn_predict_layers; k++)
        free(ctx->hid[k]);
    free(ctx->hid);
    free(ctx->tokens);
    free(ctx->logits);
    free(ctx->hrows);
    free(ctx->probs);
    free(ctx->iwork);
    free(ctx->module_start);
}

/* A main forward of n tokens at position P (n = 1: a decode; n = K+1: the
 * verification of K drafts), cut back to P. */
int mtp_bench_run_forward(void *p, const struct mtp_bench_case *c, double *ns)
{
    struct mtp_bench_ctx *x = p;
    double t0 = now_ns();
    if (mtp_engine_forward(x->e, x->tokens + x->P, c->n, x->P, x->logits, NULL))
        return MTP_ERR;
    *ns = now_ns() - t0;
    int touched[256], layers = mtp_engine_last_experts_touched(x->e, touched, 256), sum = 0;
    for (int l = 0; l < layers && l < 256; l++)
        sum += touched[l];
    x->experts[c->n] = layers > 0 ? (double)sum / (layers < 256 ? layers : 256) : 0;
    mtp_engine_truncate(x->e, 0, x->P);
    return MTP_OK;
}

/* Module k over n rows from its start position (a draft when n = 1; the
 * catch-up rows of a step otherwise), cut back. */
int mtp_bench_run_module(void *p, const struct mtp_bench_case *c, double *ns)
{
    struct mtp_bench_ctx *x = p;
    int k = c->module, pos = x->module_start[k], d = x->c->hidden_size;
    double t0 = now_ns();
    if (mtp_engine_mtp_forward_last(x->e, k, x->tokens + pos + k,
                                    x->hid[k - 1] + (size_t)pos * d, c->n, pos, x->logits,
                                    x->hrows))
        return MTP_ERR;
    *ns = now_ns() - t0;
    mtp_engine_truncate(x->e, k, pos);
    return MTP_OK;
}

/* One draft of module k with its head over a draft vocabulary of c->n ids. */
static int run_module_vocab(void *p, const struct mtp_bench_case *c, double *ns)
{
    struct mtp_bench_ctx *x = p;
    int k = c->module, pos = x->module_start[k], d = x->c->hidden_size;
    const struct mtp_draft_vocab *dv = NULL;
    for (int i = 0; i < MTP_BENCH_N_VOCABS; i++)
        if (mtp_bench_draft_vocabs[i] == c->n)
            dv = x->dv[i];
    MTP_CHECK(dv != NULL);
    double t0 = now_ns();
    if (mtp_engine_mtp_forward_draft(x->e, k, dv, x->tokens + pos + k,
                                     x->hid[k - 1] + (size_t)pos * d, 1, pos, x->logits,
                                     x->hrows))
        return MTP_ERR;
    *ns = now_ns() - t0;
    mtp_engine_truncate(x->e, k, pos);
    return MTP_OK;
}

/* Choosing a token from one row of logits, as the decoder does it:
 * argmax (greedy acceptance, one per verified row), argmax + distribution
 * (a greedy draft keeps its q), softmax + sample at T = 1 (sampled drafts,
 * acceptance rows, the adaptive decoder's confidence). Mean of several rows. */
static int run_choose(void *p, const struct mtp_bench_case *c, double *ns)
{
    struct mtp_bench_ctx *x = p;
    int V = x->c->vocab_size;
    struct mtp_sampling greedy = {.temperature = 0, .top_p = 1}, t1 = {.temperature = 1, .top_p = 1};
    double t0 = now_ns();
    for (int r = 0; r < MTP_BENCH_ROW_REPS; r++) {
        const float *row = x->logits + (size_t)(r % MTP_BENCH_MAX_N) * V;
        if (c->n == 0)
            x->sink += mtp_sampling_argmax(row, V);
        else if (c->n == 1) {
            x->sink += mtp_sampling_argmax(row, V);
            mtp_sampling_probs(&greedy, row, V, x->probs, x->iwork);
        } else {
            mtp_sampling_probs(&t1, row, V, x->probs, x->iwork);
            x->sink += mtp_sampling_sample(x->probs, V, 0.5f);
        }
    }
    *ns = (now_ns() - t0) / MTP_BENCH_ROW_REPS;
    return MTP_OK;
}

/* The rollback after a step: truncate the main cache and a module's. */
static int run_update(void *p, const struct mtp_bench_case *c, double *ns)
{
    struct mtp_bench_ctx *x = p;
    (void)c;
    double t0 = now_ns();
    mtp_engine_truncate(x->e, 0, x->P);
    if (x->c->num_nextn_predict_layers > 0)
        mtp_engine_truncate(x->e, 1, x->module_start[1]);
    *ns = now_ns() - t0;
    return MTP_OK;
}

static void add(struct mtp_bench_case *v, int *n, const char *kind, int module, int rows,
                int (*run)(void *, const struct mtp_bench_case *, double *), const char *name)
{
    struct mtp_bench_case *c = &v[(*n)++];
    *c = (struct mtp_bench_case){.kind = kind, .module = module, .n = rows, .run = run};
    snprintf(c->name, sizeof c->name, "%s", name);
}

int mtp_bench_cost_cases(const struct mtp_bench_ctx *ctx, struct mtp_bench_case **out)
{
    int D = ctx->c->num_nextn_predict_layers, n = 0;
    struct mtp_bench_case *v = mtp_xcalloc(
        (size_t)(6 + MTP_BENCH_MAX_N * (D + 1) + MTP_BENCH_N_VOCABS * D), sizeof *v);
    char name[MTP_BENCH_NAME_CAP];
    add(v, &n, "decode", 0, 1, mtp_bench_run_forward, "decode");
    for (int i = 1; i <= MTP_BENCH_MAX_N; i++) {
        snprintf(name, sizeof name, "verify/n=%d", i);
        add(v, &n, "verify", 0, i, mtp_bench_run_forward, name);
    }
    for (int k = 1; k <= D; k++)
        for (int i = 1; i <= MTP_BENCH_MAX_N; i++) {
            snprintf(name, sizeof name, "draft/module=%d/n=%d", k, i);
            add(v, &n, "draft", k, i, mtp_bench_run_module, name);
        }
    add(v, &n, "choose", 0, 0, run_choose, "choose/argmax");
    add(v, &n, "choose", 0, 1, run_choose, "choose/argmax_probs");
    add(v, &n, "choose", 0, 2, run_choose, "choose/sampled");
    add(v, &n, "update", 0, 0, run_update, "update");
    for (int i = 0; i < MTP_BENCH_N_VOCABS; i++)
        for (int k = 1; ctx->dv[i] && k <= D; k++) {
            snprintf(name, sizeof name, "draft_vocab/module=%d/N=%d", k, mtp_bench_draft_vocabs[i]);
            add(v, &n, "draft_vocab", k, mtp_bench_draft_vocabs[i], run_module_vocab, name);
        }
    *out = v;
    return n;
}

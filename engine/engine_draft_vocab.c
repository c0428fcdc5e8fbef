/*
 * engine_draft_vocab.c - draft vocabularies on an engine (draft_vocab.h):
 * built on first use from the model directory's token frequencies, with each
 * module's subset head gathered and prepared on the backend once, then kept
 * until the engine is freed, so every decoder (and repeat) with the same N
 * shares them.
 */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */

#include "draft_vocab.h"
#include "engine_internal.h"
#include "../core/error.h"

static void draft_vocab_free(struct mtp_draft_vocab *dv)
{
    for (int i = 0; i < dv->n_own; i++)
        mtp_weight_gathered_free(&dv->own[i]);
    free(dv->own);
    free(dv->head);
    free(dv->ids);
    free(dv);
}

void mtp_engine_draft_vocabs_free(struct mtp_engine *e)
{
    while (e->draft_vocabs) {
        struct mtp_draft_vocab *next = e->draft_vocabs->next;
        draft_vocab_free(e->draft_vocabs);
        e->draft_vocabs = next;
    }
}

/* Subset heads for IDS: one gathered weight per distinct module head (the
 * shipped models' modules all share lm_head, so one weight). */
static int build_heads(struct mtp_engine *e, struct mtp_draft_vocab *dv)
{
    int D = e->model->cfg.num_nextn_predict_layers;
    dv->n_modules = D;
    dv->head = mtp_xcalloc((size_t)D + 1, sizeof *dv->head);
    dv->own = mtp_xcalloc((size_t)(D > 0 ? D : 1), sizeof *dv->own);
    const struct mtp_weight *src[MTP_MAX_DRAFT_HEADS];
    for (int k = 1; k <= D; k++) {
        const struct mtp_weight *h = mtp_model_module(e->model, k)->nextn.head;
        int j = 0;
        while (j < dv->n_own && src[j] != h)
            j++;
        if (j == dv->n_own) {
            MTP_CHECK(j < MTP_MAX_DRAFT_HEADS);
            char name[256];
            snprintf(name, sizeof name, "%s[draft_vocab %d]", h->name ? h->name : "head", dv->n);
            mtp_weight_gather_rows(h, dv->ids, dv->n, name, &dv->own[j]);
            if (e->be->prepare_weight(e->bctx, &dv->own[j]))
                return mtp_error_wrap("draft_vocab %d: preparing the subset head of MTP module "
                                      "%d on backend %s: ", dv->n, k, e->be->name);
            src[dv->n_own++] = h;
        }
        dv->head[k] = &dv->own[j];
    }
    return MTP_OK;
}

static struct mtp_draft_vocab *find(struct mtp_engine *e, int n)
{
    for (struct mtp_draft_vocab *dv = e->draft_vocabs; dv; dv = dv->next)
        if (dv->n == n)
            return dv;
    return NULL;
}

static int check_n(const struct mtp_engine *e, int n)
{
    int V = e->model->cfg.vocab_size;
    if (n < 1 || n > V)
        return mtp_error_set("draft_vocab must be in 1..%d (the model's vocab_size), got %d", V,
                             n);
    return MTP_OK;
}

int mtp_engine_draft_vocab_counts(struct mtp_engine *e, int n, const uint64_t *counts,
                                  const struct mtp_draft_vocab **out)
{
    *out = NULL;
    if (check_n(e, n))
        return MTP_ERR;
    if (find(e, n))
        return mtp_error_set("draft_vocab %d: already built on this engine", n);
    struct mtp_draft_vocab *dv = mtp_xcalloc(1, sizeof *dv);
    dv->n = n;
    dv->ids = mtp_xmalloc((size_t)n * sizeof *dv->ids);
    mtp_draft_vocab_rank(counts, e->model->cfg.vocab_size, n, dv->ids);
    if (build_heads(e, dv)) {
        draft_vocab_free(dv);
        return MTP_ERR;
    }
    dv->next = e->draft_vocabs;
    e->draft_vocabs = dv;
    *out = dv;
    return MTP_OK;
}

int mtp_engine_draft_vocab(struct mtp_engine *e, int n, const struct mtp_draft_vocab **out)
{
    *out = NULL;
    if (check_n(e, n))
        return MTP_ERR;
    if ((*out = find(e, n)))
        return MTP_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", e->model->dir, MTP_TOKEN_FREQ_FILE);
    uint64_t *counts;
    if (mtp_token_freq_load(path, e->model->cfg.vocab_size, &counts))
        return mtp_error_wrap("draft_vocab %d: ", n);
    int rc = mtp_engine_draft_vocab_counts(e, n, counts, out);
    free(counts);
    return rc;
}

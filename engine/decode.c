/*
 * decode.c - decoding sessions (decode.h): life cycle, prefill, the baseline
 * step, token emission with EOS / max_new_tokens, and the per-step records.
 * The speculative step is in decode_mtp.c, drafting in decode_draft.c.
 */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memset, memcpy */
#include <time.h>   /* defines: clock_gettime */

#include "decode_tree.h"
#include "../core/error.h"

uint64_t mtp_decode_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int mtp_decode_positions_needed(int n_prompt, int max_new_tokens, int depth)
{
    /* The sequence never exceeds n_prompt + max_new_tokens; a verify forward
     * writes up to depth + 1 positions from the pending one. */
    return n_prompt + max_new_tokens + depth + 1;
}

/* Depth against the model's modules, with the reason when they were dropped. */
static int check_depth(const struct mtp_decode_params *p, const struct mtp_model *m)
{
    int D = m->cfg.num_nextn_predict_layers;
    if (D == 0 && m->mtp_announced_absent > 0)
        return mtp_error_set("decode: %s: config.json announces %d MTP module(s) "
                             "(num_nextn_predict_layers) but the checkpoint has no tensor of "
                             "layer %d (transformers' save_pretrained drops them): MTP decoding "
                             "needs those weights; baseline decoding works",
                             m->dir, m->mtp_announced_absent, m->cfg.num_hidden_layers);
    if (p->drafting == MTP_DECODE_DRAFTING_EXACT && p->depth > D)
        return mtp_error_set("decode: exact drafting needs depth <= the model's %d MTP modules, "
                             "got depth %d (use chain drafting for deeper drafts)",
                             D, p->depth);
    int module = p->chain_module > 0 ? p->chain_module : 1;
    if (p->drafting == MTP_DECODE_DRAFTING_CHAIN && module > D)
        return mtp_error_set("decode: chain drafting with module %d, but the model has %d MTP "
                             "modules", module, D);
    return MTP_OK;
}

int mtp_decode_check(const struct mtp_engine *e, const struct mtp_decode_params *p)
{
    const struct mtp_sampling *s = &p->sampling;
    if (p->max_new_tokens < 1)
        return mtp_error_set("decode: max_new_tokens must be >= 1, got %d", p->max_new_tokens);
    if (!(s->temperature >= 0) || !(s->top_p > 0 && s->top_p <= 1) || s->top_k < 0)
        return mtp_error_set("decode: invalid sampling (temperature %g, top_p %g, top_k %d)",
                             s->temperature, s->top_p, s->top_k);
    if (p->tree.kind != MTP_TREE_NONE && p->draft_vocab > 0)
        return mtp_error_set("decode: draft_vocab is not supported with tree drafting (tree "
                             "drafts take their top-k candidates from the full head)");
    if (p->tree.kind != MTP_TREE_NONE)
        return mtp_decode_tree_check(e, p);
    if (p->drafting == MTP_DECODE_DRAFTING_NONE)
        return MTP_OK;
    if (p->depth < 1 || p->depth > MTP_DECODE_MAX_DEPTH)
        return mtp_error_set("decode: depth must be in 1..%d, got %d", MTP_DECODE_MAX_DEPTH,
                             p->depth);
    if (check_depth(p, mtp_engine_model(e)))
        return MTP_ERR;
    int limit = mtp_engine_max_invariant_tokens(e);
    if (limit > 0 && p->depth + 1 > limit)
        return mtp_error_set("decode: depth %d verifies %d tokens, but this backend keeps a "
                             "verification batch invariant only up to %d tokens (greedy "
                             "equality would not hold): use depth <= %d",
                             p->depth, p->depth + 1, limit, limit - 1);
    if (p->adaptive != MTP_DECODE_ADAPTIVE_OFF && p->drafting != MTP_DECODE_DRAFTING_CHAIN)
        return mtp_error_set("decode: adaptive depth needs chained drafting (exact drafting's "
                             "module caches assume every module runs every step)");
    if (p->adaptive != MTP_DECODE_ADAPTIVE_OFF &&
        !(p->adaptive_threshold >= 0 && p->adaptive_threshold <= 1))
        return mtp_error_set("decode: adaptive threshold must be in [0, 1], got %g",
                             p->adaptive_threshold);
    if (p->draft_hook && !mtp_sampling_is_greedy(s))
        return mtp_error_set("decode: a draft hook needs greedy sampling");
    int V = mtp_engine_model(e)->cfg.vocab_size;
    if (p->draft_vocab < 0 || p->draft_vocab > V)
        return mtp_error_set("decode: draft_vocab must be in 1..%d (the model's vocab_size) or "
                             "0 for the full vocabulary, got %d", V, p->draft_vocab);
    return MTP_OK;
}

int mtp_decode_create(struct mtp_engine *e, const struct mtp_decode_params *p,
                      struct mtp_decode **out)
{
    *out = NULL;
    const struct mtp_config *c = &mtp_engine_model(e)->cfg;
    if (mtp_decode_check(e, p))
        return MTP_ERR;
    const struct mtp_draft_vocab *dv = NULL;
    /* N = V selects every id: the full head is the same computation, cheaper. */
    if (p->drafting != MTP_DECODE_DRAFTING_NONE && p->draft_vocab > 0 &&
        p->draft_vocab < c->vocab_size && mtp_engine_draft_vocab(e, p->draft_vocab, &dv))
        return MTP_ERR;
    struct mtp_decode *d = mtp_xcalloc(1, sizeof *d);
    d->dv = dv;
    d->e = e;
    d->p = *p;
    mtp_wiring_resolve(&d->p.wiring, c);
    d->V = c->vocab_size;
    d->dm = c->hidden_size;
    d->D = c->num_nextn_predict_layers;
    d->K = p->drafting == MTP_DECODE_DRAFTING_NONE ? 0 : p->depth;
    if (p->tree.kind != MTP_TREE_NONE)
        d->K = mtp_tree_depth(&p->tree); /* buffers by depth; nodes in decode_tree.c */
    d->module = p->chain_module > 0 ? p->chain_module : 1;
    d->n_moe = mtp_engine_num_moe_layers(e);
    size_t V = (size_t)d->V, K = (size_t)d->K;
    d->hid = mtp_xcalloc((size_t)d->D + 1, sizeof *d->hid);
    d->draft_logits = mtp_xmalloc((K + 1) * V * sizeof(float));
    d->q = mtp_xmalloc((K + 1) * V * sizeof(float));
    d->p_target = mtp_xmalloc((K + 1) * V * sizeof(float));
    d->logits = mtp_xmalloc((K + 1) * V * sizeof(float));
    /* One module forward per step covers rows c_k..m-1: max(a + 1, k) <= K + 1
     * rows (decode_draft.c); the prompt is filled by the engine in chunks. */
    d->batch_cap = d->K + 1;
    d->batch_logits = mtp_xmalloc((size_t)d->batch_cap * V * sizeof(float));
    d->batch_tokens = mtp_xmalloc((size_t)d->batch_cap * sizeof(int32_t));
    d->work = mtp_xmalloc(V * sizeof(float));
    d->iwork = mtp_xmalloc(V * sizeof(int32_t));
    if (p->tree.kind != MTP_TREE_NONE)
        mtp_decode_tree_create(d);
    *out = d;
    return MTP_OK;
}

static void free_result_arrays(struct mtp_decode_result *r)
{
    free(r->output);
    free(r->from_draft);
    free(r->accepted);
    free(r->accepted_uncut);
    free(r->emitted);
    free(r->drafted);
    free(r->draft_ns);
    free(r->verify_ns);
    free(r->accept_ns);
    free(r->update_ns);
    free(r->experts_touched);
    free(r->tree_nodes);
    free(r->tree_node);
    free(r->tree_ranks);
    memset(r, 0, sizeof *r);
}

void mtp_decode_result_free(struct mtp_decode_result *r)
{
    if (r)
        free_result_arrays(r);
}

static void free_positions(struct mtp_decode *d)
{
    for (int k = 0; k <= d->D; k++) {
        free(d->hid[k]);
        d->hid[k] = NULL;
    }
    free(d->seq);
    d->seq = NULL;
}

void mtp_decode_free(struct mtp_decode *d)
{
    if (!d)
        return;
    free_positions(d);
    free(d->hid);
    free(d->draft_logits);
    free(d->q);
    free(d->p_target);
    free(d->logits);
    free(d->batch_logits);
    free(d->batch_tokens);
    free(d->work);
    free(d->iwork);
    mtp_decode_tree_free(d);
    mtp_decode_work_free(&d->batch_work);
    free_result_arrays(&d->r);
    free(d);
}

const struct mtp_decode_result *mtp_decode_result(const struct mtp_decode *d) { return &d->r; }

const int32_t *mtp_decode_sequence(const struct mtp_decode *d, int *n)
{
    *n = d->n_seq;
    return d->seq;
}

int mtp_decode_last_drafts(const struct mtp_decode *d, int32_t *drafts, int cap)
{
    for (int i = 0; i < d->last_K && i < cap; i++)
        drafts[i] = d->drafts[i];
    return d->last_K;
}

const float *mtp_decode_last_draft_logits(const struct mtp_decode *d, int k)
{
    if (k < 1 || k > d->last_K)
        return NULL;
    return d->draft_logits + (size_t)(k - 1) * d->V;
}

int32_t mtp_decode_choose(struct mtp_decode *d, const float *logits, float *probs)
{
    if (mtp_sampling_is_greedy(&d->p.sampling)) {
        int32_t t = mtp_sampling_argmax(logits, d->V);
        if (probs)
            mtp_sampling_probs(&d->p.sampling, logits, d->V, probs, d->iwork);
        return t;
    }
    float *pr = probs ? probs : d->work;
    mtp_sampling_probs(&d->p.sampling, logits, d->V, pr, d->iwork);
    return mtp_sampling_sample(pr, d->V, mtp_rng_uniform(&d->p.rng));
}

bool mtp_decode_emit(struct mtp_decode *d, int32_t token, bool from_draft)
{
    struct mtp_decode_result *r = &d->r;
    MTP_CHECK(r->n_output < d->p.max_new_tokens && d->n_seq < d->cap_pos);
    d->seq[d->n_seq++] = token;
    r->from_draft[r->n_output] = from_draft;
    r->output[r->n_output++] = token;
    if (d->p.eos_token_id >= 0 && token == d->p.eos_token_id)
        r->stop = MTP_DECODE_STOP_EOS;
    else if (r->n_output >= d->p.max_new_tokens)
        r->stop = MTP_DECODE_STOP_MAX_TOKENS;
    return r->stop != MTP_DECODE_STOP_NONE;
}

static void *grow(void *p, int cap, size_t elem) { return mtp_xrealloc(p, (size_t)cap * elem); }

int mtp_decode_step_begin(struct mtp_decode *d)
{
    struct mtp_decode_result *r = &d->r;
    if (r->n_steps == r->capacity) {
        int cap = r->capacity ? 2 * r->capacity : 64;
        r->accepted = grow(r->accepted, cap, sizeof(int32_t));
        r->accepted_uncut = grow(r->accepted_uncut, cap, sizeof(int32_t));
        r->emitted = grow(r->emitted, cap, sizeof(int32_t));
        r->drafted = grow(r->drafted, cap, sizeof(int32_t));
        r->draft_ns = grow(r->draft_ns, cap, sizeof(uint64_t));
        r->verify_ns = grow(r->verify_ns, cap, sizeof(uint64_t));
        r->accept_ns = grow(r->accept_ns, cap, sizeof(uint64_t));
        r->update_ns = grow(r->update_ns, cap, sizeof(uint64_t));
        r->experts_touched =
            grow(r->experts_touched, cap, (size_t)(d->n_moe > 0 ? d->n_moe : 1) * sizeof(int32_t));
        if (d->tree) {
            r->tree_nodes = grow(r->tree_nodes, cap, sizeof(int32_t));
            r->tree_node = grow(r->tree_node, cap, sizeof(int32_t));
            r->tree_ranks = grow(r->tree_ranks, cap, (size_t)(d->K > 0 ? d->K : 1) * sizeof(int32_t));
        }
        r->capacity = cap;
    }
    int s = r->n_steps++;
    r->accepted[s] = r->accepted_uncut[s] = r->emitted[s] = r->drafted[s] = 0;
    r->draft_ns[s] = r->verify_ns[s] = r->accept_ns[s] = r->update_ns[s] = 0;
    for (int l = 0; l < d->n_moe; l++)
        r->experts_touched[(size_t)s * d->n_moe + l] = 0;
    return s;
}

/* Drafts one step may write past the pending position: the depth, or a
 * tree's node count. */
int mtp_decode_step_drafts(const struct mtp_decode *d)
{
    return d->tree ? mtp_tree_max_candidates(&d->p.tree) : d->K;
}

/* Host arrays by position for a request of N_PROMPT tokens; reset the result.
 * With KEEP the sequence, the hidden rows and the caches stay (the next turn
 * of a conversation, decode_continue.c): the arrays only grow. */
void mtp_decode_reset_request(struct mtp_decode *d, int n_prompt, bool keep)
{
    if (!keep)
        free_positions(d);
    free_result_arrays(&d->r);
    d->cap_pos = mtp_decode_positions_needed(n_prompt, d->p.max_new_tokens,
                                             mtp_decode_step_drafts(d));
    d->seq = mtp_xrealloc(d->seq, (size_t)d->cap_pos * sizeof(int32_t));
    size_t hid_bytes = (size_t)d->cap_pos * d->dm * sizeof(float);
    if (d->p.drafting == MTP_DECODE_DRAFTING_EXACT)
        for (int k = 0; k <= d->K; k++)
            d->hid[k] = mtp_xrealloc(d->hid[k], hid_bytes);
    if (d->p.drafting == MTP_DECODE_DRAFTING_CHAIN) {
        d->hid[0] = mtp_xrealloc(d->hid[0], hid_bytes);
        d->hid[d->module] = mtp_xrealloc(d->hid[d->module], hid_bytes);
    }
    d->r.n_prompt = n_prompt;
    d->r.n_moe_layers = d->n_moe;
    d->r.tree_depth = d->tree ? d->K : 0;
    d->r.output = mtp_xmalloc((size_t)d->p.max_new_tokens * sizeof(int32_t));
    d->r.from_draft = mtp_xcalloc((size_t)d->p.max_new_tokens, 1);
    d->last_K = 0;
    if (keep)
        return;
    d->n_seq = 0;
    for (int k = 0; k <= d->D; k++)
        mtp_engine_seq_truncate(d->e, d->seq_id, k, 0);
}

/* The request must fit the engine before anything is sized by it: ids in the
 * vocabulary (the embedding has no other rows), positions within capacity
 * (computed in 64 bits: max_new_tokens near INT_MAX must not wrap). */
int mtp_decode_check_request(const struct mtp_decode *d, const int32_t *prompt, int n)
{
    for (int i = 0; i < n; i++)
        if (prompt[i] < 0 || prompt[i] >= d->V)
            return mtp_error_set("decode: prompt token %d (position %d) is outside the "
                                 "vocabulary; expected 0 <= id < %d", prompt[i], i, d->V);
    long long need = (long long)n + d->p.max_new_tokens + mtp_decode_step_drafts(d) + 1;
    if (need > mtp_engine_max_positions(d->e))
        return mtp_error_set("decode: prompt %d + max_new_tokens %d + depth %d + 1 = %lld "
                             "positions; expected at most the engine's %d", n,
                             d->p.max_new_tokens, mtp_decode_step_drafts(d), need,
                             mtp_engine_max_positions(d->e));
    return MTP_OK;
}

int mtp_decode_prefill(struct mtp_decode *d, const int32_t *prompt, int n)
{
    if (n < 1)
        return mtp_error_set("decode: the prompt is empty");
    if (mtp_decode_check_request(d, prompt, n))
        return MTP_ERR;
    mtp_decode_reset_request(d, n, false);
    memcpy(d->seq, prompt, (size_t)n * sizeof(int32_t));
    d->n_seq = n;
    /* The engine is borrowed: another session may have left other conventions. */
    mtp_engine_set_mtp_wiring(d->e, &d->p.wiring);
    uint64_t t0 = mtp_decode_now_ns();
    if (mtp_engine_seq_prefill(d->e, d->seq_id, prompt, n, d->logits, d->hid[0]))
        return mtp_error_wrap("decode: prefill of %d tokens: ", n);
    if (d->K > 0 && mtp_decode_prefill_modules(d))
        return MTP_ERR;
    d->r.prefill_ns = mtp_decode_now_ns() - t0;
    mtp_decode_emit(d, mtp_decode_choose(d, d->logits, NULL), false);
    d->r.ttft_ns = mtp_decode_now_ns() - t0;
    d->r.total_ns = d->r.ttft_ns;
    return MTP_OK;
}

/* Baseline: run seq[m] at position m, choose seq[m+1] from its logits. */
static int step_baseline(struct mtp_decode *d)
{
    int s = mtp_decode_step_begin(d);
    uint64_t t0 = mtp_decode_now_ns();
    if (mtp_decode_verify_sessions(&d, &s, 1, &d->batch_work, NULL))
        return MTP_ERR;
    d->r.verify_ns[s] = mtp_decode_now_ns() - t0;
    mtp_decode_finish_baseline(d, s);
    return MTP_OK;
}

int mtp_decode_step(struct mtp_decode *d, bool *done)
{
    *done = d->r.stop != MTP_DECODE_STOP_NONE;
    if (*done)
        return MTP_OK;
    if (d->n_seq == 0)
        return mtp_error_set("decode: step before prefill");
    uint64_t t0 = mtp_decode_now_ns();
    int rc = d->tree || d->K > 0 ? mtp_decode_step_mtp(d) : step_baseline(d);
    d->r.total_ns += mtp_decode_now_ns() - t0;
    *done = d->r.stop != MTP_DECODE_STOP_NONE;
    return rc;
}

int mtp_decode_run(struct mtp_engine *e, const struct mtp_decode_params *p,
                   const int32_t *prompt, int n, struct mtp_decode_result *out)
{
    memset(out, 0, sizeof *out);
    struct mtp_decode *d;
    if (mtp_decode_create(e, p, &d))
        return MTP_ERR;
    int rc = mtp_decode_prefill(d, prompt, n);
    bool done = false;
    while (rc == MTP_OK && !done)
        rc = mtp_decode_step(d, &done);
    if (rc == MTP_OK) {
        *out = d->r;
        memset(&d->r, 0, sizeof d->r);
    }
    mtp_decode_free(d);
    return rc;
}

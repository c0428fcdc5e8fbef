/*
 * engine.c - the model on a backend: life cycle, latent caches, and the
 * forward entry points (main model, prefill, MTP modules). The per-block math
 * lives in forward.c.
 *
 * Every forward is a batch of segments (engine.h) set up by begin_forward;
 * the single-sequence entry points pass one segment of sequence 0. Long
 * inputs are processed in chunks of at most max_batch tokens: causal
 * attention over the cache makes chunk boundaries invisible in the results.
 */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memcpy, strcmp */
#include <unistd.h> /* defines: sysconf */

#include "draft_vocab.h"
#include "engine_internal.h"
#include "../core/error.h"

static int max_int(int a, int b) { return a > b ? a : b; }

static void *be_alloc(struct mtp_engine *e, size_t bytes) { return e->be->alloc(e->bctx, bytes); }

static void scratch_alloc(struct mtp_engine *e)
{
    const struct mtp_config *c = &e->model->cfg;
    size_t B = (size_t)e->opt.max_batch, f = sizeof(float);
    int k = c->num_experts_per_tok > 0 ? c->num_experts_per_tok : 1;
    e->s.x = be_alloc(e, B * c->hidden_size * f);
    e->s.xn = be_alloc(e, B * c->hidden_size * f);
    e->s.tmp = be_alloc(e, B * c->hidden_size * f);
    e->s.q_lat = be_alloc(e, B * max_int(c->q_lora_rank, 1) * f);
    e->s.q = be_alloc(e, B * c->num_attention_heads * mtp_config_qk_head_dim(c) * f);
    e->s.attn = be_alloc(e, B * c->num_attention_heads * c->v_head_dim * f);
    e->s.cat = be_alloc(e, B * 2 * c->hidden_size * f);
    e->s.kv = be_alloc(e, B * e->cache_width * f);
    e->s.logits = be_alloc(e, B * c->vocab_size * f);
    /* One routing slice per main-model MoE layer: the experts touched are
     * counted from one download after the forward (forward.c). */
    size_t slices = (size_t)max_int(e->n_moe_main, 1);
    e->s.idx = be_alloc(e, slices * B * k * sizeof(int32_t));
    e->s.weights = be_alloc(e, B * k * f);
    int row = max_int(max_int(c->vocab_size, 2 * c->hidden_size), e->cache_width);
    e->host_rows = mtp_xmalloc(B * row * f);
    e->host_idx = mtp_xmalloc(slices * B * k * sizeof(int32_t));
    e->fw.pos = mtp_xmalloc(B * sizeof(int32_t));
}

static void scratch_free(struct mtp_engine *e)
{
    void *bufs[] = {e->s.x,    e->s.xn,  e->s.tmp,    e->s.q_lat, e->s.q,      e->s.attn,
                    e->s.cat,  e->s.kv,  e->s.logits, e->s.idx,   e->s.weights};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            e->be->release(e->bctx, bufs[i]);
    free(e->host_rows);
    free(e->host_idx);
    free(e->fw.pos);
}

/* Every parameter of one layer, for prepare_weight. */
static int prepare_ffn(struct mtp_engine *e, struct mtp_ffn *f)
{
    if (e->be->prepare_weight(e->bctx, &f->gate) || e->be->prepare_weight(e->bctx, &f->up) ||
        e->be->prepare_weight(e->bctx, &f->down))
        return MTP_ERR;
    return MTP_OK;
}

static int prepare_layer(struct mtp_engine *e, struct mtp_layer *l)
{
    const struct mtp_config *c = &e->model->cfg;
    struct mtp_weight *ws[16];
    int nw = 0;
    ws[nw++] = &l->attn_norm;
    ws[nw++] = &l->ffn_norm;
    if (c->q_lora_rank > 0) {
        ws[nw++] = &l->attn.q_a;
        ws[nw++] = &l->attn.q_a_norm;
        ws[nw++] = &l->attn.q_b;
    } else {
        ws[nw++] = &l->attn.q;
    }
    ws[nw++] = &l->attn.kv_a;
    ws[nw++] = &l->attn.kv_a_norm;
    ws[nw++] = &l->attn.kv_b;
    ws[nw++] = &l->attn.o;
    if (l->is_mtp) {
        ws[nw++] = &l->nextn.enorm;
        ws[nw++] = &l->nextn.hnorm;
        ws[nw++] = &l->nextn.eh_proj;
        ws[nw++] = &l->nextn.head_norm;
        if (l->nextn.embed == &l->nextn.own_embed)
            ws[nw++] = &l->nextn.own_embed;
        if (l->nextn.head == &l->nextn.own_head)
            ws[nw++] = &l->nextn.own_head;
    }
    for (int i = 0; i < nw; i++)
        if (e->be->prepare_weight(e->bctx, ws[i]))
            return MTP_ERR;
    if (l->kind == MTP_LAYER_DENSE)
        return prepare_ffn(e, &l->dense);
    if (e->be->prepare_weight(e->bctx, &l->moe.router))
        return MTP_ERR;
    if (l->moe.score_bias.data && e->be->prepare_weight(e->bctx, &l->moe.score_bias))
        return MTP_ERR;
    if (l->moe.has_shared && prepare_ffn(e, &l->moe.shared))
        return MTP_ERR;
    for (int x = 0; x < c->n_routed_experts; x++)
        if (prepare_ffn(e, &l->moe.experts[x]))
            return MTP_ERR;
    return MTP_OK;
}

static int prepare_weights(struct mtp_engine *e)
{
    struct mtp_model *m = e->model;
    if (e->be->prepare_weight(e->bctx, &m->embed) ||
        e->be->prepare_weight(e->bctx, &m->final_norm))
        return MTP_ERR;
    if (m->lm_head.data != m->embed.data && e->be->prepare_weight(e->bctx, &m->lm_head))
        return MTP_ERR;
    if (m->lm_head.data == m->embed.data)
        m->lm_head.device = m->embed.device;
    for (int i = 0; i < m->n_layers; i++)
        if (prepare_layer(e, &m->layers[i]))
            return mtp_error_wrap("preparing layer %d for backend %s: ", i, e->be->name);
    return MTP_OK;
}

static void init_static_params(struct mtp_engine *e)
{
    const struct mtp_config *c = &e->model->cfg;
    e->rope.dim = c->qk_rope_head_dim;
    mtp_config_rope_inv_freq(c, e->rope.inv_freq, &e->rope.cos_sin_scale);
    e->mla = (struct mtp_mla_dims){
        .n_heads = c->num_attention_heads,
        .nope = c->qk_nope_head_dim,
        .rope = c->qk_rope_head_dim,
        .v = c->v_head_dim,
        .kv_lora = c->kv_lora_rank,
        .scale = (float)mtp_config_softmax_scale(c),
    };
    e->route = (struct mtp_route_params){
        .scoring = c->scoring_func,
        .method = c->topk_method,
        .n_experts = c->n_routed_experts,
        .top_k = c->num_experts_per_tok,
        .n_group = c->n_group,
        .topk_group = c->topk_group,
        .norm_topk_prob = c->norm_topk_prob,
        .routed_scaling_factor = (float)c->routed_scaling_factor,
    };
    e->cache_width = mtp_config_cache_width(c);
    for (int i = 0; i < c->num_hidden_layers; i++)
        if (mtp_config_layer_is_moe(c, i))
            e->n_moe_main++;
}

size_t mtp_engine_seq_cache_bytes(const struct mtp_model *model, int max_positions)
{
    return (size_t)model->n_layers * (size_t)max_positions *
           (size_t)mtp_config_cache_width(&model->cfg) * sizeof(float);
}

/* The caches of max_seqs sequences must fit before any is allocated: on the
 * CPU backend they live in host memory, checked against the machine's
 * physical memory (a CUDA allocation failure is reported by the backend). */
static int check_cache_memory(const struct mtp_engine *e)
{
    size_t per_seq = mtp_engine_seq_cache_bytes(e->model, e->opt.max_positions);
    double need = (double)per_seq * e->n_seqs;
    if (strcmp(e->be->name, "cpu") != 0)
        return MTP_OK;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    double have = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
    if (have > 0 && need > have)
        return mtp_error_set("engine: the latent caches of %d sequences need %.0f bytes (%zu per "
                             "sequence: %d layers x %d positions x %d floats); this machine has "
                             "%.0f bytes of memory (lower the batch size or max_positions)",
                             e->n_seqs, need, per_seq, e->model->n_layers, e->opt.max_positions,
                             e->cache_width, have);
    return MTP_OK;
}

/* The caches of sequence SEQ: one per layer, main and MTP. */
static void seq_caches_alloc(struct mtp_engine *e, struct mtp_seq_caches *q)
{
    const struct mtp_model *m = e->model;
    q->cache = mtp_xcalloc((size_t)m->n_layers, sizeof *q->cache);
    for (int i = 0; i < m->n_layers; i++)
        q->cache[i] = be_alloc(e, (size_t)e->opt.max_positions * e->cache_width * sizeof(float));
    q->len = mtp_xcalloc((size_t)m->cfg.num_nextn_predict_layers + 1, sizeof(int));
}

static void seq_caches_free(struct mtp_engine *e, struct mtp_seq_caches *q)
{
    for (int i = 0; q->cache && i < e->model->n_layers; i++)
        e->be->release(e->bctx, q->cache[i]);
    free(q->cache);
    free(q->len);
}

int mtp_engine_create(struct mtp_model *model, struct mtp_backend *backend,
                      const struct mtp_engine_options *opt, struct mtp_engine **out)
{
    *out = NULL;
    if (opt->max_positions < 1 || opt->max_batch < 1)
        return mtp_error_set("engine: max_positions (%d) and max_batch (%d) must be >= 1",
                             opt->max_positions, opt->max_batch);
    if (opt->max_seqs < 0)
        return mtp_error_set("engine: max_seqs %d; expected 0 (one sequence) or more",
                             opt->max_seqs);
    if (opt->main_layers < 0 || opt->main_layers > model->cfg.num_hidden_layers)
        return mtp_error_set("engine: main_layers %d; expected 0 (all) to %d", opt->main_layers,
                             model->cfg.num_hidden_layers);
    struct mtp_engine *e = mtp_xcalloc(1, sizeof *e);
    e->model = model;
    e->backend = backend;
    e->be = backend->iface;
    e->bctx = backend->ctx;
    e->opt = *opt;
    e->n_seqs = opt->max_seqs > 0 ? opt->max_seqs : 1;
    init_static_params(e);
    if (check_cache_memory(e) || prepare_weights(e)) {
        free(e);
        return MTP_ERR;
    }
    scratch_alloc(e);
    e->seqs = mtp_xcalloc((size_t)e->n_seqs, sizeof *e->seqs);
    for (int q = 0; q < e->n_seqs; q++)
        seq_caches_alloc(e, &e->seqs[q]);
    e->experts_touched = mtp_xcalloc((size_t)max_int(e->n_moe_main, 1), sizeof(int));
    e->seg_touched = mtp_xcalloc((size_t)e->n_seqs * max_int(e->n_moe_main, 1), sizeof(int));
    e->expert_seen = mtp_xcalloc((size_t)max_int(model->cfg.n_routed_experts, 1), 1);
    *out = e;
    return MTP_OK;
}

void mtp_engine_free(struct mtp_engine *e)
{
    if (!e)
        return;
    scratch_free(e);
    mtp_engine_draft_vocabs_free(e);
    for (int q = 0; q < e->n_seqs; q++)
        seq_caches_free(e, &e->seqs[q]);
    free(e->seqs);
    free(e->experts_touched);
    free(e->seg_touched);
    free(e->expert_seen);
    free(e);
}

const struct mtp_model *mtp_engine_model(const struct mtp_engine *e) { return e->model; }

int mtp_engine_max_positions(const struct mtp_engine *e) { return e->opt.max_positions; }

int mtp_engine_max_seqs(const struct mtp_engine *e) { return e->n_seqs; }

void mtp_engine_set_trace(struct mtp_engine *e, mtp_trace_fn fn, mtp_trace_i32_fn fn_i32,
                          void *user)
{
    e->trace = fn;
    e->trace_i32 = fn_i32;
    e->trace_user = user;
}

void mtp_engine_trace(struct mtp_engine *e, const char *name, int layer, const float *data,
                      int rows, int cols, int stride)
{
    if (!e->trace)
        return;
    for (int r = 0; r < rows; r++)
        e->be->download(e->bctx, e->host_rows + (size_t)r * cols, data + (size_t)r * stride,
                        (size_t)cols * sizeof(float));
    e->trace(e->trace_user, name, layer, e->host_rows, rows, cols);
}

/* Checks shared by every forward: the cache of MODULE of sequence SEQ must
 * already hold start_pos positions and have room for n more. */
static int check_positions(const struct mtp_engine *e, int seq, int module, int n, int start_pos)
{
    int len = e->seqs[seq].len[module];
    if (n < 0 || start_pos < 0)
        return mtp_error_set("engine: invalid forward of %d tokens at position %d", n, start_pos);
    if (start_pos > len)
        return mtp_error_set("engine: forward at position %d but cache %d holds only %d positions",
                             start_pos, module, len);
    if (start_pos + n > e->opt.max_positions)
        return mtp_error_set("engine: positions up to %d exceed the cache capacity %d "
                             "(raise max_positions)",
                             start_pos + n, e->opt.max_positions);
    return MTP_OK;
}

/* Segment I of a batch: a sequence not used by an earlier segment, tokens
 * that fit its cache, and (tree-shaped) a valid tree batch. */
static int check_segment(const struct mtp_engine *e, int module, const struct mtp_segment *segs,
                         int i)
{
    const struct mtp_segment *g = &segs[i];
    if (g->seq < 0 || g->seq >= e->n_seqs || g->n < 1)
        return mtp_error_set("engine: batch segment %d: sequence %d with %d tokens; expected a "
                             "sequence in 0..%d and at least one token",
                             i, g->seq, g->n, e->n_seqs - 1);
    for (int j = 0; j < i; j++)
        if (segs[j].seq == g->seq)
            return mtp_error_set("engine: batch segments %d and %d are both of sequence %d", j,
                                 i, g->seq);
    if (g->tree && mtp_tree_batch_check(e, g->n, g->tree))
        return mtp_error_wrap("engine: batch segment %d (sequence %d): ", i, g->seq);
    if (check_positions(e, g->seq, module, g->n, mtp_segment_first_row(g)))
        return mtp_error_wrap("engine: batch segment %d (sequence %d): ", i, g->seq);
    return MTP_OK;
}

/* Validate a batch for MODULE and make it the forward in flight: e->fw with
 * every token's RoPE position. */
static int begin_forward(struct mtp_engine *e, int module, const struct mtp_segment *segs,
                         int n_segs)
{
    if (n_segs < 1 || n_segs > e->n_seqs)
        return mtp_error_set("engine: a batch of %d segments; expected 1..%d (max_seqs)", n_segs,
                             e->n_seqs);
    int n = 0;
    for (int i = 0; i < n_segs; i++) {
        if (check_segment(e, module, segs, i))
            return MTP_ERR;
        n += segs[i].n;
    }
    if (n > e->opt.max_batch)
        return mtp_error_set("engine: a batch of %d tokens exceeds max_batch %d", n,
                             e->opt.max_batch);
    e->fw = (struct mtp_fwd){.n = n, .n_segs = n_segs, .segs = segs, .pos = e->fw.pos};
    int t = 0;
    for (int i = 0; i < n_segs; i++)
        for (int j = 0; j < segs[i].n; j++)
            e->fw.pos[t++] = segs[i].tree ? segs[i].tree->pos[j] : segs[i].start_pos + j;
    return MTP_OK;
}

/* After a forward of MODULE: each segment's cache ends after its last row. */
static void end_forward(struct mtp_engine *e, int module)
{
    for (int i = 0; i < e->fw.n_segs; i++) {
        const struct mtp_segment *g = &e->fw.segs[i];
        e->seqs[g->seq].len[module] = mtp_segment_first_row(g) + g->n;
    }
}

/* Final norm into s.xn, then hidden and logits to the host. */
static void emit_outputs(struct mtp_engine *e, const struct mtp_weight *norm,
                         const struct mtp_weight *head, int n, float *logits, float *hidden)
{
    const struct mtp_config *c = &e->model->cfg;
    int d = c->hidden_size;
    e->be->rmsnorm(e->bctx, e->s.x, d, norm, n, d, (float)c->rms_norm_eps, e->s.xn, d);
    mtp_engine_diag_stage(e, e->s.xn, n, d, "%s", norm->name);
    if (hidden)
        e->be->download(e->bctx, hidden, e->s.xn, (size_t)n * d * sizeof(float));
    if (logits) {
        e->be->matmul(e->bctx, head, e->s.xn, d, n, e->s.logits, c->vocab_size);
        e->be->download(e->bctx, logits, e->s.logits, (size_t)n * c->vocab_size * sizeof(float));
    }
}

/* The main model over the forward in flight (at most max_batch tokens). */
static void main_chunk(struct mtp_engine *e, const int32_t *tokens, float *logits, float *hidden)
{
    const struct mtp_model *m = e->model;
    int d = m->cfg.hidden_size, n = e->fw.n;
    e->be->embed(e->bctx, &m->embed, tokens, n, e->s.x);
    mtp_engine_diag_stage(e, e->s.x, n, d, "%s", m->embed.name);
    int moe = 0, layers = e->opt.main_layers > 0 ? e->opt.main_layers : m->cfg.num_hidden_layers;
    for (int l = 0; l < layers; l++) {
        const struct mtp_layer *layer = &m->layers[l];
        mtp_forward_block(e, layer, layer->kind == MTP_LAYER_MOE ? moe++ : -1);
        mtp_engine_diag_stage(e, e->s.x, n, d, "model.layers.%d (main model layer %d)", l, l);
    }
    mtp_forward_count_experts(e, moe);
    emit_outputs(e, &m->final_norm, &m->lm_head, n, logits, hidden);
    mtp_engine_trace(e, "hidden", -1, e->s.xn, n, m->cfg.hidden_size, m->cfg.hidden_size);
}

/* After a main chunk: LOGITS [logit_rows, V] and HIDDEN [n, d] (host, either
 * may be NULL) must be finite; if not, rerun the chunk to locate the cause. */
static int check_main_chunk(struct mtp_engine *e, const int32_t *tokens, const float *logits,
                            int logit_rows, const float *hidden)
{
    const struct mtp_config *c = &e->model->cfg;
    int n = e->fw.n;
    struct mtp_nonfinite bad;
    if (mtp_finite_rows(logits, logit_rows, c->vocab_size, "logits", &bad) &&
        mtp_finite_rows(hidden, n, c->hidden_size, "hidden state", &bad))
        return MTP_OK;
    if (logits && logit_rows < n) /* prefill: only the last row has logits */
        bad.row += n - logit_rows;
    mtp_engine_diag_begin(e);
    main_chunk(e, tokens, NULL, NULL);
    return mtp_engine_nonfinite_error(e, "main model", &bad, e->model->lm_head.name);
}

/* One validated batch of the main model, outputs checked, cache lengths set. */
static int main_batch(struct mtp_engine *e, const int32_t *tokens, const struct mtp_segment *segs,
                      int n_segs, float *logits, float *hidden)
{
    if (begin_forward(e, 0, segs, n_segs))
        return MTP_ERR;
    main_chunk(e, tokens, logits, hidden);
    if (check_main_chunk(e, tokens, logits, logits ? e->fw.n : 0, hidden))
        return MTP_ERR;
    end_forward(e, 0);
    return MTP_OK;
}

int mtp_engine_forward_batch(struct mtp_engine *e, const int32_t *tokens,
                             const struct mtp_segment *segs, int n_segs, float *logits,
                             float *hidden)
{
    return main_batch(e, tokens, segs, n_segs, logits, hidden);
}

int mtp_engine_seq_forward(struct mtp_engine *e, int seq, const int32_t *tokens, int n,
                           int start_pos, float *logits, float *hidden)
{
    if (seq < 0 || seq >= e->n_seqs)
        return mtp_error_set("engine: forward of sequence %d; expected 0..%d", seq,
                             e->n_seqs - 1);
    if (check_positions(e, seq, 0, n, start_pos))
        return MTP_ERR;
    const struct mtp_config *c = &e->model->cfg;
    for (int done = 0; done < n; done += e->opt.max_batch) {
        int chunk = n - done < e->opt.max_batch ? n - done : e->opt.max_batch;
        float *lg = logits ? logits + (size_t)done * c->vocab_size : NULL;
        float *hd = hidden ? hidden + (size_t)done * c->hidden_size : NULL;
        struct mtp_segment seg = {.seq = seq, .n = chunk, .start_pos = start_pos + done};
        if (main_batch(e, tokens + done, &seg, 1, lg, hd))
            return MTP_ERR;
    }
    e->seqs[seq].len[0] = start_pos + n;
    return MTP_OK;
}

int mtp_engine_forward(struct mtp_engine *e, const int32_t *tokens, int n, int start_pos,
                       float *logits, float *hidden)
{
    return mtp_engine_seq_forward(e, 0, tokens, n, start_pos, logits, hidden);
}

/* The prefill's chunks of at most max_batch tokens. */
static int prefill_chunks(struct mtp_engine *e, int seq, const int32_t *tokens, int n,
                          float *last_logits, float *hidden)
{
    const struct mtp_config *c = &e->model->cfg;
    for (int done = 0; done < n; done += e->opt.max_batch) {
        int chunk = n - done < e->opt.max_batch ? n - done : e->opt.max_batch;
        bool last = done + chunk == n;
        float *hd = hidden ? hidden + (size_t)done * c->hidden_size : NULL;
        struct mtp_segment seg = {.seq = seq, .n = chunk, .start_pos = done};
        if (main_batch(e, tokens + done, &seg, 1, NULL, hd))
            return MTP_ERR;
        if (last && last_logits) {
            /* s.xn holds the final-normed chunk: project only its last row. */
            float *row = e->s.xn + (size_t)(chunk - 1) * c->hidden_size;
            e->be->matmul(e->bctx, &e->model->lm_head, row, c->hidden_size, 1, e->s.logits,
                          c->vocab_size);
            e->be->download(e->bctx, last_logits, e->s.logits, (size_t)c->vocab_size * sizeof(float));
            if (check_main_chunk(e, tokens + done, last_logits, 1, NULL))
                return MTP_ERR;
        }
    }
    e->seqs[seq].len[0] = n;
    return MTP_OK;
}

int mtp_engine_seq_prefill(struct mtp_engine *e, int seq, const int32_t *tokens, int n,
                           float *last_logits, float *hidden)
{
    if (seq < 0 || seq >= e->n_seqs)
        return mtp_error_set("engine: prefill of sequence %d; expected 0..%d", seq,
                             e->n_seqs - 1);
    if (n < 1)
        return mtp_error_set("engine: prefill needs at least one token");
    if (check_positions(e, seq, 0, n, 0))
        return MTP_ERR;
    /* The backend's prefill kernels, for this call only (every return path). */
    bool fast = e->be->set_prefill && !e->opt.invariant_prefill;
    if (fast)
        e->be->set_prefill(e->bctx, 1);
    int rc = prefill_chunks(e, seq, tokens, n, last_logits, hidden);
    if (fast)
        e->be->set_prefill(e->bctx, 0);
    return rc;
}

int mtp_engine_prefill(struct mtp_engine *e, const int32_t *tokens, int n, float *last_logits,
                       float *hidden)
{
    return mtp_engine_seq_prefill(e, 0, tokens, n, last_logits, hidden);
}

/* Zero the embedding half of the s.cat rows at position 0: vLLM's position-0
 * mask (the embedding is zeroed before enorm, and RMSNorm maps 0 to 0): every
 * row of the forward rotated at position 0. */
static void mtp_zero_position0_embeddings(struct mtp_engine *e, int d)
{
    memset(e->host_rows, 0, (size_t)d * sizeof(float));
    for (int t = 0; t < e->fw.n; t++)
        if (e->fw.pos[t] == 0)
            e->be->upload(e->bctx, e->s.cat + (size_t)t * 2 * d, e->host_rows,
                          (size_t)d * sizeof(float));
}

/* MTP module MODULE over the forward in flight: x = eh_proj [enorm(Emb(tok)) ;
 * hnorm(h)], block, shared_head.norm into s.xn; HIDDEN_OUT gets s.xn, or the
 * block output s.x under the before-norm wiring. The head is applied by the
 * caller. */
static void mtp_chunk(struct mtp_engine *e, int module, const int32_t *tokens,
                      const float *hidden_in, float *hidden_out)
{
    const struct mtp_config *c = &e->model->cfg;
    const struct mtp_layer *layer = mtp_model_module(e->model, module);
    int d = c->hidden_size, n = e->fw.n;
    float eps = (float)c->rms_norm_eps;
    e->be->embed(e->bctx, layer->nextn.embed, tokens, n, e->s.tmp);
    e->be->rmsnorm(e->bctx, e->s.tmp, d, &layer->nextn.enorm, n, d, eps, e->s.cat, 2 * d);
    if (e->mtp_zero_position0)
        mtp_zero_position0_embeddings(e, d);
    e->be->upload(e->bctx, e->s.tmp, hidden_in, (size_t)n * d * sizeof(float));
    e->be->rmsnorm(e->bctx, e->s.tmp, d, &layer->nextn.hnorm, n, d, eps, e->s.cat + d, 2 * d);
    e->be->matmul(e->bctx, &layer->nextn.eh_proj, e->s.cat, 2 * d, n, e->s.x, d);
    mtp_engine_diag_stage(e, e->s.x, n, d,
                          "the input projection of MTP module %d (model.layers.%d: "
                          "embed_tokens, enorm, hnorm, eh_proj)", module, layer->index);
    mtp_engine_trace(e, "mtp_input", layer->index, e->s.x, n, d, d);
    mtp_forward_block(e, layer, -1);
    mtp_engine_diag_stage(e, e->s.x, n, d, "the decoder block of MTP module %d (model.layers.%d)",
                          module, layer->index);
    bool raw = e->mtp_hidden_before_norm && hidden_out;
    emit_outputs(e, &layer->nextn.head_norm, NULL, n, NULL, raw ? NULL : hidden_out);
    if (raw)
        e->be->download(e->bctx, hidden_out, e->s.x, (size_t)n * d * sizeof(float));
}

/* The head module MODULE applies: its own, or its subset head under DV. */
static const struct mtp_weight *module_head(const struct mtp_engine *e, int module,
                                            const struct mtp_draft_vocab *dv)
{
    return dv ? dv->head[module] : mtp_model_module(e->model, module)->nextn.head;
}

/* Logits of the forward in flight into LOGITS (host): every row [n, width], or
 * with LAST_ONLY the last row of each segment [n_segs, width]; width = V, or
 * N under a draft vocabulary DV. One head matmul: the last rows of several
 * segments are first gathered into s.tmp (free after the block). Returns the
 * rows written. */
static int mtp_head_rows(struct mtp_engine *e, int module, const struct mtp_draft_vocab *dv,
                         bool last_only, float *logits)
{
    int d = e->model->cfg.hidden_size;
    const struct mtp_weight *head = module_head(e, module, dv);
    const float *x = e->s.xn;
    int rows = e->fw.n;
    if (last_only && e->fw.n_segs == 1) {
        x = e->s.xn + (size_t)(e->fw.n - 1) * d;
        rows = 1;
    } else if (last_only) {
        size_t end = 0;
        for (int i = 0; i < e->fw.n_segs; i++) {
            end += (size_t)e->fw.segs[i].n;
            e->be->copy(e->bctx, e->s.tmp + (size_t)i * d, e->s.xn + (end - 1) * d,
                        (size_t)d * sizeof(float));
        }
        x = e->s.tmp;
        rows = e->fw.n_segs;
    }
    size_t width = (size_t)head->rows;
    e->be->matmul(e->bctx, head, x, d, rows, e->s.logits, (int)width);
    e->be->download(e->bctx, logits, e->s.logits, (size_t)rows * width * sizeof(float));
    return rows;
}

/* The token row of logits row R of the forward in flight (LAST_ONLY: the
 * last token of segment R). */
static int logit_token_row(const struct mtp_engine *e, bool last_only, int r)
{
    if (!last_only)
        return r;
    int end = 0;
    for (int i = 0; i <= r && i < e->fw.n_segs; i++)
        end += e->fw.segs[i].n;
    return end - 1;
}

/* After an MTP forward: its LOGITS [logit_rows, V or N] and HIDDEN_OUT [n, d]
 * must be finite, else rerun it to locate the cause. */
static int check_mtp_chunk(struct mtp_engine *e, int module, const struct mtp_draft_vocab *dv,
                           const int32_t *tokens, const float *hidden_in, const float *logits,
                           int logit_rows, bool last_only, const float *hidden_out)
{
    const struct mtp_config *c = &e->model->cfg;
    int n = e->fw.n;
    struct mtp_nonfinite bad;
    const struct mtp_weight *head = module_head(e, module, dv);
    if (mtp_finite_rows(logits, logit_rows, head->rows, "logits", &bad)) {
        if (mtp_finite_rows(hidden_out, n, c->hidden_size, "hidden state", &bad))
            return MTP_OK;
    } else {
        bad.row = logit_token_row(e, last_only, bad.row);
    }
    const struct mtp_layer *layer = mtp_model_module(e->model, module);
    char name[64];
    snprintf(name, sizeof name, "MTP module %d (model.layers.%d)", module, layer->index);
    /* The module's input hidden state comes from the caller: a bad one is named as such. */
    struct mtp_nonfinite in_bad;
    if (!mtp_finite_rows(hidden_in, n, c->hidden_size, "input hidden state", &in_bad))
        return mtp_error_set("%s at position %d: its input hidden state[%zu] is not finite",
                             name, e->fw.pos[in_bad.row], in_bad.col);
    mtp_engine_diag_begin(e);
    mtp_chunk(e, module, tokens, hidden_in, NULL);
    return mtp_engine_nonfinite_error(e, name, &bad, head->name);
}

/* One validated batch of MTP module MODULE: outputs, checks, cache lengths. */
static int mtp_batch(struct mtp_engine *e, int module, const struct mtp_draft_vocab *dv,
                     const int32_t *tokens, const float *hidden_in,
                     const struct mtp_segment *segs, int n_segs, bool last_only, float *logits,
                     float *hidden_out)
{
    if (begin_forward(e, module, segs, n_segs))
        return MTP_ERR;
    mtp_chunk(e, module, tokens, hidden_in, hidden_out);
    int rows = logits ? mtp_head_rows(e, module, dv, last_only, logits) : 0;
    if (check_mtp_chunk(e, module, dv, tokens, hidden_in, logits, rows, last_only, hidden_out))
        return MTP_ERR;
    end_forward(e, module);
    return MTP_OK;
}

static int check_module(const struct mtp_engine *e, int module, const struct mtp_draft_vocab *dv)
{
    const struct mtp_config *c = &e->model->cfg;
    if (module < 1 || module > c->num_nextn_predict_layers)
        return mtp_error_set("engine: MTP module %d does not exist (the model has %d)", module,
                             c->num_nextn_predict_layers);
    if (dv && module > dv->n_modules)
        return mtp_error_set("engine: MTP module %d has no subset head (draft_vocab %d covers "
                             "%d modules)", module, dv->n, dv->n_modules);
    return MTP_OK;
}

int mtp_engine_mtp_forward_batch(struct mtp_engine *e, int module,
                                 const struct mtp_draft_vocab *dv, const int32_t *tokens,
                                 const float *hidden_in, const struct mtp_segment *segs,
                                 int n_segs, bool last_only, float *logits, float *hidden_out)
{
    if (check_module(e, module, dv))
        return MTP_ERR;
    if (dv && !last_only)
        return mtp_error_set("engine: a draft vocabulary head gives last-row logits only");
    return mtp_batch(e, module, dv, tokens, hidden_in, segs, n_segs, last_only, logits,
                     hidden_out);
}

/* MTP module MODULE of sequence 0 over n positions from start_pos, in chunks
 * of max_batch; logits of every row, or of the last one only. */
static int mtp_forward_impl(struct mtp_engine *e, int seq, int module,
                            const struct mtp_draft_vocab *dv, const int32_t *tokens,
                            const float *hidden_in, int n, int start_pos, float *logits,
                            bool last_only, float *hidden_out)
{
    const struct mtp_config *c = &e->model->cfg;
    if (check_module(e, module, dv))
        return MTP_ERR;
    if (seq < 0 || seq >= e->n_seqs)
        return mtp_error_set("engine: MTP module %d of sequence %d; expected 0..%d", module, seq,
                             e->n_seqs - 1);
    if (check_positions(e, seq, module, n, start_pos))
        return MTP_ERR;
    for (int done = 0; done < n; done += e->opt.max_batch) {
        int chunk = n - done < e->opt.max_batch ? n - done : e->opt.max_batch;
        bool last = done + chunk == n;
        const float *in = hidden_in + (size_t)done * c->hidden_size;
        float *hd = hidden_out ? hidden_out + (size_t)done * c->hidden_size : NULL;
        float *lg = !logits ? NULL : !last_only ? logits + (size_t)done * c->vocab_size
                                   : last       ? logits
                                                : NULL;
        struct mtp_segment seg = {.seq = seq, .n = chunk, .start_pos = start_pos + done};
        if (mtp_batch(e, module, dv, tokens + done, in, &seg, 1, last_only, lg, hd))
            return MTP_ERR;
    }
    e->seqs[seq].len[module] = start_pos + n;
    return MTP_OK;
}

int mtp_engine_mtp_forward(struct mtp_engine *e, int module, const int32_t *tokens,
                           const float *hidden_in, int n, int start_pos, float *logits,
                           float *hidden_out)
{
    return mtp_forward_impl(e, 0, module, NULL, tokens, hidden_in, n, start_pos, logits, false,
                            hidden_out);
}

int mtp_engine_seq_mtp_forward(struct mtp_engine *e, int seq, int module, const int32_t *tokens,
                               const float *hidden_in, int n, int start_pos, float *logits,
                               float *hidden_out)
{
    return mtp_forward_impl(e, seq, module, NULL, tokens, hidden_in, n, start_pos, logits, false,
                            hidden_out);
}

int mtp_engine_mtp_forward_last(struct mtp_engine *e, int module, const int32_t *tokens,
                                const float *hidden_in, int n, int start_pos, float *last_logits,
                                float *hidden_out)
{
    return mtp_forward_impl(e, 0, module, NULL, tokens, hidden_in, n, start_pos, last_logits, true,
                            hidden_out);
}

int mtp_engine_seq_mtp_forward_draft(struct mtp_engine *e, int seq, int module,
                                     const struct mtp_draft_vocab *dv, const int32_t *tokens,
                                     const float *hidden_in, int n, int start_pos,
                                     float *last_logits, float *hidden_out)
{
    return mtp_forward_impl(e, seq, module, dv, tokens, hidden_in, n, start_pos, last_logits,
                            true, hidden_out);
}

int mtp_engine_mtp_forward_draft(struct mtp_engine *e, int module,
                                 const struct mtp_draft_vocab *dv, const int32_t *tokens,
                                 const float *hidden_in, int n, int start_pos,
                                 float *last_logits, float *hidden_out)
{
    return mtp_forward_impl(e, 0, module, dv, tokens, hidden_in, n, start_pos, last_logits, true,
                            hidden_out);
}

int mtp_engine_cache_len(const struct mtp_engine *e, int module)
{
    return mtp_engine_seq_cache_len(e, 0, module);
}

int mtp_engine_seq_cache_len(const struct mtp_engine *e, int seq, int module)
{
    MTP_CHECK(seq >= 0 && seq < e->n_seqs);
    MTP_CHECK(module >= 0 && module <= e->model->cfg.num_nextn_predict_layers);
    return e->seqs[seq].len[module];
}

void mtp_engine_set_mtp_wiring(struct mtp_engine *e, const struct mtp_wiring *w)
{
    e->mtp_zero_position0 = w->position0_embedding == MTP_WIRING_POSITION0_ZEROED;
    e->mtp_hidden_before_norm = w->draft_hidden == MTP_WIRING_DRAFT_HIDDEN_BEFORE_NORM;
}

int mtp_engine_max_invariant_tokens(const struct mtp_engine *e)
{
    return e->be->max_invariant_tokens ? e->be->max_invariant_tokens(e->bctx) : 0;
}

/* Fill rows [from, to) of every cache of MODULE of sequence SEQ with NaN. */
static void poison_rows(struct mtp_engine *e, int seq, int module, int from, int to)
{
    const struct mtp_config *c = &e->model->cfg;
    size_t n = (size_t)(to - from) * e->cache_width;
    float *nan_rows = mtp_xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        nan_rows[i] = __builtin_nanf("");
    int first = module == 0 ? 0 : c->num_hidden_layers + module - 1;
    int last = module == 0 ? c->num_hidden_layers : first + 1;
    for (int l = first; l < last; l++)
        e->be->upload(e->bctx, e->seqs[seq].cache[l] + (size_t)from * e->cache_width, nan_rows,
                      n * sizeof(float));
    free(nan_rows);
}

void mtp_engine_seq_truncate(struct mtp_engine *e, int seq, int module, int length)
{
    MTP_CHECK(seq >= 0 && seq < e->n_seqs);
    MTP_CHECK(module >= 0 && module <= e->model->cfg.num_nextn_predict_layers);
    MTP_CHECK(length >= 0);
    int *len = &e->seqs[seq].len[module];
    if (length >= *len)
        return;
    if (e->opt.poison_rollback)
        poison_rows(e, seq, module, length, *len);
    *len = length;
}

void mtp_engine_truncate(struct mtp_engine *e, int module, int length)
{
    mtp_engine_seq_truncate(e, 0, module, length);
}

void mtp_engine_seq_read_cache(struct mtp_engine *e, int seq, int layer, int start, int n,
                               float *out)
{
    MTP_CHECK(seq >= 0 && seq < e->n_seqs);
    MTP_CHECK(layer >= 0 && layer < e->model->n_layers);
    MTP_CHECK(start >= 0 && n >= 0 && start + n <= e->opt.max_positions);
    e->be->download(e->bctx, out, e->seqs[seq].cache[layer] + (size_t)start * e->cache_width,
                    (size_t)n * e->cache_width * sizeof(float));
}

void mtp_engine_read_cache(struct mtp_engine *e, int layer, int start, int n, float *out)
{
    mtp_engine_seq_read_cache(e, 0, layer, start, n, out);
}

int mtp_engine_num_moe_layers(const struct mtp_engine *e) { return e->n_moe_main; }

int mtp_engine_last_experts_touched(const struct mtp_engine *e, int *counts, int capacity)
{
    int n = e->n_moe_main < capacity ? e->n_moe_main : capacity;
    memcpy(counts, e->experts_touched, (size_t)n * sizeof(int));
    return e->n_moe_main;
}

int mtp_engine_last_experts_touched_segment(const struct mtp_engine *e, int seg, int *counts,
                                            int capacity)
{
    MTP_CHECK(seg >= 0 && seg < e->n_seqs);
    int n = e->n_moe_main < capacity ? e->n_moe_main : capacity;
    memcpy(counts, e->seg_touched + (size_t)seg * e->n_moe_main, (size_t)n * sizeof(int));
    return e->n_moe_main;
}

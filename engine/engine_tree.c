/*
 * engine_tree.c - tree-shaped forwards and row moves (engine_tree.h). A tree
 * forward is a batch of one tree-shaped segment of one sequence (engine.h):
 * forward.c takes RoPE positions and attention keys from the segment (so
 * diagnosis reruns of a failed chunk see the same tree).
 */
#include "engine_internal.h"
#include "../core/error.h"

int mtp_tree_batch_check(const struct mtp_engine *e, int n, const struct mtp_tree_batch *b)
{
    int most = e->opt.max_batch < MTP_TREE_MAX_NODES ? e->opt.max_batch : MTP_TREE_MAX_NODES;
    if (n < 1 || n > most)
        return mtp_error_set("engine: a tree forward holds 1..%d tokens, got %d", most, n);
    if (b->keys.off[0] != 0 || b->keys.n_prefix < 0 || b->keys.n_prefix > b->start_row)
        return mtp_error_set("engine: tree forward: prefix %d must lie below start row %d",
                             b->keys.n_prefix, b->start_row);
    int end = b->start_row + n;
    for (int t = 0; t < n; t++) {
        if (b->pos[t] < 0 || b->keys.off[t + 1] < b->keys.off[t])
            return mtp_error_set("engine: tree forward: token %d has position %d or a bad "
                                 "key list", t, b->pos[t]);
        for (int i = b->keys.off[t]; i < b->keys.off[t + 1]; i++)
            if (b->keys.rows[i] < 0 || b->keys.rows[i] >= end)
                return mtp_error_set("engine: tree forward: token %d reads row %d, outside "
                                     "0..%d", t, b->keys.rows[i], end - 1);
    }
    return MTP_OK;
}

int mtp_engine_forward_tree(struct mtp_engine *e, const int32_t *tokens, int n,
                            const struct mtp_tree_batch *b, float *logits, float *hidden)
{
    struct mtp_segment seg = {.seq = 0, .n = n, .tree = b};
    return mtp_engine_forward_batch(e, tokens, &seg, 1, logits, hidden);
}

/* LOGITS [n - first, V] = head(s.xn rows first..n-1) of MODULE's last
 * forward (s.xn holds its shared_head.norm output whatever the wiring). */
static int head_rows(struct mtp_engine *e, int module, int first, int n, float *logits)
{
    const struct mtp_config *c = &e->model->cfg;
    const struct mtp_layer *layer = mtp_model_module(e->model, module);
    int rows = n - first;
    e->be->matmul(e->bctx, layer->nextn.head, e->s.xn + (size_t)first * c->hidden_size,
                  c->hidden_size, rows, e->s.logits, c->vocab_size);
    e->be->download(e->bctx, logits, e->s.logits, (size_t)rows * c->vocab_size * sizeof(float));
    struct mtp_nonfinite bad;
    if (!mtp_finite_rows(logits, rows, c->vocab_size, "logits", &bad))
        return mtp_error_set("engine: MTP module %d tree forward: logits of row %d are not "
                             "finite at %zu (%s)", module, first + bad.row, bad.col,
                             layer->nextn.head->name);
    return MTP_OK;
}

int mtp_engine_mtp_forward_tree(struct mtp_engine *e, int module, const int32_t *tokens,
                                const float *hidden_in, int n, const struct mtp_tree_batch *b,
                                int first_logit, float *logits, float *hidden_out)
{
    return mtp_engine_seq_mtp_forward_tree(e, 0, module, tokens, hidden_in, n, b, first_logit,
                                           logits, hidden_out);
}

int mtp_engine_seq_mtp_forward_tree(struct mtp_engine *e, int seq, int module,
                                    const int32_t *tokens, const float *hidden_in, int n,
                                    const struct mtp_tree_batch *b, int first_logit,
                                    float *logits, float *hidden_out)
{
    if (first_logit < 0 || first_logit > n)
        return mtp_error_set("engine: tree forward: logits from row %d of %d", first_logit, n);
    struct mtp_segment seg = {.seq = seq, .n = n, .tree = b};
    int rc = mtp_engine_mtp_forward_batch(e, module, NULL, tokens, hidden_in, &seg, 1, false,
                                          NULL, hidden_out);
    if (!rc && logits && first_logit < n)
        rc = head_rows(e, module, first_logit, n, logits);
    return rc;
}

/* HF layer indices [first, last) of MODULE's caches. */
static void module_layers(const struct mtp_engine *e, int module, int *first, int *last)
{
    const struct mtp_config *c = &e->model->cfg;
    *first = module == 0 ? 0 : c->num_hidden_layers + module - 1;
    *last = module == 0 ? c->num_hidden_layers : *first + 1;
}

void mtp_engine_move_rows(struct mtp_engine *e, int module, const int32_t *src,
                          const int32_t *dst, int n)
{
    mtp_engine_seq_move_rows(e, 0, module, src, dst, n);
}

void mtp_engine_seq_move_rows(struct mtp_engine *e, int seq, int module, const int32_t *src,
                              const int32_t *dst, int n)
{
    MTP_CHECK(seq >= 0 && seq < e->n_seqs);
    MTP_CHECK(module >= 0 && module <= e->model->cfg.num_nextn_predict_layers);
    int first, last;
    module_layers(e, module, &first, &last);
    size_t bytes = (size_t)e->cache_width * sizeof(float);
    for (int i = 0; i < n; i++) {
        MTP_CHECK(src[i] >= 0 && dst[i] >= 0 && src[i] < e->opt.max_positions &&
                  dst[i] < e->opt.max_positions);
        if (src[i] == dst[i])
            continue;
        for (int l = first; l < last; l++)
            e->be->copy(e->bctx, e->seqs[seq].cache[l] + (size_t)dst[i] * e->cache_width,
                        e->seqs[seq].cache[l] + (size_t)src[i] * e->cache_width, bytes);
    }
}

void mtp_engine_set_cache_len(struct mtp_engine *e, int module, int length)
{
    MTP_CHECK(module >= 0 && module <= e->model->cfg.num_nextn_predict_layers);
    MTP_CHECK(length >= 0 && length <= e->opt.max_positions);
    e->seqs[0].len[module] = length;
}

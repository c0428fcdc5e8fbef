/*
 * decode_tree.c - one tree-decoding step (spec/decoding.md "Tree decoding"):
 *   1. draft a token tree rooted at the pending token s[m] (decode_tree_draft.c);
 *   2. verify: ONE main forward over all n nodes, node i written to cache row
 *      m+i, rotated at position m + depth(i), attending to rows 0..m-1, then
 *      its ancestors' rows by depth, then its own (a tree mask; each node gets
 *      the bits of a sequential decode of its path, engine_tree.h);
 *   3. accept: greedy, the longest path whose tokens are the target argmax
 *      chain, then the argmax after it; sampling, recursive rejection sampling
 *      over each visited node's children (tree_accept.h), then the residual or
 *      bonus token;
 *   4. compact: the accepted path's main cache rows m+path[k] move to m+k
 *      (k = 1..a), the length becomes m+a+1, h[m..m+a] come from the path's
 *      verification hidden states; module caches per decode_tree_draft.c.
 */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memcpy */

#include "decode_tree.h"
#include "../core/error.h"
#include "tree_accept.h"

/* The shape itself: rebuilt through its constructor's checks. */
static int check_shape(const struct mtp_tree_shape *s, int V)
{
    struct mtp_tree_shape again;
    if (s->kind == MTP_TREE_DYNAMIC) {
        if (mtp_tree_dynamic(s->budget, s->width, s->max_depth, &again))
            return MTP_ERR;
        if (s->width > V)
            return mtp_error_set("decode: tree width %d exceeds the vocabulary (%d)", s->width, V);
        return MTP_OK;
    }
    if (s->kind != MTP_TREE_STATIC || s->n < 2 || s->n > MTP_TREE_MAX_NODES)
        return mtp_error_set("decode: a static tree needs 1..%d draft nodes, got %d",
                             MTP_TREE_MAX_DRAFTS, s->n - 1);
    for (int i = 1; i < s->n; i++) {
        if (s->parent[i] < 0 || s->parent[i] >= i || s->depth[i] != s->depth[s->parent[i]] + 1 ||
            s->depth[i] < s->depth[i - 1] || s->depth[i] > s->max_depth)
            return mtp_error_set("decode: tree node %d is not in depth-major order", i);
        if (s->rank[i] < 0 || s->rank[i] >= V)
            return mtp_error_set("decode: tree node %d has sibling rank %d; the vocabulary "
                                 "has %d tokens", i, s->rank[i], V);
    }
    return MTP_OK;
}

int mtp_decode_tree_check(const struct mtp_engine *e, const struct mtp_decode_params *p)
{
    const struct mtp_config *c = &mtp_engine_model(e)->cfg;
    int D = c->num_nextn_predict_layers, L = mtp_tree_depth(&p->tree);
    if (p->drafting != MTP_DECODE_DRAFTING_EXACT && p->drafting != MTP_DECODE_DRAFTING_CHAIN)
        return mtp_error_set("decode: tree decoding needs exact or chain drafting");
    if (check_shape(&p->tree, c->vocab_size))
        return MTP_ERR;
    if (D == 0)
        return mtp_error_set("decode: tree decoding needs MTP modules; the model has none");
    if (p->drafting == MTP_DECODE_DRAFTING_EXACT && L > D)
        return mtp_error_set("decode: exact tree drafting needs depth <= the model's %d MTP "
                             "modules, got a tree of depth %d (use chain drafting for deeper "
                             "trees)", D, L);
    int module = p->chain_module > 0 ? p->chain_module : 1;
    if (p->drafting == MTP_DECODE_DRAFTING_CHAIN && module > D)
        return mtp_error_set("decode: chain drafting with module %d, but the model has %d MTP "
                             "modules", module, D);
    int n = mtp_tree_max_drafts(&p->tree) + 1, limit = mtp_engine_max_invariant_tokens(e);
    if (limit > 0 && n > limit)
        return mtp_error_set("decode: the tree verifies up to %d tokens, but this backend keeps "
                             "a verification batch invariant only up to %d tokens", n, limit);
    if (p->adaptive != MTP_DECODE_ADAPTIVE_OFF)
        return mtp_error_set("decode: adaptive depth applies to chains, not trees");
    if (p->draft_hook)
        return mtp_error_set("decode: tree decoders take a tree hook, not a draft hook");
    if (p->tree_hook && !mtp_sampling_is_greedy(&p->sampling))
        return mtp_error_set("decode: a tree hook needs greedy sampling");
    return MTP_OK;
}

int mtp_decode_tree_create(struct mtp_decode *d)
{
    struct mtp_decode_tree *T = mtp_xcalloc(1, sizeof *T);
    size_t V = (size_t)d->V, dm = (size_t)d->dm, N = MTP_TREE_MAX_NODES;
    T->shape = d->p.tree;
    T->L = mtp_tree_depth(&T->shape);
    T->q = mtp_xmalloc(N * V * sizeof(float));
    T->logits = mtp_xmalloc(N * V * sizeof(float));
    T->hid_main = mtp_xmalloc(N * dm * sizeof(float));
    T->mod_logits = mtp_xmalloc(N * V * sizeof(float));
    T->mod_hid = mtp_xcalloc((size_t)d->D + 1, sizeof *T->mod_hid);
    for (int k = 0; k <= d->D; k++)
        T->mod_hid[k] = mtp_xmalloc(N * dm * sizeof(float));
    T->mod_row = mtp_xcalloc((size_t)d->D + 1, sizeof *T->mod_row);
    T->in_rows = mtp_xmalloc(N * dm * sizeof(float));
    T->out_rows = mtp_xmalloc(N * dm * sizeof(float));
    T->work = mtp_xmalloc(3 * V * sizeof(float));
    T->p = mtp_xmalloc(V * sizeof(float));
    d->tree = T;
    return MTP_OK;
}

void mtp_decode_tree_free(struct mtp_decode *d)
{
    struct mtp_decode_tree *T = d->tree;
    if (!T)
        return;
    free(T->q);
    free(T->logits);
    free(T->hid_main);
    free(T->mod_logits);
    for (int k = 0; k <= d->D; k++)
        free(T->mod_hid[k]);
    free(T->mod_hid);
    free(T->mod_row);
    free(T->in_rows);
    free(T->out_rows);
    free(T->work);
    free(T->p);
    free(T);
    d->tree = NULL;
}

void mtp_decode_tree_lists(struct mtp_tree_lists *l, const struct mtp_tree *t, const int *nodes,
                           int n, int start_row, int n_prefix, int base,
                           const int16_t *row_of)
{
    int used = 0;
    l->off[0] = 0;
    for (int i = 0; i < n; i++) {
        int x = nodes[i], anc[MTP_TREE_MAX_DEPTH + 1], na = 0;
        for (int y = t->parent[x]; y >= 0; y = t->parent[y])
            if (row_of[y] >= 0)
                anc[na++] = row_of[y];
        for (int k = na - 1; k >= 0; k--) /* shallowest first: the sequential order */
            l->rows[used++] = anc[k];
        l->rows[used++] = start_row + i;
        l->off[i + 1] = used;
        l->pos[i] = base + t->depth[x];
        l->tokens[i] = t->token[x];
        l->node[i] = (int16_t)x;
    }
    l->b = (struct mtp_tree_batch){
        .start_row = start_row,
        .pos = l->pos,
        .keys = {.n_prefix = n_prefix, .off = l->off, .rows = l->rows},
    };
}

/* Step 2: every node, one forward from row m: the session's segment of a
 * batched verification (decode_batch.c), its tokens in T->lists.tokens. */
struct mtp_segment mtp_decode_tree_segment(struct mtp_decode *d)
{
    struct mtp_decode_tree *T = d->tree;
    int m = d->n_seq - 1;
    int nodes[MTP_TREE_MAX_NODES];
    int16_t row_of[MTP_TREE_MAX_NODES];
    for (int i = 0; i < T->t.n; i++) {
        nodes[i] = i;
        row_of[i] = (int16_t)(m + i);
    }
    mtp_decode_tree_lists(&T->lists, &T->t, nodes, T->t.n, m, m, m, row_of);
    return (struct mtp_segment){.seq = d->seq_id, .n = T->t.n, .start_pos = m,
                                .tree = &T->lists.b};
}

void mtp_decode_tree_take(struct mtp_decode *d, const float *logits, const float *hidden)
{
    struct mtp_decode_tree *T = d->tree;
    memcpy(T->logits, logits, (size_t)T->t.n * d->V * sizeof(float));
    memcpy(T->hid_main, hidden, (size_t)T->t.n * d->dm * sizeof(float));
}

/* The child of X whose token is TOKEN, or -1. */
static int child_with(const struct mtp_tree *t, int x, int32_t token)
{
    for (int c = t->first_child[x]; c >= 0 && c < t->first_child[x] + t->n_children[x]; c++)
        if (t->token[c] == token)
            return c;
    return -1;
}

/* Greedy: follow the target argmax while a child carries it. */
static int accept_greedy(struct mtp_decode *d, int32_t *final_token)
{
    struct mtp_decode_tree *T = d->tree;
    int x = 0, a = 0;
    T->path[0] = 0;
    for (;;) {
        int32_t best = mtp_sampling_argmax(T->logits + (size_t)x * d->V, d->V);
        int c = child_with(&T->t, x, best);
        if (c < 0) {
            *final_token = best;
            return a;
        }
        T->path[++a] = x = c;
    }
}

/* Sampling: recursive rejection sampling at each visited node. Uniforms: one
 * per child of the node plus one for its residual / bonus draw. */
static int accept_sampled(struct mtp_decode *d, int32_t *final_token)
{
    struct mtp_decode_tree *T = d->tree;
    const struct mtp_tree *t = &T->t;
    int x = 0, a = 0;
    T->path[0] = 0;
    for (;;) {
        int k = t->n_children[x];
        float u[MTP_TREE_MAX_NODES + 1];
        for (int i = 0; i <= k; i++)
            u[i] = mtp_rng_uniform(&d->p.rng);
        mtp_sampling_probs(&d->p.sampling, T->logits + (size_t)x * d->V, d->V, T->p, d->iwork);
        int32_t cand[MTP_TREE_MAX_NODES];
        for (int i = 0; i < k; i++)
            cand[i] = t->token[t->first_child[x] + i];
        int i = mtp_tree_accept_node(T->p, T->q + (size_t)x * d->V, cand, k, d->V, u, T->work,
                                     final_token);
        if (i < 0)
            return a;
        T->path[++a] = x = t->first_child[x] + i;
    }
}

static int emit_path(struct mtp_decode *d, int a, int32_t final_token)
{
    struct mtp_decode_tree *T = d->tree;
    for (int k = 1; k <= a; k++)
        if (mtp_decode_emit(d, T->t.token[T->path[k]], true))
            return k;
    mtp_decode_emit(d, final_token, false);
    return a + 1;
}

/* Step 4 for the main model: rows and hidden states of the accepted path. */
static void compact_main(struct mtp_decode *d, int m, int a)
{
    struct mtp_decode_tree *T = d->tree;
    int32_t src[MTP_TREE_MAX_DEPTH + 1], dst[MTP_TREE_MAX_DEPTH + 1];
    for (int k = 0; k <= a; k++) {
        src[k] = m + T->path[k];
        dst[k] = m + k;
        memcpy(d->hid[0] + (size_t)(m + k) * d->dm, T->hid_main + (size_t)T->path[k] * d->dm,
               (size_t)d->dm * sizeof(float));
    }
    mtp_engine_seq_move_rows(d->e, d->seq_id, 0, src + 1, dst + 1, a);
    mtp_engine_seq_truncate(d->e, d->seq_id, 0, m + a + 1);
}

/* Step 4 for exact module K: its row of the path node at depth r sits at
 * position m-k+r (r = 1..k-1); rows whose path node was accepted stay valid
 * (decode_tree_draft.c) and move into place; c_k is the valid prefix. */
static void compact_module(struct mtp_decode *d, int k, int m, int a)
{
    struct mtp_decode_tree *T = d->tree;
    /* True rows 0..m-k exist if the module ran this step (a dynamic tree may
     * stop expanding before module k; then its old length bounds them). */
    int valid = m - k + 1 > 0 ? m - k + 1 : 0;
    if (valid > mtp_engine_seq_cache_len(d->e, d->seq_id, k))
        valid = mtp_engine_seq_cache_len(d->e, d->seq_id, k);
    int32_t src[MTP_TREE_MAX_DEPTH], dst[MTP_TREE_MAX_DEPTH];
    int n = 0;
    for (int r = 1; r <= a && r <= k - 1; r++) {
        int pos = m - k + r, x = T->path[r];
        if (pos < 0)
            continue;
        if (T->mod_row[k][x] < 0 || pos != valid)
            break;
        src[n] = T->mod_row[k][x];
        dst[n++] = pos;
        memcpy(d->hid[k] + (size_t)pos * d->dm, T->mod_hid[k] + (size_t)x * d->dm,
               (size_t)d->dm * sizeof(float));
        valid = pos + 1;
    }
    mtp_engine_seq_move_rows(d->e, d->seq_id, k, src, dst, n);
    int m_next = m + a + 1, c = valid;
    if (c > m)
        c = m;
    if (c > m_next - k)
        c = m_next - k > 0 ? m_next - k : 0;
    mtp_engine_seq_truncate(d->e, d->seq_id, k, c);
}

static void compact_modules(struct mtp_decode *d, int m, int a)
{
    if (d->p.drafting == MTP_DECODE_DRAFTING_CHAIN) {
        /* Draft rows read the module's own hidden, true rows the main one:
         * they differ, so every draft row goes (decode_draft.c). */
        mtp_engine_seq_truncate(d->e, d->seq_id, d->module, m);
        return;
    }
    for (int k = 1; k <= d->tree->L; k++)
        compact_module(d, k, m, a);
}

/* Per-step tree fields of the record. */
static void record_tree(struct mtp_decode *d, int s, int a)
{
    struct mtp_decode_tree *T = d->tree;
    struct mtp_decode_result *r = &d->r;
    r->tree_nodes[s] = T->t.n;
    r->tree_node[s] = T->path[a];
    for (int k = 0; k < r->tree_depth; k++)
        r->tree_ranks[(size_t)s * r->tree_depth + k] = k < a ? T->t.rank[T->path[k + 1]] : -1;
}

void mtp_decode_finish_tree(struct mtp_decode *d, int s)
{
    struct mtp_decode_result *r = &d->r;
    int m = d->n_seq - 1;
    uint64_t t2 = mtp_decode_now_ns();
    int32_t final_token;
    int a = mtp_sampling_is_greedy(&d->p.sampling) ? accept_greedy(d, &final_token)
                                                  : accept_sampled(d, &final_token);
    d->tree->a = a;
    r->emitted[s] = emit_path(d, a, final_token);
    r->accepted[s] = a < r->emitted[s] ? a : r->emitted[s];
    r->accepted_uncut[s] = a;
    record_tree(d, s, a);
    uint64_t t3 = mtp_decode_now_ns();

    compact_main(d, m, a);
    compact_modules(d, m, a);
    uint64_t t4 = mtp_decode_now_ns();
    r->accept_ns[s] = t3 - t2;
    r->update_ns[s] = t4 - t3;
}

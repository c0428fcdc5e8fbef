/*
 * decode_tree_draft.c - drafting a token tree with the MTP modules, exact
 * (module d expands depth d) or chained (one module, any depth), static or
 * dynamic shapes (tree.h); each module runs over all the nodes of its depth
 * in one tree-shaped forward.
 *
 * ---- Index algebra of exact tree drafting ----------------------------------
 * As for chains (decode_draft.c): module k at position j reads Emb(t[j+k])
 * and g_{k-1}[j] and predicts t[j+k+1]; rows j <= m-k are TRUE. In a tree the
 * draft-dependent rows belong to nodes: the row of module k at position
 * j = m-k+r reads t[m+r], the token of a depth-r node X, and g_{k-1}[m-k+r],
 * which is module k-1's row at its depth r-1 (position m-(k-1)+(r-1)): the row
 * of X's PARENT (for r = 1 the parent is the root, i.e. module k-1's last true
 * row m-k+1). So module k holds one row per node of depth 1..k-1 (those
 * with positions >= 0), and its rows at depth k-1 give the children at depth k:
 *   - per step, module k runs its newly true rows c_k..m-k as a chain (module
 *     1: rows c_1..m-1, whose last row m-1 reads the root and drafts depth 1),
 *     then ONE tree forward over the needed nodes of depth max(1, k-m)..k-1
 *     (ancestors-or-self of the nodes it expands) at cache rows from m-k+1,
 *     node X rotated at position m-k+depth(X), attending to rows 0..m-k, its
 *     ancestors' rows by depth, then its own: exactly the rows a sequential
 *     chain decode of X's path would have read;
 *   - after acceptance of path root, x_1..x_a (m' = m+a+1), module k's row of
 *     x_r stays valid iff its tokens t[m+1..m+r] were accepted: r <= a, the
 *     chain rule j <= m'-1-k. Those rows (r = 1..min(a, k-1)) move from their
 *     tree rows to positions m-k+r, their hidden states to g_k[m-k+r], and
 *           c_k <- min(m, m'-k, last contiguous valid row + 1),
 *     which is the chain's min(m, max(0, m'-k)) whenever every accepted path
 *     node had a module-k row. A path node without one (no descendant was
 *     expanded by module k) ends the valid prefix: the next step recomputes.
 *     Moves are safe in order of r: row m-k+r <= the source row of x_r (depth-
 *     major order puts at least one node of each depth 1..r-1 before x_r),
 *     and later sources lie beyond it.
 * With the MiMo wiring (module_hidden "main_model") node X's row reads
 * h[m-k+r], a true main hidden state (m-k+r <= m-1), instead of its parent's.
 *
 * ---- Chained tree drafting --------------------------------------------------
 * Module M drafts depth 1 from its true row m-1 (Emb(s[m]), h[m-1]); a node X
 * of depth r >= 1 that is expanded runs at position m-1+r with Emb(X) and
 * M's hidden of X's parent (the root: row m-1), in one tree forward per
 * depth, rows appended after the cache, attending to rows 0..m-1 then X's
 * ancestors' rows by depth, then its own. After the step M's cache goes back
 * to m rows, as for chains.
 *
 * ---- Children and values -----------------------------------------------------
 * At a node with module logits z: q = the sampling distribution of z (greedy:
 * softmax at T = 1, used only for values). Children are the top-w tokens of z
 * (greedy) or w draws without replacement from q (sampling, tree_accept.h).
 * A child of rank r scores v = v(parent) + log q_(r), q_(r) the r-th largest
 * probability of q: the cumulative draft probability for greedy; for
 * sampling it does not depend on the drawn token itself, so which nodes a
 * dynamic tree keeps never depends on a candidate's own value and
 * verification stays lossless (spec/decoding.md).
 */
#include <math.h>   /* defines: log */
#include <string.h> /* defines: memcpy */

#include "decode_tree.h"
#include "../core/error.h"
#include "tree_accept.h"

static const struct mtp_sampling unit_temperature = {.temperature = 1.0f, .top_p = 1.0f};

static bool is_greedy(const struct mtp_decode *d) { return mtp_sampling_is_greedy(&d->p.sampling); }

/* Up to K children of node X from module logits Z [V], with ranks RANKS[i]
 * (greedy: the RANKS[i]-th top token; sampling: the i-th draw). */
static void add_children(struct mtp_decode *d, int x, const float *z, const int *ranks, int k)
{
    struct mtp_decode_tree *T = d->tree;
    float *q = T->q + (size_t)x * d->V;
    int need = is_greedy(d) ? ranks[k - 1] + 1 : k;
    if (need > d->V)
        need = d->V;
    int32_t top[MTP_TREE_MAX_NODES], tok[MTP_TREE_MAX_NODES];
    int got = k;
    if (is_greedy(d) && T->shape.kind == MTP_TREE_STATIC) {
        /* Values unused and nothing sampled: the top tokens by logit suffice. */
        int32_t by_logit[MTP_TREE_MAX_NODES];
        mtp_tree_top_k(z, d->V, need, by_logit);
        for (int i = 0; i < k; i++) {
            int c = mtp_tree_add(&T->t, x, by_logit[ranks[i]], ranks[i], 0);
            if (d->p.tree_hook)
                d->p.tree_hook(d->p.draft_hook_user, &T->t, c, &T->t.token[c]);
        }
        return;
    }
    mtp_sampling_probs(is_greedy(d) ? &unit_temperature : &d->p.sampling, z, d->V, q, d->iwork);
    mtp_tree_top_k(q, d->V, need, top);
    if (is_greedy(d)) {
        int32_t by_logit[MTP_TREE_MAX_NODES];
        mtp_tree_top_k(z, d->V, need, by_logit);
        for (int i = 0; i < k; i++)
            tok[i] = by_logit[ranks[i]];
    } else {
        float u[MTP_TREE_MAX_NODES];
        for (int i = 0; i < k; i++)
            u[i] = mtp_rng_uniform(&d->p.rng); /* k uniforms whatever the support */
        got = mtp_tree_draw_siblings(q, d->V, k, u, tok, T->work);
    }
    for (int i = 0; i < got; i++) {
        int r = is_greedy(d) ? ranks[i] : i;
        double qr = q[top[r < need ? r : need - 1]];
        qr = qr > 1 ? 1 : qr; /* rounding: a child never scores above its parent */
        double v = T->t.logp[x] + (qr > 0 ? log(qr) : -1e30);
        int c = mtp_tree_add(&T->t, x, tok[i], r, v);
        if (d->p.tree_hook) /* tests: force a token before any module reads it */
            d->p.tree_hook(d->p.draft_hook_user, &T->t, c, &T->t.token[c]);
    }
}

/* Template children of template node TX: their ranks (ascending) into RANKS. */
static int template_children(const struct mtp_tree_shape *s, int tx, int *ranks, int *first)
{
    int k = 0;
    for (int i = 1; i < s->n; i++)
        if (s->parent[i] == tx) {
            if (!k)
                *first = i;
            ranks[k++] = s->rank[i];
        }
    return k;
}

/* Which nodes at depth DEPTH get children: EXPAND[0..] (ascending); returns
 * the count. Static: those whose template node has children; dynamic: the
 * WIDTH best by value (ties to the lower index) while depth < max depth. */
static int expand_set(const struct mtp_decode *d, int depth, const int *tmpl, int *expand)
{
    const struct mtp_decode_tree *T = d->tree;
    const struct mtp_tree *t = &T->t;
    int n = 0, ranks[MTP_TREE_MAX_NODES], first;
    if (depth >= T->L)
        return 0;
    for (int x = 0; x < t->n; x++) {
        if (t->depth[x] != depth)
            continue;
        if (T->shape.kind == MTP_TREE_STATIC && !template_children(&T->shape, tmpl[x], ranks, &first))
            continue;
        expand[n++] = x;
    }
    if (T->shape.kind != MTP_TREE_DYNAMIC || n <= T->shape.width)
        return n;
    /* Keep the WIDTH best by value, then restore index order. */
    for (int i = 0; i < T->shape.width; i++)
        for (int j = i + 1; j < n; j++)
            if (t->logp[expand[j]] > t->logp[expand[i]] ||
                (t->logp[expand[j]] == t->logp[expand[i]] && expand[j] < expand[i])) {
                int s = expand[i];
                expand[i] = expand[j];
                expand[j] = s;
            }
    n = T->shape.width;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (expand[j] < expand[i]) {
                int s = expand[i];
                expand[i] = expand[j];
                expand[j] = s;
            }
    return n;
}

/* Children of the expanded nodes E[0..n), whose module logits are rows
 * ROW[i] of LOGITS; TMPL maps tree nodes to template nodes (static). */
static void grow(struct mtp_decode *d, const int *E, int n, const float *logits, const int *row,
                 int *tmpl)
{
    struct mtp_decode_tree *T = d->tree;
    for (int i = 0; i < n; i++) {
        int x = E[i], ranks[MTP_TREE_MAX_NODES], k, first = 0;
        if (T->shape.kind == MTP_TREE_STATIC) {
            k = template_children(&T->shape, tmpl[x], ranks, &first);
        } else {
            k = T->shape.width;
            for (int r = 0; r < k; r++)
                ranks[r] = r;
        }
        int before = T->t.n;
        add_children(d, x, logits + (size_t)row[i] * d->V, ranks, k);
        for (int c = before; c < T->t.n; c++) /* static: template child by order */
            tmpl[c] = first + (c - before);
    }
}

/* Module MODULE over rows c..END (true rows) with tokens t[j + SHIFT] and
 * hidden IN[j], out to OUT[j]; logits of row END into LAST (or NULL). */
static int true_rows(struct mtp_decode *d, int module, int end, int shift, const float *in,
                     float *out, float *last)
{
    /* Normally at most K+1 rows (a+1 newly accepted); more only if a module
     * sat out steps (a dynamic tree that stopped early): then in chunks. */
    for (int c = mtp_engine_seq_cache_len(d->e, d->seq_id, module); c <= end;) {
        int rows = end - c + 1 < d->batch_cap ? end - c + 1 : d->batch_cap;
        for (int r = 0; r < rows; r++)
            d->batch_tokens[r] = d->seq[c + r + shift];
        if (mtp_engine_seq_mtp_forward_draft(d->e, d->seq_id, module, NULL, d->batch_tokens,
                                             in + (size_t)c * d->dm, rows, c,
                                             c + rows > end ? last : NULL,
                                             out + (size_t)c * d->dm))
            return mtp_error_wrap("MTP module %d at positions %d..%d: ", module, c, end);
        c += rows;
    }
    return MTP_OK;
}

/* One tree forward of MODULE over NODES[0..n) from row START with prefix
 * PREFIX, positions BASE + depth; hidden inputs gathered by the caller into
 * in_rows; hidden outputs to mod_hid[module]; logits of rows FIRST..n-1 (the
 * expanded nodes, the deepest) into mod_logits rows 0... */
static int tree_rows(struct mtp_decode *d, int module, const int *nodes, int n, int start,
                     int prefix, int base, int first)
{
    struct mtp_decode_tree *T = d->tree;
    int16_t *row_of = T->mod_row[module];
    for (int i = 0; i < n; i++)
        row_of[nodes[i]] = (int16_t)(start + i);
    mtp_decode_tree_lists(&T->lists, &T->t, nodes, n, start, prefix, base, row_of);
    if (mtp_engine_seq_mtp_forward_tree(d->e, d->seq_id, module, T->lists.tokens, T->in_rows, n,
                                        &T->lists.b, first, T->mod_logits, T->out_rows))
        return mtp_error_wrap("MTP module %d over %d tree nodes at row %d: ", module, n, start);
    for (int i = 0; i < n; i++)
        memcpy(T->mod_hid[module] + (size_t)nodes[i] * d->dm, T->out_rows + (size_t)i * d->dm,
               (size_t)d->dm * sizeof(float));
    return MTP_OK;
}

/* Logit rows of the expanded nodes E: they are the last NE of NODES (the
 * deepest needed nodes, depth-major order), so E[i] has logit row i. */
static void rows_of(const int *E, int ne, const int *nodes, int n, int *row)
{
    for (int i = 0; i < ne; i++) {
        MTP_CHECK(nodes[n - ne + i] == E[i]);
        row[i] = i;
    }
}

/* Exact module K's tree nodes: ancestors-or-self of E at depth >= LOW. */
static int needed_nodes(const struct mtp_tree *t, const int *E, int ne, int low, int *nodes)
{
    bool need[MTP_TREE_MAX_NODES] = {false};
    for (int i = 0; i < ne; i++)
        for (int x = E[i]; x >= 0 && t->depth[x] >= low; x = t->parent[x])
            need[x] = true;
    int n = 0;
    for (int x = 1; x < t->n; x++)
        if (need[x])
            nodes[n++] = x;
    return n;
}

static const float *exact_input(const struct mtp_decode *d, int k)
{
    return d->p.wiring.module_hidden == MTP_WIRING_MODULE_HIDDEN_MAIN_MODEL ? d->hid[0]
                                                                            : d->hid[k - 1];
}

/* Hidden input of node X for exact module K (position m-k+depth). */
static const float *exact_node_input(const struct mtp_decode *d, int k, int x, int m)
{
    const struct mtp_tree *t = &d->tree->t;
    int pos = m - k + t->depth[x], par = t->parent[x];
    if (d->p.wiring.module_hidden == MTP_WIRING_MODULE_HIDDEN_MAIN_MODEL || t->depth[par] == 0)
        return exact_input(d, k) + (size_t)pos * d->dm;
    return d->tree->mod_hid[k - 1] + (size_t)par * d->dm;
}

static int draft_exact(struct mtp_decode *d, int *tmpl)
{
    struct mtp_decode_tree *T = d->tree;
    int m = d->n_seq - 1, E[MTP_TREE_MAX_NODES], nodes[MTP_TREE_MAX_NODES],
        row[MTP_TREE_MAX_NODES];
    for (int k = 1; k <= T->L; k++) {
        int ne = expand_set(d, k - 1, tmpl, E);
        if (ne == 0)
            break;
        float *last = k == 1 ? T->mod_logits : NULL;
        if (true_rows(d, k, m - k, k, exact_input(d, k), d->hid[k], last))
            return MTP_ERR;
        if (k == 1) {
            row[0] = 0;
            grow(d, E, ne, T->mod_logits, row, tmpl);
            continue;
        }
        int low = k - m > 1 ? k - m : 1;
        int n = needed_nodes(&T->t, E, ne, low, nodes);
        for (int i = 0; i < n; i++)
            memcpy(T->in_rows + (size_t)i * d->dm, exact_node_input(d, k, nodes[i], m),
                   (size_t)d->dm * sizeof(float));
        int start = m - k + 1 > 0 ? m - k + 1 : 0;
        if (tree_rows(d, k, nodes, n, start, start, m - k, n - ne))
            return MTP_ERR;
        rows_of(E, ne, nodes, n, row);
        grow(d, E, ne, T->mod_logits, row, tmpl);
    }
    return MTP_OK;
}

static int draft_chain(struct mtp_decode *d, int *tmpl)
{
    struct mtp_decode_tree *T = d->tree;
    int m = d->n_seq - 1, M = d->module, E[MTP_TREE_MAX_NODES], row[MTP_TREE_MAX_NODES];
    float *g = d->hid[M];
    if (true_rows(d, M, m - 1, 1, d->hid[0], g, T->mod_logits))
        return MTP_ERR;
    row[0] = 0;
    int ne = expand_set(d, 0, tmpl, E);
    grow(d, E, ne, T->mod_logits, row, tmpl);
    for (int r = 1; r < T->L; r++) {
        ne = expand_set(d, r, tmpl, E);
        if (ne == 0)
            break;
        for (int i = 0; i < ne; i++) {
            int par = T->t.parent[E[i]];
            const float *in = T->t.depth[par] == 0 ? g + (size_t)(m - 1) * d->dm
                                                   : T->mod_hid[M] + (size_t)par * d->dm;
            memcpy(T->in_rows + (size_t)i * d->dm, in, (size_t)d->dm * sizeof(float));
            row[i] = i;
        }
        if (tree_rows(d, M, E, ne, mtp_engine_seq_cache_len(d->e, d->seq_id, M), m, m - 1, 0))
            return MTP_ERR;
        grow(d, E, ne, T->mod_logits, row, tmpl);
    }
    return MTP_OK;
}

/* Dynamic trees: keep the BUDGET best nodes by value (ties: shallower, then
 * lower index), an ancestor-closed set; renumber in depth-major order. */
static void keep_best(struct mtp_decode *d)
{
    struct mtp_decode_tree *T = d->tree;
    struct mtp_tree *t = &T->t;
    int budget = T->shape.budget;
    if (t->n - 1 <= budget)
        return;
    bool keep[MTP_TREE_MAX_NODES] = {true};
    for (int b = 0; b < budget; b++) {
        int best = -1;
        for (int x = 1; x < t->n; x++)
            if (!keep[x] && (best < 0 || t->logp[x] > t->logp[best] ||
                             (t->logp[x] == t->logp[best] && t->depth[x] < t->depth[best])))
                best = x;
        keep[best] = true;
    }
    struct mtp_tree old = *t;
    int map[MTP_TREE_MAX_NODES];
    mtp_tree_init(t, old.token[0]);
    map[0] = 0;
    for (int x = 1; x < old.n; x++) {
        if (!keep[x])
            continue;
        MTP_CHECK(keep[old.parent[x]]);
        map[x] = mtp_tree_add(t, map[old.parent[x]], old.token[x], old.rank[x], old.logp[x]);
        /* q, module rows and hidden states follow their node (map[x] <= x). */
        memcpy(T->q + (size_t)map[x] * d->V, T->q + (size_t)x * d->V, (size_t)d->V * sizeof(float));
        for (int k = 0; k <= d->D; k++) {
            T->mod_row[k][map[x]] = T->mod_row[k][x];
            memcpy(T->mod_hid[k] + (size_t)map[x] * d->dm, T->mod_hid[k] + (size_t)x * d->dm,
                   (size_t)d->dm * sizeof(float));
        }
    }
}

int mtp_decode_tree_draft(struct mtp_decode *d)
{
    struct mtp_decode_tree *T = d->tree;
    int tmpl[MTP_TREE_MAX_NODES];
    mtp_tree_init(&T->t, d->seq[d->n_seq - 1]);
    tmpl[0] = 0;
    for (int k = 0; k <= d->D; k++)
        for (int x = 0; x < MTP_TREE_MAX_NODES; x++)
            T->mod_row[k][x] = -1;
    int rc = d->p.drafting == MTP_DECODE_DRAFTING_EXACT ? draft_exact(d, tmpl) : draft_chain(d, tmpl);
    if (rc)
        return rc;
    if (T->shape.kind == MTP_TREE_DYNAMIC)
        keep_best(d);
    return MTP_OK;
}

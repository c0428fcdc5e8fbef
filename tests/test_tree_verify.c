/*
 * test_tree_verify.c - tree verification equals sequential decoding along
 * every path, bit for bit (spec/decoding.md "Tree decoding"):
 *   - one main-model forward over all nodes of a tree (tree mask, per-node
 *     RoPE positions) gives each node the logits, hidden state and cache rows
 *     of a one-token-at-a-time decode of its path on a second engine;
 *   - the same for an MTP module forward over a tree (tree drafting);
 *   - after moving an accepted path's rows into place (compaction) the cache
 *     equals the sequential one, rows 0..end;
 * on every fixture variant, on the CPU, and on CUDA when a GPU exists (else
 * those cases are skipped and the CPU cases still run).
 *
 *   ctest --test-dir build -R tree_verify
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/engine_tree.h"
#include "core/error.h"

enum { MAX_POS = 64, MAX_BATCH = 16, N_NODES = 9, PROMPT = 6 };

/* A tree in depth-major order: parent[0] = -1 is the root (the pending token). */
static const int parent[N_NODES] = {-1, 0, 0, 0, 1, 1, 2, 4, 7};
static const int32_t tokens[N_NODES] = {5, 17, 42, 99, 3, 250, 61, 8, 120};
static const int32_t prompt[PROMPT] = {11, 12, 13, 200, 201, 14};

static const char *const variants[] = {"v3-f32", "v3-bf16", "v3-fp8", "v2-f32", "v2-group-f32"};

struct loaded {
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_engine *e;
};

static bool load(const char *variant, const char *backend, struct loaded *l)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/%s", MTP_SOURCE_DIR, variant);
    memset(l, 0, sizeof *l);
    if (mtp_model_load(dir, &l->model))
        fail_msg("%s", mtp_error_message());
    if (mtp_backend_create(backend, 1, &l->be)) {
        mtp_model_free(l->model);
        return false;
    }
    struct mtp_engine_options opt = {.max_positions = MAX_POS, .max_batch = MAX_BATCH};
    if (mtp_engine_create(l->model, l->be, &opt, &l->e))
        fail_msg("%s", mtp_error_message());
    return true;
}

static void unload(struct loaded *l)
{
    mtp_engine_free(l->e);
    mtp_backend_free(l->be);
    mtp_model_free(l->model);
}

static int depth_of(int i) { return parent[i] < 0 ? 0 : 1 + depth_of(parent[i]); }

/* The path root..I as node indices, root first; returns its length. */
static int path_of(int i, int *path)
{
    int n = depth_of(i) + 1;
    for (int k = n - 1; k >= 0; k--, i = parent[i])
        path[k] = i;
    return n;
}

/* Positions and key lists of the tree with rows from START (prefix START). */
struct tree_desc {
    int32_t pos[N_NODES], off[N_NODES + 1], rows[N_NODES * N_NODES];
    struct mtp_tree_batch b;
};

static void describe(struct tree_desc *t, int start)
{
    t->off[0] = 0;
    for (int i = 0; i < N_NODES; i++) {
        int path[N_NODES], n = path_of(i, path);
        t->pos[i] = start + n - 1;
        for (int k = 0; k < n; k++)
            t->rows[t->off[i] + k] = start + path[k];
        t->off[i + 1] = t->off[i] + n;
    }
    t->b = (struct mtp_tree_batch){
        .start_row = start, .pos = t->pos, .keys = {.n_prefix = start, .off = t->off, .rows = t->rows}};
}

static void assert_bits(const float *a, const float *b, size_t n, const char *what, int node)
{
    if (memcmp(a, b, n * sizeof(float)) == 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            fail_msg("%s of node %d differs at %zu: %.9g vs %.9g", what, node, i, a[i], b[i]);
}

/* Cache rows of every layer of MODULE (0 = main) at ROW_A of A and ROW_B of B. */
static void assert_rows(struct loaded *a, int row_a, struct loaded *b, int row_b, int module,
                        int node)
{
    const struct mtp_config *c = &a->model->cfg;
    int first = module == 0 ? 0 : c->num_hidden_layers + module - 1;
    int last = module == 0 ? c->num_hidden_layers : first + 1;
    int cw = mtp_config_cache_width(c);
    float *ra = malloc((size_t)cw * sizeof(float)), *rb = malloc((size_t)cw * sizeof(float));
    for (int l = first; l < last; l++) {
        mtp_engine_read_cache(a->e, l, row_a, 1, ra);
        mtp_engine_read_cache(b->e, l, row_b, 1, rb);
        assert_bits(ra, rb, (size_t)cw, "cache row", node);
    }
    free(ra);
    free(rb);
}

/* The prompt through the main model in chunks (the batch-invariant path). */
static void prompt_into(struct loaded *l, float *hidden)
{
    if (mtp_engine_forward(l->e, prompt, PROMPT, 0, NULL, hidden))
        fail_msg("%s", mtp_error_message());
}

static void main_tree_case(const char *variant, const char *backend)
{
    struct loaded a, b;
    if (!load(variant, backend, &a))
        skip();
    assert_true(load(variant, backend, &b));
    int V = a.model->cfg.vocab_size, d = a.model->cfg.hidden_size;
    float *lg = malloc((size_t)N_NODES * V * sizeof(float));
    float *hd = malloc((size_t)N_NODES * d * sizeof(float));
    float *lg1 = malloc((size_t)V * sizeof(float)), *hd1 = malloc((size_t)d * sizeof(float));
    prompt_into(&a, NULL);
    prompt_into(&b, NULL);
    struct tree_desc t;
    describe(&t, PROMPT);
    if (mtp_engine_forward_tree(a.e, tokens, N_NODES, &t.b, lg, hd))
        fail_msg("%s", mtp_error_message());
    for (int i = 0; i < N_NODES; i++) {
        int path[N_NODES], n = path_of(i, path);
        mtp_engine_truncate(b.e, 0, PROMPT);
        for (int k = 0; k < n; k++)
            if (mtp_engine_forward(b.e, &tokens[path[k]], 1, PROMPT + k, lg1, hd1))
                fail_msg("%s", mtp_error_message());
        assert_bits(lg + (size_t)i * V, lg1, (size_t)V, "logits", i);
        assert_bits(hd + (size_t)i * d, hd1, (size_t)d, "hidden", i);
        for (int k = 0; k < n; k++)
            assert_rows(&a, PROMPT + path[k], &b, PROMPT + k, 0, i);
    }
    /* Compaction of the deepest path 0-1-4-7-8: rows move to PROMPT + depth. */
    int path[N_NODES], n = path_of(N_NODES - 1, path);
    int32_t src[N_NODES], dst[N_NODES];
    for (int k = 0; k < n; k++) {
        src[k] = PROMPT + path[k];
        dst[k] = PROMPT + k;
    }
    mtp_engine_move_rows(a.e, 0, src, dst, n);
    mtp_engine_set_cache_len(a.e, 0, PROMPT + n);
    for (int r = 0; r < PROMPT + n; r++)
        assert_rows(&a, r, &b, r, 0, -1);
    /* A decode after compaction sees the same cache as the sequential one. */
    int32_t next = 77;
    if (mtp_engine_forward(a.e, &next, 1, PROMPT + n, lg, hd) ||
        mtp_engine_forward(b.e, &next, 1, PROMPT + n, lg1, hd1))
        fail_msg("%s", mtp_error_message());
    assert_bits(lg, lg1, (size_t)V, "logits after compaction", -1);
    free(lg);
    free(hd);
    free(lg1);
    free(hd1);
    unload(&a);
    unload(&b);
}

/* Module 1 over a tree: node i at position P-1+depth reads tokens[i] and a
 * hidden input row (here one fixed random row per node, so the sequential
 * run can feed the same inputs). */
static void module_tree_case(const char *variant, const char *backend)
{
    struct loaded a, b;
    if (!load(variant, backend, &a))
        skip();
    assert_true(load(variant, backend, &b));
    int V = a.model->cfg.vocab_size, d = a.model->cfg.hidden_size;
    float *hin = malloc((size_t)(PROMPT + N_NODES) * d * sizeof(float));
    prompt_into(&a, hin);
    float *lg = malloc((size_t)N_NODES * V * sizeof(float));
    float *hd = malloc((size_t)N_NODES * d * sizeof(float));
    float *lg1 = malloc((size_t)V * sizeof(float)), *hd1 = malloc((size_t)d * sizeof(float));
    float *node_in = hin + (size_t)PROMPT * d;
    for (int i = 0; i < N_NODES * d; i++)
        node_in[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    int P = PROMPT - 1; /* module rows 0..P-1 are the prompt's true rows */
    for (struct loaded *l = &a; l; l = l == &a ? &b : NULL)
        if (mtp_engine_mtp_forward(l->e, 1, prompt + 1, hin, P, 0, NULL, NULL))
            fail_msg("%s", mtp_error_message());
    struct tree_desc t;
    describe(&t, P);
    if (mtp_engine_mtp_forward_tree(a.e, 1, tokens, node_in, N_NODES, &t.b, 0, lg, hd))
        fail_msg("%s", mtp_error_message());
    for (int i = 0; i < N_NODES; i++) {
        int path[N_NODES], n = path_of(i, path);
        mtp_engine_truncate(b.e, 1, P);
        for (int k = 0; k < n; k++)
            if (mtp_engine_mtp_forward(b.e, 1, &tokens[path[k]], node_in + (size_t)path[k] * d, 1,
                                       P + k, lg1, hd1))
                fail_msg("%s", mtp_error_message());
        assert_bits(lg + (size_t)i * V, lg1, (size_t)V, "module logits", i);
        assert_bits(hd + (size_t)i * d, hd1, (size_t)d, "module hidden", i);
        for (int k = 0; k < n; k++)
            assert_rows(&a, P + path[k], &b, P + k, 1, i);
    }
    free(hin);
    free(lg);
    free(hd);
    free(lg1);
    free(hd1);
    unload(&a);
    unload(&b);
}

static void test_main_tree_cpu(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
        main_tree_case(variants[v], "cpu");
}

static void test_module_tree_cpu(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
        module_tree_case(variants[v], "cpu");
}

static void test_main_tree_cuda(void **state)
{
    (void)state;
    main_tree_case("v3-bf16", "cuda");
    main_tree_case("v3-f32", "cuda");
}

static void test_module_tree_cuda(void **state)
{
    (void)state;
    module_tree_case("v3-bf16", "cuda");
}

/* Bad batches are refused with a message, before any op runs. */
static void test_bad_batches(void **state)
{
    (void)state;
    struct loaded a;
    assert_true(load("v3-f32", "cpu", &a));
    prompt_into(&a, NULL);
    struct tree_desc t;
    describe(&t, PROMPT);
    assert_int_equal(mtp_engine_forward_tree(a.e, tokens, 0, &t.b, NULL, NULL), MTP_ERR);
    assert_int_equal(mtp_engine_forward_tree(a.e, tokens, MAX_BATCH + 1, &t.b, NULL, NULL),
                     MTP_ERR);
    t.rows[3] = PROMPT + N_NODES; /* a key past the rows this forward writes */
    assert_int_equal(mtp_engine_forward_tree(a.e, tokens, N_NODES, &t.b, NULL, NULL), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "reads row"));
    unload(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_main_tree_cpu),
        cmocka_unit_test(test_module_tree_cpu),
        cmocka_unit_test(test_bad_batches),
        cmocka_unit_test(test_main_tree_cuda),
        cmocka_unit_test(test_module_tree_cuda),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_tree_decode.c - greedy tree decoding (spec/decoding.md "Tree
 * decoding") on the tiny fixture models (2 MTP modules) and models/mtp-mini:
 *   - greedy tree decoding emits exactly the baseline's tokens, for static
 *     (widths, explicit paths) and dynamic shapes, exact and chained drafting;
 *   - oracle drafts (a tree hook plants the true continuation at one chosen
 *     sibling rank per depth, wrong tokens elsewhere) force every accepted
 *     depth 0..L and every sibling rank; the step records must say so;
 *   - after every step the main and module caches equal a from-scratch
 *     computation of the accepted sequence (forward() in chunks of <= 16
 *     tokens, the batch-invariant path), rows 0..length-1, bit for bit;
 *     rolled-back rows are poisoned with NaN so a stale read shows up;
 *   - bad shapes are refused with a reason.
 *
 *   ctest --test-dir build -R tree_decode
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/decode.h"
#include "engine/engine.h"
#include "core/error.h"

enum { MAX_POS = 256, MAX_BATCH = 64, MAX_NEW = 24, CHUNK = 16 };

struct loaded {
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_engine *e;
};

static bool load(const char *rel, struct loaded *l)
{
    char dir[512], probe[600];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/%s", MTP_SOURCE_DIR, rel);
    snprintf(probe, sizeof probe, "%s/config.json", dir);
    if (stat(probe, &st) != 0)
        return false;
    memset(l, 0, sizeof *l);
    if (mtp_model_load(dir, &l->model))
        fail_msg("%s", mtp_error_message());
    assert_int_equal(mtp_backend_cpu_create(1, &l->be), MTP_OK);
    struct mtp_engine_options opt = {.max_positions = MAX_POS, .max_batch = MAX_BATCH,
                                     .poison_rollback = true};
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

static struct mtp_decode_params params(enum mtp_decode_drafting dr, const char *shape, int max_new)
{
    struct mtp_decode_params p = {
        .drafting = dr,
        .depth = 1,
        .sampling = {.temperature = 0, .top_p = 1.0f, .top_k = 0},
        .max_new_tokens = max_new,
        .eos_token_id = -1,
    };
    if (shape && mtp_tree_parse(shape, &p.tree))
        fail_msg("%s", mtp_error_message());
    mtp_rng_seed_stream(&p.rng, 1, 0, 0, 0);
    return p;
}

static const int32_t prompt_a[] = {7};
static const int32_t prompt_b[] = {3, 17, 42, 99, 5};
static const int32_t prompt_c[] = {11, 12, 13, 200, 201, 14, 15, 16, 60, 61, 62, 63, 9};
static const struct {
    const int32_t *ids;
    int n;
} prompts[] = {{prompt_a, 1}, {prompt_b, 5}, {prompt_c, 13}};

static const char *const exact_shapes[] = {"widths:2,2", "widths:3,2", "widths:1,1",
                                           "paths:0;1;2;0,0;0,1;1,0", "dynamic:5,2,2",
                                           "dynamic:3,3,1"};
static const char *const chain_shapes[] = {"widths:2,2,1,1", "widths:4,2,1", "paths:0;1;0,0;0,0,0",
                                           "dynamic:8,3,4", "widths:1,1,1,1,1"};

/* ---- from-scratch comparison of the caches ---- */

static void assert_bits(const float *a, const float *b, size_t n, const char *what, int row)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            fail_msg("%s row %d differs at %zu: %.9g vs %.9g", what, row, i, a[i], b[i]);
}

/* Rows 0..n-1 of HF layer L in both engines. */
static void compare_layer(struct loaded *a, struct loaded *b, int layer, int n, const char *what)
{
    int cw = mtp_config_cache_width(&a->model->cfg);
    float *ra = malloc((size_t)cw * sizeof(float)), *rb = malloc((size_t)cw * sizeof(float));
    for (int r = 0; r < n; r++) {
        mtp_engine_read_cache(a->e, layer, r, 1, ra);
        mtp_engine_read_cache(b->e, layer, r, 1, rb);
        assert_bits(ra, rb, (size_t)cw, what, r);
    }
    free(ra);
    free(rb);
}

/* FRESH recomputes the accepted sequence SEQ [n] (pending last) from scratch
 * in chunks: main rows 0..n-2; exact module k rows 0..n-1-k from tokens
 * seq[k..] and module k-1's hidden; chained module M rows 0..n-2. Then every
 * cache of SESSION's engine must equal it up to its length. */
static void check_caches(struct loaded *live, struct loaded *fresh, const int32_t *seq, int n,
                         const struct mtp_decode_params *p)
{
    const struct mtp_config *c = &live->model->cfg;
    int d = c->hidden_size, m = n - 1, L = mtp_tree_depth(&p->tree);
    float *h = malloc((size_t)(m + 1) * d * sizeof(float));
    float *g = malloc((size_t)(m + 1) * d * sizeof(float));
    mtp_engine_truncate(fresh->e, 0, 0);
    for (int s = 0; s < m; s += CHUNK)
        if (mtp_engine_forward(fresh->e, seq + s, m - s < CHUNK ? m - s : CHUNK, s, NULL,
                               h + (size_t)s * d))
            fail_msg("%s", mtp_error_message());
    assert_true(mtp_engine_cache_len(live->e, 0) == m);
    for (int l = 0; l < c->num_hidden_layers; l++)
        compare_layer(live, fresh, l, m, "main cache");
    int modules = p->drafting == MTP_DECODE_DRAFTING_EXACT ? L : 1;
    bool mimo = p->wiring.module_hidden == MTP_WIRING_MODULE_HIDDEN_MAIN_MODEL;
    mtp_engine_set_mtp_wiring(fresh->e, &p->wiring); /* zeroed position 0, raw hidden */
    float *h_main = malloc((size_t)(m + 1) * d * sizeof(float));
    memcpy(h_main, h, (size_t)(m + 1) * d * sizeof(float));
    const float *in = h;
    for (int k = 1; k <= modules; k++) {
        int shift = p->drafting == MTP_DECODE_DRAFTING_EXACT ? k : 1, rows = m + 1 - shift;
        mtp_engine_truncate(fresh->e, k, 0);
        for (int s = 0; s < rows; s += CHUNK)
            if (mtp_engine_mtp_forward(fresh->e, k, seq + s + shift, in + (size_t)s * d,
                                       rows - s < CHUNK ? rows - s : CHUNK, s, NULL,
                                       g + (size_t)s * d))
                fail_msg("%s", mtp_error_message());
        int len = mtp_engine_cache_len(live->e, k);
        assert_true(len <= (rows > 0 ? rows : 0));
        compare_layer(live, fresh, c->num_hidden_layers + k - 1, len, "module cache");
        memcpy(h, mimo ? h_main : g, (size_t)(m + 1) * d * sizeof(float));
        in = h;
    }
    free(h);
    free(g);
    free(h_main);
}

/* ---- the oracle hook ---- */

struct oracle {
    const struct mtp_decode *session;
    const int32_t *truth; /* prompt + the baseline's output, by position */
    int n_truth;
    int V;
    int depth;            /* accept this many drafts this step (if the tree allows) */
    int rank_seed;        /* the sibling rank kept at depth r: (rank_seed + r) % width */
    int widths[16];       /* static trees: children per node at each depth */
};

/* The root of this step is seq[m]; node X at depth r carries the truth iff
 * its ancestors do, r <= depth and its rank is the chosen one. */
static void oracle_hook(void *user, const struct mtp_tree *t, int node, int32_t *token)
{
    struct oracle *o = user;
    int n;
    mtp_decode_sequence(o->session, &n);
    int r = t->depth[node], m = n - 1;
    bool on_path = true;
    for (int y = t->parent[node]; y > 0; y = t->parent[y])
        on_path &= t->token[y] == o->truth[m + t->depth[y]];
    int want = (o->rank_seed + r) % o->widths[r - 1];
    int32_t right = m + r < o->n_truth ? o->truth[m + r] : 0;
    if (on_path && r <= o->depth && t->rank[node] == want)
        *token = right;
    else
        *token = (right + 1 + t->rank[node]) % o->V;
}

static void run_baseline(struct loaded *l, const int32_t *prompt, int n, int max_new,
                         struct mtp_decode_result *r)
{
    struct mtp_decode_params p = params(MTP_DECODE_DRAFTING_NONE, NULL, max_new);
    p.depth = 0;
    if (mtp_decode_run(l->e, &p, prompt, n, r))
        fail_msg("%s", mtp_error_message());
}

/* Step a session to the end, checking caches after each step when FRESH. */
static void run_steps(struct loaded *l, struct loaded *fresh, const struct mtp_decode_params *p,
                      const int32_t *prompt, int n, struct mtp_decode **out)
{
    struct mtp_decode *d;
    if (mtp_decode_create(l->e, p, &d) || mtp_decode_prefill(d, prompt, n))
        fail_msg("%s", mtp_error_message());
    bool done = false;
    while (!done) {
        if (mtp_decode_step(d, &done))
            fail_msg("%s", mtp_error_message());
        int ns;
        const int32_t *seq = mtp_decode_sequence(d, &ns);
        if (fresh && !done)
            check_caches(l, fresh, seq, ns, p);
    }
    *out = d;
}

static void assert_same_output(const struct mtp_decode_result *a,
                               const struct mtp_decode_result *base, const char *what)
{
    assert_int_equal(a->n_output, base->n_output);
    for (int i = 0; i < a->n_output; i++)
        if (a->output[i] != base->output[i])
            fail_msg("%s: token %d is %d, baseline %d", what, i, a->output[i], base->output[i]);
}

/* Every shape and drafting on model REL equals the baseline; caches checked. */
static void greedy_equals_baseline(const char *rel, bool check)
{
    struct loaded l, fresh;
    if (!load(rel, &l))
        skip();
    assert_true(load(rel, &fresh));
    int accepted = 0;
    for (size_t pi = 0; pi < sizeof prompts / sizeof prompts[0]; pi++) {
        struct mtp_decode_result base;
        run_baseline(&l, prompts[pi].ids, prompts[pi].n, MAX_NEW, &base);
        for (int dr = 0; dr < 2; dr++) {
            const char *const *shapes = dr ? chain_shapes : exact_shapes;
            size_t ns = dr ? sizeof chain_shapes / sizeof *chain_shapes
                           : sizeof exact_shapes / sizeof *exact_shapes;
            for (size_t si = 0; si < ns; si++) {
                struct mtp_decode_params p = params(
                    dr ? MTP_DECODE_DRAFTING_CHAIN : MTP_DECODE_DRAFTING_EXACT, shapes[si], MAX_NEW);
                if (mtp_tree_depth(&p.tree) > l.model->cfg.num_nextn_predict_layers && !dr)
                    continue;
                struct mtp_decode *d;
                run_steps(&l, check ? &fresh : NULL, &p, prompts[pi].ids, prompts[pi].n, &d);
                char what[128];
                snprintf(what, sizeof what, "%s %s %s prompt %zu", rel, dr ? "chain" : "exact",
                         shapes[si], pi);
                assert_same_output(mtp_decode_result(d), &base, what);
                const struct mtp_decode_result *r = mtp_decode_result(d);
                for (int s = 0; s < r->n_steps; s++) {
                    accepted += r->accepted[s];
                    assert_true(r->tree_nodes[s] >= 2 && r->tree_nodes[s] <= MTP_TREE_MAX_NODES);
                }
                mtp_decode_free(d);
            }
        }
        mtp_decode_result_free(&base);
    }
    if (strstr(rel, "mtp-mini"))
        assert_true(accepted > 0); /* trained modules: drafts really get accepted */
    unload(&l);
    unload(&fresh);
}

static void test_greedy_fixtures(void **state)
{
    (void)state;
    static const char *const v[] = {"tests/fixtures/v3-f32", "tests/fixtures/v3-bf16",
                                    "tests/fixtures/v2-f32", "tests/fixtures/v3-fp8"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        greedy_equals_baseline(v[i], true);
}

static void test_greedy_mtp_mini(void **state)
{
    (void)state;
    greedy_equals_baseline("models/mtp-mini", true);
}

/* Oracle runs of one shape: steps cycle through accepted depths 0..L and
 * sibling ranks; each step's record must show the forced depth and ranks. */
static void oracle_case(struct loaded *l, struct loaded *fresh, enum mtp_decode_drafting dr,
                        const int *widths, int L, bool *seen_depth, bool (*seen_rank)[8],
                        const int32_t *prompt, int np, const struct mtp_wiring *wiring,
                        int offset)
{
    char shape[64];
    int used = snprintf(shape, sizeof shape, "widths:");
    for (int r = 0; r < L; r++)
        used += snprintf(shape + used, sizeof shape - (size_t)used, r ? ",%d" : "%d", widths[r]);
    const int n_new = 40;
    struct mtp_decode_result truth;
    run_baseline(l, prompt, np, n_new + L + 2, &truth);
    int32_t all[128];
    memcpy(all, prompt, (size_t)np * sizeof(int32_t));
    memcpy(all + np, truth.output, (size_t)truth.n_output * sizeof(int32_t));
    for (int seed = 0; seed < 3; seed++) {
        struct mtp_decode_params p = params(dr, shape, n_new);
        p.wiring = *wiring;
        struct oracle o = {.truth = all, .n_truth = np + truth.n_output,
                           .V = l->model->cfg.vocab_size, .rank_seed = seed};
        memcpy(o.widths, widths, (size_t)L * sizeof(int));
        p.tree_hook = oracle_hook;
        p.draft_hook_user = &o;
        struct mtp_decode *d;
        if (mtp_decode_create(l->e, &p, &d) || mtp_decode_prefill(d, prompt, np))
            fail_msg("%s", mtp_error_message());
        o.session = d;
        bool done = false;
        for (int s = 0; !done; s++) {
            o.depth = (s + offset) % (L + 1); /* OFFSET 1: the first step accepts */
            if (mtp_decode_step(d, &done))
                fail_msg("%s", mtp_error_message());
            const struct mtp_decode_result *r = mtp_decode_result(d);
            if (done)
                break;
            int ns;
            const int32_t *seq = mtp_decode_sequence(d, &ns);
            check_caches(l, fresh, seq, ns, &p); /* compaction after every forced depth */
            assert_int_equal(r->accepted_uncut[s], o.depth);
            seen_depth[o.depth] = true;
            for (int k = 0; k < o.depth; k++) {
                int want = (seed + k + 1) % widths[k];
                assert_int_equal(r->tree_ranks[(size_t)s * r->tree_depth + k], want);
                seen_rank[k][want] = true;
            }
        }
        const struct mtp_decode_result *r = mtp_decode_result(d);
        for (int i = 0; i < r->n_output; i++)
            assert_int_equal(r->output[i], truth.output[i]);
        mtp_decode_free(d);
    }
    mtp_decode_result_free(&truth);
}

/* The MTP wiring conventions (spec/decoding.md "MTP wiring") with trees:
 * vLLM's raw hidden and zeroed position 0 (a 1-token prompt puts tree rows at
 * position 0), and MiMo's main-model hidden for every module. */
static void test_wiring_variants(void **state)
{
    (void)state;
    static const struct mtp_wiring wirings[] = {
        {MTP_WIRING_DRAFT_HIDDEN_BEFORE_NORM, MTP_WIRING_POSITION0_ZEROED,
         MTP_WIRING_MODULE_HIDDEN_PREVIOUS_MODULE},
        {MTP_WIRING_DRAFT_HIDDEN_AFTER_NORM, MTP_WIRING_POSITION0_KEPT,
         MTP_WIRING_MODULE_HIDDEN_MAIN_MODEL},
    };
    static const char *const shapes[] = {"widths:2,2", "dynamic:4,2,2"};
    struct loaded l, fresh;
    assert_true(load("tests/fixtures/v3-f32", &l));
    assert_true(load("tests/fixtures/v3-f32", &fresh));
    for (size_t pi = 0; pi < 2; pi++) {
        struct mtp_decode_result base;
        run_baseline(&l, prompts[pi].ids, prompts[pi].n, MAX_NEW, &base);
        for (size_t w = 0; w < 2; w++)
            for (int dr = 0; dr < 2; dr++)
                for (size_t si = 0; si < 2; si++) {
                    if (dr && wirings[w].module_hidden == MTP_WIRING_MODULE_HIDDEN_MAIN_MODEL)
                        continue; /* exact drafting only */
                    struct mtp_decode_params p = params(
                        dr ? MTP_DECODE_DRAFTING_CHAIN : MTP_DECODE_DRAFTING_EXACT, shapes[si],
                        MAX_NEW);
                    p.wiring = wirings[w];
                    struct mtp_decode *d;
                    run_steps(&l, &fresh, &p, prompts[pi].ids, prompts[pi].n, &d);
                    assert_same_output(mtp_decode_result(d), &base, shapes[si]);
                    mtp_decode_free(d);
                }
        mtp_decode_result_free(&base);
    }
    /* Forced acceptances from a 1-token prompt: module 2's rows of depth-1
     * siblings sit at position 0 and are kept, so each must be masked. */
    static const int w2[] = {2, 2};
    for (size_t w = 0; w < 2; w++) {
        bool seen_depth[8] = {false}, seen_rank[8][8] = {{false}};
        oracle_case(&l, &fresh, MTP_DECODE_DRAFTING_EXACT, w2, 2, seen_depth, seen_rank,
                    prompt_a, 1, &wirings[w], 1);
    }
    static const struct mtp_wiring def = {0};
    mtp_engine_set_mtp_wiring(fresh.e, &def);
    unload(&l);
    unload(&fresh);
}

static void test_oracle_depths_and_ranks(void **state)
{
    (void)state;
    struct loaded l, fresh;
    assert_true(load("tests/fixtures/v3-f32", &l));
    assert_true(load("tests/fixtures/v3-f32", &fresh));
    static const int w_exact[] = {3, 2}, w_chain[] = {3, 2, 2, 1};
    for (int dr = 0; dr < 2; dr++) {
        const int *w = dr ? w_chain : w_exact;
        int L = dr ? 4 : 2;
        bool seen_depth[8] = {false}, seen_rank[8][8] = {{false}};
        static const struct mtp_wiring def = {0};
        oracle_case(&l, &fresh, dr ? MTP_DECODE_DRAFTING_CHAIN : MTP_DECODE_DRAFTING_EXACT, w, L,
                    seen_depth, seen_rank, prompt_b, 5, &def, 0);
        for (int k = 0; k <= L; k++)
            assert_true(seen_depth[k]);
        for (int k = 0; k < L; k++)
            for (int r = 0; r < w[k]; r++)
                assert_true(seen_rank[k][r]);
    }
    unload(&l);
    unload(&fresh);
}

static void expect_error(struct loaded *l, struct mtp_decode_params *p, const char *needle)
{
    struct mtp_decode *d = NULL;
    assert_int_equal(mtp_decode_create(l->e, p, &d), MTP_ERR);
    if (!strstr(mtp_error_message(), needle))
        fail_msg("expected \"%s\" in: %s", needle, mtp_error_message());
}

static void test_bad_shapes(void **state)
{
    (void)state;
    struct mtp_tree_shape s;
    int w0[] = {2, 0}, big[] = {8, 8};
    assert_int_equal(mtp_tree_from_widths(w0, 2, &s), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "must be >= 1"));
    assert_int_equal(mtp_tree_from_widths(big, 2, &s), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "draft nodes"));
    assert_int_equal(mtp_tree_parse("widths:2,-1", &s), MTP_ERR);
    assert_int_equal(mtp_tree_parse("paths:0;1,1", &s), MTP_ERR); /* [1] is missing */
    assert_non_null(strstr(mtp_error_message(), "lacks its parent"));
    assert_int_equal(mtp_tree_parse("paths:0;0", &s), MTP_ERR);
    assert_int_equal(mtp_tree_parse("bushy", &s), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "cannot parse"));
    assert_int_equal(mtp_tree_parse("dynamic:0,2,2", &s), MTP_ERR);
    assert_int_equal(mtp_tree_parse("dynamic:8,2", &s), MTP_ERR);
    assert_int_equal(mtp_tree_parse("dynamic:60,8,3", &s), MTP_ERR);
    assert_int_equal(mtp_tree_parse("paths:0;1;0,0;0,1", &s), MTP_OK);
    char text[128];
    mtp_tree_describe(&s, text, sizeof text);
    assert_string_equal(text, "paths:0;1;0,0;0,1");
    assert_int_equal(mtp_tree_parse("4,2,1", &s), MTP_OK);
    mtp_tree_describe(&s, text, sizeof text);
    assert_string_equal(text, "widths:4,2,1");
    assert_int_equal(mtp_tree_max_drafts(&s), 4 + 8 + 8);

    struct loaded l;
    assert_true(load("tests/fixtures/v3-f32", &l));
    struct mtp_decode_params p = params(MTP_DECODE_DRAFTING_EXACT, "widths:2,2,2", MAX_NEW);
    expect_error(&l, &p, "exact tree drafting needs depth <=");
    p = params(MTP_DECODE_DRAFTING_NONE, "widths:2", MAX_NEW);
    expect_error(&l, &p, "exact or chain");
    p = params(MTP_DECODE_DRAFTING_CHAIN, "widths:2", MAX_NEW);
    p.chain_module = 5;
    expect_error(&l, &p, "chain drafting with module 5");
    p = params(MTP_DECODE_DRAFTING_CHAIN, "widths:2", MAX_NEW);
    p.sampling.temperature = 1;
    p.tree_hook = oracle_hook;
    expect_error(&l, &p, "tree hook needs greedy");
    unload(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_oracle_depths_and_ranks),
        cmocka_unit_test(test_wiring_variants),
        cmocka_unit_test(test_greedy_fixtures),
        cmocka_unit_test(test_greedy_mtp_mini),
    };
    const char *filter = getenv("MTP_TEST_FILTER");
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_decode.c - the decoding invariants of docs/design.md §5 on the tiny random
 * fixture models (tests/fixtures/<variant>, 2 MTP modules each) and, when it
 * exists, the trained default model models/mtp-mini:
 *   (a) greedy MTP output equals greedy baseline output token for token, for
 *       every depth 1..D (exact) and 1..D+2 (chain), several prompts; also with
 *       drafts forced to the true continuation (with planted errors) so that
 *       every acceptance length 0..K is exercised on random-weight models;
 *   (c) incremental exact and chained drafts equal a from-scratch recompute
 *       of the whole sequence on a second engine;
 *   (d) a fixed seed gives identical tokens and step records across two runs
 *       and across thread counts (1 vs 2);
 *   sampling runs (temperature 1, top-k/top-p) complete and respect
 *   max_new_tokens and EOS; the step records add up.
 *
 *   ctest --test-dir build -R decode
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/decode.h"
#include "engine/engine.h"
#include "core/error.h"

enum { MAX_POS = 64, MAX_BATCH = 8, MAX_NEW = 24 };

/* One model on its own backend and engine. */
struct loaded {
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_engine *e;
};

/* REL (under the source tree) holds a model: config.json and weights. */
static bool model_dir(const char *rel, char *buf, size_t cap)
{
    static const char *const need[] = {"model.safetensors", "model.safetensors.index.json"};
    struct stat st;
    snprintf(buf, cap, "%s/%s/config.json", MTP_SOURCE_DIR, rel);
    if (stat(buf, &st) != 0)
        return false;
    bool weights = false;
    for (int i = 0; i < 2; i++) {
        snprintf(buf, cap, "%s/%s/%s", MTP_SOURCE_DIR, rel, need[i]);
        weights |= stat(buf, &st) == 0;
    }
    snprintf(buf, cap, "%s/%s", MTP_SOURCE_DIR, rel);
    return weights;
}

static void load(const char *dir, int threads, int max_pos, struct loaded *l)
{
    memset(l, 0, sizeof *l);
    if (mtp_model_load(dir, &l->model))
        fail_msg("%s", mtp_error_message());
    assert_int_equal(mtp_backend_cpu_create(threads, &l->be), MTP_OK);
    /* Invariant prefill: (c) compares drafts with a recompute whose prefill must
     * equal incremental decoding bitwise, whatever MAX_BATCH is. */
    struct mtp_engine_options opt = {.max_positions = max_pos, .max_batch = MAX_BATCH,
                                     .invariant_prefill = true};
    if (mtp_engine_create(l->model, l->be, &opt, &l->e))
        fail_msg("%s", mtp_error_message());
}

static void unload(struct loaded *l)
{
    mtp_engine_free(l->e);
    mtp_backend_free(l->be);
    mtp_model_free(l->model);
}

static struct mtp_decode_params params(enum mtp_decode_drafting dr, int K, float temp,
                                       uint64_t seed)
{
    struct mtp_decode_params p = {
        .drafting = dr,
        .depth = dr == MTP_DECODE_DRAFTING_NONE ? 0 : K,
        .sampling = {.temperature = temp, .top_p = 1.0f, .top_k = 0},
        .max_new_tokens = MAX_NEW,
        .eos_token_id = -1,
    };
    mtp_rng_seed_stream(&p.rng, seed, 0, 0, 0);
    return p;
}

/* Prompts: lengths 1 (no module prefill at all), 5 and 13 (> MAX_BATCH: chunked). */
static const int32_t prompt_a[] = {7};
static const int32_t prompt_b[] = {3, 17, 42, 99, 5};
static const int32_t prompt_c[] = {11, 12, 13, 200, 201, 14, 15, 16, 60, 61, 62, 63, 9};
static const struct {
    const int32_t *ids;
    int n;
} prompts[] = {{prompt_a, 1}, {prompt_b, 5}, {prompt_c, 13}};
enum { N_PROMPTS = 3 };

static void run_ok(struct loaded *l, const struct mtp_decode_params *p, const int32_t *prompt,
                   int n, struct mtp_decode_result *r)
{
    if (mtp_decode_run(l->e, p, prompt, n, r))
        fail_msg("decode failed: %s", mtp_error_message());
}

/* The step records must add up (log.h): sum e_s = n_output - 1, e_s = a_s + 1
 * except in a cut last step. */
static void check_records(const struct mtp_decode_result *r, int K, int max_new)
{
    assert_true(r->n_output >= 1 && r->n_output <= max_new);
    int sum = 0;
    for (int s = 0; s < r->n_steps; s++) {
        assert_true(r->accepted[s] >= 0 && r->accepted[s] <= K);
        assert_true(r->accepted_uncut[s] >= r->accepted[s] && r->accepted_uncut[s] <= K);
        if (s + 1 < r->n_steps) /* only the last step can be cut */
            assert_int_equal(r->accepted_uncut[s], r->accepted[s]);
        assert_true(r->emitted[s] >= 1 && r->emitted[s] <= r->accepted[s] + 1);
        if (s + 1 < r->n_steps)
            assert_int_equal(r->emitted[s], r->accepted[s] + 1);
        sum += r->emitted[s];
    }
    assert_int_equal(sum, r->n_output - 1);
    assert_true(r->stop == MTP_DECODE_STOP_EOS || r->stop == MTP_DECODE_STOP_MAX_TOKENS);
    if (r->stop == MTP_DECODE_STOP_MAX_TOKENS)
        assert_int_equal(r->n_output, max_new);
}

static void assert_same_tokens(const struct mtp_decode_result *want,
                               const struct mtp_decode_result *got, const char *what)
{
    if (want->n_output != got->n_output ||
        memcmp(want->output, got->output, sizeof(int32_t) * want->n_output) != 0) {
        int i = 0;
        while (i < want->n_output && i < got->n_output && want->output[i] == got->output[i])
            i++;
        fail_msg("%s: output differs from the baseline at token %d (lengths %d vs %d)", what, i,
                 want->n_output, got->n_output);
    }
}

/* ---- (a) greedy equivalence --------------------------------------------- */

/* A draft hook that proposes the true greedy continuation, with errors
 * planted at a fixed pattern, so that random-weight models still see every
 * acceptance length. */
struct oracle {
    struct mtp_decode *session;
    const struct mtp_decode_result *truth;
    int n_prompt, vocab, calls;
    int wrong_every; /* about one draft in this many is wrong (0 -> 8) */
};

static int g_wrong_every; /* default for oracles with wrong_every 0 (0 -> 8) */

static void oracle_hook(void *user, int k, int32_t *draft)
{
    struct oracle *o = user;
    int n;
    mtp_decode_sequence(o->session, &n);
    int idx = (n - 1) + k - o->n_prompt; /* draft k proposes t[m+k] = output[idx] */
    o->calls++;
    if (idx < 0 || idx >= o->truth->n_output)
        return;
    *draft = o->truth->output[idx];
    uint64_t x = (uint64_t)o->calls ^ (uint64_t)o->n_prompt << 32; /* a pattern per prompt */
    int every = o->wrong_every ? o->wrong_every : g_wrong_every ? g_wrong_every : 8;
    if (mtp_rng_splitmix64(&x) % (uint64_t)every == 0)
        *draft = (*draft + 1) % o->vocab;
}

/* Run with the oracle hook step by step; the result is moved to OUT. */
static void run_hooked(struct loaded *l, struct mtp_decode_params p, const int32_t *prompt, int n,
                       const struct mtp_decode_result *truth, struct mtp_decode_result *out)
{
    struct oracle o = {.truth = truth, .n_prompt = n, .vocab = l->model->cfg.vocab_size};
    p.draft_hook = oracle_hook;
    p.draft_hook_user = &o;
    if (mtp_decode_create(l->e, &p, &o.session) || mtp_decode_prefill(o.session, prompt, n))
        fail_msg("%s", mtp_error_message());
    bool done = false;
    while (!done)
        if (mtp_decode_step(o.session, &done))
            fail_msg("%s", mtp_error_message());
    *out = *mtp_decode_result(o.session);
    /* Take ownership of the arrays: copy the struct, then forget them in the session. */
    memset((void *)mtp_decode_result(o.session), 0, sizeof *out);
    mtp_decode_free(o.session);
}

struct config_case {
    enum mtp_decode_drafting drafting;
    int depth, module;
    int hist[65]; /* acceptance lengths seen with the oracle hook (depth <= 64) */
};

static void greedy_case(struct loaded *l, struct config_case *c, int pi,
                        const struct mtp_decode_result *base, const char *variant)
{
    char what[160];
    snprintf(what, sizeof what, "%s %s K=%d module %d prompt %d", variant,
             c->drafting == MTP_DECODE_DRAFTING_EXACT ? "exact" : "chain", c->depth, c->module,
             pi);
    struct mtp_decode_params p = params(c->drafting, c->depth, 0.0f, 1);
    p.chain_module = c->module;
    struct mtp_decode_result r, h;
    run_ok(l, &p, prompts[pi].ids, prompts[pi].n, &r);
    assert_same_tokens(base, &r, what);
    check_records(&r, c->depth, MAX_NEW);
    run_hooked(l, p, prompts[pi].ids, prompts[pi].n, base, &h);
    assert_same_tokens(base, &h, what);
    check_records(&h, c->depth, MAX_NEW);
    for (int s = 0; s < h.n_steps; s++) /* the verifier's outcome, also in a cut last step */
        c->hist[h.accepted_uncut[s]]++;
    mtp_decode_result_free(&r);
    mtp_decode_result_free(&h);
}

static void greedy_equivalence(const char *rel)
{
    char dir[512];
    if (!model_dir(rel, dir, sizeof dir)) {
        print_message("%s: not present, skipped\n", rel);
        return;
    }
    struct loaded l;
    load(dir, 1, MAX_POS, &l);
    int D = l.model->cfg.num_nextn_predict_layers;
    assert_true(D >= 1);
    struct config_case cases[16];
    int nc = 0;
    for (int K = 1; K <= D; K++)
        cases[nc++] = (struct config_case){MTP_DECODE_DRAFTING_EXACT, K, 0, {0}};
    for (int K = 1; K <= D + 2; K++)
        cases[nc++] = (struct config_case){MTP_DECODE_DRAFTING_CHAIN, K, 1, {0}};
    if (D >= 2)
        cases[nc++] = (struct config_case){MTP_DECODE_DRAFTING_CHAIN, 2, 2, {0}};
    for (int pi = 0; pi < N_PROMPTS; pi++) {
        struct mtp_decode_params bp = params(MTP_DECODE_DRAFTING_NONE, 0, 0.0f, 1);
        struct mtp_decode_result base;
        run_ok(&l, &bp, prompts[pi].ids, prompts[pi].n, &base);
        check_records(&base, 0, MAX_NEW);
        assert_int_equal(base.n_steps, base.n_output - 1);
        for (int c = 0; c < nc; c++)
            greedy_case(&l, &cases[c], pi, &base, rel);
        mtp_decode_result_free(&base);
    }
    /* The oracle makes both full acceptance and rejection happen at every depth. */
    for (int c = 0; c < nc; c++) {
        int below = 0;
        for (int a = 0; a < cases[c].depth; a++)
            below += cases[c].hist[a];
        print_message("%s %s K=%d module %d: acceptance lengths", rel,
                      cases[c].drafting == MTP_DECODE_DRAFTING_EXACT ? "exact" : "chain",
                      cases[c].depth, cases[c].module);
        for (int a = 0; a <= cases[c].depth; a++)
            print_message(" %d", cases[c].hist[a]);
        print_message("\n");
        assert_true(cases[c].hist[cases[c].depth] > 0);
        assert_true(below > 0);
    }
    unload(&l);
}

static void test_greedy_equivalence_fixtures(void **state)
{
    (void)state;
    static const char *const variants[] = {"tests/fixtures/v3-f32", "tests/fixtures/v3-bf16",
                                           "tests/fixtures/v3-fp8", "tests/fixtures/v2-f32",
                                           "tests/fixtures/v2-group-f32"};
    int found = 0;
    char dir[512];
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        found += model_dir(variants[i], dir, sizeof dir);
        greedy_equivalence(variants[i]);
    }
    assert_true(found > 0); /* the fixtures are part of the repository */
}

/* Depth beyond 16 (the old CUDA GEMV limit): greedy equality and every
 * acceptance length still hold on the CPU, with verifications of 18 and 21
 * tokens split into engine chunks of MAX_BATCH = 8. */
static void test_greedy_equivalence_deep(void **state)
{
    (void)state;
    char dir[512];
    assert_true(model_dir("tests/fixtures/v3-f32", dir, sizeof dir));
    struct loaded l;
    load(dir, 1, MAX_POS, &l);
    struct config_case cases[] = {{MTP_DECODE_DRAFTING_CHAIN, 17, 1, {0}},
                                  {MTP_DECODE_DRAFTING_CHAIN, 20, 1, {0}}};
    g_wrong_every = 1 << 30; /* oracle drafts right: a first step accepts all K */
    for (int pi = 0; pi < N_PROMPTS; pi++) {
        struct mtp_decode_params bp = params(MTP_DECODE_DRAFTING_NONE, 0, 0.0f, 1);
        struct mtp_decode_result base;
        run_ok(&l, &bp, prompts[pi].ids, prompts[pi].n, &base);
        for (int c = 0; c < 2; c++)
            greedy_case(&l, &cases[c], pi, &base, "v3-f32 deep");
        mtp_decode_result_free(&base);
    }
    g_wrong_every = 0;
    for (int c = 0; c < 2; c++)
        assert_true(cases[c].hist[cases[c].depth] > 0); /* all K accepted happened */
    unload(&l);
}

static void test_greedy_equivalence_mtp_mini(void **state)
{
    (void)state;
    char dir[512];
    if (!model_dir("models/mtp-mini", dir, sizeof dir))
        skip();
    greedy_equivalence("models/mtp-mini");
}

/* ---- (c) incremental drafts equal a from-scratch recompute --------------- */

/* t[i] of SEQ[0..m] extended by DRAFTS. */
static int32_t ext_token(const int32_t *seq, int m, const int32_t *drafts, int i)
{
    return i <= m ? seq[i] : drafts[i - m - 1];
}

/* The draft logits [K, V] of a step at pending index M, computed from nothing
 * on engine L: the main model over seq[0..m-1], then every module over all
 * positions 0..m-1 (exact), or module M's true rows and its chain (chain). */
static void recompute_drafts(struct loaded *l, const struct mtp_decode_params *p,
                             const int32_t *seq, int m, const int32_t *drafts, float *out)
{
    const struct mtp_config *c = &l->model->cfg;
    int d = c->hidden_size, V = c->vocab_size, K = p->depth;
    for (int k = 0; k <= c->num_nextn_predict_layers; k++)
        mtp_engine_truncate(l->e, k, 0);
    float *h = malloc(sizeof(float) * (size_t)(m + K) * d);
    float *g = malloc(sizeof(float) * (size_t)(m + K) * d);
    float *logits = malloc(sizeof(float) * (size_t)m * V);
    int32_t toks[MAX_POS];
    assert_int_equal(mtp_engine_prefill(l->e, seq, m, NULL, h), MTP_OK);
    bool chain = p->drafting == MTP_DECODE_DRAFTING_CHAIN;
    int first_module = chain ? (p->chain_module > 0 ? p->chain_module : 1) : 1;
    for (int k = 1; k <= (chain ? 1 : K); k++) {
        for (int j = 0; j < m; j++)
            toks[j] = ext_token(seq, m, drafts, j + k);
        int module = chain ? first_module : k;
        assert_int_equal(mtp_engine_mtp_forward(l->e, module, toks, h, m, 0, logits, g), MTP_OK);
        memcpy(out + (size_t)(k - 1) * V, logits + (size_t)(m - 1) * V, sizeof(float) * V);
        float *t = h; /* module k's hidden becomes module k+1's input */
        h = g;
        g = t;
    }
    for (int i = 2; chain && i <= K; i++) { /* h now holds the chain module's hidden */
        int pos = m + i - 2;
        assert_int_equal(mtp_engine_mtp_forward(l->e, first_module, &drafts[i - 2],
                                                h + (size_t)(pos - 1) * d, 1, pos, logits,
                                                h + (size_t)pos * d),
                         MTP_OK);
        memcpy(out + (size_t)(i - 1) * V, logits, sizeof(float) * V);
    }
    free(h);
    free(g);
    free(logits);
}

static void drafts_match_recompute(struct loaded *l, struct loaded *scratch,
                                   struct mtp_decode_params p, int pi, int *hist)
{
    int V = l->model->cfg.vocab_size;
    struct mtp_decode_params bp = params(MTP_DECODE_DRAFTING_NONE, 0, 0.0f, 1);
    struct mtp_decode_result base;
    run_ok(l, &bp, prompts[pi].ids, prompts[pi].n, &base);
    /* Many wrong drafts: rejections at every position exercise the rollback. */
    struct oracle o = {.truth = &base, .n_prompt = prompts[pi].n, .vocab = V, .wrong_every = 3};
    p.draft_hook = oracle_hook;
    p.draft_hook_user = &o;
    assert_int_equal(mtp_decode_create(l->e, &p, &o.session), MTP_OK);
    assert_int_equal(mtp_decode_prefill(o.session, prompts[pi].ids, prompts[pi].n), MTP_OK);
    float *want = malloc(sizeof(float) * (size_t)p.depth * V);
    int32_t seq[MAX_POS], drafts[16];
    bool done = false;
    int steps = 0;
    while (!done) {
        int n;
        const int32_t *cur = mtp_decode_sequence(o.session, &n);
        memcpy(seq, cur, sizeof(int32_t) * n);
        assert_int_equal(mtp_decode_step(o.session, &done), MTP_OK);
        int K = mtp_decode_last_drafts(o.session, drafts, 16);
        assert_int_equal(K, p.depth);
        recompute_drafts(scratch, &p, seq, n - 1, drafts, want);
        for (int k = 1; k <= K; k++)
            if (memcmp(want + (size_t)(k - 1) * V, mtp_decode_last_draft_logits(o.session, k),
                       sizeof(float) * V) != 0)
                fail_msg("step %d (m = %d): draft %d logits differ from a from-scratch "
                         "recompute", steps, n - 1, k);
        steps++;
        hist[mtp_decode_result(o.session)->accepted[steps - 1]]++;
    }
    assert_true(steps > 3);
    free(want);
    mtp_decode_free(o.session);
    mtp_decode_result_free(&base);
}

static void test_drafts_equal_recompute(void **state)
{
    (void)state;
    static const char *const variants[] = {"tests/fixtures/v3-f32", "tests/fixtures/v2-f32"};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        char dir[512];
        if (!model_dir(variants[v], dir, sizeof dir))
            continue;
        struct loaded l, scratch;
        load(dir, 1, MAX_POS, &l);
        load(dir, 1, MAX_POS, &scratch);
        int D = l.model->cfg.num_nextn_predict_layers;
        struct mtp_decode_params cases[] = {
            params(MTP_DECODE_DRAFTING_EXACT, D, 0.0f, 1),
            params(MTP_DECODE_DRAFTING_EXACT, 1, 0.0f, 1),
            params(MTP_DECODE_DRAFTING_CHAIN, 3, 0.0f, 1),
            params(MTP_DECODE_DRAFTING_CHAIN, 2, 0.0f, 1),
        };
        cases[3].chain_module = D;
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            int hist[8] = {0};
            for (int pi = 0; pi < N_PROMPTS; pi++)
                drafts_match_recompute(&l, &scratch, cases[c], pi, hist);
            for (int a = 0; a <= cases[c].depth; a++)
                if (hist[a] == 0) /* every acceptance length must happen */
                    fail_msg("%s case %zu: no step accepted %d drafts", variants[v], c, a);
        }
        unload(&scratch);
        unload(&l);
    }
}

/* ---- (d) determinism; sampling limits ----------------------------------- */

static void assert_same_records(const struct mtp_decode_result *a,
                                const struct mtp_decode_result *b)
{
    assert_int_equal(a->n_output, b->n_output);
    assert_memory_equal(a->output, b->output, sizeof(int32_t) * a->n_output);
    assert_int_equal(a->n_steps, b->n_steps);
    assert_memory_equal(a->accepted, b->accepted, sizeof(int32_t) * a->n_steps);
    assert_memory_equal(a->emitted, b->emitted, sizeof(int32_t) * a->n_steps);
    assert_int_equal(a->n_moe_layers, b->n_moe_layers);
    assert_memory_equal(a->experts_touched, b->experts_touched,
                        sizeof(int32_t) * a->n_steps * a->n_moe_layers);
    assert_int_equal(a->stop, b->stop);
}

static struct mtp_decode_params sampled(enum mtp_decode_drafting dr, int K, uint64_t seed)
{
    struct mtp_decode_params p = params(dr, K, 1.0f, seed);
    p.sampling.top_k = 40;
    p.sampling.top_p = 0.95f;
    return p;
}

static void test_fixed_seed_is_deterministic(void **state)
{
    (void)state;
    char dir[512];
    if (!model_dir("tests/fixtures/v3-f32", dir, sizeof dir))
        skip();
    struct loaded two, one;
    load(dir, 2, MAX_POS, &two);
    load(dir, 1, MAX_POS, &one);
    const struct mtp_decode_params cases[] = {
        sampled(MTP_DECODE_DRAFTING_EXACT, 2, 5), sampled(MTP_DECODE_DRAFTING_CHAIN, 3, 5),
        sampled(MTP_DECODE_DRAFTING_NONE, 0, 5), params(MTP_DECODE_DRAFTING_EXACT, 2, 0.7f, 9)};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct mtp_decode_result a, b, t1, other;
        /* Two threads only for the first cases: on a busy 2-core machine
         * OpenMP barriers make them slow, and one MTP case covers the claim. */
        run_ok(&one, &cases[c], prompt_c, 13, &a);
        run_ok(&one, &cases[c], prompt_c, 13, &b);
        run_ok(c < 2 ? &two : &one, &cases[c], prompt_c, 13, &t1);
        assert_same_records(&a, &b);
        assert_same_records(&a, &t1);
        struct mtp_decode_params q = cases[c];
        mtp_rng_seed_stream(&q.rng, 6, 0, 0, 0);
        run_ok(&one, &q, prompt_c, 13, &other);
        /* Another stream gives another text (24 draws over 256 ids at T >= 0.7). */
        assert_true(other.n_output != a.n_output ||
                    memcmp(other.output, a.output, sizeof(int32_t) * a.n_output) != 0);
        mtp_decode_result_free(&a);
        mtp_decode_result_free(&b);
        mtp_decode_result_free(&t1);
        mtp_decode_result_free(&other);
    }
    unload(&one);
    unload(&two);
}

/* Sampling runs complete, respect max_new_tokens, and stop at EOS: with the
 * same seed, a run whose EOS is a token of an earlier run's output stops
 * exactly at that token's first occurrence. */
static void test_sampling_limits_and_eos(void **state)
{
    (void)state;
    char dir[512];
    if (!model_dir("tests/fixtures/v3-f32", dir, sizeof dir))
        skip();
    struct loaded l;
    load(dir, 1, MAX_POS, &l);
    const struct mtp_decode_params cases[] = {
        sampled(MTP_DECODE_DRAFTING_EXACT, 2, 3), sampled(MTP_DECODE_DRAFTING_EXACT, 1, 4),
        sampled(MTP_DECODE_DRAFTING_CHAIN, 4, 3), sampled(MTP_DECODE_DRAFTING_NONE, 0, 3),
        params(MTP_DECODE_DRAFTING_CHAIN, 3, 0.0f, 3)};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int pi = 0; pi < N_PROMPTS; pi++) {
            struct mtp_decode_result r, cut;
            run_ok(&l, &cases[c], prompts[pi].ids, prompts[pi].n, &r);
            check_records(&r, cases[c].depth, MAX_NEW);
            assert_int_equal(r.stop, MTP_DECODE_STOP_MAX_TOKENS);
            assert_true(r.ttft_ns > 0 && r.total_ns >= r.ttft_ns);
            struct mtp_decode_params p = cases[c];
            p.eos_token_id = r.output[5 + pi];
            run_ok(&l, &p, prompts[pi].ids, prompts[pi].n, &cut);
            check_records(&cut, p.depth, MAX_NEW);
            int first = 0;
            while (r.output[first] != p.eos_token_id)
                first++;
            assert_int_equal(cut.stop, MTP_DECODE_STOP_EOS);
            assert_int_equal(cut.n_output, first + 1);
            assert_memory_equal(cut.output, r.output, sizeof(int32_t) * cut.n_output);
            mtp_decode_result_free(&r);
            mtp_decode_result_free(&cut);
        }
    }
    /* max_new_tokens = 1: the prefill token only, no steps. */
    struct mtp_decode_params one = sampled(MTP_DECODE_DRAFTING_EXACT, 2, 1);
    one.max_new_tokens = 1;
    struct mtp_decode_result r;
    run_ok(&l, &one, prompt_b, 5, &r);
    assert_int_equal(r.n_output, 1);
    assert_int_equal(r.n_steps, 0);
    mtp_decode_result_free(&r);
    unload(&l);
}

static void test_invalid_params(void **state)
{
    (void)state;
    char dir[512];
    if (!model_dir("tests/fixtures/v3-f32", dir, sizeof dir))
        skip();
    struct loaded l;
    load(dir, 1, MAX_POS, &l);
    int D = l.model->cfg.num_nextn_predict_layers;
    struct mtp_decode *d = NULL;
    struct mtp_decode_params p = params(MTP_DECODE_DRAFTING_EXACT, D + 1, 0.0f, 1);
    assert_int_equal(mtp_decode_create(l.e, &p, &d), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "exact drafting"));
    p = params(MTP_DECODE_DRAFTING_CHAIN, 2, 0.0f, 1);
    p.chain_module = D + 1;
    assert_int_equal(mtp_decode_create(l.e, &p, &d), MTP_ERR);
    p = params(MTP_DECODE_DRAFTING_CHAIN, 2, 0.0f, 1);
    p.max_new_tokens = MAX_POS; /* exceeds the engine's capacity: a clean error */
    struct mtp_decode_result r;
    assert_int_equal(mtp_decode_run(l.e, &p, prompt_c, 13, &r), MTP_ERR);
    assert_null(d);
    unload(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_equivalence_fixtures),
        cmocka_unit_test(test_greedy_equivalence_deep),
        cmocka_unit_test(test_greedy_equivalence_mtp_mini),
        cmocka_unit_test(test_drafts_equal_recompute),
        cmocka_unit_test(test_fixed_seed_is_deterministic),
        cmocka_unit_test(test_sampling_limits_and_eos),
        cmocka_unit_test(test_invalid_params),
    };
    const char *filter = getenv("MTP_TEST_FILTER"); /* e.g. "*recompute*" */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_batch_decode.c - speculative decoding at batch size B
 * (engine/decode_batch.h) on the shipped models and prompts of every
 * category in datasets/:
 *   - greedy: at B = 2, 3 and 4 (3 leaves a request waiting: continuous
 *     batching), the baseline and MTP with exact (K = 1..D) and chained
 *     (K = 1..3) drafting emit exactly the batch-1 baseline's tokens for
 *     every request;
 *   - sampled: at B = 3, every request's tokens and acceptance record equal
 *     those of the same request decoded alone with the same RNG stream;
 *   - the batch records are consistent with the requests' step records
 *     (members, tokens verified, experts touched by the batch at least those
 *     of each member);
 *   - a bad batch size is refused, naming it;
 *   - tree-shaped verification (static and dynamic trees, exact and
 *     chained) at B = 3: greedy tokens equal the batch-1 baseline's, sampled
 *     requests equal themselves alone;
 *   - the hooks: each request reported once as it retires; a stop admits
 *     nothing more and lets the requests in flight finish.
 * Models: models/mtp-mini and models/mtp-v3; CPU, one thread.
 *
 *   ctest --test-dir build -R batch_decode
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/decode_batch.h"
#include "engine/tree.h"
#include "engine/tokenizer.h"
#include "experiments/dataset.h"

enum { MAX_B = 4, MAX_K = 3, MAX_NEW = 24, MAX_REQS = 8, MAX_PROMPT = 384 };

struct fixture {
    const char *name;
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_engine *e;
    struct mtp_tokenizer *tok;
    int n_reqs;
    int32_t *ids[MAX_REQS];
    int n_ids[MAX_REQS];
};

/* One prompt of each category (every datasets/ .jsonl file), cut to MAX_PROMPT tokens. */
static void load_prompts(struct fixture *f)
{
    glob_t files;
    assert_int_equal(glob(MTP_SOURCE_DIR "/datasets/*.jsonl", 0, NULL, &files), 0);
    assert_true(files.gl_pathc >= 4 && files.gl_pathc <= MAX_REQS);
    for (size_t i = 0; i < files.gl_pathc; i++) {
        struct mtp_dataset ds;
        if (mtp_dataset_load(files.gl_pathv[i], 1, &ds))
            fail_msg("%s", mtp_error_message());
        const char *text = ds.prompts[0].text;
        int32_t *ids;
        int n;
        if (mtp_tokenizer_encode(f->tok, text, strlen(text), true, &ids, &n))
            fail_msg("%s", mtp_error_message());
        f->ids[f->n_reqs] = ids;
        f->n_ids[f->n_reqs++] = n < MAX_PROMPT ? n : MAX_PROMPT;
        mtp_dataset_free(&ds);
    }
    globfree(&files);
}

static int open_model(void **state, const char *name)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->name = name;
    char dir[512], tok[600];
    snprintf(dir, sizeof dir, "%s/models/%s", MTP_SOURCE_DIR, name);
    snprintf(tok, sizeof tok, "%s/tokenizer.json", dir);
    struct mtp_engine_options opt = {.max_positions = MAX_PROMPT + MAX_NEW + MAX_K + 2,
                                     .max_batch = MAX_B * (MAX_K + 1),
                                     .max_seqs = MAX_B,
                                     .poison_rollback = true};
    if (mtp_model_load(dir, &f->model) || mtp_backend_cpu_create(1, &f->be) ||
        mtp_tokenizer_load(tok, &f->tok) || mtp_engine_create(f->model, f->be, &opt, &f->e)) {
        fprintf(stderr, "%s: %s\n", dir, mtp_error_message());
        return -1;
    }
    *state = f;
    load_prompts(f);
    return 0;
}

static int open_mini(void **state) { return open_model(state, "mtp-mini"); }
static int open_v3(void **state) { return open_model(state, "mtp-v3"); }

static int close_model(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; f && i < f->n_reqs; i++)
        free(f->ids[i]);
    if (f) {
        mtp_engine_free(f->e);
        mtp_tokenizer_free(f->tok);
        mtp_backend_free(f->be);
        mtp_model_free(f->model);
        free(f);
    }
    return 0;
}

static struct mtp_decode_params params(const struct fixture *f, enum mtp_decode_drafting dr,
                                       int K, float temperature)
{
    return (struct mtp_decode_params){
        .drafting = dr,
        .depth = K,
        .chain_module = 1,
        .sampling = {.temperature = temperature, .top_p = temperature > 0 ? 0.95f : 1.0f},
        .max_new_tokens = MAX_NEW,
        .eos_token_id = f->model->cfg.eos_token_id,
    };
}

static void requests(const struct fixture *f, struct mtp_decode_request *reqs)
{
    for (int r = 0; r < f->n_reqs; r++) {
        reqs[r] = (struct mtp_decode_request){.prompt = f->ids[r], .n_prompt = f->n_ids[r]};
        mtp_rng_seed_stream(&reqs[r].rng, 1234, (uint64_t)r, 0, 0);
    }
}

/* Each request decoded alone (batch 1) with its own stream. */
static void run_alone(struct fixture *f, const struct mtp_decode_params *p,
                      struct mtp_decode_result *out)
{
    struct mtp_decode_request reqs[MAX_REQS];
    requests(f, reqs);
    for (int r = 0; r < f->n_reqs; r++) {
        struct mtp_decode_params q = *p;
        q.rng = reqs[r].rng;
        if (mtp_decode_run(f->e, &q, f->ids[r], f->n_ids[r], &out[r]))
            fail_msg("%s", mtp_error_message());
    }
}

/* The batch records against the requests' step records. */
static void check_log(const struct fixture *f, const struct mtp_decode_batch_log *log,
                      const struct mtp_decode_result *res, int B, bool mtp)
{
    long steps = 0, tokens = 0, members = 0;
    for (int r = 0; r < f->n_reqs; r++) {
        steps += res[r].n_steps;
        for (int s = 0; s < res[r].n_steps; s++)
            tokens += (mtp ? res[r].drafted[s] : 0) + 1;
    }
    long log_tokens = 0;
    for (int s = 0; s < log->n_steps; s++) {
        assert_true(log->n_seqs[s] >= 1 && log->n_seqs[s] <= B);
        assert_int_equal(log->member_off[s + 1] - log->member_off[s], log->n_seqs[s]);
        log_tokens += log->tokens[s];
        members += log->n_seqs[s];
        for (int l = 0; l < log->n_moe_layers; l++)
            assert_true(log->experts_touched[(size_t)s * log->n_moe_layers + l] >= 1);
    }
    assert_int_equal(members, steps); /* one membership per request step */
    assert_int_equal(log_tokens, tokens);
}

static void expect_same(const struct mtp_decode_result *a, const struct mtp_decode_result *b,
                        const char *what, int r, int B)
{
    if (a->n_output != b->n_output || memcmp(a->output, b->output, sizeof(int32_t) * a->n_output))
        fail_msg("%s: request %d at batch size %d: tokens differ from batch 1", what, r, B);
}

static void run_batch_ok(struct fixture *f, const struct mtp_decode_params *p, int B,
                         struct mtp_decode_result *res, struct mtp_decode_batch_log *log)
{
    struct mtp_decode_request reqs[MAX_REQS];
    requests(f, reqs);
    if (mtp_decode_batch_run(f->e, p, B, reqs, f->n_reqs, res, log, NULL))
        fail_msg("%s", mtp_error_message());
}

static void test_greedy_every_batch_size(void **state)
{
    struct fixture *f = *state;
    int D = f->model->cfg.num_nextn_predict_layers;
    struct mtp_decode_params bp = params(f, MTP_DECODE_DRAFTING_NONE, 0, 0.0f);
    struct mtp_decode_result base[MAX_REQS], res[MAX_REQS];
    run_alone(f, &bp, base);
    long accepted = 0;
    for (int B = 2; B <= MAX_B; B++) {
        for (int c = 0; c <= D + MAX_K; c++) { /* baseline, exact 1..D, chain 1..MAX_K */
            enum mtp_decode_drafting dr = c == 0   ? MTP_DECODE_DRAFTING_NONE
                                          : c <= D ? MTP_DECODE_DRAFTING_EXACT
                                                   : MTP_DECODE_DRAFTING_CHAIN;
            int K = c == 0 ? 0 : c <= D ? c : c - D;
            struct mtp_decode_params p = params(f, dr, K, 0.0f);
            struct mtp_decode_batch_log log;
            run_batch_ok(f, &p, B, res, &log);
            char what[96];
            snprintf(what, sizeof what, "%s %s K=%d", f->name,
                     c == 0 ? "baseline" : c <= D ? "exact" : "chain", K);
            for (int r = 0; r < f->n_reqs; r++) {
                expect_same(&res[r], &base[r], what, r, B);
                for (int s = 0; s < res[r].n_steps; s++)
                    accepted += res[r].accepted[s];
            }
            check_log(f, &log, res, B, K > 0);
            if (B < f->n_reqs) /* B sequences in flight while requests wait */
                assert_int_equal(log.n_seqs[0], B);
            for (int r = 0; r < f->n_reqs; r++)
                mtp_decode_result_free(&res[r]);
            mtp_decode_batch_log_free(&log);
        }
    }
    print_message("%s: drafts accepted over all batch runs: %ld\n", f->name, accepted);
    assert_true(accepted > 0); /* rollback after acceptance was exercised */
    for (int r = 0; r < f->n_reqs; r++)
        mtp_decode_result_free(&base[r]);
}

static void test_sampled_equals_batch_one(void **state)
{
    struct fixture *f = *state;
    enum mtp_decode_drafting kinds[2] = {MTP_DECODE_DRAFTING_EXACT, MTP_DECODE_DRAFTING_CHAIN};
    for (int k = 0; k < 2; k++) {
        struct mtp_decode_params p = params(f, kinds[k], 2, 0.8f);
        struct mtp_decode_result alone[MAX_REQS], res[MAX_REQS];
        run_alone(f, &p, alone);
        run_batch_ok(f, &p, 3, res, NULL);
        for (int r = 0; r < f->n_reqs; r++) {
            expect_same(&res[r], &alone[r], "sampled", r, 3);
            assert_int_equal(res[r].n_steps, alone[r].n_steps);
            assert_memory_equal(res[r].accepted, alone[r].accepted,
                                (size_t)res[r].n_steps * sizeof(int32_t));
            assert_memory_equal(res[r].experts_touched, alone[r].experts_touched,
                                (size_t)res[r].n_steps * res[r].n_moe_layers * sizeof(int32_t));
            mtp_decode_result_free(&res[r]);
            mtp_decode_result_free(&alone[r]);
        }
    }
}

/* Tree-shaped verification inside a batch: static trees (widths 2, 1: three
 * drafts) and a dynamic tree (budget 3), exact and chained, greedy at B = 3
 * emit the batch-1 baseline's tokens, and sampled at B = 3 each request's
 * tokens, acceptance and accepted tree nodes are those of the request alone. */
static void test_trees_in_a_batch(void **state)
{
    struct fixture *f = *state;
    struct mtp_tree_shape shapes[2];
    const int widths[2] = {2, 1};
    assert_int_equal(mtp_tree_from_widths(widths, 2, &shapes[0]), MTP_OK);
    assert_int_equal(mtp_tree_dynamic(3, 2, 2, &shapes[1]), MTP_OK);
    struct mtp_decode_params bp = params(f, MTP_DECODE_DRAFTING_NONE, 0, 0.0f);
    struct mtp_decode_result base[MAX_REQS], res[MAX_REQS], alone[MAX_REQS];
    run_alone(f, &bp, base);
    const enum mtp_decode_drafting kinds[2] = {MTP_DECODE_DRAFTING_EXACT,
                                               MTP_DECODE_DRAFTING_CHAIN};
    for (int sh = 0; sh < 2; sh++)
        for (int k = 0; k < 2; k++)
            for (int sampled = 0; sampled < 2; sampled++) {
                struct mtp_decode_params p = params(f, kinds[k], 0, sampled ? 0.8f : 0.0f);
                p.tree = shapes[sh];
                struct mtp_decode_batch_log log;
                run_batch_ok(f, &p, 3, res, &log);
                if (sampled)
                    run_alone(f, &p, alone);
                for (int r = 0; r < f->n_reqs; r++) {
                    const struct mtp_decode_result *want = sampled ? &alone[r] : &base[r];
                    expect_same(&res[r], want, sh ? "dynamic tree" : "static tree", r, 3);
                    if (sampled) {
                        assert_int_equal(res[r].n_steps, want->n_steps);
                        assert_memory_equal(res[r].accepted, want->accepted,
                                            (size_t)res[r].n_steps * sizeof(int32_t));
                        assert_memory_equal(res[r].tree_node, want->tree_node,
                                            (size_t)res[r].n_steps * sizeof(int32_t));
                        mtp_decode_result_free(&alone[r]);
                    }
                    mtp_decode_result_free(&res[r]);
                }
                assert_int_equal(log.n_seqs[0], 3);
                assert_true(log.tokens[0] > 3); /* trees of several nodes, one forward */
                mtp_decode_batch_log_free(&log);
            }
    for (int r = 0; r < f->n_reqs; r++)
        mtp_decode_result_free(&base[r]);
}

/* The hooks: DONE sees each request once, as it retires, with its final
 * result; once STOP says so no waiting request is admitted, the ones in
 * flight finish, and the rest stay empty. */
struct hook_state {
    int calls, seen[MAX_REQS], stop_after;
    int32_t first_token[MAX_REQS];
};

static int on_done(void *ctx, int r, const struct mtp_decode_result *res)
{
    struct hook_state *h = ctx;
    assert_true(r >= 0 && r < MAX_REQS);
    assert_int_equal(h->seen[r], 0);
    assert_true(res->n_output > 0);
    h->seen[r] = 1;
    h->first_token[r] = res->output[0];
    h->calls++;
    return 0;
}

static bool on_stop(void *ctx)
{
    const struct hook_state *h = ctx;
    return h->stop_after > 0 && h->calls >= h->stop_after;
}

static void test_hooks(void **state)
{
    struct fixture *f = *state;
    struct mtp_decode_params p = params(f, MTP_DECODE_DRAFTING_CHAIN, 2, 0.0f);
    struct mtp_decode_request reqs[MAX_REQS];
    struct mtp_decode_result res[MAX_REQS];
    requests(f, reqs);
    struct hook_state h = {0};
    struct mtp_decode_batch_hooks hooks = {.ctx = &h, .done = on_done, .stop = on_stop};
    assert_int_equal(mtp_decode_batch_run(f->e, &p, 2, reqs, f->n_reqs, res, NULL, &hooks), MTP_OK);
    assert_int_equal(h.calls, f->n_reqs);
    for (int r = 0; r < f->n_reqs; r++) {
        assert_int_equal(h.first_token[r], res[r].output[0]);
        mtp_decode_result_free(&res[r]);
    }
    /* Stop after the first retirement: the other request in flight ends,
     * nothing else is admitted. */
    memset(&h, 0, sizeof h);
    h.stop_after = 1;
    assert_int_equal(mtp_decode_batch_run(f->e, &p, 2, reqs, f->n_reqs, res, NULL, &hooks), MTP_OK);
    assert_int_equal(h.calls, 2);
    for (int r = 0; r < f->n_reqs; r++) {
        assert_int_equal(res[r].n_output > 0, h.seen[r]);
        mtp_decode_result_free(&res[r]);
    }
}

static void expect_refused(struct fixture *f, const struct mtp_decode_params *p, int B,
                           const char *part)
{
    struct mtp_decode_request reqs[MAX_REQS];
    struct mtp_decode_result res[MAX_REQS];
    requests(f, reqs);
    assert_int_equal(mtp_decode_batch_run(f->e, p, B, reqs, f->n_reqs, res, NULL, NULL), MTP_ERR);
    if (!strstr(mtp_error_message(), part))
        fail_msg("message \"%s\" lacks \"%s\"", mtp_error_message(), part);
}

static void test_bad_batch_size(void **state)
{
    struct fixture *f = *state;
    struct mtp_decode_params p = params(f, MTP_DECODE_DRAFTING_CHAIN, 1, 0.0f);
    expect_refused(f, &p, 0, "batch_size 0");
    expect_refused(f, &p, -2, "batch_size -2");
    expect_refused(f, &p, MAX_B + 1, "max_seqs");
    expect_refused(f, &p, MTP_DECODE_MAX_BATCH + 1, "expected 1..256");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_every_batch_size),
        cmocka_unit_test(test_sampled_equals_batch_one),
        cmocka_unit_test(test_bad_batch_size),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_trees_in_a_batch),
    };
    int failed = cmocka_run_group_tests_name("mtp-mini", tests, open_mini, close_model);
    failed += cmocka_run_group_tests_name("mtp-v3", tests, open_v3, close_model);
    return failed;
}

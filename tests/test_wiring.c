/*
 * test_wiring.c - every MTP wiring convention (engine/wiring.h) against the
 * from-scratch reference of training/make_wiring_golden.py on the v3-f32
 * fixture (2 MTP modules): one greedy speculative step after a 13-token
 * prompt, chained drafting K = 3 and exact drafting K = 2, draft logits
 * compared under each of the 2 x 2 (x 2 for exact) conventions. Each
 * convention's golden differs from the default's by > 0.2 somewhere, so a
 * flag that did nothing (or the wrong thing) fails here. Also: the family
 * defaults and the name parsing.
 *
 *   ctest --test-dir build -R wiring
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "engine/decode.h"
#include "engine/engine.h"
#include "core/error.h"
#include "engine/safetensors.h"
#include "support/compare.h"

static const char *const HIDDEN[] = {"after_shared_head_norm", "before_shared_head_norm"};
static const char *const POS0[] = {"kept", "zeroed"};
static const char *const MODULE[] = {"previous_module", "main_model"};

struct fixture {
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_engine *e;
    struct mtp_checkpoint *gold;
};

static int setup(void **state)
{
    static struct fixture f;
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/v3-f32", MTP_SOURCE_DIR);
    snprintf(path, sizeof path, "%s/wiring_golden.safetensors", dir);
    if (mtp_model_load(dir, &f.model) || mtp_backend_cpu_create(1, &f.be) ||
        mtp_checkpoint_open_file(path, &f.gold))
        fail_msg("%s", mtp_error_message());
    struct mtp_engine_options opt = {.max_positions = 64, .max_batch = 8, .poison_rollback = true};
    if (mtp_engine_create(f.model, f.be, &opt, &f.e))
        fail_msg("%s", mtp_error_message());
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    mtp_engine_free(f->e);
    mtp_backend_free(f->be);
    mtp_model_free(f->model);
    mtp_checkpoint_free(f->gold);
    return 0;
}

static const struct mtp_tensor_info *golden(struct fixture *f, const char *name)
{
    const struct mtp_tensor_info *t = mtp_checkpoint_find(f->gold, name);
    if (!t)
        fail_msg("wiring_golden.safetensors: no tensor '%s' (rerun "
                 "training/make_wiring_golden.py)", name);
    return t;
}

/* One greedy step with wiring W; the draft logits must equal golden NAME [K, V]. */
static void check_step(struct fixture *f, enum mtp_decode_drafting dr, int K,
                       const struct mtp_wiring *w, const char *name)
{
    const struct mtp_tensor_info *prompt = golden(f, "prompt"), *want = golden(f, name);
    int V = f->model->cfg.vocab_size, n = (int)prompt->shape[0];
    assert_int_equal(want->shape[0], K);
    struct mtp_decode_params p = {.drafting = dr, .depth = K, .wiring = *w,
                                  .sampling = {.temperature = 0, .top_p = 1},
                                  .max_new_tokens = 8, .eos_token_id = -1};
    struct mtp_decode *d;
    bool done;
    if (mtp_decode_create(f->e, &p, &d) || mtp_decode_prefill(d, prompt->data, n) ||
        mtp_decode_step(d, &done))
        fail_msg("%s: %s", name, mtp_error_message());
    const int32_t *seq;
    int n_seq;
    seq = mtp_decode_sequence(d, &n_seq);
    assert_int_equal(seq[n], *(const int32_t *)golden(f, "first")->data);
    for (int k = 1; k <= K; k++) {
        char what[200];
        snprintf(what, sizeof what, "%s draft %d", name, k);
        const float *got = mtp_decode_last_draft_logits(d, k);
        assert_non_null(got);
        if (!mtp_compare(what, got, (const float *)want->data + (size_t)(k - 1) * V, (size_t)V,
                         &mtp_tol_f32_activations, NULL))
            fail_msg("%s: draft logits differ from the reference", what);
    }
    mtp_decode_free(d);
}

static void test_chain_conventions(void **state)
{
    struct fixture *f = *state;
    for (int h = 0; h < 2; h++)
        for (int z = 0; z < 2; z++) {
            struct mtp_wiring w = {0};
            char name[128];
            assert_int_equal(mtp_wiring_set(&w, MTP_WIRING_FIELD_DRAFT_HIDDEN, HIDDEN[h]), MTP_OK);
            assert_int_equal(mtp_wiring_set(&w, MTP_WIRING_FIELD_POSITION0_EMBEDDING, POS0[z]),
                             MTP_OK);
            snprintf(name, sizeof name, "chain.%s.%s", HIDDEN[h], POS0[z]);
            check_step(f, MTP_DECODE_DRAFTING_CHAIN, 3, &w, name);
        }
}

static void test_exact_conventions(void **state)
{
    struct fixture *f = *state;
    for (int h = 0; h < 2; h++)
        for (int z = 0; z < 2; z++)
            for (int m = 0; m < 2; m++) {
                struct mtp_wiring w = {0};
                char name[160];
                mtp_wiring_set(&w, MTP_WIRING_FIELD_DRAFT_HIDDEN, HIDDEN[h]);
                mtp_wiring_set(&w, MTP_WIRING_FIELD_POSITION0_EMBEDDING, POS0[z]);
                mtp_wiring_set(&w, MTP_WIRING_FIELD_MODULE_HIDDEN, MODULE[m]);
                snprintf(name, sizeof name, "exact.%s.%s.%s", HIDDEN[h], POS0[z], MODULE[m]);
                check_step(f, MTP_DECODE_DRAFTING_EXACT, 2, &w, name);
            }
}

/* Unset fields take the family default: DeepSeek-V3's, which is the golden
 * "after_shared_head_norm.kept(.previous_module)". */
static void test_defaults_and_names(void **state)
{
    struct fixture *f = *state;
    struct mtp_wiring w = {0};
    check_step(f, MTP_DECODE_DRAFTING_CHAIN, 3, &w, "chain.after_shared_head_norm.kept");
    check_step(f, MTP_DECODE_DRAFTING_EXACT, 2, &w,
               "exact.after_shared_head_norm.kept.previous_module");
    mtp_wiring_resolve(&w, &f->model->cfg);
    char label[128];
    mtp_wiring_label(&w, label, sizeof label);
    assert_string_equal(label, "after_shared_head_norm,kept,previous_module");
    struct mtp_config mimo = f->model->cfg;
    snprintf(mimo.model_type, sizeof mimo.model_type, "mimo");
    struct mtp_wiring m = {0};
    mtp_wiring_resolve(&m, &mimo);
    assert_int_equal(m.module_hidden, MTP_WIRING_MODULE_HIDDEN_MAIN_MODEL);
    assert_int_equal(mtp_wiring_set(&m, MTP_WIRING_FIELD_DRAFT_HIDDEN, "pre_norm"), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "before_shared_head_norm"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_conventions),
        cmocka_unit_test(test_exact_conventions),
        cmocka_unit_test(test_defaults_and_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * test_transformers_fixture.c - the engine against files that Hugging Face
 * transformers itself wrote (training/make_transformers_fixture.py; torch
 * 2.15.0, transformers 5.24.0): a tiny random DeepseekV3 saved by
 * save_pretrained in the default format (per-expert tensors, rope_parameters
 * with YaRN, rope_theta null, num_nextn_predict_layers 1 without any MTP
 * tensor) and in the fused layout (save_original_format=False), plus
 * transformers' logits for a 16-token prompt.
 *
 * Checks: both load as they are (MTP announced but absent: main model only,
 * every tensor used); logits of a prefill and of token-by-token decoding
 * equal transformers' within the float32 tolerance (rms_norm_eps is 0.05, so
 * latent norms that did not use the fixed 1e-6 fail here); MTP decoding on
 * them fails with a message that says why, baseline decoding works.
 *
 *   ctest --test-dir build -R transformers
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/decode.h"
#include "engine/engine.h"
#include "core/error.h"
#include "engine/safetensors.h"
#include "support/compare.h"

static const char *const DIRS[] = {"hf-v3-default", "hf-v3-fused"};

struct loaded {
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_engine *e;
};

static void load(const char *sub, struct loaded *l)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/%s", MTP_SOURCE_DIR, sub);
    memset(l, 0, sizeof *l);
    if (mtp_model_load(dir, &l->model) || mtp_backend_cpu_create(1, &l->be))
        fail_msg("%s: %s", sub, mtp_error_message());
    struct mtp_engine_options opt = {.max_positions = 64, .max_batch = 8};
    if (mtp_engine_create(l->model, l->be, &opt, &l->e))
        fail_msg("%s: %s", sub, mtp_error_message());
}

static void unload(struct loaded *l)
{
    mtp_engine_free(l->e);
    mtp_backend_free(l->be);
    mtp_model_free(l->model);
}

static struct mtp_checkpoint *open_logits(void)
{
    char path[512];
    struct mtp_checkpoint *ck;
    snprintf(path, sizeof path, "%s/tests/fixtures/hf-v3-logits.safetensors", MTP_SOURCE_DIR);
    if (mtp_checkpoint_open_file(path, &ck))
        fail_msg("%s", mtp_error_message());
    return ck;
}

static void test_loads_as_saved(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        struct loaded l;
        load(DIRS[i], &l);
        assert_int_equal(l.model->mtp_announced_absent, 1);
        assert_int_equal(l.model->cfg.num_nextn_predict_layers, 0);
        assert_int_equal(l.model->n_unused, 0); /* fused or not, every tensor is read */
        assert_true(l.model->cfg.rope_scaling.yarn);
        assert_true(l.model->cfg.rope_theta == 10.0); /* from rope_parameters */
        unload(&l);
    }
}

/* Prefill logits of every position (one forward of T tokens) and decode
 * logits (T forwards of one token) against transformers'. */
static void test_logits_match_transformers(void **state)
{
    (void)state;
    struct mtp_checkpoint *ck = open_logits();
    const struct mtp_tensor_info *tok = mtp_checkpoint_find(ck, "tokens");
    const struct mtp_tensor_info *want = mtp_checkpoint_find(ck, "logits");
    assert_non_null(tok);
    assert_non_null(want);
    int T = (int)tok->shape[0], V = (int)want->shape[1];
    float *got = malloc(sizeof(float) * (size_t)T * V);
    for (int i = 0; i < 2; i++) {
        struct loaded l;
        load(DIRS[i], &l);
        assert_int_equal(l.model->cfg.vocab_size, V);
        char what[128];
        if (mtp_engine_forward(l.e, tok->data, T, 0, got, NULL))
            fail_msg("%s", mtp_error_message());
        snprintf(what, sizeof what, "%s logits, one forward", DIRS[i]);
        if (!mtp_compare(what, got, want->data, (size_t)T * V, &mtp_tol_f32_activations, NULL))
            fail_msg("%s differ from transformers'", what);
        mtp_engine_truncate(l.e, 0, 0);
        for (int t = 0; t < T; t++)
            if (mtp_engine_forward(l.e, (const int32_t *)tok->data + t, 1, t,
                                   got + (size_t)t * V, NULL))
                fail_msg("%s", mtp_error_message());
        snprintf(what, sizeof what, "%s logits, token by token", DIRS[i]);
        if (!mtp_compare(what, got, want->data, (size_t)T * V, &mtp_tol_f32_activations, NULL))
            fail_msg("%s differ from transformers'", what);
        unload(&l);
    }
    free(got);
    mtp_checkpoint_free(ck);
}

static void test_mtp_needs_the_modules(void **state)
{
    (void)state;
    struct loaded l;
    load(DIRS[0], &l);
    const int32_t prompt[] = {5, 6, 7};
    struct mtp_decode_params p = {.drafting = MTP_DECODE_DRAFTING_CHAIN, .depth = 2,
                                  .sampling = {.temperature = 0, .top_p = 1},
                                  .max_new_tokens = 4, .eos_token_id = -1};
    struct mtp_decode_result r;
    assert_int_equal(mtp_decode_run(l.e, &p, prompt, 3, &r), MTP_ERR);
    const char *msg = mtp_error_message();
    assert_non_null(strstr(msg, "announces 1 MTP module"));
    assert_non_null(strstr(msg, "num_nextn_predict_layers"));
    assert_non_null(strstr(msg, "hf-v3-default"));
    p.drafting = MTP_DECODE_DRAFTING_NONE;
    p.depth = 0;
    if (mtp_decode_run(l.e, &p, prompt, 3, &r))
        fail_msg("baseline on a checkpoint without MTP tensors: %s", mtp_error_message());
    assert_int_equal(r.n_output, 4);
    mtp_decode_result_free(&r);
    unload(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loads_as_saved),
        cmocka_unit_test(test_logits_match_transformers),
        cmocka_unit_test(test_mtp_needs_the_modules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

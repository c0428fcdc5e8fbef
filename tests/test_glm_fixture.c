/*
 * test_glm_fixture.c - the engine against a glm4_moe_lite (GLM-4.7-Flash
 * architecture) checkpoint that Hugging Face transformers itself wrote
 * (training/make_glm_fixture.py; torch 2.15.0, transformers 5.25.0): a tiny
 * random Glm4MoeLiteForCausalLM saved by save_pretrained (config with
 * mlp_layer_types and no first_k_dense_replace, v_head_dim 16 != qk_nope 12,
 * one routing group, rms_norm_eps 0.05), with an MTP layer appended in the
 * release's layout as a second shard, plus transformers' logits for a
 * 16-token prompt and its greedy continuation of a 6-token prompt.
 *
 * Checks: it loads through the shard index with every tensor used and one
 * MTP module; logits of a prefill and of token-by-token decoding equal
 * transformers' within the float32 tolerance (support/compare.c: both sides
 * compute in float32, so only summation order differs); greedy decoding,
 * baseline and with MTP drafts of depth 1 and 3, returns transformers'
 * greedy tokens (transformers has no MTP code for this model, so drafts
 * themselves have no reference: losslessness is what can be checked).
 *
 *   ctest --test-dir build -R glm_fixture
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

struct loaded {
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_engine *e;
};

static void load(struct loaded *l)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/hf-glm-lite", MTP_SOURCE_DIR);
    memset(l, 0, sizeof *l);
    if (mtp_model_load(dir, &l->model) || mtp_backend_cpu_create(1, &l->be))
        fail_msg("%s", mtp_error_message());
    struct mtp_engine_options opt = {.max_positions = 64, .max_batch = 8};
    if (mtp_engine_create(l->model, l->be, &opt, &l->e))
        fail_msg("%s", mtp_error_message());
}

static void unload(struct loaded *l)
{
    mtp_engine_free(l->e);
    mtp_backend_free(l->be);
    mtp_model_free(l->model);
}

static struct mtp_checkpoint *open_reference(void)
{
    char path[512];
    struct mtp_checkpoint *ck;
    snprintf(path, sizeof path, "%s/tests/fixtures/hf-glm-logits.safetensors", MTP_SOURCE_DIR);
    if (mtp_checkpoint_open_file(path, &ck))
        fail_msg("%s", mtp_error_message());
    return ck;
}

static const struct mtp_tensor_info *find(struct mtp_checkpoint *ck, const char *name)
{
    const struct mtp_tensor_info *t = mtp_checkpoint_find(ck, name);
    if (!t)
        fail_msg("hf-glm-logits.safetensors has no tensor '%s'", name);
    return t;
}

static void test_loads_as_saved(void **state)
{
    (void)state;
    struct loaded l;
    load(&l);
    const struct mtp_config *c = &l.model->cfg;
    assert_string_equal(c->model_type, "glm4_moe_lite");
    assert_int_equal(c->num_nextn_predict_layers, 1);
    assert_int_equal(l.model->mtp_announced_absent, 0);
    assert_int_equal(l.model->n_unused, 0);
    assert_int_equal(c->first_k_dense_replace, 1); /* from mlp_layer_types */
    assert_int_equal(c->qk_nope_head_dim, 12);
    assert_int_equal(c->v_head_dim, 16);
    assert_true(c->norm_topk_prob);
    assert_true(c->routed_scaling_factor == 1.8);
    assert_true(c->rope_theta == 100.0);
    assert_false(c->rope_scaling.yarn);
    const struct mtp_layer *mtp = mtp_model_module(l.model, 1);
    assert_non_null(mtp);
    assert_int_equal(mtp->kind, MTP_LAYER_MOE);
    assert_ptr_equal(mtp->nextn.head, &mtp->nextn.own_head); /* shared_head.head is read */
    unload(&l);
}

/* Prefill logits of every position (one forward of T tokens) and decode
 * logits (T forwards of one token) against transformers'. */
static void test_logits_match_transformers(void **state)
{
    (void)state;
    struct mtp_checkpoint *ck = open_reference();
    const struct mtp_tensor_info *tok = find(ck, "tokens"), *want = find(ck, "logits");
    int T = (int)tok->shape[0], V = (int)want->shape[1];
    float *got = malloc(sizeof(float) * (size_t)T * V);
    struct loaded l;
    load(&l);
    assert_int_equal(l.model->cfg.vocab_size, V);
    if (mtp_engine_forward(l.e, tok->data, T, 0, got, NULL))
        fail_msg("%s", mtp_error_message());
    if (!mtp_compare("glm logits, one forward", got, want->data, (size_t)T * V,
                     &mtp_tol_f32_activations, NULL))
        fail_msg("glm logits of one forward differ from transformers'");
    mtp_engine_truncate(l.e, 0, 0);
    for (int t = 0; t < T; t++)
        if (mtp_engine_forward(l.e, (const int32_t *)tok->data + t, 1, t, got + (size_t)t * V,
                               NULL))
            fail_msg("%s", mtp_error_message());
    if (!mtp_compare("glm logits, token by token", got, want->data, (size_t)T * V,
                     &mtp_tol_f32_activations, NULL))
        fail_msg("glm logits token by token differ from transformers'");
    unload(&l);
    free(got);
    mtp_checkpoint_free(ck);
}

static void decode_greedy(struct loaded *l, const struct mtp_tensor_info *prompt,
                          const struct mtp_tensor_info *want, enum mtp_decode_drafting drafting,
                          int depth)
{
    int P = (int)prompt->shape[0], G = (int)want->shape[0];
    struct mtp_decode_params p = {.drafting = drafting, .depth = depth,
                                  .sampling = {.temperature = 0, .top_p = 1},
                                  .max_new_tokens = G, .eos_token_id = -1};
    struct mtp_decode_result r;
    if (mtp_decode_run(l->e, &p, prompt->data, P, &r))
        fail_msg("depth %d: %s", depth, mtp_error_message());
    assert_int_equal(r.n_output, G);
    const int32_t *w = want->data;
    for (int i = 0; i < G; i++)
        if (r.output[i] != w[i])
            fail_msg("depth %d: token %d is %d, transformers' greedy is %d", depth, i,
                     r.output[i], w[i]);
    mtp_decode_result_free(&r);
}

static void test_greedy_matches_transformers(void **state)
{
    (void)state;
    struct mtp_checkpoint *ck = open_reference();
    const struct mtp_tensor_info *prompt = find(ck, "prompt"), *want = find(ck, "greedy");
    struct loaded l;
    load(&l);
    decode_greedy(&l, prompt, want, MTP_DECODE_DRAFTING_NONE, 0);
    decode_greedy(&l, prompt, want, MTP_DECODE_DRAFTING_CHAIN, 1);
    decode_greedy(&l, prompt, want, MTP_DECODE_DRAFTING_CHAIN, 3);
    unload(&l);
    mtp_checkpoint_free(ck);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loads_as_saved),
        cmocka_unit_test(test_logits_match_transformers),
        cmocka_unit_test(test_greedy_matches_transformers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

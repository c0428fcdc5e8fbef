/*
 * test_model_load.c - binding a tiny V3-shaped checkpoint (written by
 * tests/support/tiny_checkpoint.c) into struct mtp_model: every weight points
 * at its tensor with the config's shape, 1-D tensors are converted to F32,
 * variants (plain q_proj, FP8 with block scales, shared MTP embed/head, tied
 * embeddings, several MTP modules) bind the right tensors, parameter counts
 * match a hand computation, and each fault fails with a precise message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strstr */

#include "core/error.h"
#include "engine/model.h"
#include "tests/support/tiny_checkpoint.h"

static int setup(void **state)
{
    char *dir = tiny_make_tmpdir();
    *state = dir;
    return dir ? 0 : -1;
}

static int teardown(void **state)
{
    tiny_remove_dir(*state);
    free(*state);
    return 0;
}

static struct mtp_model *load_ok(const char *dir, const struct tiny_opts *o)
{
    assert_int_equal(tiny_checkpoint_write(dir, o), 0);
    struct mtp_model *m = NULL;
    if (mtp_model_load(dir, &m) != MTP_OK)
        fail_msg("load failed: %s", mtp_error_message());
    assert_non_null(m);
    return m;
}

static const struct mtp_tensor_info *tensor(struct mtp_model *m, const char *name)
{
    const struct mtp_tensor_info *t = mtp_checkpoint_find(m->ckpt, name);
    if (!t)
        fail_msg("no tensor %s", name);
    return t;
}

/* W is bound to NAME with shape [ROWS, COLS]. */
static void assert_bound(struct mtp_model *m, const struct mtp_weight *w, const char *name,
                         int rows, int cols)
{
    const struct mtp_tensor_info *t = tensor(m, name);
    if (w->data != t->data || w->rows != rows || w->cols != cols || w->dtype != t->dtype)
        fail_msg("%s: bound %p [%d, %d] dtype %d, want %p [%d, %d] dtype %d", name, w->data,
                 w->rows, w->cols, w->dtype, t->data, rows, cols, t->dtype);
    assert_int_equal(t->used, 1);
}

/* Vector W holds NAME's values converted to F32. */
static void assert_vector(struct mtp_model *m, const struct mtp_weight *w, const char *name, int n)
{
    const struct mtp_tensor_info *t = tensor(m, name);
    assert_int_equal(w->dtype, MTP_DTYPE_F32);
    assert_int_equal(w->rows, 1);
    assert_int_equal(w->cols, n);
    assert_true(w->data != t->data); /* an owned copy */
    for (int i = 0; i < n; i++)
        assert_true(((const float *)w->data)[i] == mtp_dtype_load(t->dtype, t->data, (size_t)i));
    assert_true(((const float *)w->data)[0] != 0.0f);
}

enum {
    Q_ROWS = TINY_HEADS * (TINY_NOPE + TINY_ROPE),
    KVB_ROWS = TINY_HEADS * (TINY_NOPE + TINY_V),
    EXPERT = 3 * TINY_MOE_INTER * TINY_D,
};

static void test_load_default(void **state)
{
    struct tiny_opts o;
    tiny_opts_default(&o);
    struct mtp_model *m = load_ok(*state, &o);
    assert_int_equal(m->n_layers, TINY_LAYERS + 1);
    assert_int_equal(m->n_unused, 0);
    assert_bound(m, &m->embed, "model.embed_tokens.weight", TINY_VOCAB, TINY_D);
    assert_bound(m, &m->lm_head, "lm_head.weight", TINY_VOCAB, TINY_D);
    assert_vector(m, &m->final_norm, "model.norm.weight", TINY_D);

    const struct mtp_layer *l0 = &m->layers[0], *l2 = &m->layers[2], *l3 = &m->layers[3];
    assert_int_equal(l0->kind, MTP_LAYER_DENSE);
    assert_int_equal(m->layers[1].kind, MTP_LAYER_MOE);
    assert_int_equal(l2->kind, MTP_LAYER_MOE);
    assert_false(l2->is_mtp);
    assert_true(l3->is_mtp);
    assert_int_equal(l3->index, 3);
    assert_ptr_equal(mtp_model_module(m, 1), l3);
    assert_null(mtp_model_module(m, 2));

    assert_vector(m, &l0->attn_norm, "model.layers.0.input_layernorm.weight", TINY_D);
    assert_bound(m, &l0->attn.q_a, "model.layers.0.self_attn.q_a_proj.weight", TINY_Q_LORA,
                 TINY_D);
    assert_vector(m, &l0->attn.q_a_norm, "model.layers.0.self_attn.q_a_layernorm.weight",
                  TINY_Q_LORA);
    assert_bound(m, &l0->attn.q_b, "model.layers.0.self_attn.q_b_proj.weight", Q_ROWS,
                 TINY_Q_LORA);
    assert_null(l0->attn.q.data);
    assert_bound(m, &l0->attn.kv_a, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight",
                 TINY_KV_LORA + TINY_ROPE, TINY_D);
    assert_vector(m, &l0->attn.kv_a_norm, "model.layers.0.self_attn.kv_a_layernorm.weight",
                  TINY_KV_LORA);
    assert_bound(m, &l0->attn.kv_b, "model.layers.0.self_attn.kv_b_proj.weight", KVB_ROWS,
                 TINY_KV_LORA);
    assert_bound(m, &l0->attn.o, "model.layers.0.self_attn.o_proj.weight", TINY_D,
                 TINY_HEADS * TINY_V);
    assert_bound(m, &l0->dense.gate, "model.layers.0.mlp.gate_proj.weight", TINY_INTER, TINY_D);
    assert_bound(m, &l0->dense.down, "model.layers.0.mlp.down_proj.weight", TINY_D, TINY_INTER);

    assert_bound(m, &l2->moe.router, "model.layers.2.mlp.gate.weight", TINY_EXPERTS, TINY_D);
    assert_vector(m, &l2->moe.score_bias, "model.layers.2.mlp.gate.e_score_correction_bias",
                  TINY_EXPERTS);
    assert_true(l2->moe.has_shared);
    assert_bound(m, &l2->moe.shared.up, "model.layers.2.mlp.shared_experts.up_proj.weight",
                 TINY_SHARED * TINY_MOE_INTER, TINY_D);
    assert_bound(m, &l2->moe.experts[3].down, "model.layers.2.mlp.experts.3.down_proj.weight",
                 TINY_D, TINY_MOE_INTER);
    assert_bound(m, &l2->moe.experts[0].gate, "model.layers.2.mlp.experts.0.gate_proj.weight",
                 TINY_MOE_INTER, TINY_D);

    assert_vector(m, &l3->nextn.enorm, "model.layers.3.enorm.weight", TINY_D);
    assert_vector(m, &l3->nextn.hnorm, "model.layers.3.hnorm.weight", TINY_D);
    assert_vector(m, &l3->nextn.head_norm, "model.layers.3.shared_head.norm.weight", TINY_D);
    assert_bound(m, &l3->nextn.eh_proj, "model.layers.3.eh_proj.weight", TINY_D, 2 * TINY_D);
    assert_ptr_equal(l3->nextn.embed, &l3->nextn.own_embed);
    assert_ptr_equal(l3->nextn.head, &l3->nextn.own_head);
    assert_bound(m, l3->nextn.embed, "model.layers.3.embed_tokens.weight", TINY_VOCAB, TINY_D);
    assert_bound(m, l3->nextn.head, "model.layers.3.shared_head.head.weight", TINY_VOCAB,
                 TINY_D);
    assert_bound(m, &l3->moe.experts[1].up, "model.layers.3.mlp.experts.1.up_proj.weight",
                 TINY_MOE_INTER, TINY_D);
    mtp_model_free(m);
}

static void test_param_counts(void **state)
{
    struct tiny_opts o;
    tiny_opts_default(&o);
    struct mtp_model *m = load_ok(*state, &o);
    struct mtp_param_counts p;
    mtp_model_param_counts(m, &p);
    const long long d = TINY_D, V = TINY_VOCAB, E = TINY_EXPERTS, k = TINY_TOPK;
    long long attn = TINY_Q_LORA * d + TINY_Q_LORA + (long long)Q_ROWS * TINY_Q_LORA +
                     (TINY_KV_LORA + TINY_ROPE) * d + TINY_KV_LORA +
                     (long long)KVB_ROWS * TINY_KV_LORA + d * TINY_HEADS * TINY_V;
    long long dense = 2 * d + attn + 3LL * TINY_INTER * d;
    long long moe = 2 * d + attn + E * d + E + 3LL * TINY_SHARED * TINY_MOE_INTER * d + E * EXPERT;
    long long main = 2 * V * d + d + dense + 2 * moe;
    long long extras = 3 * d + 2 * d * d;
    assert_int_equal(p.main, main);
    assert_int_equal(p.active_main, main - 2 * (E - k) * EXPERT);
    assert_int_equal(p.mtp, moe + extras + 2 * V * d);
    assert_int_equal(p.active_mtp_module, moe - (E - k) * EXPERT + extras);
    assert_int_equal(p.total, p.main + p.mtp);
    mtp_model_free(m);
}

static void test_load_variants(void **state)
{
    struct tiny_opts o;
    tiny_opts_default(&o);
    o.q_lora = false;
    o.mtp_own_embed = false;
    o.mtp_own_head = false;
    o.bf16_vectors = true;
    o.n_mtp = 2;
    struct mtp_model *m = load_ok(*state, &o);
    assert_int_equal(m->cfg.q_lora_rank, 0);
    assert_int_equal(m->n_layers, TINY_LAYERS + 2);
    const struct mtp_layer *l1 = &m->layers[1];
    assert_bound(m, &l1->attn.q, "model.layers.1.self_attn.q_proj.weight", Q_ROWS, TINY_D);
    assert_null(l1->attn.q_a.data);
    assert_null(l1->attn.q_b.data);
    assert_null(l1->attn.q_a_norm.data);
    assert_string_equal(tensor(m, "model.norm.weight")->dtype_name, "BF16");
    assert_vector(m, &m->final_norm, "model.norm.weight", TINY_D);
    assert_vector(m, &l1->ffn_norm, "model.layers.1.post_attention_layernorm.weight", TINY_D);
    for (int k = 1; k <= 2; k++) {
        const struct mtp_layer *mod = mtp_model_module(m, k);
        assert_non_null(mod);
        assert_int_equal(mod->index, TINY_LAYERS + k - 1);
        assert_true(mod->is_mtp);
        assert_ptr_equal(mod->nextn.embed, &m->embed);
        assert_ptr_equal(mod->nextn.head, &m->lm_head);
    }
    mtp_model_free(m);

    tiny_opts_default(&o);
    o.tie_embeddings = true;
    m = load_ok(*state, &o);
    assert_true(m->cfg.tie_word_embeddings);
    assert_ptr_equal(m->lm_head.data, m->embed.data);
    assert_int_equal(m->lm_head.rows, TINY_VOCAB);
    struct mtp_param_counts p;
    mtp_model_param_counts(m, &p);
    assert_int_equal(m->n_unused, 0);
    mtp_model_free(m);
}

static void test_load_fp8(void **state)
{
    struct tiny_opts o;
    tiny_opts_default(&o);
    o.fp8 = true;
    struct mtp_model *m = load_ok(*state, &o);
    assert_true(m->cfg.fp8);
    assert_int_equal(m->n_unused, 0); /* the scales count as used */
    const struct mtp_layer *l0 = &m->layers[0];
    const struct mtp_weight *kv_a = &l0->attn.kv_a;
    assert_int_equal(kv_a->dtype, MTP_DTYPE_F8_E4M3);
    assert_int_equal(kv_a->block_rows, TINY_FP8_BLOCK);
    assert_int_equal(kv_a->block_cols, TINY_FP8_BLOCK);
    const struct mtp_tensor_info *s =
        tensor(m, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv");
    assert_ptr_equal(kv_a->scale_inv, s->data);
    assert_int_equal(s->shape[0], 3); /* ceil(20 / 8): a partial last block */
    assert_int_equal(s->shape[1], 4);
    assert_true(kv_a->scale_inv[0] > 0.0f);
    assert_int_equal(s->used, 1);
    assert_int_equal(m->layers[2].moe.experts[2].down.dtype, MTP_DTYPE_F8_E4M3);
    assert_non_null(m->layers[2].moe.experts[2].down.scale_inv);
    /* Not quantised in V3: router, eh_proj, embeddings (docs/model.md §2.5). */
    assert_int_equal(m->layers[2].moe.router.dtype, MTP_DTYPE_F32);
    assert_null(m->layers[2].moe.router.scale_inv);
    assert_int_equal(m->layers[3].nextn.eh_proj.dtype, MTP_DTYPE_F32);
    assert_int_equal(m->embed.dtype, MTP_DTYPE_F32);
    mtp_model_free(m);
}

struct bad_case {
    bool fp8;
    const char *omit, *bad_dtype, *bad_shape;
    const char *want1, *want2;
};

static const struct bad_case bad_cases[] = {
    {false, "model.layers.1.self_attn.kv_b_proj.weight", NULL, NULL,
     "missing tensor 'model.layers.1.self_attn.kv_b_proj.weight'", "from config.json"},
    {false, NULL, NULL, "model.layers.1.self_attn.kv_b_proj.weight",
     "model.safetensors: tensor 'model.layers.1.self_attn.kv_b_proj.weight': expected shape "
     "[32, 16] (H*(dn+dv), kv_lora_rank) from config.json, found [32, 15]", NULL},
    {false, NULL, "model.layers.0.mlp.up_proj.weight", NULL,
     "tensor 'model.layers.0.mlp.up_proj.weight': expected dtype F32, BF16, F16 or F8_E4M3, "
     "found I32", NULL},
    {false, NULL, "model.layers.0.input_layernorm.weight", NULL,
     "tensor 'model.layers.0.input_layernorm.weight': expected dtype F32, BF16 or F16, found I32",
     NULL},
    {false, NULL, NULL, "model.norm.weight",
     "tensor 'model.norm.weight': expected shape [32] (hidden_size)", "found [31]"},
    {false, "lm_head.weight", NULL, NULL, "missing tensor 'lm_head.weight'", NULL},
    {false, "model.layers.1.mlp.gate.e_score_correction_bias", NULL, NULL,
     "missing tensor 'model.layers.1.mlp.gate.e_score_correction_bias'", "noaux_tc"},
    {false, "model.layers.2.mlp.experts.3.gate_proj.weight", NULL, NULL,
     "missing tensor 'model.layers.2.mlp.experts.3.gate_proj.weight'", NULL},
    {false, "model.layers.3.eh_proj.weight", NULL, NULL,
     "missing tensor 'model.layers.3.eh_proj.weight'", NULL},
    {false, "model.layers.3.shared_head.norm.weight", NULL, NULL,
     "missing tensor 'model.layers.3.shared_head.norm.weight'", NULL},
    {false, NULL, NULL, "model.layers.3.embed_tokens.weight",
     "tensor 'model.layers.3.embed_tokens.weight': expected shape [64, 32]", "found [64, 31]"},
    {true, "model.layers.0.self_attn.q_a_proj.weight_scale_inv", NULL, NULL,
     "missing tensor 'model.layers.0.self_attn.q_a_proj.weight_scale_inv'", "F8_E4M3"},
    {true, NULL, NULL, "model.layers.1.self_attn.kv_a_proj_with_mqa.weight_scale_inv",
     "expected shape [3, 4] (ceil(rows/8), ceil(cols/8))", "found [3, 3]"},
    {true, NULL, "model.layers.2.mlp.experts.0.up_proj.weight_scale_inv", NULL,
     "tensor 'model.layers.2.mlp.experts.0.up_proj.weight_scale_inv': expected dtype F32, found "
     "I32", NULL},
};

static void test_bad_checkpoints(void **state)
{
    const char *dir = *state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        struct tiny_opts o;
        tiny_opts_default(&o);
        o.fp8 = b->fp8;
        o.omit = b->omit;
        o.bad_dtype = b->bad_dtype;
        o.bad_shape = b->bad_shape;
        assert_int_equal(tiny_checkpoint_write(dir, &o), 0);
        struct mtp_model *m = (struct mtp_model *)1;
        mtp_error_clear();
        if (mtp_model_load(dir, &m) != MTP_ERR)
            fail_msg("case %zu was accepted", i);
        assert_null(m);
        const char *msg = mtp_error_message();
        if (!strstr(msg, b->want1) || (b->want2 && !strstr(msg, b->want2)))
            fail_msg("case %zu: message lacks \"%s\" / \"%s\": %s", i, b->want1,
                     b->want2 ? b->want2 : "", msg);
        /* A missing tensor names the directory; other faults name the file. */
        assert_non_null(strstr(msg, b->omit ? dir : "model.safetensors"));
        if (getenv("MTP_TEST_VERBOSE"))
            print_message("%s\n", msg);
    }
}

static void test_unused_listed(void **state)
{
    struct tiny_opts o;
    tiny_opts_default(&o);
    o.extra = "model.layers.0.mlp.gate.e_score_correction_bias"; /* a bias on a dense layer */
    struct mtp_model *m = load_ok(*state, &o);
    assert_int_equal(m->n_unused, 1);
    assert_string_equal(m->unused[0], "model.layers.0.mlp.gate.e_score_correction_bias");
    mtp_model_free(m);

    o.extra = "model.layers.9.self_attn.q_proj.weight";
    m = load_ok(*state, &o);
    assert_int_equal(m->n_unused, 1);
    assert_string_equal(m->unused[0], "model.layers.9.self_attn.q_proj.weight");
    mtp_model_free(m);
}

static void test_missing_files(void **state)
{
    const char *dir = *state;
    struct mtp_model *m;
    assert_int_equal(mtp_model_load(dir, &m), MTP_ERR); /* empty directory */
    assert_non_null(strstr(mtp_error_message(), "config.json"));
    struct tiny_opts o;
    tiny_opts_default(&o);
    assert_int_equal(tiny_checkpoint_write(dir, &o), 0);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    assert_int_equal(remove(p), 0);
    assert_int_equal(mtp_model_load(dir, &m), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "model.safetensors"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_param_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_fp8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unused_listed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

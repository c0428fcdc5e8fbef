/*
 * test_config_glm.c - glm4_moe_lite configs (docs/model.md §1.3): the
 * GLM-4.7-Flash release's config.json loads with its values, transformers'
 * defaults apply where keys are absent, and each key the engine cannot honour
 * is refused with a message naming it.
 *
 *   ctest --test-dir build -R config_glm
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h> /* defines: json_loads, json_dump_file */
#include <stdio.h>   /* defines: snprintf */
#include <stdlib.h>  /* defines: free */
#include <string.h>  /* defines: strstr */

#include "engine/config.h"
#include "core/error.h"
#include "tests/support/tiny_checkpoint.h"

/* GLM-4.7-Flash's config.json as released (zai-org, transformers 5.0.0rc0). */
static const char glm_json[] =
    "{\"architectures\": [\"Glm4MoeLiteForCausalLM\"], \"attention_bias\": false,"
    " \"attention_dropout\": 0.0, \"pad_token_id\": 154820,"
    " \"eos_token_id\": [154820, 154827, 154829], \"hidden_act\": \"silu\","
    " \"hidden_size\": 2048, \"intermediate_size\": 10240, \"max_position_embeddings\": 202752,"
    " \"model_type\": \"glm4_moe_lite\", \"moe_intermediate_size\": 1536,"
    " \"topk_method\": \"noaux_tc\", \"norm_topk_prob\": true, \"num_attention_heads\": 20,"
    " \"n_group\": 1, \"topk_group\": 1, \"n_routed_experts\": 64, \"n_shared_experts\": 1,"
    " \"routed_scaling_factor\": 1.8, \"num_experts_per_tok\": 4, \"first_k_dense_replace\": 1,"
    " \"num_hidden_layers\": 47, \"num_key_value_heads\": 20, \"num_nextn_predict_layers\": 1,"
    " \"partial_rotary_factor\": 1.0, \"rms_norm_eps\": 1e-05, \"rope_scaling\": null,"
    " \"rope_theta\": 1000000, \"tie_word_embeddings\": false, \"dtype\": \"bfloat16\","
    " \"transformers_version\": \"5.0.0rc0\", \"q_lora_rank\": 768, \"kv_lora_rank\": 512,"
    " \"qk_nope_head_dim\": 192, \"qk_rope_head_dim\": 64, \"v_head_dim\": 256,"
    " \"vocab_size\": 154880}";

struct fixture {
    char *dir;
    char path[512];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = tiny_make_tmpdir();
    if (!f->dir)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/config.json", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tiny_remove_dir(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* glm_json with KEY set to the JSON VALUE ("-" deletes it; "rope_parameters.x" edits
 * inside an object that is created when absent), written to the fixture's file. */
static void write_edited(struct fixture *f, const char *key, const char *value)
{
    json_t *root = json_loads(glm_json, 0, NULL), *obj = root;
    assert_non_null(root);
    char name[96];
    snprintf(name, sizeof name, "%s", key);
    char *dot = strchr(name, '.');
    if (dot) {
        *dot = '\0';
        if (!json_is_object(json_object_get(root, name)))
            json_object_set_new(root, name, json_object());
        obj = json_object_get(root, name);
        memmove(name, dot + 1, strlen(dot + 1) + 1);
    }
    if (!strcmp(value, "-"))
        json_object_del(obj, name);
    else
        json_object_set_new(obj, name, json_loads(value, JSON_DECODE_ANY, NULL));
    assert_int_equal(json_dump_file(root, f->path, 0), 0);
    json_decref(root);
}

static void load_ok(struct fixture *f, struct mtp_config *c)
{
    mtp_error_clear();
    if (mtp_config_load(f->path, c) != MTP_OK)
        fail_msg("config rejected: %s", mtp_error_message());
}

static void test_release_config(void **state)
{
    struct fixture *f = *state;
    struct mtp_config c;
    assert_int_equal(tiny_write_text(f->path, glm_json), 0);
    load_ok(f, &c);
    assert_string_equal(c.model_type, "glm4_moe_lite");
    assert_int_equal(c.hidden_size, 2048);
    assert_int_equal(c.q_lora_rank, 768);
    assert_int_equal(c.qk_nope_head_dim, 192);
    assert_int_equal(c.v_head_dim, 256);
    assert_int_equal(c.n_routed_experts, 64);
    assert_int_equal(c.num_experts_per_tok, 4);
    assert_int_equal(c.topk_method, MTP_TOPK_NOAUX_TC);
    assert_int_equal(c.scoring_func, MTP_SCORING_SIGMOID);
    assert_int_equal(c.first_k_dense_replace, 1);
    assert_false(mtp_config_layer_is_moe(&c, 0));
    assert_true(mtp_config_layer_is_moe(&c, 47)); /* the MTP layer */
    assert_int_equal(c.num_nextn_predict_layers, 1);
    assert_int_equal(c.eos_token_id, 154820);
    assert_true(c.rope_theta == 1e6);
    assert_false(c.rope_scaling.yarn);
    assert_false(c.fp8);
}

/* Without the keys transformers' Glm4MoeLiteConfig defaults, its defaults apply
 * (not DeepSeek's): norm_topk_prob true, routed_scaling_factor 1.8, rms_norm_eps
 * 1e-5, only layer 0 dense. */
static void test_transformers_defaults(void **state)
{
    struct fixture *f = *state;
    json_t *root = json_loads(glm_json, 0, NULL);
    static const char *const absent[] = {"norm_topk_prob", "routed_scaling_factor",
                                         "rms_norm_eps", "first_k_dense_replace", "topk_method",
                                         "partial_rotary_factor"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        json_object_del(root, absent[i]);
    assert_int_equal(json_dump_file(root, f->path, 0), 0);
    json_decref(root);
    struct mtp_config c;
    load_ok(f, &c);
    assert_true(c.norm_topk_prob);
    assert_true(c.routed_scaling_factor == 1.8);
    assert_true(c.rms_norm_eps == 1e-5);
    assert_int_equal(c.first_k_dense_replace, 1);
    assert_int_equal(c.topk_method, MTP_TOPK_NOAUX_TC);

    /* mlp_layer_types, as transformers writes it, sets the dense prefix. */
    char types[47 * 12 + 16] = "[\"dense\", \"dense\"";
    for (int i = 2; i < 47; i++)
        strcat(types, ", \"sparse\"");
    strcat(types, "]");
    write_edited(f, "mlp_layer_types", types);
    root = json_load_file(f->path, 0, NULL);
    json_object_del(root, "first_k_dense_replace");
    assert_int_equal(json_dump_file(root, f->path, 0), 0);
    json_decref(root);
    load_ok(f, &c);
    assert_int_equal(c.first_k_dense_replace, 2);
}

struct bad_case {
    const char *key, *value, *want;
};

static const struct bad_case bad_cases[] = {
    {"n_routed_experts", "-", "'n_routed_experts'"},
    {"n_shared_experts", "-", "'n_shared_experts'"},
    {"n_routed_experts", "0", "'n_routed_experts'"},
    {"qk_nope_head_dim", "-", "'qk_nope_head_dim'"},
    {"v_head_dim", "-", "'v_head_dim'"},
    {"topk_method", "\"greedy\"", "'topk_method'"},
    {"scoring_func", "\"softmax\"", "'scoring_func'"},
    {"moe_layer_freq", "2", "'moe_layer_freq'"},
    {"first_k_dense_replace", "3", "'first_k_dense_replace'"},
    {"mlp_layer_types", "[\"dense\", \"sparse\"]", "'mlp_layer_types'"},
    {"mlp_layer_types", "\"dense\"", "'mlp_layer_types'"},
    {"rope_interleave", "false", "'rope_interleave'"},
    {"partial_rotary_factor", "0.5", "'partial_rotary_factor'"},
    {"rope_parameters.partial_rotary_factor", "0.5", "'rope_parameters.partial_rotary_factor'"},
    {"model_type", "\"glm4_moe\"", "'model_type'"},
};

static void test_refused_naming_the_key(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        write_edited(f, b->key, b->value);
        struct mtp_config c;
        mtp_error_clear();
        if (mtp_config_load(f->path, &c) != MTP_ERR)
            fail_msg("%s = %s was accepted", b->key, b->value);
        const char *msg = mtp_error_message();
        if (!strstr(msg, b->want) || !strstr(msg, f->path) || !strstr(msg, "expected"))
            fail_msg("%s = %s: message lacks %s: %s", b->key, b->value, b->want, msg);
    }
    /* A list that is not dense layers then sparse ones names the entry. */
    char types[47 * 12 + 16] = "[\"dense\", \"sparse\", \"dense\"";
    for (int i = 3; i < 47; i++)
        strcat(types, ", \"sparse\"");
    strcat(types, "]");
    write_edited(f, "mlp_layer_types", types);
    struct mtp_config c;
    assert_int_equal(mtp_config_load(f->path, &c), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "'mlp_layer_types[2]'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_release_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transformers_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_naming_the_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

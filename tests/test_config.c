/*
 * test_config.c - config.json parsing: the real DeepSeek-V3 and V2-Lite values
 * (docs/model.md §1), defaults, the rope_parameters spelling, softmax scale and the
 * YaRN frequency table of docs/model.md §4, and one rejected file per bad value
 * (each must fail with a message naming the key).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h> /* defines: json_loads, json_dump_file */
#include <math.h>    /* defines: fabs, pow */
#include <stdio.h>   /* defines: snprintf */
#include <stdlib.h>  /* defines: free */
#include <string.h>  /* defines: strstr, strchr */

#include "engine/config.h"
#include "core/error.h"
#include "tests/support/tiny_checkpoint.h"

/* DeepSeek-V3's config.json (docs/model.md §1.1). */
static const char v3_json[] =
    "{\"architectures\": [\"DeepseekV3ForCausalLM\"], \"model_type\": \"deepseek_v3\","
    " \"vocab_size\": 129280, \"hidden_size\": 7168, \"intermediate_size\": 18432,"
    " \"moe_intermediate_size\": 2048, \"num_hidden_layers\": 61,"
    " \"num_nextn_predict_layers\": 1, \"num_attention_heads\": 128,"
    " \"num_key_value_heads\": 128, \"n_shared_experts\": 1, \"n_routed_experts\": 256,"
    " \"num_experts_per_tok\": 8, \"routed_scaling_factor\": 2.5, \"topk_method\": \"noaux_tc\","
    " \"n_group\": 8, \"topk_group\": 4, \"first_k_dense_replace\": 3, \"moe_layer_freq\": 1,"
    " \"norm_topk_prob\": true, \"scoring_func\": \"sigmoid\", \"kv_lora_rank\": 512,"
    " \"q_lora_rank\": 1536, \"qk_nope_head_dim\": 128, \"qk_rope_head_dim\": 64,"
    " \"v_head_dim\": 128, \"hidden_act\": \"silu\", \"attention_bias\": false,"
    " \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000,"
    " \"rope_scaling\": {\"beta_fast\": 32, \"beta_slow\": 1, \"factor\": 40, \"mscale\": 1.0,"
    "   \"mscale_all_dim\": 1.0, \"original_max_position_embeddings\": 4096, \"type\": \"yarn\"},"
    " \"max_position_embeddings\": 163840, \"tie_word_embeddings\": false,"
    " \"bos_token_id\": 0, \"eos_token_id\": 1, \"torch_dtype\": \"bfloat16\","
    " \"ep_size\": 1, \"aux_loss_alpha\": 0.001, \"seq_aux\": true, \"use_cache\": true,"
    " \"quantization_config\": {\"activation_scheme\": \"dynamic\", \"fmt\": \"e4m3\","
    "   \"quant_method\": \"fp8\", \"weight_block_size\": [128, 128]}}";

/* DeepSeek-V2-Lite's config.json (docs/model.md §1.2). */
static const char v2_lite_json[] =
    "{\"architectures\": [\"DeepseekV2ForCausalLM\"], \"model_type\": \"deepseek_v2\","
    " \"vocab_size\": 102400, \"hidden_size\": 2048, \"intermediate_size\": 10944,"
    " \"moe_intermediate_size\": 1408, \"num_hidden_layers\": 27, \"num_attention_heads\": 16,"
    " \"num_key_value_heads\": 16, \"n_shared_experts\": 2, \"n_routed_experts\": 64,"
    " \"num_experts_per_tok\": 6, \"routed_scaling_factor\": 1.0, \"topk_method\": \"greedy\","
    " \"n_group\": 1, \"topk_group\": 1, \"first_k_dense_replace\": 1, \"moe_layer_freq\": 1,"
    " \"norm_topk_prob\": false, \"scoring_func\": \"softmax\", \"kv_lora_rank\": 512,"
    " \"q_lora_rank\": null, \"qk_nope_head_dim\": 128, \"qk_rope_head_dim\": 64,"
    " \"v_head_dim\": 128, \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000,"
    " \"rope_scaling\": {\"beta_fast\": 32, \"beta_slow\": 1, \"factor\": 40,"
    "   \"mscale\": 0.707, \"mscale_all_dim\": 0.707,"
    "   \"original_max_position_embeddings\": 4096, \"type\": \"yarn\"},"
    " \"max_position_embeddings\": 163840, \"tie_word_embeddings\": false,"
    " \"bos_token_id\": 100000, \"eos_token_id\": 100001}";

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

static void assert_rel(double got, double want, double tol)
{
    double err = fabs(got - want) / fabs(want);
    if (err >= tol)
        fail_msg("got %.9g, want %.9g (rel err %.3g)", got, want, err);
}

static void load_text(struct fixture *f, const char *text, struct mtp_config *c)
{
    assert_int_equal(tiny_write_text(f->path, text), 0);
    mtp_error_clear();
    int rc = mtp_config_load(f->path, c);
    if (rc != MTP_OK)
        fail_msg("config rejected: %s", mtp_error_message());
}

static void test_v3(void **state)
{
    struct fixture *f = *state;
    struct mtp_config c;
    load_text(f, v3_json, &c);
    assert_string_equal(c.model_type, "deepseek_v3");
    assert_int_equal(c.vocab_size, 129280);
    assert_int_equal(c.hidden_size, 7168);
    assert_int_equal(c.intermediate_size, 18432);
    assert_int_equal(c.moe_intermediate_size, 2048);
    assert_int_equal(c.num_hidden_layers, 61);
    assert_int_equal(c.num_nextn_predict_layers, 1);
    assert_int_equal(c.num_attention_heads, 128);
    assert_int_equal(c.n_shared_experts, 1);
    assert_int_equal(c.n_routed_experts, 256);
    assert_int_equal(c.num_experts_per_tok, 8);
    assert_true(c.routed_scaling_factor == 2.5);
    assert_int_equal(c.topk_method, MTP_TOPK_NOAUX_TC);
    assert_int_equal(c.scoring_func, MTP_SCORING_SIGMOID);
    assert_int_equal(c.n_group, 8);
    assert_int_equal(c.topk_group, 4);
    assert_int_equal(c.first_k_dense_replace, 3);
    assert_true(c.norm_topk_prob);
    assert_int_equal(c.kv_lora_rank, 512);
    assert_int_equal(c.q_lora_rank, 1536);
    assert_int_equal(mtp_config_qk_head_dim(&c), 192);
    assert_int_equal(mtp_config_cache_width(&c), 576);
    assert_int_equal(mtp_config_num_layers_total(&c), 62);
    assert_true(c.rms_norm_eps == 1e-6);
    assert_true(c.rope_theta == 10000.0);
    assert_true(c.rope_scaling.yarn);
    assert_true(c.rope_scaling.factor == 40.0);
    assert_int_equal(c.rope_scaling.original_max_position, 4096);
    assert_true(c.rope_scaling.beta_fast == 32.0 && c.rope_scaling.beta_slow == 1.0);
    assert_int_equal(c.max_position_embeddings, 163840);
    assert_false(c.tie_word_embeddings);
    assert_int_equal(c.bos_token_id, 0);
    assert_int_equal(c.eos_token_id, 1);
    assert_true(c.fp8);
    assert_int_equal(c.weight_block_size[0], 128);
    assert_int_equal(c.weight_block_size[1], 128);
    assert_false(mtp_config_layer_is_moe(&c, 2));
    assert_true(mtp_config_layer_is_moe(&c, 3));
    assert_true(mtp_config_layer_is_moe(&c, 61));
    assert_rel(mtp_config_softmax_scale(&c), 0.13523378, 1e-7);
}

/* The V3 table of docs/model.md §4, plus the plain-theta and theta/40 ends. */
static void test_v3_yarn_table(void **state)
{
    struct fixture *f = *state;
    struct mtp_config c;
    load_text(f, v3_json, &c);
    float inv[32], css = 0.0f;
    mtp_config_rope_inv_freq(&c, inv, &css);
    static const struct {
        int i;
        double theta;
    } table[] = {{0, 1.0},          {8, 0.1},           {10, 0.0562341},   {11, 0.0390069},
                 {16, 0.0055},      {22, 1.77828e-4},   {23, 3.33380e-5},  {31, 3.33380e-6}};
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++)
        assert_rel(inv[table[k].i], table[k].theta, 1e-5);
    for (int i = 0; i < 32; i++) {
        double theta = pow(10000.0, -2.0 * i / 64);
        if (i <= 10)
            assert_rel(inv[i], theta, 1e-6);
        if (i >= 23)
            assert_rel(inv[i], theta / 40.0, 1e-6);
        if (i > 0)
            assert_true(inv[i] < inv[i - 1]);
    }
    assert_true(css == 1.0f); /* mscale == mscale_all_dim */
}

static void test_v2_lite(void **state)
{
    struct fixture *f = *state;
    struct mtp_config c;
    load_text(f, v2_lite_json, &c);
    assert_string_equal(c.model_type, "deepseek_v2");
    assert_int_equal(c.q_lora_rank, 0);
    assert_int_equal(c.num_nextn_predict_layers, 0); /* absent */
    assert_int_equal(c.topk_method, MTP_TOPK_GREEDY);
    assert_int_equal(c.scoring_func, MTP_SCORING_SOFTMAX);
    assert_int_equal(c.n_shared_experts, 2);
    assert_int_equal(c.num_experts_per_tok, 6);
    assert_false(c.norm_topk_prob);
    assert_false(c.fp8);
    assert_int_equal(c.weight_block_size[0], 128);
    assert_false(mtp_config_layer_is_moe(&c, 0));
    assert_true(mtp_config_layer_is_moe(&c, 1));
    assert_true(c.rope_scaling.mscale_all_dim == 0.707);
    assert_rel(mtp_config_softmax_scale(&c), 0.11472139, 1e-6);
    assert_int_equal(c.bos_token_id, 100000);
}

/* Apply "path=json" edits (path "a.b" for nested keys, json "-" deletes) to
 * BASE and write the result to the fixture's config.json. */
static void write_edited(struct fixture *f, const char *base, const char *path, const char *value)
{
    json_error_t err;
    json_t *root = json_loads(base, 0, &err);
    assert_non_null(root);
    json_t *obj = root;
    char key[128];
    snprintf(key, sizeof key, "%s", path);
    char *dot = strchr(key, '.');
    if (dot) {
        *dot = '\0';
        obj = json_object_get(root, key);
        assert_non_null(obj);
        memmove(key, dot + 1, strlen(dot + 1) + 1);
    }
    if (!strcmp(value, "-")) {
        json_object_del(obj, key);
    } else {
        json_t *v = json_loads(value, JSON_DECODE_ANY, &err);
        if (!v)
            fail_msg("bad test value %s: %s", value, err.text);
        json_object_set_new(obj, key, v);
    }
    assert_int_equal(json_dump_file(root, f->path, 0), 0);
    json_decref(root);
}

static void test_defaults_and_variants(void **state)
{
    struct fixture *f = *state;
    struct mtp_config c;
    /* V3 without scoring_func/topk_method/moe_layer_freq/n_group/topk_group: HF defaults. */
    json_t *root = json_loads(v3_json, 0, NULL);
    json_object_del(root, "scoring_func");
    json_object_del(root, "topk_method");
    json_object_del(root, "moe_layer_freq");
    json_object_del(root, "norm_topk_prob");
    json_object_del(root, "routed_scaling_factor");
    json_object_del(root, "num_nextn_predict_layers");
    json_object_del(root, "tie_word_embeddings");
    json_object_del(root, "bos_token_id");
    json_object_set_new(root, "rope_scaling", json_null());
    json_object_set_new(root, "eos_token_id", json_pack("[i,i]", 7, 9));
    char *text = json_dumps(root, 0);
    json_decref(root);
    load_text(f, text, &c);
    free(text);
    assert_int_equal(c.scoring_func, MTP_SCORING_SIGMOID);
    assert_int_equal(c.topk_method, MTP_TOPK_NOAUX_TC);
    assert_int_equal(c.moe_layer_freq, 1);
    assert_false(c.norm_topk_prob);
    assert_true(c.routed_scaling_factor == 1.0);
    assert_int_equal(c.num_nextn_predict_layers, 0);
    assert_false(c.tie_word_embeddings);
    assert_int_equal(c.bos_token_id, -1);
    assert_int_equal(c.eos_token_id, 7);
    assert_false(c.rope_scaling.yarn);
    assert_rel(mtp_config_softmax_scale(&c), 1.0 / sqrt(192.0), 1e-12);
    float inv[32], css = 0;
    mtp_config_rope_inv_freq(&c, inv, &css);
    assert_rel(inv[5], pow(10000.0, -10.0 / 64), 1e-6);
    assert_true(css == 1.0f);

    /* V2 without scoring_func/topk_method: softmax, greedy. */
    root = json_loads(v2_lite_json, 0, NULL);
    json_object_del(root, "scoring_func");
    json_object_del(root, "topk_method");
    text = json_dumps(root, 0);
    json_decref(root);
    load_text(f, text, &c);
    free(text);
    assert_int_equal(c.scoring_func, MTP_SCORING_SOFTMAX);
    assert_int_equal(c.topk_method, MTP_TOPK_GREEDY);

    /* Newer transformers: rope_parameters with rope_type and rope_theta inside. */
    root = json_loads(v3_json, 0, NULL);
    json_object_del(root, "rope_scaling");
    json_object_del(root, "rope_theta");
    json_object_set_new(root, "rope_parameters",
                        json_pack("{s:s, s:f, s:i, s:f, s:f, s:f, s:f, s:f}", "rope_type", "yarn",
                                  "factor", 32.0, "original_max_position_embeddings", 4096,
                                  "beta_fast", 1.0, "beta_slow", 1.0, "mscale", 1.0,
                                  "mscale_all_dim", 1.0, "rope_theta", 50000.0));
    text = json_dumps(root, 0);
    json_decref(root);
    load_text(f, text, &c);
    free(text);
    assert_true(c.rope_scaling.yarn);
    assert_true(c.rope_theta == 50000.0);
    assert_true(c.rope_scaling.factor == 32.0);
    /* Kimi-K2 numbers (docs/model.md §3.3, §4): scale 0.13086080; low 19, high 20. */
    assert_rel(mtp_config_softmax_scale(&c), 0.13086080, 1e-6);
    mtp_config_rope_inv_freq(&c, inv, &css);
    assert_rel(inv[19], pow(50000.0, -38.0 / 64), 1e-6);
    assert_rel(inv[20], pow(50000.0, -40.0 / 64) / 32.0, 1e-6);
}

struct bad_case {
    const char *path;  /* key to edit ("a.b" nested) */
    const char *value; /* JSON text, or "-" to delete */
    const char *want;  /* substring the message must contain */
};

static const struct bad_case bad_cases[] = {
    {"scoring_func", "\"tanh\"", "'scoring_func'"},
    {"topk_method", "\"random\"", "'topk_method'"},
    {"hidden_size", "\"NaN\"", "'hidden_size'"},
    {"hidden_size", "-", NULL}, /* missing required key */
    {"hidden_size", "0", "'hidden_size'"},
    {"hidden_size", "-7168", "'hidden_size'"},
    {"hidden_size", "7168.5", "'hidden_size'"},
    {"hidden_size", "true", "'hidden_size'"},
    {"vocab_size", "1e300", "'vocab_size'"},
    {"vocab_size", "null", "'vocab_size'"},
    {"rms_norm_eps", "\"NaN\"", "'rms_norm_eps'"},
    {"rms_norm_eps", "-1e-6", "'rms_norm_eps'"},
    {"rms_norm_eps", "0", "'rms_norm_eps'"},
    {"routed_scaling_factor", "\"inf\"", "'routed_scaling_factor'"},
    {"routed_scaling_factor", "0.0", "'routed_scaling_factor'"},
    {"rope_theta", "\"Infinity\"", "'rope_theta'"},
    {"norm_topk_prob", "1", "'norm_topk_prob'"},
    {"num_attention_heads", "100000000", "'num_attention_heads'"}, /* H*(dn+dr) overflow */
    {"qk_rope_head_dim", "63", "'qk_rope_head_dim'"},
    {"qk_rope_head_dim", "512", "'qk_rope_head_dim'"},
    {"n_routed_experts", "255", "'n_group'"},
    {"topk_group", "9", "'topk_group'"},
    {"num_experts_per_tok", "300", "'num_experts_per_tok'"},
    {"num_experts_per_tok", "200", "'num_experts_per_tok'"}, /* > 4 groups x 32 */
    {"scoring_func", "\"softmax\"", "noaux_tc"},              /* noaux_tc needs sigmoid */
    {"q_lora_rank", "-", "'q_lora_rank'"},
    {"q_lora_rank", "\"1536\"", "'q_lora_rank'"},
    {"model_type", "\"llama\"", "'model_type'"},
    {"hidden_act", "\"gelu\"", "'hidden_act'"},
    {"eos_token_id", "200000", "'eos_token_id'"},
    {"first_k_dense_replace", "62", "'first_k_dense_replace'"},
    {"moe_layer_freq", "0", "'moe_layer_freq'"},
    {"rope_scaling", "[1]", "'rope_scaling'"},
    {"rope_scaling.type", "\"linear\"", "'rope_scaling.type'"},
    {"rope_scaling.factor", "\"NaN\"", "'rope_scaling.factor'"},
    {"rope_scaling.factor", "-", "'rope_scaling.factor'"},
    {"rope_scaling.factor", "-40", "'rope_scaling.factor'"},
    {"rope_scaling.beta_fast", "0.5", "'rope_scaling.beta_fast'"},
    {"rope_scaling.original_max_position_embeddings", "4096.5",
     "'rope_scaling.original_max_position_embeddings'"},
    {"rope_scaling.original_max_position_embeddings", "1e9", /* > max_position_embeddings */
     "'rope_scaling.original_max_position_embeddings'"},
    {"rope_scaling.factor", "0", "'rope_scaling.factor'"},
    {"quantization_config.quant_method", "\"int4\"", "'quantization_config.quant_method'"},
    {"quantization_config.fmt", "\"e5m2\"", "'quantization_config.fmt'"},
    {"quantization_config.weight_block_size", "[0, 128]",
     "'quantization_config.weight_block_size'"},
    {"quantization_config.weight_block_size", "[128]",
     "'quantization_config.weight_block_size'"},
};

static void test_bad_values(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        char want[160];
        snprintf(want, sizeof want, "'%s'", b->path);
        const char *expect = b->want ? b->want : want;
        write_edited(f, v3_json, b->path, b->value);
        struct mtp_config c;
        mtp_error_clear();
        int rc = mtp_config_load(f->path, &c);
        if (rc != MTP_ERR)
            fail_msg("case %zu (%s = %s) was accepted", i, b->path, b->value);
        const char *msg = mtp_error_message();
        if (!strstr(msg, expect) || !strstr(msg, f->path) || !strstr(msg, "expected"))
            fail_msg("case %zu (%s = %s): message lacks %s: %s", i, b->path, b->value, expect,
                     msg);
        if (getenv("MTP_TEST_VERBOSE"))
            print_message("%s\n", msg);
    }
}

/* Files that are not valid JSON objects at all. */
static void test_bad_files(void **state)
{
    struct fixture *f = *state;
    static const char *const texts[] = {
        "{\"hidden_size\": NaN}",
        "{\"hidden_size\": 1e999}",
        "[1, 2, 3]",
        "{\"vocab_size\": 1, \"vocab_size\": 2}",
        "{",
        "",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        assert_int_equal(tiny_write_text(f->path, texts[i]), 0);
        struct mtp_config c;
        mtp_error_clear();
        assert_int_equal(mtp_config_load(f->path, &c), MTP_ERR);
        assert_non_null(strstr(mtp_error_message(), f->path));
    }
    struct mtp_config c;
    assert_int_equal(mtp_config_load("/nonexistent/config.json", &c), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "/nonexistent/config.json"));
}

static void test_hash(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(tiny_write_text(f->path, ""), 0);
    assert_true(mtp_config_hash_file(f->path) == 0xcbf29ce484222325ull);
    assert_int_equal(tiny_write_text(f->path, "a"), 0);
    assert_true(mtp_config_hash_file(f->path) == 0xaf63dc4c8601ec8cull); /* FNV-1a 64 of "a" */
    assert_int_equal(tiny_write_text(f->path, "foobar"), 0);
    assert_true(mtp_config_hash_file(f->path) == 0x85944171f73967e8ull);
    assert_true(mtp_config_hash_file("/nonexistent/x") == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v3_yarn_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_lite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_and_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * config.c - parse and validate a DeepSeek-V2/V3-family config.json (docs/model.md §1)
 * into struct mtp_config, and derive the softmax scale and the YaRN RoPE
 * frequencies (docs/model.md §3.3, §4).
 *
 * Every key is read with an explicit expected type and range. A bad value
 * fails with "FILE: key 'KEY': expected ..., found ..." so a researcher can fix
 * the file without reading this code. Integer keys take JSON integers (or reals
 * with an integral value); strings such as "NaN" where a number is expected are
 * errors, not zeros.
 */
#include "config.h"

#include <jansson.h> /* defines: json_t, json_load_file */
#include <limits.h>  /* defines: INT_MAX */
#include <math.h>    /* defines: log, pow, floor, ceil, isfinite */
#include <stddef.h>  /* defines: offsetof */
#include <stdio.h>   /* defines: snprintf, FILE */
#include <string.h>  /* defines: strcmp, memset */

#include "../kernels/backend.h" /* defines: MTP_MAX_ROPE_PAIRS */
#include "../core/error.h"
#include "input_file.h" /* defines: mtp_input_load_json */

/* The file being read and its parsed root, threaded through every reader so
 * messages can name the file. */
struct cfg_reader {
    const char *path;
    json_t *root;
};

enum cfg_presence {
    CFG_REQUIRED,     /* missing or null is an error */
    CFG_OPTIONAL,     /* missing or null takes the default */
    CFG_REQUIRED_MOE, /* required when n_routed_experts > 0, else the default */
};

/* Integer keys: where they go, whether they must be present, the default, and
 * the smallest legal value. Defaults are those of the HF remote-code
 * configuration_deepseek.py where it has a usable one; dimensions have none. */
struct cfg_int_field {
    const char *key;
    size_t offset;
    enum cfg_presence presence;
    int def;
    int min;
};

#define CFG_INT(key, presence, def, min) {#key, offsetof(struct mtp_config, key), presence, def, min}

static const struct cfg_int_field cfg_int_fields[] = {
    /* Model dimensions: no default could be right, so a missing one is an error. */
    CFG_INT(vocab_size, CFG_REQUIRED, 0, 1),
    CFG_INT(hidden_size, CFG_REQUIRED, 0, 1),
    CFG_INT(intermediate_size, CFG_REQUIRED, 0, 1),
    CFG_INT(num_hidden_layers, CFG_REQUIRED, 0, 1),
    CFG_INT(num_attention_heads, CFG_REQUIRED, 0, 1),
    CFG_INT(kv_lora_rank, CFG_REQUIRED, 0, 1),
    CFG_INT(qk_nope_head_dim, CFG_REQUIRED, 0, 1),
    CFG_INT(qk_rope_head_dim, CFG_REQUIRED, 0, 2),
    CFG_INT(v_head_dim, CFG_REQUIRED, 0, 1),
    CFG_INT(max_position_embeddings, CFG_REQUIRED, 0, 1),
    /* HF default None = no routed experts: a dense model. Read before the
     * CFG_REQUIRED_MOE keys below, which depend on it. */
    CFG_INT(n_routed_experts, CFG_OPTIONAL, 0, 0),
    CFG_INT(moe_intermediate_size, CFG_REQUIRED_MOE, 0, 1),
    CFG_INT(num_experts_per_tok, CFG_REQUIRED_MOE, 0, 1),
    /* HF default None = no shared experts. */
    CFG_INT(n_shared_experts, CFG_OPTIONAL, 0, 0),
    /* HF defaults None (treated as one group holding every expert). */
    CFG_INT(n_group, CFG_OPTIONAL, 1, 1),
    CFG_INT(topk_group, CFG_OPTIONAL, 1, 1),
    /* HF default 0: every layer may be MoE. */
    CFG_INT(first_k_dense_replace, CFG_OPTIONAL, 0, 0),
    /* HF default 1: every layer from first_k_dense_replace on is MoE. */
    CFG_INT(moe_layer_freq, CFG_OPTIONAL, 1, 1),
    /* Absent in V2 configs, which have no MTP modules. */
    CFG_INT(num_nextn_predict_layers, CFG_OPTIONAL, 0, 0),
};

static json_t *cfg_get(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* A short description of V for "found ..." ("string \"NaN\"", "2.5", "true"). */
static const char *cfg_describe(const json_t *v, char *buf, size_t n)
{
    if (!v)
        return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: snprintf(buf, n, "string \"%.40s\"", json_string_value(v)); return buf;
    case JSON_INTEGER: snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return buf;
    case JSON_REAL: snprintf(buf, n, "%.10g", json_real_value(v)); return buf;
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "?";
}

static int cfg_fail(const struct cfg_reader *r, const char *key, const char *expected,
                    const json_t *found)
{
    char buf[96];
    return mtp_error_set("%s: key '%s': expected %s, found %s", r->path, key, expected,
                         cfg_describe(found, buf, sizeof buf));
}

/* Integer V (a JSON integer, or a real with an integral value) in [min, INT_MAX]. */
static int cfg_as_int(const struct cfg_reader *r, const char *key, const json_t *v, int min,
                      int *out)
{
    char expected[64];
    snprintf(expected, sizeof expected, "an integer >= %d", min);
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!isfinite(d) || d != floor(d) || d < (double)LLONG_MIN || d > (double)INT_MAX)
            return cfg_fail(r, key, expected, v);
        x = (long long)d;
    } else {
        return cfg_fail(r, key, expected, v);
    }
    if (x < min || x > INT_MAX)
        return cfg_fail(r, key, expected, v);
    *out = (int)x;
    return MTP_OK;
}

static int cfg_read_ints(const struct cfg_reader *r, struct mtp_config *c)
{
    for (size_t i = 0; i < sizeof cfg_int_fields / sizeof cfg_int_fields[0]; i++) {
        const struct cfg_int_field *f = &cfg_int_fields[i];
        int *dst = (int *)((char *)c + f->offset);
        json_t *v = cfg_get(r->root, f->key);
        bool required = f->presence == CFG_REQUIRED ||
                        (f->presence == CFG_REQUIRED_MOE && c->n_routed_experts > 0);
        if (!v) {
            if (required) {
                char expected[96];
                snprintf(expected, sizeof expected, "an integer >= %d%s", f->min,
                         f->presence == CFG_REQUIRED_MOE ? " (n_routed_experts > 0)" : "");
                return cfg_fail(r, f->key, expected, json_object_get(r->root, f->key));
            }
            *dst = f->def;
            continue;
        }
        if (cfg_as_int(r, f->key, v, f->min, dst))
            return MTP_ERR;
    }
    return MTP_OK;
}

/* Number V (integer or real), finite, > LO (or >= LO when !STRICT). */
static int cfg_as_real(const struct cfg_reader *r, const char *key, const json_t *v, double lo,
                       bool strict, double *out)
{
    char expected[64];
    snprintf(expected, sizeof expected, "a finite number %s %g", strict ? ">" : ">=", lo);
    if (!json_is_number(v))
        return cfg_fail(r, key, expected, v);
    double d = json_number_value(v);
    if (!isfinite(d) || (strict ? d <= lo : d < lo))
        return cfg_fail(r, key, expected, v);
    *out = d;
    return MTP_OK;
}

/* Optional real KEY in OBJ (KEY_NAME is how messages spell it). */
static int cfg_opt_real(const struct cfg_reader *r, json_t *obj, const char *key,
                        const char *key_name, double def, double lo, bool strict, double *out)
{
    json_t *v = cfg_get(obj, key);
    if (!v) {
        *out = def;
        return MTP_OK;
    }
    return cfg_as_real(r, key_name, v, lo, strict, out);
}

static int cfg_opt_bool(const struct cfg_reader *r, const char *key, bool def, bool *out)
{
    json_t *v = cfg_get(r->root, key);
    if (!v) {
        *out = def;
        return MTP_OK;
    }
    if (!json_is_boolean(v))
        return cfg_fail(r, key, "true or false", v);
    *out = json_is_true(v);
    return MTP_OK;
}

/* String KEY of OBJ, or NULL when absent (error when present but not a string). */
static int cfg_opt_string(const struct cfg_reader *r, json_t *obj, const char *key,
                          const char *key_name, const char **out)
{
    json_t *v = cfg_get(obj, key);
    *out = NULL;
    if (!v)
        return MTP_OK;
    if (!json_is_string(v))
        return cfg_fail(r, key_name, "a string", v);
    *out = json_string_value(v);
    return MTP_OK;
}

/* transformers' Glm4MoeLiteConfig (GLM-4.7-Flash): DeepSeek-V3's architecture with
 * its own defaults and its own way of stating the dense/MoE layout (docs/model.md §1.3). */
static bool cfg_is_glm(const struct mtp_config *c)
{
    return strcmp(c->model_type, "glm4_moe_lite") == 0;
}

static int cfg_fail_int(const struct cfg_reader *r, const char *key, const char *expected);

static int cfg_read_model_type(const struct cfg_reader *r, struct mtp_config *c)
{
    static const char expected[] =
        "\"deepseek_v3\", \"deepseek_v2\", \"kimi_k2\" or \"glm4_moe_lite\"";
    json_t *v = cfg_get(r->root, "model_type");
    if (!json_is_string(v))
        return cfg_fail(r, "model_type", expected, json_object_get(r->root, "model_type"));
    const char *s = json_string_value(v);
    if (strcmp(s, "deepseek_v3") && strcmp(s, "deepseek_v2") && strcmp(s, "kimi_k2") &&
        strcmp(s, "glm4_moe_lite"))
        return cfg_fail(r, "model_type", expected, v);
    snprintf(c->model_type, sizeof c->model_type, "%s", s);
    return MTP_OK;
}

/* scoring_func and topk_method. Their defaults differ between the V2 and V3
 * remote code (softmax/greedy vs sigmoid/noaux_tc), so they follow model_type. */
static int cfg_read_routing(const struct cfg_reader *r, struct mtp_config *c)
{
    bool v2 = strcmp(c->model_type, "deepseek_v2") == 0;
    const char *s;
    if (cfg_opt_string(r, r->root, "scoring_func", "scoring_func", &s))
        return MTP_ERR;
    if (!s)
        c->scoring_func = v2 ? MTP_SCORING_SOFTMAX : MTP_SCORING_SIGMOID;
    else if (!strcmp(s, "sigmoid"))
        c->scoring_func = MTP_SCORING_SIGMOID;
    else if (!strcmp(s, "softmax"))
        c->scoring_func = MTP_SCORING_SOFTMAX;
    else
        return cfg_fail(r, "scoring_func", "\"sigmoid\" or \"softmax\"",
                        json_object_get(r->root, "scoring_func"));

    if (cfg_opt_string(r, r->root, "topk_method", "topk_method", &s))
        return MTP_ERR;
    if (!s)
        c->topk_method = v2 ? MTP_TOPK_GREEDY : MTP_TOPK_NOAUX_TC;
    else if (!strcmp(s, "noaux_tc"))
        c->topk_method = MTP_TOPK_NOAUX_TC;
    /* "gready" is the V2 remote code's own (misspelled) default; it means greedy. */
    else if (!strcmp(s, "greedy") || !strcmp(s, "gready"))
        c->topk_method = MTP_TOPK_GREEDY;
    else if (!strcmp(s, "group_limited_greedy"))
        c->topk_method = MTP_TOPK_GROUP_LIMITED_GREEDY;
    else
        return cfg_fail(r, "topk_method", "\"noaux_tc\", \"greedy\" or \"group_limited_greedy\"",
                        json_object_get(r->root, "topk_method"));
    /* transformers' glm4_moe_lite router has no such keys: it always scores with a sigmoid
     * and selects with the bias-corrected groups of noaux_tc, so any other value would make
     * the engine disagree with the model's own code. */
    if (cfg_is_glm(c) && c->scoring_func != MTP_SCORING_SIGMOID)
        return cfg_fail(r, "scoring_func", "\"sigmoid\" or absent (glm4_moe_lite always scores "
                        "experts with a sigmoid)", json_object_get(r->root, "scoring_func"));
    if (cfg_is_glm(c) && c->topk_method != MTP_TOPK_NOAUX_TC)
        return cfg_fail(r, "topk_method", "\"noaux_tc\" or absent (glm4_moe_lite always routes "
                        "with noaux_tc)", json_object_get(r->root, "topk_method"));
    return MTP_OK;
}

/* mlp_layer_types (glm4_moe_lite): "dense" or "sparse" per main layer. The engine's layer
 * rule is "dense before first_k_dense_replace, MoE after", so the list must be some dense
 * layers followed by sparse ones; it sets first_k_dense_replace. Without the list,
 * transformers makes only layer 0 dense, whatever first_k_dense_replace says, so a
 * first_k_dense_replace that disagrees is refused rather than silently overridden. */
static int cfg_read_mlp_layer_types(const struct cfg_reader *r, struct mtp_config *c)
{
    json_t *types = cfg_get(r->root, "mlp_layer_types");
    int n = c->num_hidden_layers, dense = 1;
    char expected[128];
    if (types) {
        if (!json_is_array(types) || json_array_size(types) != (size_t)n) {
            snprintf(expected, sizeof expected, "an array of num_hidden_layers (%d) strings", n);
            return cfg_fail(r, "mlp_layer_types", expected, types);
        }
        dense = 0;
        while (dense < n && json_is_string(json_array_get(types, (size_t)dense)) &&
               !strcmp(json_string_value(json_array_get(types, (size_t)dense)), "dense"))
            dense++;
        for (int i = dense; i < n; i++) {
            json_t *t = json_array_get(types, (size_t)i);
            if (!json_is_string(t) || strcmp(json_string_value(t), "sparse")) {
                char key[48];
                snprintf(key, sizeof key, "mlp_layer_types[%d]", i);
                return cfg_fail(r, key, "\"sparse\" (supported: leading \"dense\" layers, then "
                                "\"sparse\" ones)", t);
            }
        }
    }
    if (cfg_get(r->root, "first_k_dense_replace") && c->first_k_dense_replace != dense) {
        snprintf(expected, sizeof expected, "%d, the leading dense layers %s", dense,
                 types ? "of mlp_layer_types" : "transformers' glm4_moe_lite builds without "
                 "mlp_layer_types");
        return cfg_fail_int(r, "first_k_dense_replace", expected);
    }
    c->first_k_dense_replace = dense;
    return MTP_OK;
}

/* The keys glm4_moe_lite states differently from DeepSeek (docs/model.md §1.3). Expert
 * counts have transformers defaults (64 routed, 1 shared) that the engine does not guess:
 * a config without them is refused. */
static int cfg_read_glm_layout(const struct cfg_reader *r, struct mtp_config *c)
{
    if (!cfg_is_glm(c))
        return MTP_OK;
    static const char *const needed[] = {"n_routed_experts", "n_shared_experts"};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        if (!cfg_get(r->root, needed[i]))
            return cfg_fail(r, needed[i], "an integer (glm4_moe_lite needs its expert counts)",
                            json_object_get(r->root, needed[i]));
    if (c->n_routed_experts < 1)
        return cfg_fail_int(r, "n_routed_experts", "an integer >= 1 (glm4_moe_lite is MoE)");
    if (c->moe_layer_freq != 1)
        return cfg_fail_int(r, "moe_layer_freq", "1 or absent (glm4_moe_lite has no such key; "
                            "every layer after the dense ones is MoE)");
    return cfg_read_mlp_layer_types(r, c);
}

/* q_lora_rank is required, and null is meaningful: "use a plain q_proj". */
static int cfg_read_q_lora(const struct cfg_reader *r, struct mtp_config *c)
{
    json_t *v = json_object_get(r->root, "q_lora_rank");
    if (json_is_null(v)) {
        c->q_lora_rank = 0;
        return MTP_OK;
    }
    if (!v)
        return cfg_fail(r, "q_lora_rank", "an integer >= 1 or null", NULL);
    return cfg_as_int(r, "q_lora_rank", v, 0, &c->q_lora_rank);
}

/* bos/eos: -1 when absent; a list (several stop tokens) keeps its first id. */
static int cfg_read_token_id(const struct cfg_reader *r, const char *key, int vocab, int *out)
{
    json_t *v = cfg_get(r->root, key);
    *out = -1;
    if (!v)
        return MTP_OK;
    if (json_is_array(v)) {
        if (json_array_size(v) == 0)
            return cfg_fail(r, key, "a token id or a non-empty list of ids", v);
        v = json_array_get(v, 0);
    }
    if (cfg_as_int(r, key, v, 0, out))
        return MTP_ERR;
    if (*out >= vocab) {
        char expected[64];
        snprintf(expected, sizeof expected, "a token id < vocab_size (%d)", vocab);
        return cfg_fail(r, key, expected, v);
    }
    return MTP_OK;
}

static int cfg_read_scalars(const struct cfg_reader *r, struct mtp_config *c)
{
    /* Defaults are those of the model's own configuration class: glm4_moe_lite's
     * (transformers) differ from the DeepSeek remote code's. */
    bool glm = cfg_is_glm(c);
    if (cfg_opt_real(r, r->root, "routed_scaling_factor", "routed_scaling_factor",
                     glm ? 1.8 : 1.0, 0.0, true, &c->routed_scaling_factor) ||
        cfg_opt_real(r, r->root, "rms_norm_eps", "rms_norm_eps", glm ? 1e-5 : 1e-6, 0.0, true,
                     &c->rms_norm_eps) ||
        cfg_opt_bool(r, "norm_topk_prob", glm, &c->norm_topk_prob) ||
        cfg_opt_bool(r, "tie_word_embeddings", false, &c->tie_word_embeddings) ||
        cfg_read_token_id(r, "bos_token_id", c->vocab_size, &c->bos_token_id) ||
        cfg_read_token_id(r, "eos_token_id", c->vocab_size, &c->eos_token_id))
        return MTP_ERR;

    /* Features this engine does not implement are refused, not ignored. */
    const char *act;
    if (cfg_opt_string(r, r->root, "hidden_act", "hidden_act", &act))
        return MTP_ERR;
    if (act && strcmp(act, "silu"))
        return cfg_fail(r, "hidden_act", "\"silu\"", json_object_get(r->root, "hidden_act"));
    bool bias = false;
    if (cfg_opt_bool(r, "attention_bias", false, &bias))
        return MTP_ERR;
    if (bias)
        return cfg_fail(r, "attention_bias", "false (no attention biases are supported)",
                        json_object_get(r->root, "attention_bias"));
    return MTP_OK;
}

/* The YaRN keys of a rope_scaling / rope_parameters object NAME. Defaults are
 * those of the HF remote DeepseekV3YarnRotaryEmbedding signature. */
static int cfg_read_yarn(const struct cfg_reader *r, json_t *rs, const char *name,
                         struct mtp_rope_scaling *y)
{
    char key[96];
#define CFG_KEY(k) (snprintf(key, sizeof key, "%s.%s", name, k), key)
    json_t *f = cfg_get(rs, "factor");
    if (!f)
        return cfg_fail(r, CFG_KEY("factor"), "a finite number > 0", NULL);
    double orig;
    if (cfg_as_real(r, CFG_KEY("factor"), f, 0.0, true, &y->factor) ||
        cfg_opt_real(r, rs, "original_max_position_embeddings",
                     CFG_KEY("original_max_position_embeddings"), 4096, 0.0, true, &orig) ||
        cfg_opt_real(r, rs, "beta_fast", CFG_KEY("beta_fast"), 32.0, 0.0, true, &y->beta_fast) ||
        cfg_opt_real(r, rs, "beta_slow", CFG_KEY("beta_slow"), 1.0, 0.0, true, &y->beta_slow) ||
        cfg_opt_real(r, rs, "mscale", CFG_KEY("mscale"), 1.0, 0.0, false, &y->mscale) ||
        cfg_opt_real(r, rs, "mscale_all_dim", CFG_KEY("mscale_all_dim"), 0.0, 0.0, false,
                     &y->mscale_all_dim))
        return MTP_ERR;
    if (orig != floor(orig) || orig > INT_MAX)
        return cfg_fail(r, CFG_KEY("original_max_position_embeddings"), "a positive integer",
                        cfg_get(rs, "original_max_position_embeddings"));
    y->original_max_position = (int)orig;
    /* beta_fast rotations sit at a lower dimension than beta_slow; the other
     * order would give a ramp running backwards. */
    if (y->beta_fast < y->beta_slow) {
        char expected[96];
        snprintf(expected, sizeof expected, "a value >= %s.beta_slow (%g)", name, y->beta_slow);
        return cfg_fail(r, CFG_KEY("beta_fast"), expected, cfg_get(rs, "beta_fast"));
    }
#undef CFG_KEY
    y->yarn = true;
    return MTP_OK;
}

/* Rotary layouts the kernels do not implement are refused, not ignored:
 * rope_interleave false (transformers: rotate halves instead of adjacent pairs) and a
 * partial_rotary_factor below 1 (top level, or inside rope_parameters). */
static int cfg_check_rope_layout(const struct cfg_reader *r, json_t *params)
{
    bool interleave = true;
    if (cfg_opt_bool(r, "rope_interleave", true, &interleave))
        return MTP_ERR;
    if (!interleave)
        return cfg_fail(r, "rope_interleave", "true or absent (rotated pairs (2i, 2i+1); the "
                        "half-split layout is not implemented)",
                        json_object_get(r->root, "rope_interleave"));
    static const char full[] = "1 or absent (every qk_rope_head_dim dimension rotated)";
    double f;
    if (cfg_opt_real(r, r->root, "partial_rotary_factor", "partial_rotary_factor", 1.0, 0.0,
                     true, &f))
        return MTP_ERR;
    if (f != 1.0)
        return cfg_fail(r, "partial_rotary_factor", full,
                        json_object_get(r->root, "partial_rotary_factor"));
    if (params) {
        if (cfg_opt_real(r, params, "partial_rotary_factor",
                         "rope_parameters.partial_rotary_factor", 1.0, 0.0, true, &f))
            return MTP_ERR;
        if (f != 1.0)
            return cfg_fail(r, "rope_parameters.partial_rotary_factor", full,
                            json_object_get(params, "partial_rotary_factor"));
    }
    return MTP_OK;
}

/* rope_theta and rope scaling. Older configs have rope_scaling {type: ...};
 * newer transformers writes rope_parameters {rope_type: ..., rope_theta}. */
static int cfg_read_rope(const struct cfg_reader *r, struct mtp_config *c)
{
    json_t *params = cfg_get(r->root, "rope_parameters");
    json_t *rs = cfg_get(r->root, "rope_scaling");
    const char *name = "rope_scaling";
    if (!rs) {
        rs = params;
        name = "rope_parameters";
    }
    if (params && !json_is_object(params))
        return cfg_fail(r, "rope_parameters", "an object or null", params);
    if (cfg_check_rope_layout(r, params))
        return MTP_ERR;
    /* rope_theta must exceed 1: YaRN divides by ln(rope_theta). */
    json_t *theta_obj = cfg_get(r->root, "rope_theta") ? r->root : params;
    const char *theta_key = theta_obj == r->root ? "rope_theta" : "rope_parameters.rope_theta";
    if (cfg_opt_real(r, theta_obj, "rope_theta", theta_key, 10000.0, 1.0, true, &c->rope_theta))
        return MTP_ERR;

    memset(&c->rope_scaling, 0, sizeof c->rope_scaling);
    if (!rs)
        return MTP_OK;
    if (!json_is_object(rs))
        return cfg_fail(r, name, "an object or null", rs);
    char key[64];
    const char *type;
    snprintf(key, sizeof key, "%s.type", name);
    if (cfg_opt_string(r, rs, "type", key, &type))
        return MTP_ERR;
    if (!type) {
        snprintf(key, sizeof key, "%s.rope_type", name);
        if (cfg_opt_string(r, rs, "rope_type", key, &type))
            return MTP_ERR;
    }
    if (type && !strcmp(type, "default"))
        return MTP_OK; /* plain RoPE (newer transformers always writes rope_parameters) */
    if (!type || (strcmp(type, "yarn") && strcmp(type, "deepseek_yarn")))
        return cfg_fail(r, key, "\"yarn\" or \"default\"",
                        type ? cfg_get(rs, strrchr(key, '.') + 1) : NULL);
    if (cfg_read_yarn(r, rs, name, &c->rope_scaling))
        return MTP_ERR;
    /* YaRN stretches the positions the model was trained at to max_position_embeddings; an
     * original length beyond that limit would be a shrink, which no checkpoint means. */
    if (c->rope_scaling.original_max_position > c->max_position_embeddings) {
        char expected[96];
        snprintf(key, sizeof key, "%s.original_max_position_embeddings", name);
        snprintf(expected, sizeof expected, "at most max_position_embeddings (%d)",
                 c->max_position_embeddings);
        return cfg_fail(r, key, expected, cfg_get(rs, "original_max_position_embeddings"));
    }
    return MTP_OK;
}

/* quantization_config: only block-scaled FP8 E4M3 (docs/model.md §2.5). */
static int cfg_read_quant(const struct cfg_reader *r, struct mtp_config *c)
{
    c->fp8 = false;
    c->weight_block_size[0] = c->weight_block_size[1] = 128;
    json_t *q = cfg_get(r->root, "quantization_config");
    if (!q)
        return MTP_OK;
    if (!json_is_object(q))
        return cfg_fail(r, "quantization_config", "an object or null", q);
    const char *s;
    if (cfg_opt_string(r, q, "quant_method", "quantization_config.quant_method", &s))
        return MTP_ERR;
    if (!s || strcmp(s, "fp8"))
        return cfg_fail(r, "quantization_config.quant_method", "\"fp8\" (the only one supported)",
                        cfg_get(q, "quant_method"));
    c->fp8 = true;
    if (cfg_opt_string(r, q, "fmt", "quantization_config.fmt", &s))
        return MTP_ERR;
    if (s && strcmp(s, "e4m3"))
        return cfg_fail(r, "quantization_config.fmt", "\"e4m3\"", cfg_get(q, "fmt"));
    json_t *b = cfg_get(q, "weight_block_size");
    if (!b)
        return MTP_OK;
    if (!json_is_array(b) || json_array_size(b) != 2)
        return cfg_fail(r, "quantization_config.weight_block_size", "an array of 2 integers", b);
    for (int i = 0; i < 2; i++)
        if (cfg_as_int(r, "quantization_config.weight_block_size", json_array_get(b, i), 1,
                       &c->weight_block_size[i]))
            return MTP_ERR;
    return MTP_OK;
}

/* A product of config dimensions that must fit an int (it becomes a tensor
 * dimension). EXPR names the product in the message. */
static int cfg_check_dim(const struct cfg_reader *r, const char *key, const char *expr,
                         long long value)
{
    if (value <= INT_MAX)
        return MTP_OK;
    return mtp_error_set("%s: key '%s': expected %s <= %d, found %lld (overflow)", r->path, key,
                         expr, INT_MAX, value);
}

static int cfg_check_attention(const struct cfg_reader *r, const struct mtp_config *c)
{
    long long h = c->num_attention_heads;
    if (c->qk_rope_head_dim % 2 || c->qk_rope_head_dim > 2 * MTP_MAX_ROPE_PAIRS) {
        char expected[64];
        snprintf(expected, sizeof expected, "an even integer <= %d", 2 * MTP_MAX_ROPE_PAIRS);
        return cfg_fail(r, "qk_rope_head_dim", expected,
                        json_object_get(r->root, "qk_rope_head_dim"));
    }
    if (cfg_check_dim(r, "num_attention_heads",
                      "num_attention_heads * (qk_nope_head_dim + qk_rope_head_dim)",
                      h * ((long long)c->qk_nope_head_dim + c->qk_rope_head_dim)) ||
        cfg_check_dim(r, "num_attention_heads",
                      "num_attention_heads * (qk_nope_head_dim + v_head_dim)",
                      h * ((long long)c->qk_nope_head_dim + c->v_head_dim)) ||
        cfg_check_dim(r, "kv_lora_rank", "kv_lora_rank + qk_rope_head_dim",
                      (long long)c->kv_lora_rank + c->qk_rope_head_dim) ||
        cfg_check_dim(r, "hidden_size", "2 * hidden_size", 2LL * c->hidden_size) ||
        cfg_check_dim(r, "num_hidden_layers", "num_hidden_layers + num_nextn_predict_layers",
                      (long long)c->num_hidden_layers + c->num_nextn_predict_layers))
        return MTP_ERR;
    return MTP_OK;
}

static int cfg_fail_int(const struct cfg_reader *r, const char *key, const char *expected)
{
    return cfg_fail(r, key, expected, json_object_get(r->root, key));
}

/* Consistency of the MoE routing keys (docs/model.md §5). */
static int cfg_check_moe(const struct cfg_reader *r, const struct mtp_config *c)
{
    char expected[128];
    if (c->n_routed_experts == 0)
        return MTP_OK;
    if (c->n_routed_experts % c->n_group) {
        snprintf(expected, sizeof expected, "a divisor of n_routed_experts (%d)",
                 c->n_routed_experts);
        return cfg_fail_int(r, "n_group", expected);
    }
    if (c->topk_group > c->n_group) {
        snprintf(expected, sizeof expected, "at most n_group (%d)", c->n_group);
        return cfg_fail_int(r, "topk_group", expected);
    }
    if (c->num_experts_per_tok > c->n_routed_experts) {
        snprintf(expected, sizeof expected, "at most n_routed_experts (%d)", c->n_routed_experts);
        return cfg_fail_int(r, "num_experts_per_tok", expected);
    }
    /* Group-limited routing picks the top-k among the kept groups' experts. */
    long long kept = (long long)c->topk_group * (c->n_routed_experts / c->n_group);
    if (c->topk_method != MTP_TOPK_GREEDY && c->num_experts_per_tok > kept) {
        snprintf(expected, sizeof expected,
                 "at most topk_group * n_routed_experts / n_group (%lld)", kept);
        return cfg_fail_int(r, "num_experts_per_tok", expected);
    }
    if (c->topk_method == MTP_TOPK_NOAUX_TC && c->scoring_func != MTP_SCORING_SIGMOID)
        return cfg_fail_int(r, "scoring_func",
                            "\"sigmoid\" with topk_method \"noaux_tc\" (its bias-corrected "
                            "selection is defined for sigmoid scores only)");
    return cfg_check_dim(r, "n_shared_experts", "n_shared_experts * moe_intermediate_size",
                         (long long)c->n_shared_experts * c->moe_intermediate_size);
}

int mtp_config_load(const char *path, struct mtp_config *cfg)
{
    json_t *root = mtp_input_load_json(path, JSON_REJECT_DUPLICATES); /* regular files only */
    if (!root)
        return MTP_ERR;
    struct cfg_reader r = {path, root};
    int rc = MTP_ERR;
    memset(cfg, 0, sizeof *cfg);
    if (!json_is_object(root)) {
        char buf[96];
        mtp_error_set("%s: expected a JSON object at the top level, found %s", path,
                      cfg_describe(root, buf, sizeof buf));
        goto out_root;
    }
    if (cfg_read_model_type(&r, cfg) || cfg_read_ints(&r, cfg) || cfg_read_q_lora(&r, cfg) ||
        cfg_read_routing(&r, cfg) || cfg_read_glm_layout(&r, cfg) || cfg_read_scalars(&r, cfg) ||
        cfg_read_rope(&r, cfg) ||
        cfg_read_quant(&r, cfg) || cfg_check_attention(&r, cfg) || cfg_check_moe(&r, cfg))
        goto out_root;
    if (cfg->first_k_dense_replace > cfg->num_hidden_layers) {
        char expected[64];
        snprintf(expected, sizeof expected, "at most num_hidden_layers (%d)",
                 cfg->num_hidden_layers);
        cfg_fail_int(&r, "first_k_dense_replace", expected);
        goto out_root;
    }
    rc = MTP_OK;
out_root:
    json_decref(root);
    return rc;
}

/* get_mscale(s, m) of docs/model.md §4: the YaRN magnitude factor. */
static double cfg_yarn_mscale(double s, double m)
{
    return s <= 1.0 ? 1.0 : 0.1 * m * log(s) + 1.0;
}

double mtp_config_softmax_scale(const struct mtp_config *c)
{
    double scale = 1.0 / sqrt((double)mtp_config_qk_head_dim(c));
    if (c->rope_scaling.yarn) {
        /* Longer contexts flatten attention; YaRN sharpens it back by mscale^2. */
        double m = cfg_yarn_mscale(c->rope_scaling.factor, c->rope_scaling.mscale_all_dim);
        scale *= m * m;
    }
    return scale;
}

/* corr(n): the rotary dimension that completes N rotations over L0 positions. */
static double cfg_yarn_corr_dim(double n, int dim, double base, double l0)
{
    const double two_pi = 6.283185307179586476925286766559;
    return dim * log(l0 / (two_pi * n)) / (2.0 * log(base));
}

void mtp_config_rope_inv_freq(const struct mtp_config *c, float *out, float *cos_sin_scale)
{
    const struct mtp_rope_scaling *y = &c->rope_scaling;
    int dim = c->qk_rope_head_dim;
    double low = 0.0, high = 1.0;
    if (y->yarn) {
        low = floor(cfg_yarn_corr_dim(y->beta_fast, dim, c->rope_theta, y->original_max_position));
        high = ceil(cfg_yarn_corr_dim(y->beta_slow, dim, c->rope_theta, y->original_max_position));
        low = low < 0.0 ? 0.0 : low;
        high = high > dim - 1 ? dim - 1 : high;
        if (low == high)
            high += 0.001; /* as HF: avoid a zero-width ramp */
    }
    for (int i = 0; i < dim / 2; i++) {
        double theta = pow(c->rope_theta, -2.0 * i / dim);
        if (y->yarn) {
            /* Low dimensions (fast rotations) keep theta; high ones are
             * interpolated to theta / factor; a linear ramp in between. */
            double ramp = (i - low) / (high - low);
            ramp = ramp < 0.0 ? 0.0 : ramp > 1.0 ? 1.0 : ramp;
            theta = theta / y->factor * ramp + theta * (1.0 - ramp);
        }
        out[i] = (float)theta;
    }
    if (cos_sin_scale)
        *cos_sin_scale = y->yarn ? (float)(cfg_yarn_mscale(y->factor, y->mscale) /
                                           cfg_yarn_mscale(y->factor, y->mscale_all_dim))
                                 : 1.0f;
}

uint64_t mtp_config_hash_file(const char *path)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 offset basis */
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0; /* documented: an unreadable file hashes to 0 */
    unsigned char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < n; i++) {
            h ^= buf[i];
            h *= 0x100000001b3ull; /* FNV-1a 64 prime */
        }
    fclose(f);
    return h;
}

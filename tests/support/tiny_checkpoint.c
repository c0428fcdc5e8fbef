/*
 * tiny_checkpoint.c - writers for safetensors test files and tiny V3-shaped
 * model directories (see tiny_checkpoint.h). Weights come from a seeded
 * xorshift generator, so a given option set always gives the same bytes.
 */
#include "tiny_checkpoint.h"

#include <dirent.h>  /* defines: opendir, readdir */
#include <jansson.h> /* defines: json_pack, json_dumps */
#include <stdio.h>   /* defines: fopen, fwrite, snprintf */
#include <stdlib.h>  /* defines: malloc, free */
#include <string.h>  /* defines: strcmp, memcpy, strlen */
#include <unistd.h>  /* defines: rmdir, unlink */

int tiny_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

int tiny_st_write_raw(const char *path, uint64_t hlen_field, const char *header, const void *data,
                      size_t data_len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(hlen_field >> (8 * i));
    size_t hl = strlen(header);
    int rc = 0;
    if (fwrite(len, 1, 8, f) != 8 || fwrite(header, 1, hl, f) != hl ||
        (data_len && fwrite(data, 1, data_len, f) != data_len))
        rc = -1;
    return fclose(f) == 0 ? rc : -1;
}

int tiny_st_write(const char *path, const struct tiny_st_tensor *t, size_t n, bool metadata)
{
    json_t *hdr = json_object();
    if (metadata)
        json_object_set_new(hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < t[i].ndim; d++)
            json_array_append_new(shape, json_integer(t[i].shape[d]));
        json_object_set_new(hdr, t[i].name,
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", t[i].dtype, "shape", shape,
                                      "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + t[i].nbytes)));
        off += t[i].nbytes;
    }
    char *text = json_dumps(hdr, JSON_COMPACT);
    json_decref(hdr);
    size_t hl = strlen(text), padded = (hl + 7) / 8 * 8;
    char *header = malloc(padded + 1);
    memcpy(header, text, hl);
    memset(header + hl, ' ', padded - hl);
    header[padded] = '\0';
    free(text);
    unsigned char *data = malloc(off ? off : 1);
    off = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].nbytes)
            memcpy(data + off, t[i].data, t[i].nbytes);
        off += t[i].nbytes;
    }
    int rc = tiny_st_write_raw(path, padded, header, data, off);
    free(header);
    free(data);
    return rc;
}

char *tiny_make_tmpdir(void)
{
    char tmpl[] = "/tmp/mtp_test_XXXXXX";
    if (!mkdtemp(tmpl))
        return NULL;
    size_t n = strlen(tmpl) + 1;
    char *p = malloc(n);
    memcpy(p, tmpl, n);
    return p;
}

void tiny_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

void tiny_opts_default(struct tiny_opts *o)
{
    memset(o, 0, sizeof *o);
    o->q_lora = true;
    o->mtp_own_embed = true;
    o->mtp_own_head = true;
    o->n_mtp = 1;
    o->seed = 1;
}

enum tiny_kind {
    TINY_KIND_F32,      /* random in [-0.5, 0.5) */
    TINY_KIND_NORM,     /* around 1, F32 or BF16 per options */
    TINY_KIND_F8,       /* random non-NaN E4M3 bytes */
    TINY_KIND_SCALE,    /* positive F32 block scales */
};

struct tiny_list {
    struct tiny_st_tensor *t;
    size_t n, cap;
    const struct tiny_opts *o;
    uint64_t rng;
};

static uint64_t tiny_next(struct tiny_list *l)
{
    l->rng ^= l->rng << 13; /* xorshift64 */
    l->rng ^= l->rng >> 7;
    l->rng ^= l->rng << 17;
    return l->rng;
}

static float tiny_uniform(struct tiny_list *l)
{
    return (float)(tiny_next(l) >> 40) / (float)(1u << 24) - 0.5f;
}

static bool tiny_is(const char *fault, const char *name)
{
    return fault && !strcmp(fault, name);
}

static void tiny_fill(struct tiny_list *l, enum tiny_kind kind, unsigned char *p, int64_t numel)
{
    for (int64_t i = 0; i < numel; i++) {
        if (kind == TINY_KIND_F8) {
            unsigned char b = (unsigned char)(tiny_next(l) >> 56);
            p[i] = (b & 0x7f) == 0x7f ? 0x38 : b; /* no NaN: 0x38 is 1.0 */
            continue;
        }
        float f = kind == TINY_KIND_F32     ? tiny_uniform(l)
                  : kind == TINY_KIND_SCALE ? 0.01f + 0.01f * (tiny_uniform(l) + 0.5f)
                                            : 1.0f + 0.2f * tiny_uniform(l);
        if (kind == TINY_KIND_NORM && l->o->bf16_vectors) {
            uint32_t u;
            memcpy(&u, &f, 4);
            uint16_t h = (uint16_t)(u >> 16); /* truncation: exact BF16 values */
            memcpy(p + 2 * i, &h, 2);
        } else {
            memcpy(p + 4 * i, &f, 4);
        }
    }
}

/* Add tensor NAME [R] (C < 0) or [R, C], applying the option faults. */
static void tiny_add(struct tiny_list *l, const char *name, enum tiny_kind kind, int64_t r,
                     int64_t c)
{
    const struct tiny_opts *o = l->o;
    if (tiny_is(o->omit, name))
        return;
    struct tiny_st_tensor t = {.ndim = c < 0 ? 1 : 2, .shape = {r, c}};
    if (tiny_is(o->bad_shape, name))
        t.shape[t.ndim - 1] -= 1;
    const char *dtype = kind == TINY_KIND_F8                          ? "F8_E4M3"
                        : kind == TINY_KIND_NORM && o->bf16_vectors ? "BF16"
                                                                    : "F32";
    size_t size = kind == TINY_KIND_F8 ? 1 : !strcmp(dtype, "BF16") ? 2 : 4;
    int64_t numel = t.ndim == 1 ? t.shape[0] : t.shape[0] * t.shape[1];
    unsigned char *data = calloc((size_t)numel * size + 1, 1);
    tiny_fill(l, kind, data, numel);
    if (tiny_is(o->bad_dtype, name)) {
        dtype = "I32";
        free(data);
        size = 4;
        data = calloc((size_t)numel * size + 1, 1);
    }
    size_t n = strlen(name) + 1;
    char *nm = malloc(n);
    memcpy(nm, name, n);
    t.name = nm;
    t.dtype = dtype;
    t.data = data;
    t.nbytes = (size_t)numel * size;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->t = realloc(l->t, l->cap * sizeof *l->t);
    }
    l->t[l->n++] = t;
}

/* A weight matrix; QUANT marks the ones V3 stores in FP8 (docs/model.md §2.5). */
static void tiny_matrix(struct tiny_list *l, const char *name, int rows, int cols, bool quant)
{
    if (!(quant && l->o->fp8)) {
        tiny_add(l, name, TINY_KIND_F32, rows, cols);
        return;
    }
    char scale[256 + 16];
    tiny_add(l, name, TINY_KIND_F8, rows, cols);
    snprintf(scale, sizeof scale, "%s_scale_inv", name);
    tiny_add(l, scale, TINY_KIND_SCALE, (rows + TINY_FP8_BLOCK - 1) / TINY_FP8_BLOCK,
             (cols + TINY_FP8_BLOCK - 1) / TINY_FP8_BLOCK);
}

static const char *tiny_name(char *buf, int layer, const char *suffix)
{
    snprintf(buf, 256, "model.layers.%d.%s", layer, suffix);
    return buf;
}

static void tiny_ffn(struct tiny_list *l, int layer, const char *prefix, int inter)
{
    char n[256], s[128];
    snprintf(s, sizeof s, "%s.gate_proj.weight", prefix);
    tiny_matrix(l, tiny_name(n, layer, s), inter, TINY_D, true);
    snprintf(s, sizeof s, "%s.up_proj.weight", prefix);
    tiny_matrix(l, tiny_name(n, layer, s), inter, TINY_D, true);
    snprintf(s, sizeof s, "%s.down_proj.weight", prefix);
    tiny_matrix(l, tiny_name(n, layer, s), TINY_D, inter, true);
}

static void tiny_attention(struct tiny_list *l, int L)
{
    char n[256];
    int q_rows = TINY_HEADS * (TINY_NOPE + TINY_ROPE);
    if (l->o->q_lora) {
        tiny_matrix(l, tiny_name(n, L, "self_attn.q_a_proj.weight"), TINY_Q_LORA, TINY_D, true);
        tiny_add(l, tiny_name(n, L, "self_attn.q_a_layernorm.weight"), TINY_KIND_NORM,
                 TINY_Q_LORA, -1);
        tiny_matrix(l, tiny_name(n, L, "self_attn.q_b_proj.weight"), q_rows, TINY_Q_LORA, true);
    } else {
        tiny_matrix(l, tiny_name(n, L, "self_attn.q_proj.weight"), q_rows, TINY_D, true);
    }
    tiny_matrix(l, tiny_name(n, L, "self_attn.kv_a_proj_with_mqa.weight"),
                TINY_KV_LORA + TINY_ROPE, TINY_D, true);
    tiny_add(l, tiny_name(n, L, "self_attn.kv_a_layernorm.weight"), TINY_KIND_NORM, TINY_KV_LORA,
             -1);
    tiny_matrix(l, tiny_name(n, L, "self_attn.kv_b_proj.weight"),
                TINY_HEADS * (TINY_NOPE + TINY_V), TINY_KV_LORA, true);
    tiny_matrix(l, tiny_name(n, L, "self_attn.o_proj.weight"), TINY_D, TINY_HEADS * TINY_V, true);
}

static void tiny_layer(struct tiny_list *l, int L)
{
    char n[256];
    tiny_add(l, tiny_name(n, L, "input_layernorm.weight"), TINY_KIND_NORM, TINY_D, -1);
    tiny_add(l, tiny_name(n, L, "post_attention_layernorm.weight"), TINY_KIND_NORM, TINY_D, -1);
    tiny_attention(l, L);
    if (L < TINY_DENSE) {
        tiny_ffn(l, L, "mlp", TINY_INTER);
    } else {
        tiny_matrix(l, tiny_name(n, L, "mlp.gate.weight"), TINY_EXPERTS, TINY_D, false);
        tiny_add(l, tiny_name(n, L, "mlp.gate.e_score_correction_bias"), TINY_KIND_F32,
                 TINY_EXPERTS, -1);
        tiny_ffn(l, L, "mlp.shared_experts", TINY_SHARED * TINY_MOE_INTER);
        for (int e = 0; e < TINY_EXPERTS; e++) {
            char p[64];
            snprintf(p, sizeof p, "mlp.experts.%d", e);
            tiny_ffn(l, L, p, TINY_MOE_INTER);
        }
    }
    if (L < TINY_LAYERS)
        return;
    tiny_add(l, tiny_name(n, L, "enorm.weight"), TINY_KIND_NORM, TINY_D, -1);
    tiny_add(l, tiny_name(n, L, "hnorm.weight"), TINY_KIND_NORM, TINY_D, -1);
    tiny_matrix(l, tiny_name(n, L, "eh_proj.weight"), TINY_D, 2 * TINY_D, false);
    tiny_add(l, tiny_name(n, L, "shared_head.norm.weight"), TINY_KIND_NORM, TINY_D, -1);
    if (l->o->mtp_own_embed)
        tiny_matrix(l, tiny_name(n, L, "embed_tokens.weight"), TINY_VOCAB, TINY_D, false);
    if (l->o->mtp_own_head)
        tiny_matrix(l, tiny_name(n, L, "shared_head.head.weight"), TINY_VOCAB, TINY_D, false);
}

static json_t *tiny_config_json(const struct tiny_opts *o)
{
    json_t *c = json_pack(
        "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:s, s:i, s:i,"
        " s:i, s:i, s:b, s:s, s:i, s:i, s:i, s:i, s:s, s:f, s:f, s:i, s:b, s:i, s:i, s:s}",
        "architectures", "DeepseekV3ForCausalLM", "model_type", "deepseek_v3", "vocab_size",
        TINY_VOCAB, "hidden_size", TINY_D, "intermediate_size", TINY_INTER,
        "moe_intermediate_size", TINY_MOE_INTER, "num_hidden_layers", TINY_LAYERS,
        "num_nextn_predict_layers", o->n_mtp, "num_attention_heads", TINY_HEADS,
        "num_key_value_heads", TINY_HEADS, "n_shared_experts", TINY_SHARED, "n_routed_experts",
        TINY_EXPERTS, "num_experts_per_tok", TINY_TOPK, "routed_scaling_factor", 2.5,
        "topk_method", "noaux_tc", "n_group", TINY_GROUPS, "topk_group", TINY_TOPK_GROUP,
        "first_k_dense_replace", TINY_DENSE, "moe_layer_freq", 1, "norm_topk_prob", 1,
        "scoring_func", "sigmoid", "kv_lora_rank", TINY_KV_LORA, "qk_nope_head_dim", TINY_NOPE,
        "qk_rope_head_dim", TINY_ROPE, "v_head_dim", TINY_V, "hidden_act", "silu",
        "rms_norm_eps", 1e-6, "rope_theta", 10000.0, "max_position_embeddings", 163840,
        "tie_word_embeddings", o->tie_embeddings, "bos_token_id", 0, "eos_token_id", 1,
        "torch_dtype", "float32");
    json_object_set_new(c, "q_lora_rank", o->q_lora ? json_integer(TINY_Q_LORA) : json_null());
    json_object_set_new(c, "rope_scaling",
                        json_pack("{s:s, s:f, s:i, s:i, s:i, s:f, s:f}", "type", "yarn", "factor",
                                  40.0, "original_max_position_embeddings", 4096, "beta_fast",
                                  32, "beta_slow", 1, "mscale", 1.0, "mscale_all_dim", 1.0));
    if (o->fp8)
        json_object_set_new(c, "quantization_config",
                            json_pack("{s:s, s:s, s:s, s:[i,i]}", "quant_method", "fp8", "fmt",
                                      "e4m3", "activation_scheme", "dynamic", "weight_block_size",
                                      TINY_FP8_BLOCK, TINY_FP8_BLOCK));
    return c;
}

/* Wider elements first, as the safetensors writer does, so every tensor is
 * aligned to its element size. */
static size_t tiny_elem(const struct tiny_st_tensor *t)
{
    return !strcmp(t->dtype, "F8_E4M3") ? 1 : !strcmp(t->dtype, "BF16") ? 2 : 4;
}

static void tiny_sort_by_width(struct tiny_list *l)
{
    for (size_t i = 1; i < l->n; i++) { /* stable insertion sort: small lists */
        struct tiny_st_tensor t = l->t[i];
        size_t j = i;
        while (j > 0 && tiny_elem(&l->t[j - 1]) < tiny_elem(&t)) {
            l->t[j] = l->t[j - 1];
            j--;
        }
        l->t[j] = t;
    }
}

int tiny_checkpoint_write(const char *dir, const struct tiny_opts *o)
{
    char path[4096];
    struct tiny_list l = {.o = o, .rng = 0x9e3779b97f4a7c15ull ^ (o->seed * 0x100000001b3ull)};
    json_t *cfg = tiny_config_json(o);
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = json_dump_file(cfg, path, JSON_INDENT(2));
    json_decref(cfg);
    if (rc)
        return -1;

    tiny_matrix(&l, "model.embed_tokens.weight", TINY_VOCAB, TINY_D, false);
    tiny_add(&l, "model.norm.weight", TINY_KIND_NORM, TINY_D, -1);
    if (!o->tie_embeddings)
        tiny_matrix(&l, "lm_head.weight", TINY_VOCAB, TINY_D, false);
    for (int L = 0; L < TINY_LAYERS + o->n_mtp; L++)
        tiny_layer(&l, L);
    if (o->extra)
        tiny_add(&l, o->extra, TINY_KIND_F32, 4, -1);
    tiny_sort_by_width(&l);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = tiny_st_write(path, l.t, l.n, true);
    for (size_t i = 0; i < l.n; i++) {
        free((void *)l.t[i].name);
        free((void *)l.t[i].data);
    }
    free(l.t);
    return rc;
}

/*
 * synth_write.c - write a synthetic checkpoint directory: one safetensors
 * shard for the embedding/norm/head and one per layer (values streamed in
 * chunks, never the whole tensor in memory), model.safetensors.index.json,
 * config.json with a record of the cut, and README.md.
 */
#include <errno.h>     /* defines: errno, EEXIST */
#include <inttypes.h>  /* defines: PRIu64 */
#include <jansson.h>   /* defines: json_pack, json_dumps */
#include <stdlib.h>    /* defines: free */
#include <string.h>    /* defines: strerror, strlen */
#include <sys/stat.h>  /* defines: mkdir, stat */
#include <unistd.h>    /* defines: access */

#include "../core/error.h"
#include "synth_internal.h"

enum { CHUNK_BYTES = 8 << 20 };

static void shard_name(char *buf, size_t n, int shard, int shards)
{
    snprintf(buf, n, "model-%05d-of-%05d.safetensors", shard + 1, shards);
}

/* The safetensors header of the tensors of SHARD, padded to 8 bytes. */
static char *shard_header(const struct synth_tensor *t, int n, int shard, uint64_t *data_bytes)
{
    json_t *h = json_pack("{s:{s:s}}", "__metadata__", "format", "pt");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (t[i].shard != shard)
            continue;
        uint64_t bytes = synth_tensor_numel(&t[i]) * mtp_dtype_size(t[i].dtype);
        json_t *shape = t[i].ndim == 1 ? json_pack("[I]", (json_int_t)t[i].shape[0])
                                       : json_pack("[I,I]", (json_int_t)t[i].shape[0],
                                                   (json_int_t)t[i].shape[1]);
        json_object_set_new(h, t[i].name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", mtp_dtype_name(t[i].dtype),
                                      "shape", shape, "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + bytes)));
        off += bytes;
    }
    char *text = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    char *out = mtp_xmalloc(padded + 1);
    memcpy(out, text, len);
    memset(out + len, ' ', padded - len);
    out[padded] = '\0';
    free(text);
    *data_bytes = off;
    return out;
}

static int write_all(FILE *f, const void *p, size_t n, const char *path)
{
    if (fwrite(p, 1, n, f) != n)
        return mtp_error_set("synth: writing %s: %s", path, strerror(errno));
    return MTP_OK;
}

/* Stream tensor T into F in chunks of CHUNK_BYTES. */
static int write_tensor(FILE *f, const struct synth_tensor *t, uint64_t seed, void *buf,
                        const char *path)
{
    size_t es = mtp_dtype_size(t->dtype), per = CHUNK_BYTES / es;
    uint64_t numel = synth_tensor_numel(t);
    for (uint64_t i = 0; i < numel; i += per) {
        size_t k = numel - i < per ? (size_t)(numel - i) : per;
        synth_fill(t, seed, i, k, buf);
        if (write_all(f, buf, k * es, path))
            return MTP_ERR;
    }
    return MTP_OK;
}

static int write_shard(const char *dir, const struct synth_tensor *t, int n, int shard,
                       int shards, uint64_t seed, void *buf)
{
    char name[64], path[4096];
    shard_name(name, sizeof name, shard, shards);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint64_t data_bytes;
    char *header = shard_header(t, n, shard, &data_bytes);
    uint64_t hlen = strlen(header);
    unsigned char le[8];
    for (int b = 0; b < 8; b++)
        le[b] = (unsigned char)(hlen >> (8 * b));
    FILE *f = fopen(path, "wb");
    int rc = f ? MTP_OK : mtp_error_set("synth: cannot create %s: %s", path, strerror(errno));
    if (!rc)
        rc = write_all(f, le, 8, path) || write_all(f, header, hlen, path) ? MTP_ERR : MTP_OK;
    for (int i = 0; !rc && i < n; i++)
        if (t[i].shard == shard)
            rc = write_tensor(f, &t[i], seed, buf, path);
    if (f && fclose(f) && !rc)
        rc = mtp_error_set("synth: closing %s: %s", path, strerror(errno));
    free(header);
    return rc;
}

static int write_json(const char *dir, const char *file, json_t *j)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS)
                 ? mtp_error_set("synth: cannot write %s", path)
                 : MTP_OK;
    json_decref(j);
    return rc;
}

static int write_index(const char *dir, const struct synth_tensor *t, int n, int shards)
{
    json_t *map = json_object();
    uint64_t total = 0;
    char name[64];
    for (int i = 0; i < n; i++) {
        shard_name(name, sizeof name, t[i].shard, shards);
        json_object_set_new(map, t[i].name, json_string(name));
        total += synth_tensor_numel(&t[i]) * mtp_dtype_size(t[i].dtype);
    }
    return write_json(dir, "model.safetensors.index.json",
                      json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total,
                                "weight_map", map));
}

/* What was cut, for config.json and README.md. */
static json_t *synth_record(const struct mtp_synth_shape *real, const struct mtp_synth_shape *s,
                            uint64_t seed)
{
    return json_pack(
        "{s:s,s:I,s:{s:[i,i],s:[i,i],s:[i,i]},s:s,s:s,s:s}", "preset", s->name, "seed",
        (json_int_t)seed, "cut", "num_hidden_layers", real->layers, s->layers, "dense_layers",
        real->dense_layers, s->dense_layers, "n_routed_experts", real->experts, s->experts,
        "mtp_embed_and_head", "shared with the main model (the release stores its own copies)",
        "weights", "random: projections uniform in +-sqrt(3/cols), embedding unit variance, "
                   "norms 1, router bias 0 (docs/synthetic.md)",
        "written_by", "mtpbench synth");
}

static void set_int(json_t *c, const char *key, long long v)
{
    json_object_set_new(c, key, json_integer(v));
}

static json_t *synth_config(const struct mtp_synth_shape *s, json_t *record)
{
    bool glm = !strcmp(s->model_type, "glm4_moe_lite");
    json_t *c = json_object();
    json_object_set_new(c, "architectures", json_pack("[s]", s->architecture));
    json_object_set_new(c, "model_type", json_string(s->model_type));
    set_int(c, "vocab_size", s->vocab);
    set_int(c, "hidden_size", s->hidden);
    set_int(c, "intermediate_size", s->intermediate);
    set_int(c, "moe_intermediate_size", s->moe_intermediate);
    set_int(c, "num_hidden_layers", s->layers);
    set_int(c, "num_nextn_predict_layers", s->nextn);
    set_int(c, "first_k_dense_replace", s->dense_layers);
    set_int(c, "num_attention_heads", s->heads);
    set_int(c, "num_key_value_heads", s->heads);
    set_int(c, "q_lora_rank", s->q_lora);
    set_int(c, "kv_lora_rank", s->kv_lora);
    set_int(c, "qk_nope_head_dim", s->nope);
    set_int(c, "qk_rope_head_dim", s->rope);
    set_int(c, "v_head_dim", s->v_head);
    set_int(c, "n_routed_experts", s->experts);
    set_int(c, "n_shared_experts", s->shared);
    set_int(c, "num_experts_per_tok", s->top_k);
    set_int(c, "n_group", s->n_group);
    set_int(c, "topk_group", s->topk_group);
    set_int(c, "max_position_embeddings", s->max_positions);
    set_int(c, "bos_token_id", s->bos);
    set_int(c, "eos_token_id", s->eos);
    json_object_set_new(c, "routed_scaling_factor", json_real(s->routed_scaling));
    json_object_set_new(c, "rms_norm_eps", json_real(s->rms_eps));
    json_object_set_new(c, "rope_theta", json_real(s->rope_theta));
    json_object_set_new(c, "topk_method", json_string("noaux_tc"));
    json_object_set_new(c, "norm_topk_prob", json_true());
    json_object_set_new(c, "hidden_act", json_string("silu"));
    json_object_set_new(c, "torch_dtype", json_string("bfloat16"));
    json_object_set_new(c, "tie_word_embeddings", json_false());
    json_object_set_new(c, "attention_bias", json_false());
    json_object_set_new(c, "mtpbench_synthetic", record);
    if (glm) {
        json_object_set_new(c, "partial_rotary_factor", json_real(1.0));
        json_object_set_new(c, "rope_scaling", json_null());
    } else {
        json_object_set_new(c, "scoring_func", json_string("sigmoid"));
        json_object_set_new(c, "moe_layer_freq", json_integer(1));
        json_object_set_new(c, "rope_scaling",
                            json_pack("{s:s,s:f,s:i,s:f,s:f,s:f,s:f}", "type", "yarn", "factor",
                                      s->yarn_factor, "original_max_position_embeddings", 4096,
                                      "beta_fast", 32.0, "beta_slow", 1.0, "mscale", 1.0,
                                      "mscale_all_dim", 1.0));
    }
    if (s->fp8)
        json_object_set_new(c, "quantization_config",
                            json_pack("{s:s,s:s,s:s,s:[i,i]}", "quant_method", "fp8", "fmt",
                                      "e4m3", "activation_scheme", "dynamic",
                                      "weight_block_size", 128, 128));
    return c;
}

static int write_readme(const char *dir, const struct mtp_synth_shape *real,
                        const struct mtp_synth_shape *s, uint64_t seed, uint64_t bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/README.md", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return mtp_error_set("synth: cannot create %s: %s", path, strerror(errno));
    fprintf(f,
            "# Synthetic %s checkpoint (random weights)\n\n"
            "Written by `mtpbench synth --shape %s --seed %" PRIu64 "` (docs/synthetic.md). "
            "Every tensor has the shape, dtype%s of the release; the values are random, so "
            "the text it generates means nothing. Use it for costs, not for acceptance.\n\n"
            "What was cut to fit one machine (release -> here):\n\n"
            "- main layers: %d -> %d (dense: %d -> %d)\n"
            "- routed experts per MoE layer: %d -> %d (top-%d, %d groups, %d kept)\n"
            "- MTP modules: %d, with the main model's embedding and head (the release stores "
            "copies)\n\n"
            "Tensor data: %.2f GiB.\n",
            real->name, s->name, seed, s->fp8 ? " and 128x128 FP8 block scales" : "",
            real->layers, s->layers, real->dense_layers, s->dense_layers, real->experts,
            s->experts, s->top_k, s->n_group, s->topk_group, s->nextn,
            (double)bytes / (1ull << 30));
    return fclose(f) ? mtp_error_set("synth: closing %s: %s", path, strerror(errno)) : MTP_OK;
}

/* mkdir -p DIR. */
static int synth_mkdirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return mtp_error_set("synth: --out: expected a path under %zu bytes", sizeof path);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) && errno != EEXIST)
            return mtp_error_set("synth: cannot create %s: %s", path, strerror(errno));
        *p = '/';
    }
    if (mkdir(path, 0755) && errno != EEXIST)
        return mtp_error_set("synth: cannot create %s: %s", path, strerror(errno));
    return MTP_OK;
}

static int synth_prepare_dir(const char *dir)
{
    char path[4096];
    if (synth_mkdirs(dir))
        return MTP_ERR;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (access(path, F_OK) == 0)
        return mtp_error_set("synth: %s exists: expected an empty or new directory (remove it "
                             "to write again)", path);
    return MTP_OK;
}

int mtp_synth_write(const struct mtp_synth_options *opt, FILE *log)
{
    struct mtp_synth_shape s;
    if (mtp_synth_plan(opt, &s) || synth_prepare_dir(opt->out_dir))
        return MTP_ERR;
    const struct mtp_synth_shape *real = mtp_synth_preset(opt->preset);
    struct synth_tensor *t;
    int n = synth_tensors(&s, &t), shards = s.layers + s.nextn + 1;
    uint64_t bytes = mtp_synth_bytes(&s);
    if (log)
        fprintf(log,
                "synth: %s -> %s: %d of %d main layers (%d dense), %d of %d routed experts, "
                "%d MTP module(s), %d tensors, %.2f GiB\n",
                s.name, opt->out_dir, s.layers, real->layers, s.dense_layers, s.experts,
                real->experts, s.nextn, n, (double)bytes / (1ull << 30));
    void *buf = mtp_xmalloc(CHUNK_BYTES);
    int rc = MTP_OK;
    for (int sh = 0; !rc && sh < shards; sh++) {
        rc = write_shard(opt->out_dir, t, n, sh, shards, opt->seed, buf);
        if (!rc && log)
            fprintf(log, "synth: shard %d/%d written\n", sh + 1, shards), fflush(log);
    }
    free(buf);
    if (!rc)
        rc = write_index(opt->out_dir, t, n, shards) ||
             write_readme(opt->out_dir, real, &s, opt->seed, bytes) ||
             mtp_synth_write_token_freq(opt->out_dir, s.vocab, opt->seed);
    /* config.json last: a directory without it is visibly unfinished. */
    if (!rc)
        rc = write_json(opt->out_dir, "config.json",
                        synth_config(&s, synth_record(real, &s, opt->seed)));
    free(t);
    return rc ? MTP_ERR : MTP_OK;
}

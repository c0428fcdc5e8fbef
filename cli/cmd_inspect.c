/*
 * cmd_inspect.c - `mtpbench inspect MODEL_DIR`: load and validate a model
 * directory and describe it: architecture and variant flags, parameter
 * counts, KV-cache bytes per token, tensor dtypes, and every tensor present in
 * the checkpoint but not used (docs/design.md §3: nothing is dropped silently).
 */
#include <stdbool.h> /* defines: bool */
#include <stdio.h>  /* defines: printf, fprintf */
#include <string.h> /* defines: strcmp */

#include "cli_util.h"       /* defines: mtp_cli_fail */
#include "commands.h"       /* defines: mtp_cmd_inspect */
#include "engine/config.h" /* defines: struct mtp_config */
#include "core/error.h"  /* defines: mtp_error_message */
#include "engine/fp8_scales.h" /* defines: mtp_fp8_scales_scan */
#include "engine/model.h"  /* defines: mtp_model_load, mtp_model_param_counts */
#include "engine/weights_check.h" /* defines: mtp_weights_check_finite */
#include "engine/wiring.h" /* defines: mtp_wiring_resolve, mtp_wiring_label */
#include "inspect_cost.h"  /* defines: mtp_inspect_print_token_cost */

static void inspect_usage(FILE *f)
{
    fprintf(f, "usage: mtpbench inspect [--check-weights] [--no-bandwidth] MODEL_DIR\n"
               "\n"
               "Load MODEL_DIR (config.json + model.safetensors or sharded safetensors),\n"
               "validate every tensor against the config, and print the architecture,\n"
               "parameter counts, KV-cache bytes per token, tensor dtypes, the tensors\n"
               "present but unused, the bytes one decoded token and one draft read, and\n"
               "the decode time this machine's memory bandwidth (a triad, measured at 1\n"
               "thread and at the default threads, about a second) bounds.\n"
               "\n"
               "options:\n"
               "  --check-weights  also read every tensor (all dtypes, FP8 scales included)\n"
               "                   and name each one holding NaN or Inf, and every FP8 block\n"
               "                   whose scale is not positive and normal or whose weights\n"
               "                   dequantise above 2^16; exit 1 if any does\n"
               "  --no-bandwidth   print the bytes per token without measuring bandwidth\n"
               "  -h, --help       show this help\n");
}

/* "1.23 B" style, with the exact count after it. */
static void inspect_print_count(const char *label, long long n)
{
    const char *unit = "";
    double v = (double)n;
    if (n >= 1000000000LL) {
        v /= 1e9;
        unit = " B";
    } else if (n >= 1000000LL) {
        v /= 1e6;
        unit = " M";
    } else if (n >= 1000LL) {
        v /= 1e3;
        unit = " K";
    }
    if (*unit)
        printf("  %-28s %.2f%s (%lld)\n", label, v, unit, n);
    else
        printf("  %-28s %lld\n", label, n);
}

static const char *inspect_topk_name(enum mtp_topk_method t)
{
    switch (t) {
    case MTP_TOPK_NOAUX_TC: return "noaux_tc";
    case MTP_TOPK_GREEDY: return "greedy";
    case MTP_TOPK_GROUP_LIMITED_GREEDY: return "group_limited_greedy";
    }
    return "?";
}

static void inspect_print_config(const struct mtp_model *m)
{
    const struct mtp_config *c = &m->cfg;
    printf("model %s (%s)\n", m->dir, c->model_type);
    printf("  vocab %d, hidden %d, layers %d + %d MTP, heads %d, max positions %d\n",
           c->vocab_size, c->hidden_size, c->num_hidden_layers, c->num_nextn_predict_layers,
           c->num_attention_heads, c->max_position_embeddings);
    printf("  MLA: kv_lora_rank %d, qk_nope %d, qk_rope %d, v %d, q: %s",
           c->kv_lora_rank, c->qk_nope_head_dim, c->qk_rope_head_dim, c->v_head_dim,
           c->q_lora_rank ? "LoRA" : "plain q_proj (q_lora_rank null)");
    if (c->q_lora_rank)
        printf(" rank %d", c->q_lora_rank);
    printf("\n  FFN: %d dense layers (width %d)", c->first_k_dense_replace, c->intermediate_size);
    if (c->n_routed_experts)
        printf(", MoE every %d: %d routed (top-%d) + %d shared, width %d",
               c->moe_layer_freq, c->n_routed_experts, c->num_experts_per_tok,
               c->n_shared_experts, c->moe_intermediate_size);
    printf("\n");
    if (c->n_routed_experts)
        printf("  routing: %s, %s scores, groups %d keep %d, norm_topk_prob %s, scale %g\n",
               inspect_topk_name(c->topk_method),
               c->scoring_func == MTP_SCORING_SIGMOID ? "sigmoid" : "softmax", c->n_group,
               c->topk_group, c->norm_topk_prob ? "true" : "false", c->routed_scaling_factor);
    printf("  RoPE: theta %g, ", c->rope_theta);
    if (c->rope_scaling.yarn)
        printf("YaRN factor %g, original %d, beta %g/%g, mscale %g/%g\n", c->rope_scaling.factor,
               c->rope_scaling.original_max_position, c->rope_scaling.beta_fast,
               c->rope_scaling.beta_slow, c->rope_scaling.mscale, c->rope_scaling.mscale_all_dim);
    else
        printf("no scaling\n");
    printf("  softmax scale %.8f, rms_norm_eps %g, tied embeddings %s\n",
           mtp_config_softmax_scale(c), c->rms_norm_eps, c->tie_word_embeddings ? "yes" : "no");
    if (c->fp8)
        printf("  quantization: fp8 e4m3, blocks %dx%d\n", c->weight_block_size[0],
               c->weight_block_size[1]);
    for (int k = 1; k <= c->num_nextn_predict_layers; k++) {
        const struct mtp_layer *l = mtp_model_module(m, k);
        printf("  MTP module %d (layer %d): %s embedding, %s head\n", k, l->index,
               l->nextn.embed == &l->nextn.own_embed ? "own" : "main model's",
               l->nextn.head == &l->nextn.own_head ? "own" : "main model's");
    }
    if (m->mtp_announced_absent > 0)
        printf("  MTP modules: config.json announces %d (num_nextn_predict_layers) but the "
               "checkpoint has no tensor of layer %d (transformers' save_pretrained drops "
               "them): main model only, MTP decoding unavailable\n",
               m->mtp_announced_absent, c->num_hidden_layers);
    if (c->num_nextn_predict_layers > 0) {
        struct mtp_wiring w = {0};
        char label[128];
        mtp_wiring_resolve(&w, c);
        mtp_wiring_label(&w, label, sizeof label);
        printf("  MTP wiring default (draft_hidden, position0_embedding, module_hidden): %s\n",
               label);
    }
}

static void inspect_print_params_cache(const struct mtp_model *m)
{
    const struct mtp_config *c = &m->cfg;
    struct mtp_param_counts p;
    mtp_model_param_counts(m, &p);
    printf("parameters\n");
    inspect_print_count("total", p.total);
    inspect_print_count("main model", p.main);
    inspect_print_count("main, active per token", p.active_main);
    inspect_print_count("MTP modules", p.mtp);
    inspect_print_count("one MTP module, active", p.active_mtp_module);

    long long width = mtp_config_cache_width(c);
    long long main_l = c->num_hidden_layers, all_l = mtp_config_num_layers_total(c);
    printf("KV cache per token (%lld values per layer: latent %d + rope key %d)\n", width,
           c->kv_lora_rank, c->qk_rope_head_dim);
    printf("  float32 (this engine): %lld bytes main, %lld with MTP\n", width * 4 * main_l,
           width * 4 * all_l);
    printf("  BF16 (as in the paper): %lld bytes main, %lld with MTP\n", width * 2 * main_l,
           width * 2 * all_l);
}

enum { INSPECT_MAX_DTYPES = 32 };

struct inspect_dtype_row {
    const char *name;
    long long count, bytes;
};

static void inspect_print_tensors(const struct mtp_model *m)
{
    struct inspect_dtype_row hist[INSPECT_MAX_DTYPES];
    int n_hist = 0;
    size_t n = mtp_checkpoint_count(m->ckpt);
    for (size_t i = 0; i < n; i++) {
        const struct mtp_tensor_info *t = mtp_checkpoint_tensor(m->ckpt, i);
        int k = 0;
        while (k < n_hist && strcmp(hist[k].name, t->dtype_name))
            k++;
        if (k == n_hist) {
            if (n_hist == INSPECT_MAX_DTYPES)
                continue; /* more distinct dtypes than safetensors defines: cannot happen */
            hist[n_hist++] = (struct inspect_dtype_row){t->dtype_name, 0, 0};
        }
        hist[k].count++;
        hist[k].bytes += (long long)t->nbytes;
    }
    printf("tensors: %zu, %zu bytes of data\n", n, mtp_checkpoint_data_bytes(m->ckpt));
    for (int k = 0; k < n_hist; k++)
        printf("  %-10s %8lld tensors %16lld bytes\n", hist[k].name, hist[k].count,
               hist[k].bytes);
    printf("present but unused: %d\n", m->n_unused);
    for (int i = 0; i < m->n_unused; i++)
        printf("  %s\n", m->unused[i]);
}

static void inspect_report_bad(void *user, const struct mtp_weights_finding *f)
{
    (void)user;
    fprintf(stderr, "mtpbench: error: tensor %s (%s, %s): %lld NaN and %lld Inf values, the "
                    "first at flat index %lld; expected finite values\n",
            f->tensor->name, f->tensor->dtype_name, f->tensor->file, (long long)f->n_nan,
            (long long)f->n_inf, (long long)f->first);
}

/* Bad FP8 blocks printed before the rest are only counted. */
enum { INSPECT_MAX_BLOCKS_SHOWN = 20 };

static void inspect_report_block(void *user, const struct mtp_fp8_block_finding *f)
{
    int64_t *shown = user;
    if ((*shown)++ >= INSPECT_MAX_BLOCKS_SHOWN)
        return;
    if (f->largest > 0)
        fprintf(stderr, "mtpbench: error: tensor %s (%s): block [%lld, %lld]: scale %.9g makes "
                        "weights up to %.3g; expected |weight| <= %.0f (2^16)\n",
                f->scale->name, f->scale->file, (long long)f->block_row,
                (long long)f->block_col, (double)f->value, (double)f->largest,
                (double)MTP_FP8_MAX_WEIGHT);
    else
        fprintf(stderr, "mtpbench: error: tensor %s (%s): block [%lld, %lld]: scale %.9g is %s; "
                        "expected a finite, positive, normal F32 scale\n",
                f->scale->name, f->scale->file, (long long)f->block_row,
                (long long)f->block_col, (double)f->value, f->problem);
}

/* --check-weights: a full scan; returns the exit status. */
static int inspect_check_weights(struct mtp_model *m)
{
    int64_t scanned, blocks, shown = 0;
    int bad = mtp_weights_check_finite(m->ckpt, inspect_report_bad, NULL, &scanned);
    printf("weights: %lld floating-point tensors scanned, %d with NaN or Inf\n",
           (long long)scanned, bad);
    int64_t bad_blocks = mtp_fp8_scales_scan(m->ckpt, m->cfg.weight_block_size[0],
                                             m->cfg.weight_block_size[1], inspect_report_block,
                                             &shown, &blocks);
    if (shown > INSPECT_MAX_BLOCKS_SHOWN)
        fprintf(stderr, "mtpbench: error: ... and %lld more bad FP8 blocks\n",
                (long long)(shown - INSPECT_MAX_BLOCKS_SHOWN));
    if (blocks > 0)
        printf("FP8 blocks: %lld checked, %lld with a bad scale or weights above 2^16\n",
               (long long)blocks, (long long)bad_blocks);
    return bad || bad_blocks ? 1 : 0;
}

int mtp_cmd_inspect(int argc, char **argv)
{
    const char *dir = NULL;
    bool check_weights = false, bandwidth = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            inspect_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--check-weights")) {
            check_weights = true;
            continue;
        }
        if (!strcmp(argv[i], "--no-bandwidth")) {
            bandwidth = false;
            continue;
        }
        if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "mtpbench inspect: unexpected argument '%s'\n", argv[i]);
            inspect_usage(stderr);
            return 2;
        }
        dir = argv[i];
    }
    if (!dir) {
        inspect_usage(stderr);
        return 2;
    }
    struct mtp_model *m;
    if (mtp_model_load(dir, &m))
        return mtp_cli_fail();
    inspect_print_config(m);
    inspect_print_params_cache(m);
    inspect_print_tensors(m);
    mtp_inspect_print_token_cost(m, bandwidth);
    int rc = check_weights ? inspect_check_weights(m) : 0;
    mtp_model_free(m);
    return rc;
}

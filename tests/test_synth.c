/*
 * test_synth.c - the synthetic checkpoint writer (synth/, `mtpbench synth`)
 * on the tiny presets: the directory loads in the engine with every tensor
 * used; dtypes are the release's (FP8 projections with F32 128x128 block
 * scales that vary per block for DeepSeek-V3, BF16 for GLM-4.7-Flash); the
 * cut is recorded in config.json; logits are finite; values depend on the
 * seed; bad cuts are refused naming the option. The real presets' sizes are
 * checked from the plan without writing them.
 *
 *   ctest --test-dir build -R synth
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h> /* defines: json_load_file */
#include <math.h>    /* defines: isfinite, sqrtf */
#include <stdio.h>   /* defines: snprintf */
#include <stdlib.h>  /* defines: free */
#include <string.h>  /* defines: strstr, memcmp */
#include <ftw.h>     /* defines: nftw */
#include <unistd.h>  /* defines: truncate */

#include "analysis/token_cost.h"
#include "engine/draft_vocab.h"
#include "engine/engine.h"
#include "core/error.h"
#include "engine/model.h"
#include "engine/safetensors.h"
#include "synth/synth.h"
#include "tests/support/tiny_checkpoint.h"

struct fixture {
    char *dir;
    char out[512];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = tiny_make_tmpdir();
    if (!f->dir)
        return -1;
    snprintf(f->out, sizeof f->out, "%s/cache/synthetic/ckpt", f->dir); /* parents created */
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); /* checkpoints are directories */
    free(f->dir);
    free(f);
    return 0;
}

static void write_preset(const char *out, const char *preset, uint64_t seed)
{
    struct mtp_synth_options o = {.preset = preset, .out_dir = out, .dense_layers = -1,
                                  .seed = seed};
    if (mtp_synth_write(&o, NULL))
        fail_msg("%s: %s", preset, mtp_error_message());
}

/* Load OUT, run a prefill of 5 tokens and check every logit is finite. */
static struct mtp_model *load_and_run(const char *out)
{
    struct mtp_model *m;
    struct mtp_backend *be;
    struct mtp_engine *e;
    if (mtp_model_load(out, &m) || mtp_backend_cpu_create(1, &be))
        fail_msg("%s", mtp_error_message());
    assert_int_equal(m->n_unused, 0);
    struct mtp_engine_options opt = {.max_positions = 32, .max_batch = 8};
    if (mtp_engine_create(m, be, &opt, &e))
        fail_msg("%s", mtp_error_message());
    const int32_t tokens[] = {3, 14, 15, 92, 65};
    int V = m->cfg.vocab_size;
    float *logits = malloc(sizeof(float) * 5 * (size_t)V);
    if (mtp_engine_forward(e, tokens, 5, 0, logits, NULL))
        fail_msg("%s", mtp_error_message());
    double sq = 0;
    for (int i = 0; i < 5 * V; i++) {
        if (!isfinite(logits[i]))
            fail_msg("logit %d is not finite", i);
        sq += (double)logits[i] * logits[i];
    }
    double rms = sqrt(sq / (5.0 * V));
    if (rms < 0.05 || rms > 50) /* neither flat nor blown up */
        fail_msg("logit RMS %g outside [0.05, 50]", rms);
    free(logits);
    mtp_engine_free(e);
    mtp_backend_free(be);
    return m;
}

static void test_deepseek_v3_shapes(void **state)
{
    struct fixture *f = *state;
    write_preset(f->out, "tiny-deepseek-v3", 7);
    struct mtp_model *m = load_and_run(f->out);
    const struct mtp_config *c = &m->cfg;
    assert_true(c->fp8);
    assert_int_equal(c->num_nextn_predict_layers, 1);
    const struct mtp_layer *moe = &m->layers[1];
    assert_int_equal(moe->kind, MTP_LAYER_MOE);
    assert_int_equal(moe->attn.q_b.dtype, MTP_DTYPE_F8_E4M3);
    assert_int_equal(moe->moe.experts[3].down.dtype, MTP_DTYPE_F8_E4M3);
    assert_int_equal(moe->moe.router.dtype, MTP_DTYPE_BF16);
    assert_int_equal(moe->moe.score_bias.dtype, MTP_DTYPE_F32);
    assert_int_equal(m->embed.dtype, MTP_DTYPE_BF16);
    /* hidden 320: 3 column blocks of 128 (the last partial); scales differ per block
     * and stay in amplitude/448 * [0.5, 1.5). */
    const struct mtp_weight *w = &moe->attn.q_a;
    assert_int_equal(w->block_rows, 128);
    int nb = ((w->rows + 127) / 128) * ((w->cols + 127) / 128);
    assert_int_equal(nb, 2 * 3);
    float base = sqrtf(3.0f / (float)w->cols) / 448.0f;
    for (int b = 0; b < nb; b++)
        assert_true(w->scale_inv[b] >= 0.5f * base && w->scale_inv[b] < 1.5f * base);
    assert_true(w->scale_inv[0] != w->scale_inv[1]);
    mtp_model_free(m);

    char path[600];
    snprintf(path, sizeof path, "%s/config.json", f->out);
    json_t *cfg = json_load_file(path, 0, NULL);
    json_t *cut = json_object_get(json_object_get(cfg, "mtpbench_synthetic"), "cut");
    assert_non_null(cut);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(cut, "n_routed_experts"),
                                                       0)), 16);
    json_decref(cfg);
}

static void test_glm_shapes(void **state)
{
    struct fixture *f = *state;
    write_preset(f->out, "tiny-glm-4.7-flash", 7);
    struct mtp_model *m = load_and_run(f->out);
    assert_string_equal(m->cfg.model_type, "glm4_moe_lite");
    assert_false(m->cfg.fp8);
    assert_int_equal(m->cfg.v_head_dim, 32);
    assert_int_equal(m->cfg.qk_nope_head_dim, 24);
    const struct mtp_layer *mtp = mtp_model_module(m, 1);
    assert_int_equal(mtp->kind, MTP_LAYER_MOE);
    assert_int_equal(mtp->attn.kv_b.dtype, MTP_DTYPE_BF16);
    assert_int_equal(mtp->nextn.eh_proj.cols, 2 * m->cfg.hidden_size);

    /* token_frequencies.bin loads, and its most frequent ids are not the first rows. */
    char path[600];
    snprintf(path, sizeof path, "%s/token_frequencies.bin", f->out);
    uint64_t *counts;
    if (mtp_token_freq_load(path, m->cfg.vocab_size, &counts))
        fail_msg("%s", mtp_error_message());
    int32_t top[16];
    mtp_draft_vocab_rank(counts, m->cfg.vocab_size, 16, top);
    int first_rows = 0;
    for (int i = 0; i < 16; i++)
        first_rows += top[i] < 16;
    assert_true(first_rows < 8);
    assert_true(counts[top[0]] == 1000000000ull && counts[top[1]] == 500000000ull);
    free(counts);

    /* Bytes per decoded token, by hand from the preset: every weight matrix a token reads,
     * in BF16 (norm vectors and router biases are not counted: under 0.1%). */
    const double d = 128, H = 2, rq = 48, rkv = 32, dn = 24, dr = 8, dv = 32, V = 600;
    double attn = rq * d + H * (dn + dr) * rq + (rkv + dr) * d + H * (dn + dv) * rkv +
                  d * H * dv;
    double dense = 3 * 256 * d, expert = 3 * 64 * d, router = 8 * d;
    double want = 2 * (3 * attn + dense + 2 * (router + expert /* shared */ + 2 * expert) +
                       V * d);
    struct mtp_token_cost k = mtp_token_cost_main(m, 0);
    if (k.weight_bytes != want)
        fail_msg("bytes per token %.0f, by hand %.0f", k.weight_bytes, want);
    mtp_model_free(m);
}

/* A shard cut short (an interrupted download) is refused, naming the shard. */
static void test_truncated_shard_named(void **state)
{
    struct fixture *f = *state;
    write_preset(f->out, "tiny-glm-4.7-flash", 3);
    char shard[700];
    snprintf(shard, sizeof shard, "%s/model-00003-of-00005.safetensors", f->out);
    FILE *fp = fopen(shard, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long size = ftell(fp);
    fclose(fp);
    assert_int_equal(truncate(shard, size - 4096), 0);
    struct mtp_model *m = NULL;
    mtp_error_clear();
    assert_int_equal(mtp_model_load(f->out, &m), MTP_ERR);
    if (!strstr(mtp_error_message(), "model-00003-of-00005.safetensors"))
        fail_msg("message does not name the shard: %s", mtp_error_message());
}

/* Same seed, same bytes; another seed, other values. */
static void test_seed_decides_values(void **state)
{
    struct fixture *f = *state;
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/a", f->dir);
    snprintf(b, sizeof b, "%s/b", f->dir);
    write_preset(f->out, "tiny-glm-4.7-flash", 1);
    write_preset(a, "tiny-glm-4.7-flash", 1);
    write_preset(b, "tiny-glm-4.7-flash", 2);
    struct mtp_checkpoint *c0, *c1, *c2;
    if (mtp_checkpoint_open_dir(f->out, &c0) || mtp_checkpoint_open_dir(a, &c1) ||
        mtp_checkpoint_open_dir(b, &c2))
        fail_msg("%s", mtp_error_message());
    const char *name = "model.layers.1.mlp.experts.5.up_proj.weight";
    const struct mtp_tensor_info *t0 = mtp_checkpoint_find(c0, name),
                                 *t1 = mtp_checkpoint_find(c1, name),
                                 *t2 = mtp_checkpoint_find(c2, name);
    assert_non_null(t0);
    assert_int_equal(memcmp(t0->data, t1->data, t0->nbytes), 0);
    assert_int_not_equal(memcmp(t0->data, t2->data, t0->nbytes), 0);
    mtp_checkpoint_free(c0);
    mtp_checkpoint_free(c1);
    mtp_checkpoint_free(c2);
}

static void test_bad_cuts_and_sizes(void **state)
{
    struct fixture *f = *state;
    struct mtp_synth_shape s;
    struct {
        const char *preset;
        int layers, dense, experts;
        const char *want;
    } bad[] = {
        {"deepseek-v3", 0, -1, 12, "--experts"},   /* not a multiple of 8 groups */
        {"deepseek-v3", 0, -1, 8, "--experts"},    /* 1 per group: top-8 of 4 groups impossible */
        {"deepseek-v3", 62, -1, 0, "--layers"},    /* more than the model has */
        {"glm-4.7-flash", 2, 2, 0, "--dense-layers"},
        {"glm-4.7", 0, -1, 0, "--shape"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mtp_synth_options o = {.preset = bad[i].preset, .out_dir = f->out,
                                      .layers = bad[i].layers, .dense_layers = bad[i].dense,
                                      .experts = bad[i].experts};
        mtp_error_clear();
        assert_int_equal(mtp_synth_plan(&o, &s), MTP_ERR);
        if (!strstr(mtp_error_message(), bad[i].want))
            fail_msg("case %zu: message lacks %s: %s", i, bad[i].want, mtp_error_message());
    }
    /* The default cuts stay under 8 GiB; the full shapes would not fit this machine. */
    struct mtp_synth_options o = {.preset = "deepseek-v3", .dense_layers = -1};
    assert_int_equal(mtp_synth_plan(&o, &s), MTP_OK);
    assert_int_equal(s.experts, 32);
    assert_true(mtp_synth_bytes(&s) < 8ull << 30 && mtp_synth_bytes(&s) > 6ull << 30);
    o.preset = "glm-4.7-flash";
    assert_int_equal(mtp_synth_plan(&o, &s), MTP_OK);
    assert_true(mtp_synth_bytes(&s) < 8ull << 30);
    /* The whole release, 47 layers: its 31,221,488,576 parameters (as published, which
     * count the MTP layer's own embed_tokens and shared_head.head, 154880 x 2048 each,
     * that the synthetic module shares) in BF16, with the 47 router biases in F32. */
    s.layers = 47;
    uint64_t own_copies = 2ull * 154880 * 2048, bias = 47ull * 64;
    uint64_t want = 2 * (31221488576ull - own_copies - bias) + 4 * bias;
    assert_true(mtp_synth_bytes(&s) == want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deepseek_v3_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_glm_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_shard_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_decides_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_cuts_and_sizes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

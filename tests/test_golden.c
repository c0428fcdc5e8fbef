/*
 * test_golden.c - the CPU engine against golden tensors from the PyTorch
 * reference (training/make_fixtures.py), for every config variant, plus the
 * forward-pass invariants of docs/design.md §4:
 *   - every traced intermediate (norms, latent cache rows, attention and FFN
 *     outputs, router choices and weights, block outputs), logits, post-norm
 *     hidden states and MTP-module outputs match the reference;
 *   - decoding one token at a time equals the prefill of the whole sequence;
 *   - verifying k+1 tokens in one forward equals k+1 single decodes bitwise
 *     (logits, hidden states and latent cache rows);
 *   - chunked prefill (max_batch smaller than the prompt) equals one chunk.
 * Fixtures: tests/fixtures/<variant>/{config.json, model.safetensors, golden.safetensors}.
 * The shipped model models/mtp-mini is checked the same way against
 * tests/fixtures/mtp-mini-golden.safetensors (training/golden_default.py):
 * logits, post-norm hidden states and every MTP module's outputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "core/error.h"
#include "support/compare.h"

struct golden {
    const char *variant;
    char dir[512];
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_checkpoint *ref;
    int32_t tokens[256];
    int T;
    int failures;
    int compared;
    int module; /* 0 while tracing the main model, k for MTP module k */
    double max_err;      /* largest |engine - reference| over every tensor compared */
    char max_err_name[128];
};

static const float *ref_f32(struct golden *g, const char *name, int rows, int cols)
{
    struct mtp_tensor_info *t = mtp_checkpoint_find(g->ref, name);
    if (!t) {
        fprintf(stderr, "%s: golden tensor '%s' missing\n", g->variant, name);
        return NULL;
    }
    int64_t r = t->ndim >= 1 ? t->shape[0] : 1, c = t->ndim >= 2 ? t->shape[1] : 1;
    if (t->dtype != MTP_DTYPE_F32 || r * c != (int64_t)rows * cols) {
        fprintf(stderr, "%s: golden '%s' has %lld elements (%s), engine gave [%d, %d]\n",
                g->variant, name, (long long)(r * c), t->dtype_name, rows, cols);
        return NULL;
    }
    return t->data;
}

static void check_f32(struct golden *g, const char *name, const float *got, int rows, int cols)
{
    const float *want = ref_f32(g, name, rows, cols);
    char label[256];
    snprintf(label, sizeof label, "%s/%s", g->variant, name);
    double err = 0.0;
    g->compared++;
    if (!want || !mtp_compare(label, got, want, (size_t)rows * cols, &mtp_tol_f32_activations,
                              &err))
        g->failures++;
    if (err > g->max_err) {
        g->max_err = err;
        snprintf(g->max_err_name, sizeof g->max_err_name, "%s", name);
    }
}

static void trace_f32(void *user, const char *name, int layer, const float *data, int rows,
                      int cols)
{
    struct golden *g = user;
    char key[128];
    if (layer < 0)
        return; /* model-level outputs are checked by the caller */
    if (!strcmp(name, "mtp_input"))
        snprintf(key, sizeof key, "mtp.%d.input", g->module);
    else
        snprintf(key, sizeof key, "layers.%d.%s", layer, name);
    check_f32(g, key, data, rows, cols);
}

static void trace_i32(void *user, const char *name, int layer, const int32_t *data, int rows,
                      int cols)
{
    struct golden *g = user;
    char key[128];
    snprintf(key, sizeof key, "layers.%d.%s", layer, name);
    struct mtp_tensor_info *t = mtp_checkpoint_find(g->ref, key);
    g->compared++;
    if (!t || t->dtype != MTP_DTYPE_I32 || t->numel != (int64_t)rows * cols) {
        fprintf(stderr, "%s: golden '%s' missing or misshaped\n", g->variant, key);
        g->failures++;
        return;
    }
    const int32_t *want = t->data;
    for (int i = 0; i < rows * cols; i++)
        if (data[i] != want[i]) {
            fprintf(stderr, "MISMATCH %s/%s: token %d slot %d expert %d, reference %d\n",
                    g->variant, key, i / cols, i % cols, data[i], want[i]);
            g->failures++;
            return;
        }
}

static int golden_setup(void **state)
{
    struct golden *g = *state;
    char path[600];
    if (!strncmp(g->variant, "mtp-", 4)) { /* a shipped model: models/<variant> */
        snprintf(g->dir, sizeof g->dir, "%s/models/%s", MTP_SOURCE_DIR, g->variant);
        snprintf(path, sizeof path, "%s/tests/fixtures/%s-golden.safetensors", MTP_SOURCE_DIR,
                 g->variant);
    } else {
        snprintf(g->dir, sizeof g->dir, "%s/tests/fixtures/%s", MTP_SOURCE_DIR, g->variant);
        snprintf(path, sizeof path, "%s/golden.safetensors", g->dir);
    }
    if (mtp_model_load(g->dir, &g->model)) {
        fprintf(stderr, "%s\n", mtp_error_message());
        return -1;
    }
    if (mtp_checkpoint_open_file(path, &g->ref) || mtp_backend_cpu_create(0, &g->be)) {
        fprintf(stderr, "%s\n", mtp_error_message());
        return -1;
    }
    struct mtp_tensor_info *tok = mtp_checkpoint_find(g->ref, "tokens");
    if (!tok || tok->dtype != MTP_DTYPE_I32 || tok->numel > 256 || tok->numel < 4)
        return -1;
    g->T = (int)tok->numel;
    memcpy(g->tokens, tok->data, sizeof(int32_t) * g->T);
    return 0;
}

static int golden_teardown(void **state)
{
    struct golden *g = *state;
    mtp_checkpoint_free(g->ref);
    mtp_backend_free(g->be);
    mtp_model_free(g->model);
    g->ref = NULL;
    g->be = NULL;
    g->model = NULL;
    return 0;
}

/* Engines here prefill with the invariant kernels (options.invariant_prefill):
 * the tests below compare prefill with incremental decoding. The fast prefill
 * has its own test (test_fast_prefill_within_tolerance). */
static struct mtp_engine *make_engine_opt(struct golden *g, int max_positions, int max_batch,
                                          bool invariant_prefill)
{
    struct mtp_engine *e = NULL;
    struct mtp_engine_options opt = {.max_positions = max_positions, .max_batch = max_batch,
                                     .poison_rollback = true,
                                     .invariant_prefill = invariant_prefill};
    if (mtp_engine_create(g->model, g->be, &opt, &e))
        fail_msg("engine: %s", mtp_error_message());
    return e;
}

static struct mtp_engine *make_engine(struct golden *g, int max_batch)
{
    struct mtp_engine *e = NULL;
    struct mtp_engine_options opt = {.max_positions = 2 * g->T + 8, .max_batch = max_batch,
                                     .poison_rollback = true, .invariant_prefill = true};
    if (mtp_engine_create(g->model, g->be, &opt, &e))
        fail_msg("engine: %s", mtp_error_message());
    return e;
}

/* MTP module k over positions 0..T-1-k: tokens t[k..T-1], hidden of the previous stage. */
static void check_mtp_modules(struct golden *g, struct mtp_engine *e, const float *main_hidden)
{
    const struct mtp_config *c = &g->model->cfg;
    int d = c->hidden_size, V = c->vocab_size;
    float *h_prev = malloc(sizeof(float) * g->T * d);
    float *h_out = malloc(sizeof(float) * g->T * d);
    float *logits = malloc(sizeof(float) * g->T * V);
    memcpy(h_prev, main_hidden, sizeof(float) * g->T * d);
    for (int k = 1; k <= c->num_nextn_predict_layers; k++) {
        int n = g->T - k;
        char key[64];
        g->module = k;
        assert_int_equal(mtp_engine_mtp_forward(e, k, g->tokens + k, h_prev, n, 0, logits, h_out),
                         MTP_OK);
        snprintf(key, sizeof key, "mtp.%d.logits", k);
        check_f32(g, key, logits, n, V);
        snprintf(key, sizeof key, "mtp.%d.hidden", k);
        check_f32(g, key, h_out, n, d);
        memcpy(h_prev, h_out, sizeof(float) * n * d);
    }
    free(h_prev);
    free(h_out);
    free(logits);
}

static void test_matches_reference(void **state)
{
    struct golden *g = *state;
    const struct mtp_config *c = &g->model->cfg;
    struct mtp_engine *e = make_engine(g, 64);
    float *logits = malloc(sizeof(float) * g->T * c->vocab_size);
    float *hidden = malloc(sizeof(float) * g->T * c->hidden_size);
    float inv_freq[MTP_MAX_ROPE_PAIRS], cs;
    mtp_config_rope_inv_freq(c, inv_freq, &cs);
    check_f32(g, "rope.inv_freq", inv_freq, 1, c->qk_rope_head_dim / 2);
    float scale = (float)mtp_config_softmax_scale(c);
    check_f32(g, "attn.softmax_scale", &scale, 1, 1);

    mtp_engine_set_trace(e, trace_f32, trace_i32, g);
    g->module = 0;
    assert_int_equal(mtp_engine_forward(e, g->tokens, g->T, 0, logits, hidden), MTP_OK);
    check_f32(g, "logits", logits, g->T, c->vocab_size);
    check_f32(g, "hidden", hidden, g->T, c->hidden_size);
    check_mtp_modules(g, e, hidden);
    fprintf(stderr, "%s: %d tensors compared, %d mismatched, max |engine - reference| %.3g (%s)\n",
            g->variant, g->compared, g->failures, g->max_err, g->max_err_name);
    assert_true(g->compared > 10);
    assert_int_equal(g->failures, 0);
    mtp_engine_free(e);
    free(logits);
    free(hidden);
}

static void test_decode_equals_prefill(void **state)
{
    struct golden *g = *state;
    const struct mtp_config *c = &g->model->cfg;
    int V = c->vocab_size;
    struct mtp_engine *e = make_engine(g, 64);
    float *step = malloc(sizeof(float) * g->T * V);
    for (int i = 0; i < g->T; i++)
        assert_int_equal(mtp_engine_forward(e, &g->tokens[i], 1, i, step + (size_t)i * V, NULL),
                         MTP_OK);
    g->failures = 0;
    check_f32(g, "logits", step, g->T, V);
    assert_int_equal(g->failures, 0);

    /* Chunked prefill (chunks of 5) must give the same last-position logits. */
    struct mtp_engine *chunked = make_engine(g, 5);
    float *last = malloc(sizeof(float) * V);
    assert_int_equal(mtp_engine_prefill(chunked, g->tokens, g->T, last, NULL), MTP_OK);
    double err;
    assert_true(mtp_compare("chunked prefill", last, step + (size_t)(g->T - 1) * V, (size_t)V,
                            &mtp_tol_f32_activations, &err));
    mtp_engine_free(chunked);
    mtp_engine_free(e);
    free(step);
    free(last);
}

/*
 * The fast prefill (the backend's GEMM above its invariant size, one chunk of
 * PN > 16 tokens) against the invariant prefill of the same prompt: last
 * logits and every hidden row within the activation tolerance of
 * tests/support/compare.c (the GEMM reorders each dot product's additions,
 * a few ulp per layer). The invariant prefill itself equals a forward() of
 * the same tokens bitwise, so the comparison is against the decode kernels.
 */
static void test_fast_prefill_within_tolerance(void **state)
{
    struct golden *g = *state;
    const struct mtp_config *c = &g->model->cfg;
    enum { PN = 48 };
    int V = c->vocab_size, d = c->hidden_size;
    int32_t toks[PN];
    for (int i = 0; i < PN; i++)
        toks[i] = g->tokens[i % g->T];
    struct mtp_engine *fast = make_engine_opt(g, PN + 8, 64, false);
    struct mtp_engine *inv = make_engine_opt(g, PN + 8, 64, true);
    float *lf = malloc(sizeof(float) * V), *li = malloc(sizeof(float) * V);
    float *hf = malloc(sizeof(float) * PN * d), *hi = malloc(sizeof(float) * PN * d);
    float *lw = malloc(sizeof(float) * PN * V), *hw = malloc(sizeof(float) * PN * d);
    assert_int_equal(mtp_engine_prefill(fast, toks, PN, lf, hf), MTP_OK);
    assert_int_equal(mtp_engine_prefill(inv, toks, PN, li, hi), MTP_OK);
    assert_int_equal(mtp_engine_forward(fast, toks, PN, 0, lw, hw), MTP_OK);
    assert_memory_equal(hi, hw, sizeof(float) * PN * d);
    assert_memory_equal(li, lw + (size_t)(PN - 1) * V, sizeof(float) * V);
    double err_l, err_h;
    assert_true(mtp_compare("fast prefill logits", lf, li, (size_t)V, &mtp_tol_f32_activations,
                            &err_l));
    assert_true(mtp_compare("fast prefill hidden", hf, hi, (size_t)PN * d,
                            &mtp_tol_f32_activations, &err_h));
    fprintf(stderr, "%s: fast prefill vs invariant: max |diff| logits %.3g, hidden %.3g%s\n",
            g->variant, err_l, err_h,
            memcmp(hf, hi, sizeof(float) * PN * d) ? "" : " (bitwise equal)");
    mtp_engine_free(fast);
    mtp_engine_free(inv);
    free(lf);
    free(li);
    free(hf);
    free(hi);
    free(lw);
    free(hw);
}

/* Verification of K+1 tokens at once against K+1 single decodes: bitwise. */
static void test_verify_is_bitwise_decode(void **state)
{
    struct golden *g = *state;
    const struct mtp_config *c = &g->model->cfg;
    int V = c->vocab_size, d = c->hidden_size, K = 4, p = g->T - K - 1;
    int cw = mtp_config_cache_width(c), L = c->num_hidden_layers;
    struct mtp_engine *e = make_engine(g, 64);
    size_t nl = (size_t)(K + 1) * V, nh = (size_t)(K + 1) * d, nc = (size_t)(K + 1) * cw;
    float *lv = malloc(sizeof(float) * nl), *ld = malloc(sizeof(float) * nl);
    float *hv = malloc(sizeof(float) * nh), *hd = malloc(sizeof(float) * nh);
    float *cv = malloc(sizeof(float) * nc * L), *cd = malloc(sizeof(float) * nc * L);

    assert_int_equal(mtp_engine_prefill(e, g->tokens, p, NULL, NULL), MTP_OK);
    assert_int_equal(mtp_engine_forward(e, g->tokens + p, K + 1, p, lv, hv), MTP_OK);
    for (int l = 0; l < L; l++)
        mtp_engine_read_cache(e, l, p, K + 1, cv + l * nc);
    mtp_engine_truncate(e, 0, p);
    for (int i = 0; i <= K; i++)
        assert_int_equal(mtp_engine_forward(e, g->tokens + p + i, 1, p + i, ld + (size_t)i * V,
                                            hd + (size_t)i * d),
                         MTP_OK);
    for (int l = 0; l < L; l++)
        mtp_engine_read_cache(e, l, p, K + 1, cd + l * nc);
    assert_memory_equal(lv, ld, sizeof(float) * nl);
    assert_memory_equal(hv, hd, sizeof(float) * nh);
    assert_memory_equal(cv, cd, sizeof(float) * nc * L);
    assert_int_equal(mtp_engine_cache_len(e, 0), p + K + 1);
    mtp_engine_free(e);
    free(lv), free(ld), free(hv), free(hd), free(cv), free(cd);
}

/* MoE layers of the main model and the MTP modules: one router_idx each. */
static int count_moe_layers(const struct mtp_config *c)
{
    int n = 0;
    for (int l = 0; l < c->num_hidden_layers + c->num_nextn_predict_layers; l++)
        n += mtp_config_layer_is_moe(c, l);
    return n;
}

/* A shipped model: logits, hidden states and every module's outputs, and the
 * router's choices in every MoE layer (its golden file has no other per-layer
 * tensors). */
static void test_shipped_model_matches_reference(void **state)
{
    struct golden *g = *state;
    const struct mtp_config *c = &g->model->cfg;
    struct mtp_engine *e = make_engine(g, 64);
    float *logits = malloc(sizeof(float) * g->T * c->vocab_size);
    float *hidden = malloc(sizeof(float) * g->T * c->hidden_size);
    mtp_engine_set_trace(e, NULL, trace_i32, g);
    assert_int_equal(mtp_engine_forward(e, g->tokens, g->T, 0, logits, hidden), MTP_OK);
    check_f32(g, "logits", logits, g->T, c->vocab_size);
    check_f32(g, "hidden", hidden, g->T, c->hidden_size);
    check_mtp_modules(g, e, hidden);
    fprintf(stderr, "%s: %d tensors compared, %d mismatched, max |engine - reference| %.3g (%s)\n",
            g->variant, g->compared, g->failures, g->max_err, g->max_err_name);
    assert_int_equal(g->compared, 2 + 2 * c->num_nextn_predict_layers + count_moe_layers(c));
    assert_int_equal(g->failures, 0);
    mtp_engine_free(e);
    free(logits);
    free(hidden);
}

#define VARIANT_TESTS(v)                                                                           \
    cmocka_unit_test_prestate_setup_teardown(test_matches_reference, golden_setup,                \
                                             golden_teardown, &(struct golden){.variant = v}),   \
        cmocka_unit_test_prestate_setup_teardown(test_decode_equals_prefill, golden_setup,        \
                                                 golden_teardown,                                 \
                                                 &(struct golden){.variant = v}),                 \
        cmocka_unit_test_prestate_setup_teardown(test_verify_is_bitwise_decode, golden_setup,     \
                                                 golden_teardown,                                 \
                                                 &(struct golden){.variant = v}),                 \
        cmocka_unit_test_prestate_setup_teardown(test_fast_prefill_within_tolerance, golden_setup, \
                                                 golden_teardown,                                 \
                                                 &(struct golden){.variant = v})

int main(void)
{
    const struct CMUnitTest tests[] = {
        VARIANT_TESTS("v3-f32"), VARIANT_TESTS("v3-bf16"),      VARIANT_TESTS("v3-fp8"),
        VARIANT_TESTS("v2-f32"), VARIANT_TESTS("v2-group-f32"),
        cmocka_unit_test_prestate_setup_teardown(test_shipped_model_matches_reference,
                                                 golden_setup, golden_teardown,
                                                 &(struct golden){.variant = "mtp-mini"}),
        cmocka_unit_test_prestate_setup_teardown(test_verify_is_bitwise_decode, golden_setup,
                                                 golden_teardown,
                                                 &(struct golden){.variant = "mtp-mini"}),
        cmocka_unit_test_prestate_setup_teardown(test_shipped_model_matches_reference,
                                                 golden_setup, golden_teardown,
                                                 &(struct golden){.variant = "mtp-v3"}),
        cmocka_unit_test_prestate_setup_teardown(test_verify_is_bitwise_decode, golden_setup,
                                                 golden_teardown,
                                                 &(struct golden){.variant = "mtp-v3"}),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_nonfinite.c - NaN and Inf weights (issue 10, case 5). A tiny V3-shaped
 * checkpoint (tests/support/tiny_checkpoint.c) gets one bad value planted in
 * one tensor; decoding must then fail naming the stage the bad values came
 * out of and the step (baseline and --mtp), never emit tokens. And
 * mtp_weights_check_finite (`inspect --check-weights`) must name every tensor
 * holding NaN or Inf in every dtype, FP8 block scales included, and nothing
 * else.
 *
 *   ctest --test-dir build -R nonfinite
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>   /* defines: dirname */
#include <math.h>     /* defines: NAN, INFINITY */
#include <stdio.h>    /* defines: snprintf, popen */
#include <stdlib.h>   /* defines: free */
#include <string.h>   /* defines: strstr */
#include <sys/wait.h> /* defines: WEXITSTATUS */
#include <unistd.h>   /* defines: readlink */

#include "engine/decode.h"
#include "engine/engine.h"
#include "core/error.h"
#include "engine/model.h"
#include "engine/weights_check.h"
#include "tests/support/tensor_patch.h"
#include "tests/support/tiny_checkpoint.h"

static int setup(void **state)
{
    *state = tiny_make_tmpdir();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    tiny_remove_dir(*state);
    free(*state);
    return 0;
}

/* A fresh tiny checkpoint in DIR with VALUE at element INDEX of TENSOR. */
static void write_poisoned(const char *dir, const char *tensor, size_t index, float value)
{
    struct tiny_opts o;
    tiny_opts_default(&o);
    assert_int_equal(tiny_checkpoint_write(dir, &o), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    test_patch_f32(path, tensor, index, value);
}

/* Decode a short prompt with DEPTH exact drafts (0: baseline); returns the
 * status and leaves the message in mtp_error_message(). */
static int decode(const char *dir, int depth)
{
    struct mtp_model *m = NULL;
    if (mtp_model_load(dir, &m))
        fail_msg("load: %s", mtp_error_message());
    struct mtp_backend *be = NULL;
    assert_int_equal(mtp_backend_cpu_create(1, &be), MTP_OK);
    struct mtp_engine_options eo = {.max_positions = 64, .max_batch = 16};
    struct mtp_engine *e = NULL;
    assert_int_equal(mtp_engine_create(m, be, &eo, &e), MTP_OK);
    struct mtp_decode_params p = {
        .drafting = depth ? MTP_DECODE_DRAFTING_EXACT : MTP_DECODE_DRAFTING_NONE,
        .depth = depth,
        .sampling = {.temperature = 0, .top_p = 1},
        .max_new_tokens = 8,
        .eos_token_id = -1, /* never stop early: every step must run */
    };
    const int32_t prompt[] = {2, 3, 4, 5};
    struct mtp_decode_result r;
    mtp_error_clear();
    int rc = mtp_decode_run(e, &p, prompt, 4, &r);
    if (rc == MTP_OK)
        mtp_decode_result_free(&r);
    mtp_engine_free(e);
    mtp_backend_free(be);
    mtp_model_free(m);
    return rc;
}

static void expect_in_message(const char *part)
{
    if (!strstr(mtp_error_message(), part))
        fail_msg("message '%s' lacks '%s'", mtp_error_message(), part);
}

/* The final norm: every logit is NaN, and the residual stream is fine up to it. */
static void test_nan_final_norm(void **state)
{
    write_poisoned(*state, "model.norm.weight", 0, NAN);
    assert_int_equal(decode(*state, 0), MTP_ERR);
    expect_in_message("prefill");
    expect_in_message("main model at position");
    expect_in_message("NaN");
    expect_in_message("come out of model.norm.weight");
}

/* One projection in layer 1: the layer is named, not the head. */
static void test_inf_projection(void **state)
{
    write_poisoned(*state, "model.layers.1.self_attn.o_proj.weight", 3, INFINITY);
    assert_int_equal(decode(*state, 0), MTP_ERR);
    expect_in_message("come out of model.layers.1 ");
}

/* The embedding row of a prompt token. */
static void test_nan_embedding(void **state)
{
    write_poisoned(*state, "model.embed_tokens.weight", 3 * TINY_D + 1, NAN);
    assert_int_equal(decode(*state, 0), MTP_ERR);
    expect_in_message("come out of model.embed_tokens.weight");
}

/* One row of lm_head: only that logit is bad, and only the head can be blamed. */
static void test_nan_lm_head_row(void **state)
{
    write_poisoned(*state, "lm_head.weight", 17 * TINY_D, NAN);
    assert_int_equal(decode(*state, 0), MTP_ERR);
    expect_in_message("logits[17] is NaN");
    expect_in_message("the head lm_head.weight");
}

/* The MTP module's own head: the main model is fine (baseline decodes), and
 * --mtp fails at the first speculative step, naming the module. */
static void test_nan_mtp_head(void **state)
{
    const char *head = "model.layers.3.shared_head.head.weight";
    write_poisoned(*state, head, 9 * TINY_D + 2, NAN);
    assert_int_equal(decode(*state, 0), MTP_OK);
    assert_int_equal(decode(*state, 1), MTP_ERR);
    expect_in_message("step 0");
    expect_in_message("MTP module 1 (model.layers.3)");
    expect_in_message("logits[9] is NaN");
    expect_in_message(head);
}

/* ---- the full scan ------------------------------------------------------------------------ */

struct found {
    int n;
    char names[16][64];
    long long first[16];
};

static void collect(void *user, const struct mtp_weights_finding *f)
{
    struct found *fd = user;
    assert_true(fd->n < 16);
    snprintf(fd->names[fd->n], sizeof fd->names[0], "%s", f->tensor->name);
    fd->first[fd->n++] = f->first;
}

static long long first_of(const struct found *fd, const char *name)
{
    for (int i = 0; i < fd->n; i++)
        if (!strcmp(fd->names[i], name))
            return fd->first[i];
    return -1;
}

/* Every float dtype, each with one special value at a known index, beside
 * clean tensors and an integer tensor whose bits look like an F32 Inf. */
static void test_scan_every_dtype(void **state)
{
    const float f32[4] = {1, 2, NAN, 4};
    const float f32_ok[2] = {1e30f, -1e-30f};
    const uint16_t bf16[3] = {0x3F80, 0xFF80 /* -Inf */, 0};
    const uint16_t f16[2] = {0x3C00, 0x7E00 /* NaN */};
    const double f64[2] = {INFINITY, 0};
    const uint8_t e4m3[4] = {0x7E /* 448: finite */, 0x38, 0xFF /* NaN */, 0};
    const uint8_t e4m3_ok[2] = {0x7E, 0xFE};
    const uint8_t e5m2[3] = {0x3C, 0x3C, 0x7C /* Inf */};
    const int32_t i32[1] = {0x7F800000};
    const struct tiny_st_tensor t[] = {
        {"f32", "F32", 1, {4}, f32, sizeof f32},
        {"f32_ok", "F32", 1, {2}, f32_ok, sizeof f32_ok},
        {"bf16", "BF16", 1, {3}, bf16, sizeof bf16},
        {"f16", "F16", 1, {2}, f16, sizeof f16},
        {"f64", "F64", 1, {2}, f64, sizeof f64},
        {"e4m3", "F8_E4M3", 1, {4}, e4m3, sizeof e4m3},
        {"e4m3_ok", "F8_E4M3", 1, {2}, e4m3_ok, sizeof e4m3_ok},
        {"e5m2", "F8_E5M2", 1, {3}, e5m2, sizeof e5m2},
        {"i32", "I32", 1, {1}, i32, sizeof i32},
    };
    char path[512];
    snprintf(path, sizeof path, "%s/scan.safetensors", (char *)*state);
    assert_int_equal(tiny_st_write(path, t, sizeof t / sizeof t[0], false), 0);
    struct mtp_checkpoint *ck = NULL;
    if (mtp_checkpoint_open_file(path, &ck))
        fail_msg("%s", mtp_error_message());
    struct found fd = {0};
    int64_t scanned = 0;
    assert_int_equal(mtp_weights_check_finite(ck, collect, &fd, &scanned), 6);
    assert_int_equal(scanned, 8); /* every tensor but the I32 one */
    assert_int_equal(first_of(&fd, "f32"), 2);
    assert_int_equal(first_of(&fd, "bf16"), 1);
    assert_int_equal(first_of(&fd, "f16"), 1);
    assert_int_equal(first_of(&fd, "f64"), 0);
    assert_int_equal(first_of(&fd, "e4m3"), 2);
    assert_int_equal(first_of(&fd, "e5m2"), 2);
    mtp_checkpoint_free(ck);
}

/* An FP8 checkpoint: an Inf block scale is found like any weight (the scan
 * works on the checkpoint; loading the model refuses such a scale). */
static void test_scan_fp8_scale(void **state)
{
    struct tiny_opts o;
    tiny_opts_default(&o);
    o.fp8 = true;
    assert_int_equal(tiny_checkpoint_write(*state, &o), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", (char *)*state);
    const char *scale = "model.layers.0.self_attn.q_a_proj.weight_scale_inv";
    test_patch_f32(path, scale, 1, INFINITY);
    struct mtp_checkpoint *ck = NULL;
    if (mtp_checkpoint_open_dir(*state, &ck))
        fail_msg("%s", mtp_error_message());
    struct found fd = {0};
    int64_t scanned = 0;
    assert_int_equal(mtp_weights_check_finite(ck, collect, &fd, &scanned), 1);
    assert_string_equal(fd.names[0], scale);
    assert_int_equal(fd.first[0], 1);
    mtp_checkpoint_free(ck);
}

/* The command: exit 1 naming the tensor; exit 0 on a clean fixture. */
static void test_inspect_check_weights(void **state)
{
    char self[1024], bindir[1024], cmd[2048], out[16384];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    snprintf(bindir, sizeof bindir, "%s", dirname(self));
    write_poisoned(*state, "model.layers.2.mlp.experts.1.down_proj.weight", 4, NAN);
    const char *dirs[2] = {*state, MTP_SOURCE_DIR "/tests/fixtures/v3-bf16"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "%s/mtpbench inspect --check-weights %s 2>&1", bindir, dirs[i]);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        size_t len = fread(out, 1, sizeof out - 1, p);
        out[len] = '\0';
        int status = pclose(p);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), i == 0 ? 1 : 0);
        if (i == 0 && !strstr(out, "model.layers.2.mlp.experts.1.down_proj.weight (F32"))
            fail_msg("output lacks the tensor: %s", out);
        assert_non_null(strstr(out, i == 0 ? "1 with NaN or Inf" : "0 with NaN or Inf"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nan_final_norm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inf_projection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nan_embedding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nan_lm_head_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nan_mtp_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_every_dtype, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_fp8_scale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inspect_check_weights, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

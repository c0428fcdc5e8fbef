/*
 * test_fp8_scales.c - FP8 block scales (issue 28, case 11; engine/fp8_scales.h):
 *   - a zero, negative, denormal, NaN, +-Inf or overflowing weight_scale_inv
 *     value is refused when the model loads, the message naming the tensor,
 *     the block and the value;
 *   - a huge but finite scale (1e35) loads, and decoding then fails with a NaN
 *     whose message sends the user to `inspect --check-weights`: that check
 *     must find it, naming the tensor and the block (exit 1); so must it
 *     find 1e30, which decodes without a NaN (the norms swallow it) but
 *     into nonsense;
 *   - clean checkpoints, the shipped FP8 model included, pass the scan.
 *
 *   ctest --test-dir build -R fp8_scales
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>   /* defines: NAN, INFINITY */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strstr */

#include "engine/decode.h"
#include "engine/engine.h"
#include "core/error.h"
#include "engine/fp8_scales.h"
#include "engine/model.h"
#include "tests/support/rank_logs.h"
#include "tests/support/tensor_patch.h"
#include "tests/support/test_files.h"
#include "tests/support/tiny_checkpoint.h"

/* q_a_proj is [12, 32] in blocks of 8: its scales are [2, 4]; element 5 is
 * block [1, 1]. o_proj of layer 1 feeds the residual stream directly. */
#define QA_SCALE "model.layers.0.self_attn.q_a_proj.weight_scale_inv"
#define O_SCALE "model.layers.1.self_attn.o_proj.weight_scale_inv"

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

static void expect_in_message(const char *part)
{
    if (!strstr(mtp_error_message(), part))
        fail_msg("message '%s' lacks '%s'", mtp_error_message(), part);
}

/* A fresh tiny FP8 checkpoint in DIR with VALUE at element INDEX of SCALE. */
static void write_scale(const char *dir, const char *scale, size_t index, float value)
{
    struct tiny_opts o;
    tiny_opts_default(&o);
    o.fp8 = true;
    assert_int_equal(tiny_checkpoint_write(dir, &o), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    test_patch_f32(path, scale, index, value);
}

static void test_load_refuses_bad_scales(void **state)
{
    const struct {
        float value;
        const char *found; /* in the message */
    } bad[] = {
        {0.0f, "(zero)"},         {-0.0f, "(zero)"},      {-0.5f, "-0.5 (negative)"},
        {1e-40f, "(denormal)"},   {NAN, "nan (NaN)"},     {INFINITY, "(+Inf)"},
        {-INFINITY, "(-Inf)"},    {1e36f, "448 * scale overflows F32"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_scale(*state, QA_SCALE, 5, bad[i].value);
        struct mtp_model *m = NULL;
        mtp_error_clear();
        if (mtp_model_load(*state, &m) != MTP_ERR)
            fail_msg("scale %g was accepted", (double)bad[i].value);
        expect_in_message("tensor '" QA_SCALE "'");
        expect_in_message("block [1, 1]");
        expect_in_message(bad[i].found);
    }
    /* The smallest normal scale and an ordinary one still load. */
    const float good[] = {1.17549435e-38f, 0.25f};
    for (size_t i = 0; i < 2; i++) {
        write_scale(*state, QA_SCALE, 5, good[i]);
        struct mtp_model *m = NULL;
        if (mtp_model_load(*state, &m))
            fail_msg("scale %g: %s", (double)good[i], mtp_error_message());
        mtp_model_free(m);
    }
}

/* Greedy decoding of a short prompt; the status, message left behind. */
static int decode(struct mtp_model *m)
{
    struct mtp_backend *be = NULL;
    assert_int_equal(mtp_backend_cpu_create(1, &be), MTP_OK);
    struct mtp_engine_options eo = {.max_positions = 64, .max_batch = 16};
    struct mtp_engine *e = NULL;
    assert_int_equal(mtp_engine_create(m, be, &eo, &e), MTP_OK);
    struct mtp_decode_params p = {
        .drafting = MTP_DECODE_DRAFTING_NONE,
        .sampling = {.temperature = 0, .top_p = 1},
        .max_new_tokens = 8,
        .eos_token_id = -1,
    };
    const int32_t prompt[] = {2, 3, 4, 5};
    struct mtp_decode_result r;
    mtp_error_clear();
    int rc = mtp_decode_run(e, &p, prompt, 4, &r);
    if (rc == MTP_OK)
        mtp_decode_result_free(&r);
    mtp_engine_free(e);
    mtp_backend_free(be);
    return rc;
}

struct found {
    int n;
    char scale[128];
    long long row, col;
    float largest;
};

static void collect(void *user, const struct mtp_fp8_block_finding *f)
{
    struct found *fd = user;
    if (fd->n++ == 0) {
        snprintf(fd->scale, sizeof fd->scale, "%s", f->scale->name);
        fd->row = f->block_row;
        fd->col = f->block_col;
        fd->largest = f->largest;
    }
}

/* Run `mtpbench inspect --check-weights DIR`; its output into OUT. */
static int inspect(const char *dir, char *out, size_t cap)
{
    char bin[1024], log[600];
    test_mtpbench_path(bin, sizeof bin);
    snprintf(log, sizeof log, "%s/inspect.txt", dir);
    int rc = test_sh("'%s' inspect --check-weights '%s' >'%s' 2>&1", bin, dir, log);
    size_t n;
    char *text = test_read_whole_file(log, &n);
    snprintf(out, cap, "%.*s", (int)n, text);
    free(text);
    return rc;
}

static void test_huge_scale_found_by_check_weights(void **state)
{
    write_scale(*state, O_SCALE, 0, 1e35f);
    struct mtp_model *m = NULL;
    if (mtp_model_load(*state, &m))
        fail_msg("a finite, normal scale must load: %s", mtp_error_message());
    assert_int_equal(decode(m), MTP_ERR);
    expect_in_message("NaN");
    expect_in_message("come out of model.layers.1 ");
    expect_in_message("inspect --check-weights");

    struct found fd = {0};
    int64_t blocks = 0;
    assert_int_equal(mtp_fp8_scales_scan(m->ckpt, m->cfg.weight_block_size[0],
                                         m->cfg.weight_block_size[1], collect, &fd, &blocks),
                     1);
    assert_true(blocks > 0);
    assert_string_equal(fd.scale, O_SCALE);
    assert_int_equal(fd.row, 0);
    assert_int_equal(fd.col, 0);
    assert_true(fd.largest > MTP_FP8_MAX_WEIGHT);
    mtp_model_free(m);

    char out[16384];
    assert_int_equal(inspect(*state, out, sizeof out), 1);
    if (!strstr(out, O_SCALE) || !strstr(out, "block [0, 0]") || !strstr(out, "1 with a bad"))
        fail_msg("inspect --check-weights output lacks the block: %s", out);

    write_scale(*state, QA_SCALE, 5, 1e30f);
    assert_int_equal(inspect(*state, out, sizeof out), 1);
    if (!strstr(out, QA_SCALE) || !strstr(out, "block [1, 1]") || !strstr(out, "scale 1.00000002e+30"))
        fail_msg("inspect --check-weights output lacks the block: %s", out);
}

static void test_clean_checkpoints_pass(void **state)
{
    struct tiny_opts o;
    tiny_opts_default(&o);
    o.fp8 = true;
    assert_int_equal(tiny_checkpoint_write(*state, &o), 0);
    char out[16384];
    assert_int_equal(inspect(*state, out, sizeof out), 0);
    assert_non_null(strstr(out, "0 with a bad scale"));

    struct mtp_model *m = NULL;
    if (mtp_model_load(MTP_SOURCE_DIR "/models/mtp-v3", &m))
        fail_msg("%s", mtp_error_message());
    int64_t blocks = 0;
    assert_int_equal(mtp_fp8_scales_scan(m->ckpt, m->cfg.weight_block_size[0],
                                         m->cfg.weight_block_size[1], NULL, NULL, &blocks),
                     0);
    assert_true(blocks > 1000);
    mtp_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_refuses_bad_scales, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_scale_found_by_check_weights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_checkpoints_pass, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

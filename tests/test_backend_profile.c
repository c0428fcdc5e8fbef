/*
 * test_backend_profile.c - the op-profiling backend (engine/backend_profile.h)
 * and `mtpbench bench --ops`:
 *   (a) an engine on the wrapped CPU backend gives bitwise the logits and
 *       hidden states of one on the plain CPU backend (prefill, verification
 *       of n tokens, an MTP module forward), profiling on and off;
 *   (b) the counts of one forward are those the model's structure implies
 *       (one attention per layer, one head matmul, the attention projections
 *       the config has, MoE and dense layers from the config), and a disabled
 *       wrapper counts nothing;
 *   (c) bench --ops --json writes the "ops" section with its per-op table;
 *   the shared probe (an extra ffn per moe_ffn into scratch) keeps (a) and
 *   counts once per MoE layer.
 * No timing is asserted beyond being finite and non-negative.
 *
 * Build and run: cmake --build build --target test_backend_profile && ./build/test_backend_profile
 */
#include <setjmp.h> /* cmocka needs it */
#include <stdarg.h> /* cmocka needs it */
#include <stddef.h> /* cmocka needs it */
#include <stdint.h> /* cmocka needs it */

#include <cmocka.h>

#include <jansson.h>  /* defines: json_load_file */
#include <math.h>     /* defines: isfinite */
#include <stdio.h>    /* defines: popen */
#include <stdlib.h>   /* defines: mkdtemp */
#include <string.h>   /* defines: memcmp */
#include <sys/wait.h> /* defines: WEXITSTATUS */
#include <unistd.h>   /* defines: access */

#include "engine/engine.h"
#include "core/error.h"
#include "engine/backend_profile.h"

#include "tests/support/rank_logs.h" /* defines: test_mtpbench_path */

enum { MAX_POS = 48, PROMPT = 12, N_VERIFY = 5 };

/* Fixtures with different attention (q LoRA or not) and FFN layouts. */
static const char *const fixtures[] = {"tests/fixtures/v3-f32", "tests/fixtures/v2-f32"};

struct side {
    struct mtp_backend *cpu, *prof; /* prof NULL: the engine runs on cpu directly */
    struct mtp_engine *e;
};

static void side_open(struct mtp_model *m, int wrap, struct side *s)
{
    memset(s, 0, sizeof *s);
    assert_int_equal(mtp_backend_cpu_create(1, &s->cpu), MTP_OK);
    if (wrap)
        assert_int_equal(mtp_backend_profile_create(s->cpu, m, &s->prof), MTP_OK);
    struct mtp_engine_options opt = {.max_positions = MAX_POS, .max_batch = 8};
    if (mtp_engine_create(m, s->prof ? s->prof : s->cpu, &opt, &s->e))
        fail_msg("%s", mtp_error_message());
}

static void side_close(struct side *s)
{
    mtp_engine_free(s->e);
    mtp_backend_free(s->prof);
    mtp_backend_free(s->cpu);
}

/* Prefill, a verification of N_VERIFY tokens and module 1 over them, on S;
 * the outputs in OUT (logits, then hidden, then module logits). */
static void run_all(struct side *s, const struct mtp_config *c, const int32_t *tok, float *out)
{
    size_t V = (size_t)c->vocab_size, d = (size_t)c->hidden_size;
    float *last = out, *logits = last + V, *hidden = logits + N_VERIFY * V,
          *mlog = hidden + N_VERIFY * d;
    float *phid = malloc(sizeof(float) * PROMPT * d);
    assert_int_equal(mtp_engine_prefill(s->e, tok, PROMPT, last, phid), MTP_OK);
    assert_int_equal(mtp_engine_forward(s->e, tok + PROMPT, N_VERIFY, PROMPT, logits, hidden),
                     MTP_OK);
    if (c->num_nextn_predict_layers > 0)
        assert_int_equal(mtp_engine_mtp_forward(s->e, 1, tok + 1, phid, PROMPT - 1, 0, NULL,
                                                NULL), MTP_OK);
    if (c->num_nextn_predict_layers > 0)
        assert_int_equal(mtp_engine_mtp_forward(s->e, 1, tok + PROMPT, hidden, N_VERIFY,
                                                PROMPT - 1, mlog, NULL), MTP_OK);
    free(phid);
}

static void test_bitwise(void **state)
{
    (void)state;
    for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", MTP_SOURCE_DIR, fixtures[f]);
        struct mtp_model *m = NULL;
        if (mtp_model_load(dir, &m))
            fail_msg("%s", mtp_error_message());
        const struct mtp_config *c = &m->cfg;
        int32_t tok[PROMPT + N_VERIFY];
        for (int i = 0; i < PROMPT + N_VERIFY; i++)
            tok[i] = (int32_t)((i * 7919 + 13) % c->vocab_size);
        size_t len = (size_t)c->vocab_size * (1 + 2 * N_VERIFY) + (size_t)c->hidden_size * N_VERIFY;
        float *ref = calloc(len, sizeof(float)), *got = calloc(len, sizeof(float));
        struct side plain, wrapped;
        side_open(m, 0, &plain);
        side_open(m, 1, &wrapped);
        run_all(&plain, c, tok, ref);
        /* Off; on; on with the shared probe (its extra ffn must not touch the forward). */
        for (int mode = 0; mode < 3; mode++) {
            memset(got, 0xff, len * sizeof(float)); /* NaN: an output left unwritten shows */
            mtp_backend_profile_enable(wrapped.prof, mode > 0);
            mtp_backend_profile_probe_shared(wrapped.prof, mode == 2);
            run_all(&wrapped, c, tok, got);
            if (memcmp(ref, got, len * sizeof(float)) != 0)
                fail_msg("%s: profiled (mode %d) outputs differ from the plain backend's",
                         fixtures[f], mode);
        }
        side_close(&wrapped);
        side_close(&plain);
        free(ref);
        free(got);
        mtp_model_free(m);
    }
}

static void test_counts(void **state)
{
    (void)state;
    for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", MTP_SOURCE_DIR, fixtures[f]);
        struct mtp_model *m = NULL;
        if (mtp_model_load(dir, &m))
            fail_msg("%s", mtp_error_message());
        const struct mtp_config *c = &m->cfg;
        struct side s;
        side_open(m, 1, &s);
        int32_t tok[PROMPT + N_VERIFY] = {0};
        float *hid = calloc((size_t)PROMPT * c->hidden_size, sizeof(float));
        struct mtp_prof_counts k;

        /* Disabled: nothing is counted, even across a whole prefill. */
        mtp_backend_profile_reset(s.prof);
        assert_int_equal(mtp_engine_prefill(s.e, tok, PROMPT, NULL, hid), MTP_OK);
        mtp_backend_profile_read(s.prof, &k);
        for (int i = 0; i < MTP_PROF_N; i++)
            assert_int_equal(k.calls[i], 0);

        mtp_backend_profile_enable(s.prof, 1);
        mtp_backend_profile_reset(s.prof);
        assert_int_equal(mtp_engine_forward(s.e, tok + PROMPT, N_VERIFY, PROMPT, NULL, hid),
                         MTP_OK);
        mtp_backend_profile_read(s.prof, &k);
        int L = c->num_hidden_layers, moe = mtp_engine_num_moe_layers(s.e);
        int proj = (c->q_lora_rank > 0 ? 2 : 1) + 2; /* q (LoRA: q_a, q_b), kv_a, o */
        assert_int_equal(k.calls[MTP_PROF_ATTENTION], L);
        assert_int_equal(k.calls[MTP_PROF_ROPE], 2 * L); /* q's rope part and k_pe */
        assert_int_equal(k.calls[MTP_PROF_MM_ATTN], proj * L);
        /* hidden only, no logits: the head is not run */
        assert_int_equal(k.calls[MTP_PROF_MM_HEAD], 0);
        assert_int_equal(k.calls[MTP_PROF_MOE], moe);
        assert_int_equal(k.calls[MTP_PROF_ROUTE], moe);
        assert_int_equal(k.calls[MTP_PROF_FFN], L - moe);
        assert_int_equal(k.calls[MTP_PROF_EMBED], 1);
        assert_int_equal(k.calls[MTP_PROF_MM_OTHER], 0);
        double total = 0;
        for (int i = 0; i < MTP_PROF_N; i++) {
            assert_true(isfinite(k.ns[i]) && k.ns[i] >= 0);
            assert_true(k.calls[i] > 0 || k.ns[i] == 0);
            total += k.ns[i];
        }
        assert_true(total > 0);
        assert_int_equal(k.shared_probe_calls, 0); /* off unless asked for */

        /* The probe: once per MoE layer with a shared expert, in no kind. */
        mtp_backend_profile_probe_shared(s.prof, 1);
        mtp_engine_truncate(s.e, 0, PROMPT);
        long moe_calls = k.calls[MTP_PROF_MOE];
        mtp_backend_profile_reset(s.prof);
        assert_int_equal(mtp_engine_forward(s.e, tok + PROMPT, N_VERIFY, PROMPT, NULL, hid),
                         MTP_OK);
        mtp_backend_profile_read(s.prof, &k);
        assert_true(c->n_shared_experts > 0); /* both fixtures have one */
        assert_int_equal(k.shared_probe_calls, moe);
        assert_int_equal(k.calls[MTP_PROF_MOE], moe_calls);
        assert_int_equal(k.calls[MTP_PROF_FFN], L - moe);
        assert_true(k.shared_probe_ns > 0);
        mtp_backend_profile_probe_shared(s.prof, 0);

        /* With logits, exactly one more matmul: the lm_head. */
        mtp_engine_truncate(s.e, 0, PROMPT);
        float *logits = malloc(sizeof(float) * N_VERIFY * (size_t)c->vocab_size);
        mtp_backend_profile_reset(s.prof);
        assert_int_equal(mtp_engine_forward(s.e, tok + PROMPT, N_VERIFY, PROMPT, logits, NULL),
                         MTP_OK);
        mtp_backend_profile_read(s.prof, &k);
        assert_int_equal(k.calls[MTP_PROF_MM_HEAD], 1);
        assert_int_equal(k.calls[MTP_PROF_MM_ATTN], proj * L);

        /* An MTP module: one block, its eh_proj, its head. */
        if (c->num_nextn_predict_layers > 0) {
            mtp_backend_profile_reset(s.prof);
            assert_int_equal(mtp_engine_mtp_forward(s.e, 1, tok + 1, hid, 1, 0, logits, NULL),
                             MTP_OK);
            mtp_backend_profile_read(s.prof, &k);
            assert_int_equal(k.calls[MTP_PROF_ATTENTION], 1);
            assert_int_equal(k.calls[MTP_PROF_MM_EH_PROJ], 1);
            assert_int_equal(k.calls[MTP_PROF_MM_HEAD], 1);
            assert_int_equal(k.calls[MTP_PROF_MM_ATTN], proj);
        }
        free(logits);
        free(hid);
        side_close(&s);
        mtp_model_free(m);
    }
}

/* ---- bench --ops through the executable --------------------------------- */

static char mtpbench[1024];

static int run_cli(const char *args, char *out, size_t cap)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", mtpbench, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static double median_of(const json_t *o)
{
    const json_t *v = json_object_get(json_object_get(o, "ns"), "median");
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static void test_bench_ops(void **state)
{
    (void)state;
    char dir[] = "/tmp/mtp_bench_ops_XXXXXX", json_path[256], args[1024];
    assert_non_null(mkdtemp(dir));
    snprintf(json_path, sizeof json_path, "%s/bench.json", dir);
    snprintf(args, sizeof args,
             "bench --model " MTP_SOURCE_DIR "/tests/fixtures/v3-f32 --threads 1 --repeats 3 "
             "--context 24 --stream-mib 1 --ops --json %s", json_path);
    static char out[1 << 16];
    assert_int_equal(run_cli(args, out, sizeof out), 0);
    assert_non_null(strstr(out, "ops (main forward of n tokens"));
    assert_non_null(strstr(out, "ops of one draft of MTP module 1"));

    json_error_t err;
    json_t *root = json_load_file(json_path, 0, &err);
    assert_non_null(root);
    const json_t *sec = json_object_get(json_object_get(root, "sections"), "ops");
    assert_non_null(sec);
    const json_t *per_op = json_object_get(sec, "per_op");
    assert_non_null(per_op);
    assert_int_equal(json_array_size(json_object_get(per_op, "kinds")), MTP_PROF_N);
    const json_t *cases = json_object_get(per_op, "cases");
    assert_int_equal(json_array_size(cases), 5);
    static const char *const names[] = {"verify/n=1", "verify/n=2", "verify/n=4", "verify/n=8",
                                        "draft/module=1/n=1"};
    int layers = (int)json_integer_value(
        json_object_get(json_object_get(root, "model"), "num_hidden_layers"));
    for (size_t i = 0; i < 5; i++) {
        const json_t *c = json_array_get(cases, i);
        assert_string_equal(json_string_value(json_object_get(c, "name")), names[i]);
        const json_t *ops = json_object_get(c, "ops");
        const json_t *att = json_object_get(ops, "attention");
        assert_non_null(att);
        assert_int_equal(json_integer_value(json_object_get(att, "calls")), i < 4 ? layers : 1);
        assert_non_null(json_object_get(ops, "matmul_head"));
        double wall = json_number_value(json_object_get(json_object_get(c, "wall_ns"), "median"));
        const char *key;
        const json_t *o;
        double sum = 0;
        json_object_foreach((json_t *)ops, key, o) {
            double t = median_of(o);
            assert_true(isfinite(t) && t >= 0);
            sum += t;
            /* n = 1 against itself, round by round: exactly 1. */
            if (i == 0)
                assert_true(json_number_value(json_object_get(
                                json_object_get(o, "ratio_to_n1"), "median")) == 1.0);
            assert_true(i < 4 || json_object_get(o, "ratio_to_n1") == NULL);
        }
        assert_true(sum > 0 && wall > 0);
        /* The fixture has a shared expert: bench splits moe_ffn with the probe. */
        const json_t *sh = json_object_get(c, "shared_expert_probe");
        const json_t *ro = json_object_get(c, "routed_experts_estimate");
        assert_non_null(sh);
        assert_non_null(ro);
        double moe = median_of(json_object_get(ops, "moe_ffn"));
        assert_true(median_of(sh) > 0 && median_of(sh) <= 1.5 * moe);
        /* Medians of parts need not add up, but the ops cannot be far above the wall. */
        assert_true(sum <= 1.5 * wall);
    }
    json_decref(root);
    unlink(json_path);
    rmdir(dir);
}

static int find_binary(void **state)
{
    (void)state;
    test_mtpbench_path(mtpbench, sizeof mtpbench);
    return access(mtpbench, X_OK) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bitwise),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_bench_ops),
    };
    return cmocka_run_group_tests(tests, find_binary, NULL);
}

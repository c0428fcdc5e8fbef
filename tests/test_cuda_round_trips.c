/*
 * test_cuda_round_trips.c - the CUDA backend without host round trips in
 * decode and verification (issue 22, item 5), against the CPU backend:
 *   - GEMV at 9..16 tokens (two token tiles of at most 8): every token of the
 *     batch is bitwise the token alone, plain and with SwiGLU (the FFN), F32
 *     and BF16 weights, and within the CPU's tolerance;
 *   - a MoE layer whose plan is built on the device: several tokens share
 *     experts, one expert has 12 tokens (two tiles), one expert has none, slot
 *     orders vary; within tolerance of the CPU, each token alone bitwise the
 *     batch, and (emulated) no host wait at all once the layer's expert table
 *     is on the device;
 *   - tree attention over several "layers" with one key list: uploaded once
 *     (emulated count), the chain still bitwise mla_attention, and lists
 *     rewritten in place are uploaded again (the cache compares content);
 *   - a tree verification forward of mtp-mini through the engine: within
 *     tolerance of the CPU engine, and (emulated) as many host waits with 4
 *     layers as with 2: none per layer.
 * Host waits are counted by the emulated runtime (kernels/cuda_emu/
 * emu_counters.h); on a GPU those checks are skipped and the rest runs.
 * Without a usable GPU (or the emulation build) the program exits 77.
 *   ctest --test-dir build -R cuda_round_trips
 */
#include <math.h> /* defines: fabs */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "engine/engine.h"
#include "engine/engine_tree.h"
#include "core/error.h"
#include "engine/model.h"
#include "kernels/backend.h"
#include "support/compare.h"
#include "support/cuda_pair.h"
#ifdef MTP_CUDA_EMU
#include "kernels/cuda_emu/emu_counters.h"
#endif

static struct test_cuda_pair g_pair;
static struct mtp_backend *g_cpu, *g_cuda;

static int setup(void **state)
{
    (void)state;
    if (test_cuda_pair_open(&g_pair, 2))
        return -1;
    g_cpu = g_pair.cpu;
    g_cuda = g_pair.cuda;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    test_cuda_pair_close(&g_pair);
    return 0;
}

#define NEED_GPU() TEST_NEED_GPU(&g_pair)

/* Host waits so far: syncs + copies between host and device; -1 on a GPU
 * (not counted there). */
static long host_waits(void)
{
#ifdef MTP_CUDA_EMU
    struct mtp_emu_counters c;
    mtp_emu_counters_get(&c);
    return c.syncs + c.host_copies;
#else
    return -1;
#endif
}

static uint32_t g_seed = 22;
static float frand(void)
{
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)(g_seed >> 8) / 8388608.0f - 1.0f;
}

static float *frands(size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = scale * frand();
    return v;
}

/* A random [rows, cols] matrix of DT (F32 or BF16), prepared on CUDA. */
static struct mtp_weight weight(enum mtp_dtype dt, int rows, int cols, const char *name)
{
    struct mtp_weight w = {.dtype = dt, .rows = rows, .cols = cols, .name = name};
    size_t count = (size_t)rows * cols;
    float *f = frands(count, 0.2f);
    if (dt == MTP_DTYPE_BF16) {
        uint16_t *b = malloc(count * sizeof *b);
        for (size_t i = 0; i < count; i++)
            b[i] = mtp_f32_to_bf16(f[i]);
        free(f);
        w.data = b;
    } else {
        w.data = f;
    }
    assert_int_equal(g_cuda->iface->prepare_weight(g_cuda->ctx, &w), MTP_OK);
    return w;
}

static struct mtp_ffn ffn(enum mtp_dtype dt, int d, int inter)
{
    struct mtp_ffn f = {.gate = weight(dt, inter, d, "test.gate"),
                        .up = weight(dt, inter, d, "test.up"),
                        .down = weight(dt, d, inter, "test.down")};
    return f;
}

static void ffn_free(struct mtp_ffn *f)
{
    free((void *)f->gate.data);
    free((void *)f->up.data);
    free((void *)f->down.data);
}

static void *dev_copy(const void *h, size_t bytes)
{
    void *d = g_cuda->iface->alloc(g_cuda->ctx, bytes);
    g_cuda->iface->upload(g_cuda->ctx, d, h, bytes);
    return d;
}

static void *host_copy(const void *d, size_t bytes)
{
    void *h = malloc(bytes);
    g_cuda->iface->download(g_cuda->ctx, h, d, bytes);
    return h;
}

static const struct mtp_tolerance tol_ops = {
    .atol = 1e-5, .rtol = 1e-4, .min_cosine = 0.99999,
    .why = "same weights and F32 activations: only the reduction order and expf (2 ulp) differ"};

static double worst_abs(const float *a, const float *b, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++)
        w = fmax(w, fabs((double)a[i] - b[i]));
    return w;
}

/* ------------------------------------------------------------ GEMV 9..16 */

/* Matmul (SWIGLU false) or dense FFN of N tokens: CPU tolerance, and each
 * token alone bitwise its row of the batch. */
static void gemv_case(enum mtp_dtype dt, bool swiglu, int n)
{
    const int d = 300, rows = 72; /* 300: a column tail after the 256-wide lane steps */
    const struct mtp_backend_i *cu = g_cuda->iface;
    struct mtp_weight w = {0};
    struct mtp_ffn f = {0};
    if (swiglu)
        f = ffn(dt, d, rows);
    else
        w = weight(dt, rows, d, "test.matmul");
    const int out = swiglu ? d : rows;
    float *x = frands((size_t)n * d, 1.0f);
    size_t ybytes = (size_t)n * out * sizeof(float);
    float *want = malloc(ybytes);
    float *dx = dev_copy(x, (size_t)n * d * sizeof(float));
    float *dy = cu->alloc(g_cuda->ctx, ybytes);
    if (swiglu) {
        g_cpu->iface->ffn(g_cpu->ctx, &f, x, n, want);
        cu->ffn(g_cuda->ctx, &f, dx, n, dy);
    } else {
        g_cpu->iface->matmul(g_cpu->ctx, &w, x, d, n, want, rows);
        cu->matmul(g_cuda->ctx, &w, dx, d, n, dy, rows);
    }
    float *got = host_copy(dy, ybytes);
    char name[64];
    snprintf(name, sizeof name, "%s %s n=%d", swiglu ? "ffn" : "matmul", mtp_dtype_name(dt), n);
    assert_true(mtp_compare(name, got, want, (size_t)n * out, &tol_ops, NULL));
    float *one = cu->alloc(g_cuda->ctx, (size_t)out * sizeof(float));
    for (int t = 0; t < n; t++) {
        if (swiglu)
            cu->ffn(g_cuda->ctx, &f, dx + (size_t)t * d, 1, one);
        else
            cu->matmul(g_cuda->ctx, &w, dx + (size_t)t * d, d, 1, one, rows);
        float *h = host_copy(one, (size_t)out * sizeof(float));
        if (memcmp(h, got + (size_t)t * out, (size_t)out * sizeof(float)))
            fail_msg("%s: token %d alone differs from its row in the batch", name, t);
        free(h);
    }
    printf("[  INFO    ] %-16s: worst |cuda - cpu| %.3g; every token alone bitwise its batch row\n",
           name, worst_abs(got, want, (size_t)n * out));
    cu->release(g_cuda->ctx, one);
    cu->release(g_cuda->ctx, dx);
    cu->release(g_cuda->ctx, dy);
    free(x);
    free(want);
    free(got);
    if (swiglu)
        ffn_free(&f);
    else
        free((void *)w.data);
}

static void test_gemv_9_to_16(void **state)
{
    (void)state;
    NEED_GPU();
    for (int n = 9; n <= 16; n++) {
        gemv_case(n % 2 ? MTP_DTYPE_F32 : MTP_DTYPE_BF16, false, n);
        gemv_case(n % 2 ? MTP_DTYPE_BF16 : MTP_DTYPE_F32, true, n);
    }
}

/* -------------------------------------------------------------- MoE plan */

enum { MOE_E = 8, MOE_K = 4, MOE_D = 64, MOE_I = 48, MOE_IS = 32, MOE_N = 12 };

/* Token t: expert 0 always (12 tokens: two tiles), one of 1..3, one of 4..5,
 * and 6; expert 7 never. Odd tokens list their slots in reverse. */
static void moe_ids(int32_t *idx)
{
    for (int t = 0; t < MOE_N; t++) {
        int32_t ids[MOE_K] = {0, 1 + t % 3, 4 + t % 2, 6};
        for (int j = 0; j < MOE_K; j++)
            idx[t * MOE_K + j] = t % 2 ? ids[MOE_K - 1 - j] : ids[j];
    }
}

static void moe_case(bool shared)
{
    const struct mtp_backend_i *cu = g_cuda->iface;
    struct mtp_ffn experts[MOE_E];
    for (int e = 0; e < MOE_E; e++)
        experts[e] = ffn(e % 2 ? MTP_DTYPE_BF16 : MTP_DTYPE_F32, MOE_D, MOE_I);
    struct mtp_moe moe = {.router = {.dtype = MTP_DTYPE_F32, .rows = MOE_E, .cols = MOE_D},
                          .has_shared = shared, .experts = experts};
    if (shared)
        moe.shared = ffn(MTP_DTYPE_BF16, MOE_D, MOE_IS);
    int32_t idx[MOE_N * MOE_K];
    moe_ids(idx);
    float *w = frands(MOE_N * MOE_K, 0.5f), *x = frands((size_t)MOE_N * MOE_D, 1.0f);
    size_t ybytes = (size_t)MOE_N * MOE_D * sizeof(float);
    float *want = malloc(ybytes);
    g_cpu->iface->moe_ffn(g_cpu->ctx, &moe, MOE_K, x, MOE_N, idx, w, want);
    int32_t *didx = dev_copy(idx, sizeof idx);
    float *dw = dev_copy(w, MOE_N * MOE_K * sizeof(float));
    float *dx = dev_copy(x, (size_t)MOE_N * MOE_D * sizeof(float));
    float *dy = cu->alloc(g_cuda->ctx, ybytes);
    cu->moe_ffn(g_cuda->ctx, &moe, MOE_K, dx, MOE_N, didx, dw, dy); /* uploads the table */
    long before = host_waits();
    cu->moe_ffn(g_cuda->ctx, &moe, MOE_K, dx, MOE_N, didx, dw, dy);
    long waits = host_waits() - before;
    float *got = host_copy(dy, ybytes);
    assert_true(mtp_compare(shared ? "moe_ffn (shared)" : "moe_ffn", got, want,
                            (size_t)MOE_N * MOE_D, &tol_ops, NULL));
    float *one = cu->alloc(g_cuda->ctx, MOE_D * sizeof(float));
    for (int t = 0; t < MOE_N; t++) {
        cu->moe_ffn(g_cuda->ctx, &moe, MOE_K, dx + (size_t)t * MOE_D, 1, didx + t * MOE_K,
                    dw + t * MOE_K, one);
        float *h = host_copy(one, MOE_D * sizeof(float));
        if (memcmp(h, got + (size_t)t * MOE_D, MOE_D * sizeof(float)))
            fail_msg("moe_ffn: token %d alone differs from its row in the batch", t);
        free(h);
    }
    printf("[  INFO    ] moe_ffn (%s shared expert), %d tokens, expert 0 on all, expert 7 on "
           "none: worst |cuda - cpu| %.3g; host waits in a call: %ld%s\n",
           shared ? "with" : "no", MOE_N, worst_abs(got, want, (size_t)MOE_N * MOE_D), waits,
           waits < 0 ? " (not counted on a GPU)" : "");
    if (waits >= 0)
        assert_int_equal(waits, 0); /* the host plan waited for idx and uploaded the lists */
    cu->release(g_cuda->ctx, one);
    cu->release(g_cuda->ctx, didx);
    cu->release(g_cuda->ctx, dw);
    cu->release(g_cuda->ctx, dx);
    cu->release(g_cuda->ctx, dy);
    for (int e = 0; e < MOE_E; e++)
        ffn_free(&experts[e]);
    if (shared)
        ffn_free(&moe.shared);
    free(w);
    free(x);
    free(want);
    free(got);
}

static void test_moe_device_plan(void **state)
{
    (void)state;
    NEED_GPU();
    moe_case(true);
    moe_case(false);
}

/* ------------------------------------------------------- tree key lists */

static void test_tree_keys_once(void **state)
{
    (void)state;
    NEED_GPU();
    struct mtp_mla_dims dm = {.n_heads = 2, .nope = 16, .rope = 8, .v = 16, .kv_lora = 32,
                              .scale = 0.2f};
    enum { L = 3, H = 2, QK = 24, CW = 40, P = 9, N = 5 };
    const struct mtp_backend_i *cu = g_cuda->iface;
    struct mtp_weight kv_b = weight(MTP_DTYPE_F32, H * 32, 32, "test.kv_b");
    float *q = frands((size_t)N * H * QK, 1.0f), *cache = frands((size_t)(P + N) * CW, 1.0f);
    size_t obytes = (size_t)N * H * dm.v * sizeof(float);
    float *dq = dev_copy(q, (size_t)N * H * QK * sizeof(float));
    float *dc = dev_copy(cache, (size_t)(P + N) * CW * sizeof(float));
    float *dref = cu->alloc(g_cuda->ctx, obytes), *dout = cu->alloc(g_cuda->ctx, L * obytes);

    /* a chain over L "layers" with one list: uploaded once */
    int32_t off[N + 1], rows[N * (N + 1) / 2];
    int m = 0;
    for (int t = 0; t < N; t++) {
        off[t] = m;
        for (int j = 0; j <= t; j++)
            rows[m++] = P + j;
    }
    off[N] = m;
    struct mtp_tree_keys keys = {.n_prefix = P, .off = off, .rows = rows};
    long before = host_waits();
    for (int l = 0; l < L; l++)
        cu->mla_tree_attention(g_cuda->ctx, &dm, &kv_b, dq, N, &keys, dc,
                               dout + (size_t)l * obytes / sizeof(float));
    long waits = host_waits() - before;
    cu->mla_attention(g_cuda->ctx, &dm, &kv_b, dq, N, P, dc, dref);
    float *ref = host_copy(dref, obytes), *out = host_copy(dout, L * obytes);
    for (int l = 0; l < L; l++)
        assert_memory_equal(out + (size_t)l * obytes / sizeof(float), ref, obytes);
    printf("[  INFO    ] tree attention, one chain list over %d layers: bitwise mla_attention, "
           "host waits %ld%s\n", L, waits, waits < 0 ? " (not counted on a GPU)" : "");
    if (waits >= 0)
        assert_int_equal(waits, 1); /* one upload; before: 2 copies + 1 sync per layer */

    /* the same arrays rewritten in place as a branching tree: uploaded again */
    static const int32_t boff[N + 1] = {0, 1, 3, 5, 8, 11};
    static const int32_t brows[11] = {9, 9, 10, 9, 11, 9, 10, 12, 9, 11, 13};
    memcpy(off, boff, sizeof boff);
    memcpy(rows, brows, sizeof brows);
    float *want = malloc(obytes);
    g_cpu->iface->mla_tree_attention(g_cpu->ctx, &dm, &kv_b, q, N, &keys, cache, want);
    before = host_waits();
    cu->mla_tree_attention(g_cuda->ctx, &dm, &kv_b, dq, N, &keys, dc, dout);
    waits = host_waits() - before;
    float *got = host_copy(dout, obytes);
    assert_true(mtp_compare("tree attention (lists rewritten in place)", got, want,
                            obytes / sizeof(float), &tol_ops, NULL));
    printf("[  INFO    ] tree attention, lists rewritten in place: worst |cuda - cpu| %.3g, "
           "host waits %ld\n", worst_abs(got, want, obytes / sizeof(float)), waits);
    if (waits >= 0)
        assert_int_equal(waits, 1);
    cu->release(g_cuda->ctx, dq);
    cu->release(g_cuda->ctx, dc);
    cu->release(g_cuda->ctx, dref);
    cu->release(g_cuda->ctx, dout);
    free(q);
    free(cache);
    free(ref);
    free(out);
    free(want);
    free(got);
    free((void *)kv_b.data);
}

/* ------------------------------------------- a tree verification forward */

/* A 5-node tree at row NP: root, two children of the root, one grandchild
 * under each. Lists are the ancestors by depth, then the node. */
static const int32_t g_tree_pos_rel[5] = {0, 1, 1, 2, 2};
static const int32_t g_tree_off[6] = {0, 1, 3, 5, 8, 11};
static const int32_t g_tree_rows_rel[11] = {0, 0, 1, 0, 2, 0, 1, 3, 0, 2, 4};

/* Prefill PROMPT, then one tree forward; LOGITS [5, V]. Returns the host
 * waits of the tree forward alone (-1 when not counted). */
static long tree_forward(struct mtp_engine *e, const int32_t *prompt, int np, float *logits)
{
    if (mtp_engine_forward(e, prompt, np, 0, NULL, NULL))
        fail_msg("%s", mtp_error_message());
    int32_t pos[5], rows[11], tok[5] = {5, 17, 29, 41, 53};
    for (int i = 0; i < 5; i++)
        pos[i] = np + g_tree_pos_rel[i];
    for (int i = 0; i < 11; i++)
        rows[i] = np + g_tree_rows_rel[i];
    struct mtp_tree_batch b = {.start_row = np, .pos = pos,
                               .keys = {.n_prefix = np, .off = g_tree_off, .rows = rows}};
    long before = host_waits();
    if (mtp_engine_forward_tree(e, tok, 5, &b, logits, NULL))
        fail_msg("%s", mtp_error_message());
    long after = host_waits();
    return before < 0 ? -1 : after - before;
}

static void test_tree_verify_engine(void **state)
{
    (void)state;
    NEED_GPU();
    char dir[600];
    snprintf(dir, sizeof dir, "%s/models/mtp-mini", MTP_SOURCE_DIR);
    struct mtp_model *model = NULL;
    if (mtp_model_load(dir, &model))
        fail_msg("mtp-mini: %s", mtp_error_message());
    const int V = model->cfg.vocab_size, layers = model->cfg.num_hidden_layers;
    int32_t prompt[12];
    for (int i = 0; i < 12; i++)
        prompt[i] = (int32_t)((i * 29 + 3) % V);
    float *want = malloc((size_t)5 * V * sizeof(float)), *got = malloc((size_t)5 * V * sizeof(float));
    long waits[2] = {0, 0};
    const int depth[2] = {2, layers}; /* layer 0 is dense: both have MoE layers */
    for (int r = 0; r < 2; r++) {
        struct mtp_engine_options opt = {.max_positions = 64, .max_batch = 16,
                                         .main_layers = depth[r]};
        struct mtp_engine *ec = NULL, *eg = NULL;
        if (mtp_engine_create(model, g_cpu, &opt, &ec) ||
            mtp_engine_create(model, g_cuda, &opt, &eg))
            fail_msg("mtp-mini: %s", mtp_error_message());
        tree_forward(ec, prompt, 12, want);
        tree_forward(eg, prompt, 12, got); /* first: expert tables uploaded */
        waits[r] = tree_forward(eg, prompt, 12, got);
        static const struct mtp_tolerance tol = {
            .atol = 1e-3, .rtol = 1e-3, .min_cosine = 0.9999,
            .why = "a whole forward: reduction orders and expf differ, BF16 weights alike"};
        assert_true(mtp_compare("tree verification logits", got, want, (size_t)5 * V, &tol,
                                NULL));
        printf("[  INFO    ] mtp-mini tree verification (5 nodes), %d of %d layers: worst "
               "|cuda - cpu| logit %.3g, host waits %ld\n", depth[r], layers,
               worst_abs(got, want, (size_t)5 * V), waits[r]);
        mtp_engine_free(eg);
        mtp_engine_free(ec);
    }
    /* Per forward: the key lists once, the logits and the experts-touched
     * routing once each; nothing per layer (before: 3 per layer for the keys
     * and 5 per MoE layer). */
    if (waits[0] >= 0) {
        assert_int_equal(waits[1], waits[0]);
        assert_true(waits[1] <= 6);
    }
    free(want);
    free(got);
    mtp_model_free(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemv_9_to_16),
        cmocka_unit_test(test_moe_device_plan),
        cmocka_unit_test(test_tree_keys_once),
        cmocka_unit_test(test_tree_verify_engine),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    if (failed == 0 && !g_cuda) {
        printf("test_cuda_round_trips: skipped (%s); exit 77 so ctest reports Skipped\n",
               g_pair.why);
        return 77;
    }
    return failed;
}

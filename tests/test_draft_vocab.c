/*
 * test_draft_vocab.c - the draft vocabulary (engine/draft_vocab.h,
 * spec/decoding.md "Draft vocabulary"):
 *   - token_frequencies.bin: the shipped files load; damaged ones are refused
 *     with the file and the field named; the ranking is total (ties to the
 *     lower id);
 *   - (the row gather for every dtype, CPU and CUDA: test_cuda_draft_vocab.c)
 *   - lossless sampling: speculative sampling with drafts from a subset
 *     (q renormalised over it, 0 outside) emits tokens distributed as the
 *     target, ids outside the subset included (chi-square; and the test
 *     fails for an unrenormalised q);
 *   - greedy speculative decoding with a draft vocabulary equals the baseline
 *     token for token on every shipped model (exact and chain, K = 1..3), the
 *     drafts come from the subset, and the engine's subset logits equal the
 *     full head's logits at those ids bitwise.
 *
 *   ctest --test-dir build -R draft_vocab
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/decode.h"
#include "engine/draft_vocab.h"
#include "core/error.h"
#include "engine/rng.h"
#include "engine/sampling.h"
#include "engine/tokenizer.h"
#include "experiments/dataset.h"
#include "kernels/backend.h"
#include "tests/support/test_files.h"
#include "tests/support/shipped_model.h"

/* ---- token_frequencies.bin ---------------------------------------------- */

static void put_le(unsigned char *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

/* A valid file image for COUNTS [V] into BUF (24 + 8V bytes). */
static size_t freq_image(unsigned char *buf, const uint64_t *counts, int V)
{
    uint64_t total = 0;
    memcpy(buf, "MTPFREQ1", 8);
    put_le(buf + 8, (uint64_t)V, 4);
    put_le(buf + 12, 0, 4);
    for (int i = 0; i < V; i++) {
        put_le(buf + 24 + 8 * i, counts[i], 8);
        total += counts[i];
    }
    put_le(buf + 16, total, 8);
    return 24 + 8 * (size_t)V;
}

static void expect_rejected(const char *path, int V, const char *field)
{
    uint64_t *c = NULL;
    assert_int_equal(mtp_token_freq_load(path, V, &c), MTP_ERR);
    assert_null(c);
    const char *msg = mtp_error_message();
    if (!strstr(msg, path) || !strstr(msg, field))
        fail_msg("message should name %s and '%s': %s", path, field, msg);
}

static void test_freq_file_rejections(void **state)
{
    (void)state;
    char dir[] = "/tmp/mtp_dv_XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/%s", dir, MTP_TOKEN_FREQ_FILE);
    enum { V = 8 };
    uint64_t counts[V] = {5, 9, 9, 0, 1, 30, 2, 9};
    unsigned char img[24 + 8 * V + 8];
    size_t n = freq_image(img, counts, V);

    test_write_bytes(path, (const char *)img, n);
    uint64_t *c = NULL;
    assert_int_equal(mtp_token_freq_load(path, V, &c), MTP_OK);
    assert_memory_equal(c, counts, sizeof counts);
    free(c);

    expect_rejected(path, V + 1, "vocab_size"); /* another tokenizer */
    img[0] = 'X';
    test_write_bytes(path, (const char *)img, n);
    expect_rejected(path, V, "magic");
    img[0] = 'M';
    img[12] = 1;
    test_write_bytes(path, (const char *)img, n);
    expect_rejected(path, V, "reserved");
    img[12] = 0;
    test_write_bytes(path, (const char *)img, n - 8); /* truncated */
    expect_rejected(path, V, "file size");
    test_write_bytes(path, (const char *)img, 10); /* shorter than the header */
    expect_rejected(path, V, "file size");
    put_le(img + 24 + 8 * 3, 7, 8); /* a count changed, total not */
    test_write_bytes(path, (const char *)img, n);
    expect_rejected(path, V, "total");
    put_le(img + 24 + 8 * 3, UINT64_MAX, 8); /* overflowing counts */
    test_write_bytes(path, (const char *)img, n);
    expect_rejected(path, V, "counts");
    remove(path);
    expect_rejected(path, V, MTP_TOKEN_FREQ_FILE); /* missing */
    rmdir(dir);
}

static void test_rank_ties_to_lower_id(void **state)
{
    (void)state;
    const uint64_t counts[8] = {5, 9, 9, 0, 1, 30, 2, 9};
    int32_t ids[8];
    mtp_draft_vocab_rank(counts, 8, 8, ids);
    const int32_t want[8] = {5, 1, 2, 7, 0, 6, 4, 3};
    assert_memory_equal(ids, want, sizeof want);
    mtp_draft_vocab_rank(counts, 8, 3, ids);
    assert_memory_equal(ids, want, 3 * sizeof *ids);
}

static void test_shipped_freq_files(void **state)
{
    (void)state;
    glob_t dirs;
    assert_int_equal(glob(MTP_SOURCE_DIR "/models/*/config.json", 0, NULL, &dirs), 0);
    for (size_t i = 0; i < dirs.gl_pathc; i++) {
        struct mtp_model *m;
        char *d = dirs.gl_pathv[i], path[600];
        *strrchr(d, '/') = 0;
        if (mtp_model_load(d, &m))
            fail_msg("%s", mtp_error_message());
        snprintf(path, sizeof path, "%s/%s", d, MTP_TOKEN_FREQ_FILE);
        uint64_t *c;
        if (mtp_token_freq_load(path, m->cfg.vocab_size, &c))
            fail_msg("%s", mtp_error_message());
        int seen = 0;
        for (int t = 0; t < m->cfg.vocab_size; t++)
            seen += c[t] > 0;
        assert_true(seen > m->cfg.vocab_size / 2); /* counts of a real corpus */
        free(c);
        mtp_model_free(m);
    }
    globfree(&dirs);
}

/* ---- lossless sampling with a subset (chi-square) ------------------------ */

enum { SV = 8, SN = 4 };
/* Subset: ids 5, 0, 3, 6 (most frequent first); ids 1, 2, 4, 7 are outside
 * and carry 0.40 of p_0 and 0.30 of p_1, so the residual must emit them. */
static const int32_t sub_ids[SN] = {5, 0, 3, 6};
static const float sp0[SV] = {0.20f, 0.10f, 0.15f, 0.15f, 0.05f, 0.10f, 0.15f, 0.10f};
static const float sp1[SV] = {0.05f, 0.05f, 0.10f, 0.30f, 0.10f, 0.20f, 0.15f, 0.05f};
/* Module logits over the subset for drafts 1 and 2 (any values: q is their softmax). */
static const float sl1[SN] = {1.0f, 0.2f, -0.5f, 0.7f};
static const float sl2[SN] = {-0.3f, 0.9f, 0.4f, 0.0f};

/* Critical value of chi-square with 7 degrees of freedom at p = 0.001 (the
 * seed is fixed, so the test is deterministic; see test_sampling.c). */
#define CHI2_DF7_P001 24.322

static double chi_square(const long *counts, const float *p, int n, long total)
{
    double x2 = 0;
    for (int i = 0; i < n; i++) {
        double e = (double)total * p[i];
        x2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    return x2;
}

/* TRIALS steps with K = 2 drafts chosen by mtp_draft_vocab_choose (what
 * decoding runs) and mtp_sampling_verify over the full vocabulary. WRONG:
 * q over the full vocabulary (unrestricted softmax of the logits, as if the
 * subset were not renormalised) while the draft is still drawn from the
 * subset. Counts the first emitted token, and the second when draft 1 was
 * accepted. */
static void subset_trials(long trials, bool wrong, long *first, long *second, long *n_second,
                          long *outside)
{
    const struct mtp_sampling s = {.temperature = 1.0f, .top_p = 1.0f, .top_k = 0};
    float p[3 * SV], q[2 * SV], sub_probs[SN], work[SV];
    int32_t iwork[SV];
    memcpy(p, sp0, sizeof sp0);
    memcpy(p + SV, sp1, sizeof sp1);
    memcpy(p + 2 * SV, sp0, sizeof sp0);
    struct mtp_rng rng;
    mtp_rng_seed_stream(&rng, 20251202, 0, 0, 0);
    *n_second = 0;
    *outside = 0;
    for (long t = 0; t < trials; t++) {
        int32_t d[2], sub;
        d[0] = mtp_draft_vocab_choose(&s, sub_ids, SN, sl1, mtp_rng_uniform(&rng), sub_probs,
                                      iwork, q, SV, &sub);
        assert_int_equal(d[0], sub_ids[sub]);
        d[1] = mtp_draft_vocab_choose(&s, sub_ids, SN, sl2, mtp_rng_uniform(&rng), sub_probs,
                                      iwork, q + SV, SV, &sub);
        if (wrong) { /* softmax over SV with the subset's logits and 0 elsewhere */
            float full[SV];
            mtp_draft_vocab_scatter(sub_ids, SN, sl1, 0.0f, full, SV);
            mtp_sampling_probs(&s, full, SV, q, NULL);
        }
        float u[3] = {mtp_rng_uniform(&rng), mtp_rng_uniform(&rng), mtp_rng_uniform(&rng)};
        int32_t fin;
        int a = mtp_sampling_verify(p, q, d, 2, SV, u, work, &fin);
        int32_t e0 = a == 0 ? fin : d[0];
        first[e0]++;
        bool in = false;
        for (int i = 0; i < SN; i++)
            in = in || sub_ids[i] == e0;
        *outside += !in;
        if (a >= 1) {
            second[a == 1 ? fin : d[1]]++;
            (*n_second)++;
        }
    }
}

static void test_subset_sampling_preserves_target(void **state)
{
    (void)state;
    const long trials = 200000;
    long first[SV] = {0}, second[SV] = {0}, n_second, outside;
    subset_trials(trials, false, first, second, &n_second, &outside);
    double x1 = chi_square(first, sp0, SV, trials), x2 = chi_square(second, sp1, SV, n_second);
    print_message("chi-square with a %d-of-%d draft vocabulary: first token %.2f, second %.2f "
                  "(%ld samples); critical %.3f; first tokens outside the subset %.4f "
                  "(target 0.40)\n",
                  SN, SV, x1, x2, n_second, CHI2_DF7_P001, (double)outside / trials);
    assert_true(n_second > trials / 5);
    assert_true(x1 < CHI2_DF7_P001);
    assert_true(x2 < CHI2_DF7_P001);
    /* Ids outside the subset are never drafted, so only the residual emits
     * them; their rate is p_0's mass outside the subset. */
    assert_true(fabs((double)outside / trials - 0.40) < 0.01);
}

static void test_subset_sampling_detects_wrong_q(void **state)
{
    (void)state;
    const long trials = 200000;
    long first[SV] = {0}, second[SV] = {0}, n_second, outside;
    subset_trials(trials, true, first, second, &n_second, &outside);
    assert_true(chi_square(first, sp0, SV, trials) > CHI2_DF7_P001);
}

/* ---- shipped models: greedy equality and bitwise subset logits ----------- */

enum { PROMPTS_PER_CATEGORY = 2, MAX_NEW = 32 };
static const int vocab_sizes[] = {1024, 64};

static void shipped_load(const char *dir, struct test_shipped *s)
{
    memset(s, 0, sizeof *s);
    if (test_shipped_open(s, dir))
        fail_msg("%s: %s", dir, mtp_error_message());
}

static bool in_subset(const struct mtp_draft_vocab *dv, int32_t t)
{
    for (int i = 0; i < dv->n; i++)
        if (dv->ids[i] == t)
            return true;
    return false;
}

/* Baseline vs exact and chain K = 1..3 with each draft vocabulary on one
 * prompt. Steps one at a time so every step's drafts are checked to lie in
 * the subset. Returns the drafts accepted. */
static long check_prompt(struct test_shipped *s, const char *label, const int32_t *ids, int n)
{
    const struct mtp_model *m = s->model;
    int D = m->cfg.num_nextn_predict_layers;
    struct mtp_decode_params bp = {
        .drafting = MTP_DECODE_DRAFTING_NONE,
        .sampling = {.temperature = 0.0f, .top_p = 1.0f, .top_k = 0},
        .max_new_tokens = MAX_NEW,
        .eos_token_id = m->cfg.eos_token_id,
    };
    struct mtp_decode_result base;
    assert_int_equal(mtp_decode_run(s->engine, &bp, ids, n, &base), MTP_OK);
    long accepted = 0;
    for (size_t v = 0; v < sizeof vocab_sizes / sizeof *vocab_sizes; v++) {
        const struct mtp_draft_vocab *dv;
        assert_int_equal(mtp_engine_draft_vocab(s->engine, vocab_sizes[v], &dv), MTP_OK);
        for (int chain = 0; chain <= 1; chain++)
            for (int K = 1; K <= 3 && (chain || K <= D); K++) {
                /* The tiny vocabulary (many rejections) at one depth only: time. */
                if (vocab_sizes[v] < 512 && K != 2)
                    continue;
                struct mtp_decode_params p = bp;
                p.drafting = chain ? MTP_DECODE_DRAFTING_CHAIN : MTP_DECODE_DRAFTING_EXACT;
                p.depth = K;
                p.draft_vocab = vocab_sizes[v];
                struct mtp_decode *d;
                assert_int_equal(mtp_decode_create(s->engine, &p, &d), MTP_OK);
                assert_int_equal(mtp_decode_prefill(d, ids, n), MTP_OK);
                bool done = false;
                while (!done) {
                    assert_int_equal(mtp_decode_step(d, &done), MTP_OK);
                    int32_t drafts[8];
                    int k = mtp_decode_last_drafts(d, drafts, 8);
                    for (int i = 0; i < k; i++)
                        if (!in_subset(dv, drafts[i]))
                            fail_msg("%s: draft %d (id %d) outside the %d-id draft vocabulary",
                                     label, i + 1, drafts[i], dv->n);
                }
                const struct mtp_decode_result *r = mtp_decode_result(d);
                if (r->n_output != base.n_output ||
                    memcmp(r->output, base.output, sizeof(int32_t) * base.n_output))
                    fail_msg("%s: %s K=%d draft_vocab %d: greedy tokens differ from the "
                             "baseline", label, chain ? "chain" : "exact", K, vocab_sizes[v]);
                for (int st = 0; st < r->n_steps; st++)
                    accepted += r->accepted[st];
                mtp_decode_free(d);
            }
    }
    mtp_decode_result_free(&base);
    return accepted;
}

/* The engine's subset head against its full head on the same module rows:
 * bitwise equal at the subset's ids. */
static void check_subset_logits(struct test_shipped *s, const int32_t *ids, int n)
{
    const struct mtp_model *m = s->model;
    int V = m->cfg.vocab_size, d = m->cfg.hidden_size;
    const struct mtp_draft_vocab *dv;
    assert_int_equal(mtp_engine_draft_vocab(s->engine, 1024, &dv), MTP_OK);
    float *hid = calloc((size_t)n * d, sizeof *hid), *full = malloc((size_t)V * sizeof *full);
    float *sub = malloc((size_t)dv->n * sizeof *sub);
    assert_int_equal(mtp_engine_prefill(s->engine, ids, n, NULL, hid), MTP_OK);
    mtp_engine_truncate(s->engine, 1, 0);
    assert_int_equal(mtp_engine_mtp_forward_last(s->engine, 1, ids + 1, hid, n - 1, 0, full, NULL),
                     MTP_OK);
    assert_int_equal(mtp_engine_mtp_forward_draft(s->engine, 1, dv, ids + 1, hid, n - 1, 0, sub,
                                                  NULL),
                     MTP_OK);
    for (int i = 0; i < dv->n; i++)
        if (memcmp(&sub[i], &full[dv->ids[i]], sizeof(float)) != 0)
            fail_msg("subset logit %d (id %d): %.9g, full head %.9g", i, dv->ids[i], sub[i],
                     full[dv->ids[i]]);
    free(hid);
    free(full);
    free(sub);
}

static void shipped_model_case(const char *dir)
{
    struct test_shipped s;
    shipped_load(dir, &s);
    glob_t files;
    assert_int_equal(glob(MTP_SOURCE_DIR "/datasets/*.jsonl", 0, NULL, &files), 0);
    assert_true(files.gl_pathc >= 4);
    long accepted = 0;
    for (size_t f = 0; f < files.gl_pathc; f++) {
        struct mtp_dataset ds;
        if (mtp_dataset_load(files.gl_pathv[f], PROMPTS_PER_CATEGORY, &ds))
            fail_msg("%s", mtp_error_message());
        for (int i = 0; i < ds.n_prompts; i++) {
            int32_t *ids = NULL;
            int n = 0;
            const char *text = ds.prompts[i].text;
            assert_int_equal(mtp_tokenizer_encode(s.tok, text, strlen(text), true, &ids, &n),
                             MTP_OK);
            char label[700];
            snprintf(label, sizeof label, "%s: %s prompt %s", dir, files.gl_pathv[f],
                     ds.prompts[i].id);
            accepted += check_prompt(&s, label, ids, n);
            if (f == 0 && i == 0 && n >= 2)
                check_subset_logits(&s, ids, n);
            free(ids);
        }
        mtp_dataset_free(&ds);
    }
    globfree(&files);
    print_message("%s: drafts accepted with draft vocabularies: %ld\n", dir, accepted);
    assert_true(accepted > 0); /* rollback after acceptance was exercised */
    test_shipped_close(&s);
}

static void test_greedy_equals_baseline_shipped(void **state)
{
    (void)state;
    glob_t dirs;
    assert_int_equal(glob(MTP_SOURCE_DIR "/models/*/config.json", 0, NULL, &dirs), 0);
    assert_true(dirs.gl_pathc >= 1);
    for (size_t i = 0; i < dirs.gl_pathc; i++) {
        *strrchr(dirs.gl_pathv[i], '/') = 0;
        shipped_model_case(dirs.gl_pathv[i]);
    }
    globfree(&dirs);
}

/* Sampled decoding with a tiny draft vocabulary on the shipped model: every
 * accepted draft is a subset id, ids outside the subset are still emitted
 * (by the residual or the bonus token), and a fixed seed repeats bitwise. */
static void test_sampled_decode_shipped(void **state)
{
    (void)state;
    struct test_shipped s;
    shipped_load(MTP_SOURCE_DIR "/models/mtp-mini", &s);
    const struct mtp_draft_vocab *dv;
    assert_int_equal(mtp_engine_draft_vocab(s.engine, 64, &dv), MTP_OK);
    static const int32_t prompt[] = {0, 400, 31, 77, 1200, 9, 15};
    long outside = 0, drafted = 0;
    for (int chain = 0; chain <= 1; chain++) {
        struct mtp_decode_params p = {
            .drafting = chain ? MTP_DECODE_DRAFTING_CHAIN : MTP_DECODE_DRAFTING_EXACT,
            .depth = 2, .draft_vocab = 64,
            .sampling = {.temperature = 1.0f, .top_p = 0.95f, .top_k = 0},
            .max_new_tokens = 96, .eos_token_id = -1,
        };
        struct mtp_decode_result r[2];
        for (int rep = 0; rep < 2; rep++) {
            mtp_rng_seed_stream(&p.rng, 7, 0, 0, 0);
            assert_int_equal(mtp_decode_run(s.engine, &p, prompt, 7, &r[rep]), MTP_OK);
        }
        assert_int_equal(r[0].n_output, r[1].n_output);
        assert_memory_equal(r[0].output, r[1].output, sizeof(int32_t) * r[0].n_output);
        for (int i = 0; i < r[0].n_output; i++) {
            bool in = in_subset(dv, r[0].output[i]);
            if (r[0].from_draft[i] && !in)
                fail_msg("accepted draft %d (id %d) outside the draft vocabulary", i,
                         r[0].output[i]);
            drafted += r[0].from_draft[i];
            outside += !in;
        }
        mtp_decode_result_free(&r[0]);
        mtp_decode_result_free(&r[1]);
    }
    print_message("sampled, draft_vocab 64: %ld accepted drafts, %ld emitted ids outside the "
                  "subset\n", drafted, outside);
    assert_true(drafted > 0 && outside > 0);
    test_shipped_close(&s);
}

/* A draft vocabulary without its file, or out of range: errors, before decoding. */
static void test_decode_rejections(void **state)
{
    (void)state;
    struct test_shipped s;
    shipped_load(MTP_SOURCE_DIR "/models/mtp-mini", &s);
    int V = s.model->cfg.vocab_size;
    struct mtp_decode_params p = {
        .drafting = MTP_DECODE_DRAFTING_EXACT, .depth = 1,
        .sampling = {.temperature = 0.0f, .top_p = 1.0f}, .max_new_tokens = 4,
        .eos_token_id = -1, .draft_vocab = V + 1,
    };
    struct mtp_decode *d = NULL;
    assert_int_equal(mtp_decode_create(s.engine, &p, &d), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "draft_vocab"));
    p.draft_vocab = -3;
    assert_int_equal(mtp_decode_create(s.engine, &p, &d), MTP_ERR);
    /* A model directory without token_frequencies.bin. */
    char *saved = s.model->dir;
    s.model->dir = (char *)"/nonexistent-model-dir";
    p.draft_vocab = 777;
    assert_int_equal(mtp_decode_create(s.engine, &p, &d), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "/nonexistent-model-dir/" MTP_TOKEN_FREQ_FILE));
    s.model->dir = saved;
    assert_null(d);
    test_shipped_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_freq_file_rejections),
        cmocka_unit_test(test_rank_ties_to_lower_id),
        cmocka_unit_test(test_shipped_freq_files),
        cmocka_unit_test(test_subset_sampling_preserves_target),
        cmocka_unit_test(test_subset_sampling_detects_wrong_q),
        cmocka_unit_test(test_decode_rejections),
        cmocka_unit_test(test_sampled_decode_shipped),
        cmocka_unit_test(test_greedy_equals_baseline_shipped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

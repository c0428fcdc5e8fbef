/*
 * test_batch_forward.c - one forward over B sequences is batch-invariant
 * (engine.h "Sequences", docs/design.md §4): for sequences of different
 * lengths at different positions, decoded together in one ragged batch,
 *   - each sequence's logits, hidden states and cache rows (every layer, all
 *     rows written so far) are bitwise those of the same sequence run alone
 *     on a one-sequence engine, with chain-shaped and tree-shaped segments
 *     mixed in one batch;
 *   - the same for an MTP module forward batched across sequences (every
 *     row's logits, and the last row of each segment);
 *   - the experts touched per segment equal those of the sequence alone, and
 *     the batch's count is their union;
 *   - a bad batch (repeated sequence, unknown sequence, too many tokens) is
 *     an error naming what is wrong;
 * on both shipped models (models/mtp-mini, models/mtp-v3), CPU, one thread.
 *
 *   ctest --test-dir build -R batch_forward
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine.h"
#include "engine/engine_tree.h"

enum { B = 4, MAX_POS = 64, MAX_BATCH = 48, MAX_STEP = 8, TREE_NODES = 5, MAX_MOE = 64 };

/* Prompt lengths and step lengths (chain K+1, or the tree's nodes) per sequence. */
static const int prompt_len[B] = {3, 11, 6, 9};
static const int step_len[B] = {1, 4, TREE_NODES, 2};
static const int tree_seq = 2; /* sequence 2's step is tree-shaped */
/* The tree of sequence 2's step, depth-major: a root and two branches. */
static const int tree_parent[TREE_NODES] = {-1, 0, 0, 1, 2};

struct fixture {
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_engine *batch; /* B sequences */
    struct mtp_engine *alone; /* one sequence */
    int32_t prompt[B][16];
    int32_t step[B][MAX_STEP];
    int32_t tree_pos[TREE_NODES], tree_off[TREE_NODES + 1], tree_rows[TREE_NODES * TREE_NODES];
    struct mtp_tree_batch tree;
};

static void make_tree(struct fixture *f, int start)
{
    f->tree_off[0] = 0;
    for (int i = 0; i < TREE_NODES; i++) {
        int path[TREE_NODES], n = 0;
        for (int j = i; j >= 0; j = tree_parent[j])
            path[n++] = j;
        f->tree_pos[i] = start + n - 1;
        for (int k = 0; k < n; k++) /* root first */
            f->tree_rows[f->tree_off[i] + k] = start + path[n - 1 - k];
        f->tree_off[i + 1] = f->tree_off[i] + n;
    }
    f->tree = (struct mtp_tree_batch){
        .start_row = start,
        .pos = f->tree_pos,
        .keys = {.n_prefix = start, .off = f->tree_off, .rows = f->tree_rows}};
}

static int open_model(void **state, const char *name)
{
    struct fixture *f = calloc(1, sizeof *f);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/%s", MTP_SOURCE_DIR, name);
    struct mtp_engine_options opt = {.max_positions = MAX_POS, .max_batch = MAX_BATCH,
                                     .poison_rollback = true};
    struct mtp_engine_options one = opt;
    opt.max_seqs = B;
    if (mtp_model_load(dir, &f->model) || mtp_backend_cpu_create(1, &f->be) ||
        mtp_engine_create(f->model, f->be, &opt, &f->batch) ||
        mtp_engine_create(f->model, f->be, &one, &f->alone)) {
        fprintf(stderr, "%s: %s\n", dir, mtp_error_message());
        return -1;
    }
    int V = f->model->cfg.vocab_size;
    for (int s = 0; s < B; s++) {
        for (int i = 0; i < prompt_len[s]; i++)
            f->prompt[s][i] = (int32_t)((s * 977 + i * 131 + 7) % V);
        for (int i = 0; i < step_len[s]; i++)
            f->step[s][i] = (int32_t)((s * 613 + i * 251 + 29) % V);
    }
    make_tree(f, prompt_len[tree_seq]);
    *state = f;
    return 0;
}

static int open_mini(void **state) { return open_model(state, "mtp-mini"); }
static int open_v3(void **state) { return open_model(state, "mtp-v3"); }

static int close_model(void **state)
{
    struct fixture *f = *state;
    if (f) {
        mtp_engine_free(f->batch);
        mtp_engine_free(f->alone);
        mtp_backend_free(f->be);
        mtp_model_free(f->model);
        free(f);
    }
    return 0;
}

static void assert_bits(const float *a, const float *b, size_t n, const char *what, int seq)
{
    if (memcmp(a, b, n * sizeof(float)) == 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            fail_msg("%s of sequence %d differs at %zu: %.9g (batch) vs %.9g (alone)", what, seq,
                     i, a[i], b[i]);
}

/* Rows 0..ROWS-1 of every cache layer of sequence SEQ in the batch engine
 * against those of the alone engine. */
static void assert_cache(struct fixture *f, int seq, int first_layer, int last_layer, int rows)
{
    int cw = mtp_config_cache_width(&f->model->cfg);
    float *a = malloc((size_t)rows * cw * sizeof(float));
    float *b = malloc((size_t)rows * cw * sizeof(float));
    for (int l = first_layer; l < last_layer; l++) {
        mtp_engine_seq_read_cache(f->batch, seq, l, 0, rows, a);
        mtp_engine_read_cache(f->alone, l, 0, rows, b);
        assert_bits(a, b, (size_t)rows * cw, "cache rows", seq);
    }
    free(a);
    free(b);
}

/* The segments of the step: sequence s at the end of its prompt. */
static void step_segments(const struct fixture *f, struct mtp_segment *segs, int32_t *tokens)
{
    int t = 0;
    for (int s = 0; s < B; s++) {
        segs[s] = (struct mtp_segment){.seq = s, .n = step_len[s], .start_pos = prompt_len[s],
                                       .tree = s == tree_seq ? &f->tree : NULL};
        memcpy(tokens + t, f->step[s], (size_t)step_len[s] * sizeof(int32_t));
        t += step_len[s];
    }
}

/* Prompts of every sequence in one batch (chain segments from position 0). */
static void batch_prompts(struct fixture *f, float *hidden)
{
    struct mtp_segment segs[B];
    int32_t tokens[MAX_BATCH];
    int t = 0;
    for (int s = 0; s < B; s++) {
        segs[s] = (struct mtp_segment){.seq = s, .n = prompt_len[s], .start_pos = 0};
        memcpy(tokens + t, f->prompt[s], (size_t)prompt_len[s] * sizeof(int32_t));
        t += prompt_len[s];
    }
    if (mtp_engine_forward_batch(f->batch, tokens, segs, B, NULL, hidden))
        fail_msg("%s", mtp_error_message());
}

/* Sequence S alone on the one-sequence engine: prompt, then its step. */
static void run_alone(struct fixture *f, int s, float *prompt_hidden, float *logits,
                      float *hidden)
{
    mtp_engine_truncate(f->alone, 0, 0);
    for (int k = 1; k <= f->model->cfg.num_nextn_predict_layers; k++)
        mtp_engine_truncate(f->alone, k, 0);
    if (mtp_engine_forward(f->alone, f->prompt[s], prompt_len[s], 0, NULL, prompt_hidden))
        fail_msg("%s", mtp_error_message());
    int rc = s == tree_seq ? mtp_engine_forward_tree(f->alone, f->step[s], step_len[s], &f->tree,
                                                     logits, hidden)
                           : mtp_engine_forward(f->alone, f->step[s], step_len[s],
                                                prompt_len[s], logits, hidden);
    if (rc)
        fail_msg("%s", mtp_error_message());
}

static int total(const int *len)
{
    int n = 0;
    for (int s = 0; s < B; s++)
        n += len[s];
    return n;
}

/* The main model: prompts batched, then one step with chain and tree
 * segments; each sequence against itself alone. */
static void test_main_batch_invariant(void **state)
{
    struct fixture *f = *state;
    int V = f->model->cfg.vocab_size, d = f->model->cfg.hidden_size, L = f->model->cfg.num_hidden_layers;
    int np = total(prompt_len), ns = total(step_len);
    float *bp_hidden = malloc((size_t)np * d * sizeof(float));
    float *b_logits = malloc((size_t)ns * V * sizeof(float));
    float *b_hidden = malloc((size_t)ns * d * sizeof(float));
    float *a_logits = malloc((size_t)MAX_STEP * V * sizeof(float));
    float *a_hidden = malloc((size_t)MAX_STEP * d * sizeof(float));
    float *ap_hidden = malloc((size_t)16 * d * sizeof(float));
    int n_moe = mtp_engine_num_moe_layers(f->batch), seg_touched[B][MAX_MOE], all[MAX_MOE];
    assert_true(n_moe <= MAX_MOE);

    batch_prompts(f, bp_hidden);
    struct mtp_segment segs[B];
    int32_t tokens[MAX_BATCH];
    step_segments(f, segs, tokens);
    if (mtp_engine_forward_batch(f->batch, tokens, segs, B, b_logits, b_hidden))
        fail_msg("%s", mtp_error_message());
    mtp_engine_last_experts_touched(f->batch, all, MAX_MOE);
    for (int s = 0; s < B; s++)
        mtp_engine_last_experts_touched_segment(f->batch, s, seg_touched[s], MAX_MOE);

    int tp = 0, ts = 0;
    for (int s = 0; s < B; s++) {
        run_alone(f, s, ap_hidden, a_logits, a_hidden);
        assert_bits(bp_hidden + (size_t)tp * d, ap_hidden, (size_t)prompt_len[s] * d,
                    "prompt hidden states", s);
        assert_bits(b_logits + (size_t)ts * V, a_logits, (size_t)step_len[s] * V, "logits", s);
        assert_bits(b_hidden + (size_t)ts * d, a_hidden, (size_t)step_len[s] * d,
                    "hidden states", s);
        int end = prompt_len[s] + step_len[s];
        assert_int_equal(mtp_engine_seq_cache_len(f->batch, s, 0), end);
        assert_cache(f, s, 0, L, end);
        int alone_touched[MAX_MOE];
        mtp_engine_last_experts_touched(f->alone, alone_touched, MAX_MOE);
        for (int l = 0; l < n_moe; l++) {
            assert_int_equal(seg_touched[s][l], alone_touched[l]);
            assert_true(all[l] >= seg_touched[s][l]); /* the batch's union */
        }
        tp += prompt_len[s];
        ts += step_len[s];
    }
    free(bp_hidden), free(b_logits), free(b_hidden), free(a_logits), free(a_hidden);
    free(ap_hidden);
}

/* The union of experts the batch touched is at most the sum of the segments'. */
static void test_experts_union_bounded(void **state)
{
    struct fixture *f = *state;
    int n_moe = mtp_engine_num_moe_layers(f->batch);
    if (n_moe == 0)
        skip();
    int d = f->model->cfg.hidden_size;
    float *hidden = malloc((size_t)total(prompt_len) * d * sizeof(float));
    for (int s = 0; s < B; s++)
        for (int k = 0; k <= f->model->cfg.num_nextn_predict_layers; k++)
            mtp_engine_seq_truncate(f->batch, s, k, 0);
    batch_prompts(f, hidden);
    int all[MAX_MOE], seg[MAX_MOE], sum[MAX_MOE] = {0};
    mtp_engine_last_experts_touched(f->batch, all, MAX_MOE);
    for (int s = 0; s < B; s++) {
        mtp_engine_last_experts_touched_segment(f->batch, s, seg, MAX_MOE);
        for (int l = 0; l < n_moe; l++) {
            sum[l] += seg[l];
            assert_true(all[l] >= seg[l]);
        }
    }
    for (int l = 0; l < n_moe; l++)
        assert_true(all[l] <= sum[l] && all[l] <= f->model->cfg.n_routed_experts);
    free(hidden);
}

/* MTP module 1 over every sequence's prompt (chain segments), all rows'
 * logits, then module 1 one step on, last rows only. */
static void test_mtp_batch_invariant(void **state)
{
    struct fixture *f = *state;
    if (f->model->cfg.num_nextn_predict_layers < 1)
        skip();
    int V = f->model->cfg.vocab_size, d = f->model->cfg.hidden_size, L = f->model->cfg.num_hidden_layers;
    int np = total(prompt_len);
    for (int s = 0; s < B; s++)
        for (int k = 0; k <= f->model->cfg.num_nextn_predict_layers; k++)
            mtp_engine_seq_truncate(f->batch, s, k, 0);
    float *hidden = malloc((size_t)np * d * sizeof(float));
    float *b_logits = malloc((size_t)np * V * sizeof(float));
    float *b_out = malloc((size_t)np * d * sizeof(float));
    float *b_last = malloc((size_t)B * V * sizeof(float));
    float *a_logits = malloc((size_t)16 * V * sizeof(float));
    float *a_out = malloc((size_t)16 * d * sizeof(float));
    float *a_hidden = malloc((size_t)16 * d * sizeof(float));
    batch_prompts(f, hidden);

    /* Module 1 at positions 0..len-2 of each sequence: tokens shifted by one. */
    struct mtp_segment segs[B];
    int32_t tokens[MAX_BATCH];
    float *h_in = malloc((size_t)np * d * sizeof(float));
    int t = 0, tp = 0;
    for (int s = 0; s < B; s++) {
        int n = prompt_len[s] - 1;
        segs[s] = (struct mtp_segment){.seq = s, .n = n, .start_pos = 0};
        memcpy(tokens + t, f->prompt[s] + 1, (size_t)n * sizeof(int32_t));
        memcpy(h_in + (size_t)t * d, hidden + (size_t)tp * d, (size_t)n * d * sizeof(float));
        t += n;
        tp += prompt_len[s];
    }
    if (mtp_engine_mtp_forward_batch(f->batch, 1, NULL, tokens, h_in, segs, B, false, b_logits,
                                     b_out))
        fail_msg("%s", mtp_error_message());
    /* One more row per sequence (the last prompt position), last-row logits. */
    int32_t next[B];
    float *h_next = malloc((size_t)B * d * sizeof(float));
    tp = 0;
    for (int s = 0; s < B; s++) {
        segs[s] = (struct mtp_segment){.seq = s, .n = 1, .start_pos = prompt_len[s] - 1};
        next[s] = f->step[s][0];
        memcpy(h_next + (size_t)s * d, hidden + (size_t)(tp + prompt_len[s] - 1) * d,
               (size_t)d * sizeof(float));
        tp += prompt_len[s];
    }
    if (mtp_engine_mtp_forward_batch(f->batch, 1, NULL, next, h_next, segs, B, true, b_last, NULL))
        fail_msg("%s", mtp_error_message());

    t = 0;
    for (int s = 0; s < B; s++) {
        int n = prompt_len[s] - 1;
        mtp_engine_truncate(f->alone, 0, 0);
        mtp_engine_truncate(f->alone, 1, 0);
        if (mtp_engine_forward(f->alone, f->prompt[s], prompt_len[s], 0, NULL, a_hidden) ||
            mtp_engine_mtp_forward(f->alone, 1, f->prompt[s] + 1, a_hidden, n, 0, a_logits,
                                   a_out))
            fail_msg("%s", mtp_error_message());
        assert_bits(b_logits + (size_t)t * V, a_logits, (size_t)n * V, "module 1 logits", s);
        assert_bits(b_out + (size_t)t * d, a_out, (size_t)n * d, "module 1 hidden", s);
        if (mtp_engine_mtp_forward_last(f->alone, 1, &f->step[s][0], a_hidden + (size_t)n * d, 1,
                                        n, a_logits, NULL))
            fail_msg("%s", mtp_error_message());
        assert_bits(b_last + (size_t)s * V, a_logits, (size_t)V, "module 1 last-row logits", s);
        assert_int_equal(mtp_engine_seq_cache_len(f->batch, s, 1), prompt_len[s]);
        assert_cache(f, s, L, L + 1, prompt_len[s]);
        t += n;
    }
    free(hidden), free(b_logits), free(b_out), free(b_last), free(a_logits), free(a_out);
    free(a_hidden), free(h_in), free(h_next);
}

static void expect_error(int rc, const char *part)
{
    assert_int_equal(rc, MTP_ERR);
    if (!strstr(mtp_error_message(), part))
        fail_msg("message \"%s\" lacks \"%s\"", mtp_error_message(), part);
}

/* Bad batches are refused before any work, naming the problem. */
static void test_bad_batches(void **state)
{
    struct fixture *f = *state;
    int32_t tokens[MAX_BATCH + 1] = {0};
    for (int s = 0; s < B; s++)
        mtp_engine_seq_truncate(f->batch, s, 0, 0);
    struct mtp_segment twice[2] = {{.seq = 1, .n = 1}, {.seq = 1, .n = 1}};
    expect_error(mtp_engine_forward_batch(f->batch, tokens, twice, 2, NULL, NULL),
                 "both of sequence 1");
    struct mtp_segment unknown = {.seq = B, .n = 1};
    expect_error(mtp_engine_forward_batch(f->batch, tokens, &unknown, 1, NULL, NULL),
                 "sequence 4");
    struct mtp_segment big = {.seq = 0, .n = MAX_BATCH + 1};
    expect_error(mtp_engine_forward_batch(f->batch, tokens, &big, 1, NULL, NULL),
                 "exceeds max_batch");
    struct mtp_segment ahead = {.seq = 2, .n = 1, .start_pos = 5};
    expect_error(mtp_engine_forward_batch(f->batch, tokens, &ahead, 1, NULL, NULL),
                 "segment 0 (sequence 2)");
    struct mtp_segment many[B + 1];
    for (int s = 0; s < B + 1; s++)
        many[s] = (struct mtp_segment){.seq = s, .n = 1};
    expect_error(mtp_engine_forward_batch(f->batch, tokens, many, B + 1, NULL, NULL),
                 "max_seqs");
}

/* Caches for more sequences than the machine's memory holds are refused
 * before any allocation, with the bytes needed. */
static void test_cache_memory_checked(void **state)
{
    struct fixture *f = *state;
    struct mtp_engine_options opt = {.max_positions = 1 << 20, .max_batch = 8,
                                     .max_seqs = 1 << 16};
    struct mtp_engine *e = NULL;
    expect_error(mtp_engine_create(f->model, f->be, &opt, &e), "of 65536 sequences need");
    assert_null(e);
    assert_non_null(strstr(mtp_error_message(), " bytes"));
}

int main(void)
{
    const struct CMUnitTest mini[] = {
        cmocka_unit_test(test_main_batch_invariant),
        cmocka_unit_test(test_experts_union_bounded),
        cmocka_unit_test(test_mtp_batch_invariant),
        cmocka_unit_test(test_bad_batches),
        cmocka_unit_test(test_cache_memory_checked),
    };
    const struct CMUnitTest v3[] = {
        cmocka_unit_test(test_main_batch_invariant),
        cmocka_unit_test(test_experts_union_bounded),
        cmocka_unit_test(test_mtp_batch_invariant),
    };
    int failed = cmocka_run_group_tests_name("mtp-mini", mini, open_mini, close_model);
    failed += cmocka_run_group_tests_name("mtp-v3", v3, open_v3, close_model);
    return failed;
}

/*
 * test_greedy_categories.c - the central invariant of docs/design.md §5 on the
 * shipped model and the shipped prompts: with greedy decoding, MTP speculative
 * decoding emits exactly the baseline's tokens, for every depth 1..D+2, with
 * exact drafting (K <= D) and chained drafting, on prompts of every category
 * in datasets/ (their natural drafts, no oracle: acceptance is whatever the
 * trained modules achieve). Also checks that drafts were really accepted, so
 * the test exercises rollback after both acceptance and rejection. Runs once
 * per shipped model (every models/<name>/ directory in the source tree).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/decode.h"
#include "core/error.h"
#include "engine/tokenizer.h"
#include "experiments/dataset.h"
#include "tests/support/shipped_model.h"

enum { PROMPTS_PER_CATEGORY = 2, MAX_NEW = 40 };

static int shipped_setup(void **state)
{
    struct test_shipped *s = *state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/%s", MTP_SOURCE_DIR, s->name);
    return test_shipped_open(s, dir);
}

static int shipped_teardown(void **state)
{
    test_shipped_close(*state);
    return 0;
}

static struct mtp_decode_params greedy_params(const struct mtp_model *m,
                                              enum mtp_decode_drafting drafting, int depth)
{
    struct mtp_decode_params p = {
        .drafting = drafting,
        .depth = depth,
        .chain_module = 1,
        .sampling = {.temperature = 0.0f, .top_p = 1.0f, .top_k = 0},
        .max_new_tokens = MAX_NEW,
        .eos_token_id = m->cfg.eos_token_id,
    };
    return p;
}

/* Baseline vs every MTP configuration on one prompt; returns accepted drafts. */
static long check_prompt(struct test_shipped *s, const char *label, const int32_t *ids, int n)
{
    const struct mtp_model *m = s->model;
    int D = m->cfg.num_nextn_predict_layers;
    struct mtp_decode_params bp = greedy_params(m, MTP_DECODE_DRAFTING_NONE, 0);
    struct mtp_decode_result base;
    assert_int_equal(mtp_decode_run(s->engine, &bp, ids, n, &base), MTP_OK);
    long accepted = 0;
    for (int chain = 0; chain <= 1; chain++) {
        int max_k = chain ? D + 2 : D;
        for (int K = 1; K <= max_k; K++) {
            struct mtp_decode_params p = greedy_params(
                m, chain ? MTP_DECODE_DRAFTING_CHAIN : MTP_DECODE_DRAFTING_EXACT, K);
            struct mtp_decode_result r;
            assert_int_equal(mtp_decode_run(s->engine, &p, ids, n, &r), MTP_OK);
            if (r.n_output != base.n_output ||
                memcmp(r.output, base.output, sizeof(int32_t) * base.n_output))
                fail_msg("%s: %s K=%d: greedy MTP tokens differ from the baseline", label,
                         chain ? "chain" : "exact", K);
            for (int st = 0; st < r.n_steps; st++)
                accepted += r.accepted[st];
            mtp_decode_result_free(&r);
        }
    }
    mtp_decode_result_free(&base);
    return accepted;
}

static void test_greedy_mtp_equals_baseline_every_category(void **state)
{
    struct test_shipped *s = *state;
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
            assert_int_equal(mtp_tokenizer_encode(s->tok, text, strlen(text), true, &ids, &n),
                             MTP_OK);
            char label[512];
            snprintf(label, sizeof label, "%s prompt %s", files.gl_pathv[f], ds.prompts[i].id);
            accepted += check_prompt(s, label, ids, n);
            free(ids);
        }
        mtp_dataset_free(&ds);
    }
    globfree(&files);
    print_message("%s: drafts accepted over all configurations: %ld\n", s->name, accepted);
    assert_true(accepted > 0); /* rollback after acceptance was exercised */
}

int main(void)
{
    glob_t dirs;
    if (glob(MTP_SOURCE_DIR "/models/*/config.json", 0, NULL, &dirs) || dirs.gl_pathc == 0) {
        fprintf(stderr, "no shipped model under %s/models\n", MTP_SOURCE_DIR);
        return 1;
    }
    size_t n = dirs.gl_pathc;
    struct test_shipped *models = calloc(n, sizeof *models);
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    for (size_t i = 0; i < n; i++) {
        char *path = dirs.gl_pathv[i];
        *strrchr(path, '/') = 0; /* .../models/<name> */
        models[i].name = strrchr(path, '/') + 1;
        tests[i] = (struct CMUnitTest){.name = models[i].name,
                                       .test_func = test_greedy_mtp_equals_baseline_every_category,
                                       .setup_func = shipped_setup,
                                       .teardown_func = shipped_teardown,
                                       .initial_state = &models[i]};
    }
    int rc = _cmocka_run_group_tests("greedy_categories", tests, n, NULL, NULL);
    free(tests);
    free(models);
    globfree(&dirs);
    return rc;
}

/*
 * test_tree_categories.c - tree decoding's greedy invariant on the shipped
 * models and prompts (spec/decoding.md "Tree decoding"): static (widths,
 * explicit paths) and dynamic trees, exact and chained drafting, emit exactly
 * the baseline's tokens on prompts of every category in datasets/, with the
 * trained modules' natural drafts; drafts must really be accepted, at
 * sibling ranks above 0 too, so acceptance off the top-1 path is exercised.
 * Runs once per shipped model (every models/<name>/ directory).
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

static const char *const exact_shapes[] = {"widths:2,2", "paths:0;1;2;0,0;1,0;0,0,0",
                                           "dynamic:6,2,3"};
static const char *const chain_shapes[] = {"widths:3,2,1,1", "dynamic:8,3,5"};

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
                                              enum mtp_decode_drafting drafting, const char *shape)
{
    struct mtp_decode_params p = {
        .drafting = drafting,
        .depth = 0,
        .chain_module = 1,
        .sampling = {.temperature = 0.0f, .top_p = 1.0f, .top_k = 0},
        .max_new_tokens = MAX_NEW,
        .eos_token_id = m->cfg.eos_token_id,
    };
    if (shape && mtp_tree_parse(shape, &p.tree))
        fail_msg("%s", mtp_error_message());
    return p;
}

struct counts {
    long accepted, off_top; /* drafts accepted; steps accepting a depth-1 rank > 0 */
};

/* Baseline vs every tree configuration on one prompt. */
static void check_prompt(struct test_shipped *s, const char *label, const int32_t *ids, int n,
                         struct counts *c)
{
    const struct mtp_model *m = s->model;
    struct mtp_decode_params bp = greedy_params(m, MTP_DECODE_DRAFTING_NONE, NULL);
    struct mtp_decode_result base;
    assert_int_equal(mtp_decode_run(s->engine, &bp, ids, n, &base), MTP_OK);
    for (int chain = 0; chain <= 1; chain++) {
        const char *const *shapes = chain ? chain_shapes : exact_shapes;
        int ns = chain ? 2 : 3;
        for (int i = 0; i < ns; i++) {
            struct mtp_decode_params p = greedy_params(
                m, chain ? MTP_DECODE_DRAFTING_CHAIN : MTP_DECODE_DRAFTING_EXACT, shapes[i]);
            if (!chain && mtp_tree_depth(&p.tree) > m->cfg.num_nextn_predict_layers)
                continue;
            struct mtp_decode_result r;
            if (mtp_decode_run(s->engine, &p, ids, n, &r))
                fail_msg("%s: %s: %s", label, shapes[i], mtp_error_message());
            if (r.n_output != base.n_output ||
                memcmp(r.output, base.output, sizeof(int32_t) * base.n_output))
                fail_msg("%s: %s %s: greedy tree tokens differ from the baseline", label,
                         chain ? "chain" : "exact", shapes[i]);
            for (int st = 0; st < r.n_steps; st++) {
                c->accepted += r.accepted[st];
                c->off_top += r.accepted_uncut[st] > 0 && r.tree_ranks[(size_t)st * r.tree_depth] > 0;
            }
            mtp_decode_result_free(&r);
        }
    }
    mtp_decode_result_free(&base);
}

static void test_greedy_trees_equal_baseline_every_category(void **state)
{
    struct test_shipped *s = *state;
    glob_t files;
    assert_int_equal(glob(MTP_SOURCE_DIR "/datasets/*.jsonl", 0, NULL, &files), 0);
    assert_true(files.gl_pathc >= 4);
    struct counts c = {0, 0};
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
            check_prompt(s, label, ids, n, &c);
            free(ids);
        }
        mtp_dataset_free(&ds);
    }
    globfree(&files);
    print_message("%s: tree drafts accepted: %ld, steps accepting a lower-ranked sibling: %ld\n",
                  s->name, c.accepted, c.off_top);
    assert_true(c.accepted > 0 && c.off_top > 0);
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
                                       .test_func = test_greedy_trees_equal_baseline_every_category,
                                       .setup_func = shipped_setup,
                                       .teardown_func = shipped_teardown,
                                       .initial_state = &models[i]};
    }
    int rc = _cmocka_run_group_tests("tree_categories", tests, n, NULL, NULL);
    free(tests);
    free(models);
    globfree(&dirs);
    return rc;
}

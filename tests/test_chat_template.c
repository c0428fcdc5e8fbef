/*
 * test_chat_template.c - chat templates (experiments/chat_template.h) and the
 * bad input around multi-turn prompts (issue 29).
 *
 * 1. Rendered ids equal transformers': every case of
 *    tests/fixtures/chat/expected.json (ChatML-, DeepSeek-V3- and GLM-like
 *    templates, and the "model" template of the fixture's
 *    tokenizer_config.json; ids written by make_chat_fixture.py with
 *    transformers' apply_chat_template) is rendered by
 *    experiments/render_chat_template.py and encoded by the C tokenizer,
 *    special tokens in the text included.
 * 2. An answer cut inside a UTF-8 character renders (the bytes become U+FFFD).
 * 3. Errors name what failed: a template printing an undefined variable, a
 *    raise_exception, a syntax error (all naming the template, and through
 *    mtp_conversation_ids the prompt and turn), "model" on a checkpoint
 *    without a template (naming both files looked in), an empty turn in a
 *    dataset (naming the prompt and turn), a template file that does not
 *    exist in a spec (naming the key).
 * Needs python3 with jinja2 (Debian: python3-jinja2; scripts/install-deps.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/tokenizer.h"
#include "experiments/chat_template.h"
#include "experiments/conversation.h"
#include "experiments/dataset.h"
#include "experiments/spec.h"

#define FIXTURE MTP_SOURCE_DIR "/tests/fixtures/chat"

static struct mtp_tokenizer *tok;

static int setup(void **state)
{
    (void)state;
    if (mtp_tokenizer_load(FIXTURE "/tokenizer.json", &tok)) {
        fprintf(stderr, "%s\n", mtp_error_message());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mtp_tokenizer_free(tok);
    return 0;
}

static void assert_error_has(const char *needle)
{
    const char *msg = mtp_error_message();
    if (!strstr(msg, needle))
        fail_msg("expected the error to name \"%s\", got: %s", needle, msg);
}

/* One expected.json case: render, encode without BOS, compare. */
static void check_case(json_t *c)
{
    const char *name = json_string_value(json_object_get(c, "template"));
    char path[1024];
    if (strcmp(name, "model") == 0)
        snprintf(path, sizeof path, "model");
    else
        snprintf(path, sizeof path, "%s/%s", FIXTURE, name);
    struct mtp_chat_template t;
    if (mtp_chat_template_load(path, FIXTURE, tok, &t))
        fail_msg("%s", mtp_error_message());
    json_t *msgs = json_object_get(c, "messages");
    size_t n = json_array_size(msgs);
    struct mtp_chat_message *m = calloc(n, sizeof *m);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(msgs, i);
        m[i] = (struct mtp_chat_message){json_string_value(json_object_get(o, "role")),
                                         json_string_value(json_object_get(o, "content"))};
    }
    char *text;
    size_t len;
    if (mtp_chat_template_render(&t, m, (int)n, &text, &len))
        fail_msg("%s", mtp_error_message());
    int32_t *ids;
    int n_ids;
    assert_int_equal(mtp_tokenizer_encode(tok, text, len, false, &ids, &n_ids), MTP_OK);
    json_t *want = json_object_get(c, "ids");
    bool same = (size_t)n_ids == json_array_size(want);
    for (int i = 0; same && i < n_ids; i++)
        same = ids[i] == json_integer_value(json_array_get(want, (size_t)i));
    if (!same)
        fail_msg("template %s, %zu messages: ids differ from transformers' (%d vs %zu ids); "
                 "rendered: %s", name, n, n_ids, json_array_size(want), text);
    free(ids);
    free(text);
    free(m);
    mtp_chat_template_free(&t);
}

static void test_ids_equal_transformers(void **state)
{
    (void)state;
    json_error_t err;
    json_t *cases = json_load_file(FIXTURE "/expected.json", 0, &err);
    if (!cases)
        fail_msg("expected.json: %s", err.text);
    assert_true(json_array_size(cases) >= 12);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) check_case(c);
    json_decref(cases);
}

/* A template file holding TEXT, rendered for one user message; returns the rc. */
static int render_text(const char *text)
{
    char path[] = "/tmp/mtp-chat-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    struct mtp_chat_template t;
    assert_int_equal(mtp_chat_template_load(path, FIXTURE, tok, &t), MTP_OK);
    struct mtp_chat_message m = {"user", "hi"};
    char *out;
    size_t len;
    int rc = mtp_chat_template_render(&t, &m, 1, &out, &len);
    free(out);
    mtp_chat_template_free(&t);
    remove(path);
    if (rc)
        assert_error_has("/tmp/mtp-chat-"); /* the template is named */
    return rc;
}

static void test_template_errors(void **state)
{
    (void)state;
    assert_int_equal(render_text("{{ messages[0].content }}"), MTP_OK);
    assert_int_equal(render_text("a\n{{ no_such_variable }}"), MTP_ERR);
    assert_error_has("'no_such_variable' is undefined");
    assert_error_has("template line 2");
    assert_int_equal(render_text("{{ raise_exception('roles must alternate') }}"), MTP_ERR);
    assert_error_has("roles must alternate");
    assert_int_equal(render_text("{% if add_generation_prompt %}"), MTP_ERR);
    assert_error_has("TemplateSyntaxError");
    /* Testing for a variable is not printing it (transformers' templates do). */
    assert_int_equal(render_text("{% if tools is defined and foo is not defined %}x{% endif %}"),
                     MTP_OK);
}

static void test_model_without_template(void **state)
{
    (void)state;
    struct mtp_chat_template t;
    const char *dir = MTP_SOURCE_DIR "/models/mtp-mini";
    assert_int_equal(mtp_chat_template_load("model", dir, tok, &t), MTP_ERR);
    assert_error_has(MTP_SOURCE_DIR "/models/mtp-mini/chat_template.jinja");
    assert_error_has(MTP_SOURCE_DIR "/models/mtp-mini/tokenizer_config.json");
    mtp_chat_template_free(&t);
    assert_int_equal(mtp_chat_template_load("none", dir, tok, &t), MTP_OK);
    assert_true(t.none);
    mtp_chat_template_free(&t);
}

/* A rendering failure in a later turn names the template, prompt and turn. */
static void test_conversation_error_names_prompt_and_turn(void **state)
{
    (void)state;
    struct mtp_chat_template t;
    assert_int_equal(mtp_chat_template_load(FIXTURE "/deepseek-v3.jinja", FIXTURE, tok, &t),
                     MTP_OK);
    char *turns[2] = {"first", "second"};
    struct mtp_prompt p = {.id = "q7", .category = "c", .text = turns[0], .n_turns = 2,
                           .turns = turns, .line = 1};
    int32_t answer_ids[] = {40, 41};
    struct mtp_turn_answer answer = {answer_ids, 2};
    int32_t *ids;
    int n;
    assert_int_equal(mtp_conversation_ids(&t, tok, &p, 1, &answer, &ids, &n), MTP_OK);
    free(ids);
    /* An answer cut inside a character (a lone UTF-8 lead byte) still renders. */
    int32_t lead = -1;
    for (int32_t id = 0; id < mtp_tokenizer_vocab_size(tok) && lead < 0; id++) {
        size_t len;
        const char *b = mtp_tokenizer_token_bytes(tok, id, &len);
        if (b && len == 1 && (unsigned char)b[0] >= 0xC2 && (unsigned char)b[0] <= 0xDF)
            lead = id;
    }
    assert_true(lead >= 0);
    int32_t cut_ids[] = {40, lead};
    struct mtp_turn_answer cut = {cut_ids, 2};
    if (mtp_conversation_ids(&t, tok, &p, 1, &cut, &ids, &n))
        fail_msg("%s", mtp_error_message());
    free(ids);
    free(t.text);
    t.text = strdup("{% for m in messages %}{{ m.content }}{{ m.nope.deeper }}{% endfor %}");
    assert_int_equal(mtp_conversation_ids(&t, tok, &p, 1, &answer, &ids, &n), MTP_ERR);
    assert_error_has("prompt q7, turn 2 of 2");
    assert_error_has("deepseek-v3.jinja");
    assert_error_has("UndefinedError");
    mtp_chat_template_free(&t);
}

static void test_empty_turn_is_refused(void **state)
{
    (void)state;
    char path[] = "/tmp/mtp-turns-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs("{\"question_id\": 1, \"turns\": [\"a\", \"b\"]}\n"
          "{\"question_id\": 2, \"turns\": [\"a\", \"\"]}\n", f);
    fclose(f);
    struct mtp_dataset ds;
    assert_int_equal(mtp_dataset_load(path, 0, &ds), MTP_ERR);
    assert_error_has(":2: prompt 2, turn 2 of 2 (key 'turns[1]'): expected a non-empty string");
    mtp_dataset_free(&ds);
    remove(path);
}

static void test_spec_template_key(void **state)
{
    (void)state;
    const char *fmt = "{\"model\": \"%s/models/mtp-mini\", \"max_new_tokens\": 4, "
                      "\"output_dir\": \"/tmp\", \"sampling\": [{\"temperature\": 0}], "
                      "\"decoders\": [{\"type\": \"baseline\"}], \"chat_template\": \"%s\", "
                      "\"datasets\": [\"%s/datasets/code.jsonl\", {\"path\": "
                      "\"%s/datasets/prose.jsonl\", \"chat_template\": \"model\"}]}";
    char json[2048];
    struct mtp_spec s;
    snprintf(json, sizeof json, fmt, MTP_SOURCE_DIR, FIXTURE "/glm.jinja", MTP_SOURCE_DIR,
             MTP_SOURCE_DIR);
    if (mtp_spec_parse(json, "t.json", NULL, &s))
        fail_msg("%s", mtp_error_message());
    assert_string_equal(s.chat_templates[0], FIXTURE "/glm.jinja"); /* the experiment's */
    assert_string_equal(s.chat_templates[1], "model");              /* the dataset's own */
    mtp_spec_free(&s);
    snprintf(json, sizeof json, fmt, MTP_SOURCE_DIR, "no/such.jinja", MTP_SOURCE_DIR,
             MTP_SOURCE_DIR);
    assert_int_equal(mtp_spec_parse(json, "t.json", NULL, &s), MTP_ERR);
    assert_error_has("key 'chat_template'");
    assert_error_has("no/such.jinja");
    mtp_spec_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_equal_transformers),
        cmocka_unit_test(test_template_errors),
        cmocka_unit_test(test_model_without_template),
        cmocka_unit_test(test_conversation_error_names_prompt_and_turn),
        cmocka_unit_test(test_empty_turn_is_refused),
        cmocka_unit_test(test_spec_template_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

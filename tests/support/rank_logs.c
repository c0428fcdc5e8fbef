/*
 * rank_logs.c - load the union of a run's logs and compare two such unions
 * (see rank_logs.h). Reads through the log API only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "rank_logs.h"

#include <dirent.h> /* defines: opendir, readdir */
#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strcmp, memcpy */

#include <sys/stat.h> /* defines: mkdir */
#include <sys/wait.h> /* defines: WEXITSTATUS */
#include <unistd.h>   /* defines: symlink, readlink */

#include "core/error.h"
#include "tests/support/test_files.h"
#include "experiments/log.h"
#include "experiments/shard.h"

static int find(const struct test_request_set *s, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->req[i].key, key))
            return i;
    return -1;
}

static void add(struct test_request_set *s, const struct mtp_request_record *rec)
{
    char key[512];
    snprintf(key, sizeof key, "%s|%d|%s|%s|%d|B%d", rec->decoder, rec->sampling_index,
             rec->dataset, rec->prompt_id, rec->repeat, rec->batch_size);
    if (find(s, key) >= 0) {
        s->n_duplicates++;
        return;
    }
    s->req = mtp_xrealloc(s->req, (size_t)(s->n + 1) * sizeof *s->req);
    struct test_request *t = &s->req[s->n++];
    t->key = mtp_xstrdup(key);
    t->n_output = rec->n_output;
    t->n_steps = rec->n_steps;
    t->output = mtp_xmalloc((size_t)(rec->n_output + 1) * sizeof *t->output);
    t->accepted = mtp_xmalloc((size_t)(rec->n_steps + 1) * sizeof *t->accepted);
    memcpy(t->output, rec->output_tokens, (size_t)rec->n_output * sizeof *t->output);
    memcpy(t->accepted, rec->accepted, (size_t)rec->n_steps * sizeof *t->accepted);
}

static void load_file(struct test_request_set *s, const char *path)
{
    struct mtp_log_reader *rd;
    if (mtp_log_reader_open(path, &rd))
        fail_msg("%s", mtp_error_message());
    const msgpack_object *o;
    char type[32];
    int rc;
    while ((rc = mtp_log_reader_next(rd, &o, NULL)) == MTP_OK && o) {
        if (strcmp(mtp_log_record_type(o, type, sizeof type), "request"))
            continue;
        struct mtp_request_record rec;
        assert_int_equal(mtp_log_decode_request(o, &rec), MTP_OK);
        add(s, &rec);
        mtp_log_request_free(&rec);
    }
    assert_int_equal(rc, MTP_OK);
    mtp_log_reader_close(rd);
    s->n_files++;
}

void test_requests_load(struct test_request_set *s, const char *dir, const char *name)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char single[256];
    snprintf(single, sizeof single, "%s.msgpack", name);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, single) && !mtp_shard_is_log_name(e->d_name, name, NULL, NULL))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        load_file(s, path);
    }
    closedir(d);
}

void test_requests_assert_same(const struct test_request_set *a, const struct test_request_set *b)
{
    assert_int_equal(a->n_duplicates, 0);
    assert_int_equal(b->n_duplicates, 0);
    assert_true(a->n > 0);
    assert_int_equal(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        int j = find(b, a->req[i].key);
        if (j < 0)
            fail_msg("request %s is missing from the other run", a->req[i].key);
        const struct test_request *x = &a->req[i], *y = &b->req[j];
        assert_int_equal(x->n_output, y->n_output);
        assert_int_equal(x->n_steps, y->n_steps);
        assert_memory_equal(x->output, y->output, (size_t)x->n_output * sizeof *x->output);
        assert_memory_equal(x->accepted, y->accepted, (size_t)x->n_steps * sizeof *x->accepted);
    }
}

void test_requests_free(struct test_request_set *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->req[i].key);
        free(s->req[i].output);
        free(s->req[i].accepted);
    }
    free(s->req);
    *s = (struct test_request_set){0};
}

static void link_fixture(const char *dir, const char *name)
{
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/tests/fixtures/v3-f32/%s", MTP_SOURCE_DIR, name);
    snprintf(to, sizeof to, "%s/model/%s", dir, name);
    assert_int_equal(symlink(from, to), 0);
}

void test_write_small_study(const char *dir)
{
    char model[512];
    snprintf(model, sizeof model, "%s/model", dir);
    assert_int_equal(mkdir(model, 0777), 0);
    link_fixture(dir, "config.json");
    link_fixture(dir, "model.safetensors");
    test_write_byte_tokenizer(dir, "model/tokenizer.json");
    /* Prompt lengths differ (4..30 bytes), so the cost split has work to do. */
    test_write_file(dir, "code.jsonl",
        "{\"question_id\": 1, \"category\": \"code\", \"turns\": [\"int main(void) {\"]}\n"
        "{\"question_id\": 2, \"category\": \"code\", \"turns\":"
        " [\"for (i = 0; i < n; i++) x += a[i];\"]}\n"
        "{\"question_id\": 3, \"category\": \"code\", \"turns\": [\"x++\"]}\n"
        "{\"question_id\": 4, \"category\": \"code\", \"turns\": [\"return x + y;\"]}\n");
    test_write_file(dir, "prose.jsonl",
        "{\"question_id\": 1, \"category\": \"prose\", \"turns\":"
        " [\"It was a dark and stormy night\"]}\n"
        "{\"question_id\": 2, \"category\": \"prose\", \"turns\": [\"The quick brown\"]}\n"
        "{\"question_id\": 3, \"category\": \"prose\", \"turns\": [\"Once\"]}\n"
        "{\"question_id\": 4, \"category\": \"prose\", \"turns\": [\"In the beginning\"]}\n");
    test_write_file(dir, "study.json",
        "{\"name\": \"study\", \"model\": \"model\", \"threads\": 1,"
        " \"datasets\": [\"code.jsonl\", \"prose.jsonl\"], \"max_new_tokens\": 10,"
        " \"warmup\": 1, \"seed\": 11, \"batch_size\": [1, 2],"
        " \"sampling\": [{\"temperature\": 0}, {\"temperature\": 1}],"
        " \"decoders\": [{\"type\": \"baseline\"},"
        " {\"type\": \"mtp\", \"depth\": 2, \"drafting\": \"exact\"},"
        " {\"type\": \"mtp\", \"depth\": 3, \"drafting\": \"chain\"}],"
        " \"output_dir\": \"unused\"}\n");
}

int test_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    print_message("$ %s\n", cmd);
    int st = system(cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void test_mtpbench_path(char *buf, size_t cap)
{
    char self[900];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    snprintf(buf, cap, "%s/mtpbench", self);
}

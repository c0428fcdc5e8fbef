/*
 * rank_logs.h - the requests of one run spread over several logs (a
 * single-process log, or the rank logs of a sharded run), for tests that
 * compare their union with a single-process run.
 */
#ifndef MTP_TEST_RANK_LOGS_H
#define MTP_TEST_RANK_LOGS_H

#include <stddef.h>
#include <stdint.h>

struct test_request {
    char *key;          /* "decoder|sampling|dataset|prompt|repeat" */
    int n_output, n_steps;
    int32_t *output;    /* [n_output] */
    int32_t *accepted;  /* [n_steps] */
};

struct test_request_set {
    struct test_request *req;
    int n;
    int n_duplicates;   /* keys seen again (must stay 0) */
    int n_files;
};

/* Add the whole request records of every file in DIR whose name is NAME.msgpack
 * or NAME.rank-R-of-N.msgpack. Fails the test on unreadable logs. */
void test_requests_load(struct test_request_set *s, const char *dir, const char *name);

/* Assert that A and B hold exactly the same keys, with identical output tokens
 * and accepted counts, and no duplicates in either. */
void test_requests_assert_same(const struct test_request_set *a, const struct test_request_set *b);

void test_requests_free(struct test_request_set *s);

/* A small study in DIR (which must exist): the fixture model tests/fixtures/v3-f32
 * (D = 2) with a byte tokenizer, two datasets of four short prompts, T = 0 and
 * 1, batch sizes 1 and 2, baseline / exact K = 2 / chain K = 3, 10 new tokens:
 * TEST_STUDY_REQUESTS requests in a few seconds. The spec is DIR/study.json,
 * its name "study", output DIR/unused. */
enum { TEST_STUDY_REQUESTS = 8 * 2 * 2 * 3 }; /* prompts x sampling x batch sizes x decoders */
void test_write_small_study(const char *dir);

/* sh -c CMD (printed first); returns the exit status. */
int test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The mtpbench executable next to the running test, into BUF. */
void test_mtpbench_path(char *buf, size_t cap);

#endif

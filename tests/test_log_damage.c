/*
 * test_log_damage.c - what protects a log's data (issue 10, cases 2 and 3):
 *   - one writer per log: while a writer holds a log, a second mtp_log_open
 *     (overwrite) or mtp_log_open_resume fails at once naming the log and
 *     the holder's pid, also from another process, and the log stays intact;
 *   - a flipped byte anywhere inside a finished mtpbench-log/2 log (a body,
 *     a length, a checksum) is damage, never a "cut-off tail": the reader
 *     fails naming the byte offset of the damaged record; with skip_damaged
 *     it returns every other record and counts one damaged record; resume
 *     refuses and leaves every byte as it was;
 *   - a log cut off inside its last frame (even inside the frame header) is
 *     still read up to the last whole record, and resume cuts only that;
 *   - the frame header has the byte layout of spec/log-format.md and the CRC
 *     is zlib's (the standard check value), so Python's zlib.crc32 agrees;
 *   - the skim that runs before msgpack-c unpacks anything finds the end of
 *     valid objects and calls a container whose declared count cannot fit
 *     in the bytes left "needs more bytes" (msgpack-c would allocate for the
 *     count first: the log fuzz target's finding);
 *   - the mtpbench-log/1 fixture (tests/fixtures/logs/v1-tiny.msgpack, bare
 *     records) still reads, and resume continues it without frames.
 *
 *   ctest --test-dir build -R log_damage
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>    /* defines: snprintf, fopen */
#include <stdlib.h>   /* defines: mkdtemp, malloc */
#include <string.h>   /* defines: strstr, memcmp */
#include <sys/wait.h> /* defines: waitpid */
#include <unistd.h>   /* defines: fork, getpid, unlink */

#include "core/error.h"
#include "experiments/log.h"
#include "experiments/log_frame.h" /* defines: mtp_log_crc32, mtp_log_frame_encode */
#include "experiments/log_skim.h"  /* defines: mtp_log_skim_object */
#include "support/test_files.h"

static char tmp_dir[64];
static const char SPEC_JSON[] = "{\"name\":\"damage\"}";
enum { N_REQ = 6, MAX_RECORDS = 16 };

static void tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", tmp_dir, name);
}

/* A small request record I (two steps). */
static void write_request(struct mtp_log_writer *w, int i)
{
    int32_t out[4] = {1, 2, 3, 4}, acc[2] = {1, 1};
    uint64_t ns[2] = {10, 20};
    char id[16];
    snprintf(id, sizeof id, "p%d", i);
    struct mtp_request_record r = {
        .decoder = "mtp", .mode = MTP_SPEC_DECODER_MTP, .depth = 1,
        .drafting = MTP_SPEC_DRAFTING_CHAIN, .top_p = 1.0, .dataset = "d", .category = "c",
        .prompt_id = id, .prompt_tokens = 3, .n_output = 4, .output_tokens = out, .n_steps = 2,
        .accepted = acc, .draft_ns = ns, .verify_ns = ns, .accept_ns = ns, .update_ns = ns,
        .ttft_ns = 5, .total_ns = 50, .time_unix_ns = 1};
    assert_int_equal(mtp_log_write_request(w, &r), MTP_OK);
}

static void write_run(struct mtp_log_writer *w)
{
    struct mtp_log_run_info info = {.spec_json = SPEC_JSON, .backend = "cpu", .threads = 1,
                                    .host = "h", .cpu = "c", .start_unix_ns = 1,
                                    .model = {.dir = "m", .config_hash = "0"}};
    assert_int_equal(mtp_log_write_run(w, &info), MTP_OK);
}

/* A finished log: run, N_REQ requests, summary. */
static void write_log(const char *path)
{
    struct mtp_log_options opt = {.overwrite = true};
    struct mtp_log_writer *w;
    assert_int_equal(mtp_log_open(path, &opt, &w), MTP_OK);
    write_run(w);
    for (int i = 0; i < N_REQ; i++)
        write_request(w, i);
    struct mtp_log_summary s = {.wall_ns = 1, .finished = true, .end_unix_ns = 2};
    assert_int_equal(mtp_log_write_summary(w, &s), MTP_OK);
    assert_int_equal(mtp_log_close(w), MTP_OK);
}

/* Reads PATH (skipping damage if SKIP): returns MTP_OK or MTP_ERR, the
 * record count and offsets, whether it ended in a partial record, and the
 * damage count. */
struct read_result {
    int rc, n, damaged;
    uint64_t offs[MAX_RECORDS], first_damage;
    bool partial;
};

static struct read_result read_log(const char *path, bool skip)
{
    struct read_result res = {0};
    struct mtp_log_reader *r;
    assert_int_equal(mtp_log_reader_open(path, &r), MTP_OK);
    mtp_log_reader_skip_damaged(r, skip);
    const msgpack_object *rec;
    uint64_t off;
    while ((res.rc = mtp_log_reader_next(r, &rec, &off)) == MTP_OK && rec) {
        assert_true(res.n < MAX_RECORDS);
        res.offs[res.n++] = off;
    }
    res.partial = mtp_log_reader_partial(r, NULL);
    struct mtp_log_damage d;
    mtp_log_reader_damage(r, &d);
    res.damaged = d.records;
    res.first_damage = d.first_offset;
    mtp_log_reader_close(r);
    return res;
}

static void assert_message_has(const char *want)
{
    if (!strstr(mtp_error_message(), want))
        fail_msg("expected \"%s\" in: %s", want, mtp_error_message());
}

/* ---- framing --------------------------------------------------------------- */

static void test_frame_layout(void **state)
{
    (void)state;
    assert_true(mtp_log_crc32("123456789", 9) == 0xCBF43926u); /* the CRC-32 check value */
    static const uint8_t body[] = {0x81, 0xa4, 't', 'y', 'p', 'e', 0xa1, 'x'};
    uint8_t h[MTP_LOG_FRAME_HEADER];
    mtp_log_frame_encode(h, body, sizeof body);
    static const uint8_t want[MTP_LOG_FRAME_HEADER] = {
        0x83, 0xa4, 't', 'y', 'p', 'e', 0xa5, 'f', 'r', 'a', 'm', 'e', 0xa3, 'l', 'e', 'n',
        0xce, 0, 0, 0, sizeof body, 0xa5, 'c', 'r', 'c', '3', '2', 0xce};
    assert_memory_equal(h, want, 28);
    uint32_t crc = mtp_log_crc32(body, sizeof body);
    assert_int_equal(h[28], crc >> 24);
    assert_int_equal(h[31], crc & 0xff);
    /* The header is one MessagePack map a plain reader can read. */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t pos = 0;
    assert_int_equal(msgpack_unpack_next(&u, (const char *)h, sizeof h, &pos), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(pos, sizeof h);
    assert_true(mtp_log_obj_is_str(mtp_log_map_get(&u.data, "type"), "frame"));
    msgpack_unpacked_destroy(&u);
}

static void test_skim(void **state)
{
    (void)state;
    size_t end = 0;
    /* {"a": [1, -1, "xy", 1.5], "b": nil} then one more byte */
    static const char ok[] = "\x82\xa1" "a" "\x94\x01\xff\xa2xy\xcb\x3f\xf8\0\0\0\0\0\0\xa1" "b" "\xc0\x07";
    assert_int_equal(mtp_log_skim_object(ok, sizeof ok - 1, 0, &end), MTP_LOG_SKIM_OK);
    assert_int_equal(end, sizeof ok - 2);
    /* Cut anywhere inside: needs more bytes. */
    for (size_t n = 1; n < sizeof ok - 2; n++)
        assert_int_equal(mtp_log_skim_object(ok, n, 0, &end), MTP_LOG_SKIM_CONTINUE);
    /* An array32 of 2^32-1 elements in 9 bytes, a map32 likewise, a str32 of 4 GB. */
    static const char huge_a[] = "\xdd\xff\xff\xff\xff\x01\x02\x03\x04";
    static const char huge_m[] = "\xdf\x7f\xff\xff\xff\x01\x02\x03\x04";
    static const char huge_s[] = "\xdb\xff\xff\xff\xff" "abcd";
    assert_int_equal(mtp_log_skim_object(huge_a, 9, 0, &end), MTP_LOG_SKIM_CONTINUE);
    assert_int_equal(mtp_log_skim_object(huge_m, 9, 0, &end), MTP_LOG_SKIM_CONTINUE);
    assert_int_equal(mtp_log_skim_object(huge_s, 9, 0, &end), MTP_LOG_SKIM_CONTINUE);
    assert_int_equal(mtp_log_skim_object("\x91\xc1", 2, 0, &end), MTP_LOG_SKIM_ERROR);
}

/* ---- one writer per log --------------------------------------------------- */

static void assert_refused_by(const char *path, long pid)
{
    char want[64];
    snprintf(want, sizeof want, "(pid %ld)", pid);
    assert_message_has(path);
    assert_message_has(want);
}

static void test_second_writer_refused(void **state)
{
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "locked.msgpack");
    struct mtp_log_writer *w, *w2 = NULL;
    struct mtp_log_resume st;
    assert_int_equal(mtp_log_open(path, NULL, &w), MTP_OK);
    write_run(w);
    write_request(w, 0);
    /* In this process: another open of the file is another writer. */
    struct mtp_log_options over = {.overwrite = true};
    assert_int_equal(mtp_log_open(path, &over, &w2), MTP_ERR);
    assert_refused_by(path, (long)getpid());
    assert_int_equal(mtp_log_open_resume(path, SPEC_JSON, NULL, &w2, &st), MTP_ERR);
    assert_refused_by(path, (long)getpid());
    assert_null(w2);
    /* From another process, as two `run --resume` would be. */
    pid_t child = fork();
    if (child == 0) {
        struct mtp_log_writer *cw;
        struct mtp_log_resume cs;
        int rc = mtp_log_open_resume(path, SPEC_JSON, NULL, &cw, &cs);
        char want[64];
        snprintf(want, sizeof want, "(pid %ld)", (long)getppid());
        _exit(rc == MTP_ERR && strstr(mtp_error_message(), want) ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The holder goes on; nothing was cut or interleaved. */
    for (int i = 1; i < N_REQ; i++)
        write_request(w, i);
    assert_int_equal(mtp_log_close(w), MTP_OK);
    struct read_result res = read_log(path, false);
    assert_int_equal(res.rc, MTP_OK);
    assert_int_equal(res.n, 1 + N_REQ);
    assert_false(res.partial);
    /* Once closed, the lock is gone: resume works. */
    assert_int_equal(mtp_log_open_resume(path, SPEC_JSON, NULL, &w, &st), MTP_OK);
    assert_int_equal(st.n_requests, N_REQ);
    mtp_log_resume_free(&st);
    assert_int_equal(mtp_log_close(w), MTP_OK);
    unlink(path);
}

/* ---- damage --------------------------------------------------------------- */

/* Flip one bit at byte AT of a copy of REF (SIZE bytes) written to BAD; the
 * damaged record is the one starting at REC_OFF. Checks the reader, the
 * skipping reader and resume. */
static void check_flip(const char *ref, const char *bad, const char *data, size_t size,
                       size_t at, uint64_t rec_off, int n_records)
{
    char *copy = malloc(size);
    memcpy(copy, data, size);
    copy[at] ^= 0x10;
    test_write_bytes(bad, copy, size);

    struct read_result res = read_log(bad, false);
    assert_int_equal(res.rc, MTP_ERR);
    assert_false(res.partial);
    char want[64];
    snprintf(want, sizeof want, "byte offset %llu", (unsigned long long)rec_off);
    assert_message_has(want);
    assert_message_has(bad);

    res = read_log(bad, true);
    assert_int_equal(res.rc, MTP_OK);
    assert_int_equal(res.n, n_records - 1);
    assert_int_equal(res.damaged, 1);
    assert_true(res.first_damage == rec_off);
    assert_false(res.partial);

    struct mtp_log_writer *w = NULL;
    struct mtp_log_resume st;
    assert_int_equal(mtp_log_open_resume(bad, SPEC_JSON, NULL, &w, &st), MTP_ERR);
    assert_null(w);
    assert_message_has(want);
    size_t after_size;
    char *after = test_read_whole_file(bad, &after_size);
    assert_int_equal(after_size, size); /* nothing truncated */
    assert_memory_equal(after, copy, size);
    free(after);
    free(copy);
    (void)ref;
}

static void test_flipped_byte(void **state)
{
    (void)state;
    char ref[256], bad[256];
    tmp_path(ref, sizeof ref, "ref.msgpack");
    tmp_path(bad, sizeof bad, "bad.msgpack");
    write_log(ref);
    struct read_result good = read_log(ref, false);
    assert_int_equal(good.rc, MTP_OK);
    assert_int_equal(good.n, N_REQ + 2);
    size_t size;
    char *data = test_read_whole_file(ref, &size);
    int mid = 3; /* a request in the middle */
    uint64_t off = good.offs[mid], next = good.offs[mid + 1];
    check_flip(ref, bad, data, size, (size_t)(off + next) / 2, off, good.n); /* the body */
    check_flip(ref, bad, data, size, (size_t)off + 19, off, good.n);         /* its length */
    check_flip(ref, bad, data, size, (size_t)off + 30, off, good.n);         /* its checksum */
    check_flip(ref, bad, data, size, (size_t)off + 2, off, good.n);          /* header bytes */
    /* The last record (the summary): whole, so a bad checksum is no cut-off. */
    uint64_t last = good.offs[good.n - 1];
    check_flip(ref, bad, data, size, size - 2, last, good.n);
    free(data);
    unlink(bad);
    unlink(ref);
}

static void test_cut_tail_tolerated(void **state)
{
    (void)state;
    char ref[256], cut[256];
    tmp_path(ref, sizeof ref, "ref.msgpack");
    tmp_path(cut, sizeof cut, "cut.msgpack");
    write_log(ref);
    struct read_result good = read_log(ref, false);
    size_t size;
    char *data = test_read_whole_file(ref, &size);
    uint64_t last = good.offs[good.n - 1];
    /* Inside the last body, inside its header, right after its first byte. */
    size_t cuts[] = {size - 1, (size_t)last + 20, (size_t)last + 1};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        test_write_bytes(cut, data, cuts[c]);
        struct read_result res = read_log(cut, false);
        assert_int_equal(res.rc, MTP_OK);
        assert_true(res.partial);
        assert_int_equal(res.n, good.n - 1);
        struct mtp_log_writer *w;
        struct mtp_log_resume st;
        assert_int_equal(mtp_log_open_resume(cut, SPEC_JSON, NULL, &w, &st), MTP_OK);
        assert_true(st.cut && st.cut_at == last);
        assert_int_equal(st.n_requests, N_REQ);
        mtp_log_resume_free(&st);
        assert_int_equal(mtp_log_close(w), MTP_OK);
    }
    free(data);
    unlink(cut);
    unlink(ref);
}

/* ---- mtpbench-log/1 -------------------------------------------------------- */

static void test_v1_fixture(void **state)
{
    (void)state;
    const char *fixture = "tests/fixtures/logs/v1-tiny.msgpack";
    struct mtp_log_reader *r;
    assert_int_equal(mtp_log_reader_open(fixture, &r), MTP_OK);
    assert_int_equal(mtp_log_reader_version(r), 1);
    const msgpack_object *rec;
    int requests = 0, summaries = 0;
    char type[32];
    while (mtp_log_reader_next(r, &rec, NULL) == MTP_OK && rec) {
        mtp_log_record_type(rec, type, sizeof type);
        if (strcmp(type, "run") == 0)
            assert_true(mtp_log_obj_is_str(mtp_log_map_get(rec, "schema_version"),
                                           MTP_LOG_SCHEMA_V1));
        requests += strcmp(type, "request") == 0;
        summaries += strcmp(type, "summary") == 0;
    }
    assert_false(mtp_log_reader_partial(r, NULL));
    mtp_log_reader_close(r);
    assert_int_equal(requests, 24);
    assert_int_equal(summaries, 1);

    /* Resume of a /1 log cut inside its summary continues it bare (still /1). */
    char copy[256];
    tmp_path(copy, sizeof copy, "v1.msgpack");
    size_t size;
    char *data = test_read_whole_file(fixture, &size);
    test_write_bytes(copy, data, size - 3);
    struct mtp_log_writer *w;
    struct mtp_log_resume st;
    assert_int_equal(mtp_log_open_resume(copy, NULL, NULL, &w, &st), MTP_OK);
    assert_int_equal(st.n_requests, 24);
    assert_int_equal(mtp_log_write_resume(w, NULL), MTP_OK);
    mtp_log_resume_free(&st);
    assert_int_equal(mtp_log_close(w), MTP_OK);
    assert_int_equal(mtp_log_reader_open(copy, &r), MTP_OK);
    assert_int_equal(mtp_log_reader_version(r), 1);
    int n = 0, rc;
    while ((rc = mtp_log_reader_next(r, &rec, NULL)) == MTP_OK && rec)
        n++;
    assert_int_equal(rc, MTP_OK);
    assert_int_equal(n, 1 + 24 + 1); /* run, requests, the new resume record */
    mtp_log_reader_close(r);
    free(data);
    unlink(copy);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/mtp_test_log_damage_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir); /* also after a failed test */
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_layout),
        cmocka_unit_test(test_skim),
        cmocka_unit_test(test_second_writer_refused),
        cmocka_unit_test(test_flipped_byte),
        cmocka_unit_test(test_cut_tail_tolerated),
        cmocka_unit_test(test_v1_fixture),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

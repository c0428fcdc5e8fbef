/*
 * fuzz_log_fields.c - libFuzzer target: field-level mutation of real logs
 * (issue 28). Byte mutation of a log mostly breaks its checksums, so the
 * readers' checks behind the CRC are rarely reached; here the input is a
 * list of edits to a real log instead, each re-framed with a valid CRC
 * (tests/support/log_edit.h), which is what a buggy writer leaves.
 *
 * Input: byte 0 picks the base log (tests/fixtures/logs/v2-trees.msgpack:
 * tree, adaptive, draft-vocabulary, chain and baseline records; v2-tiny.msgpack;
 * or v2-batch.msgpack: requests at batch sizes 1 and 2 and "batch" records), read once from the repository root, where ctest and
 * scripts/fuzz.sh run. Then every 6 bytes are one edit: record (modulo the
 * log's records), key index (modulo the record's keys),
 * element (0xff: the value itself), sub-element (>= 0x80: none), value (a
 * boundary value or a type change, VALUES below), one spare byte.
 *
 * The edited log goes through the reader (failing on and skipping damage),
 * request decoding, the resume scan (of a scratch copy), and the report:
 * load skipping damage, the full, acceptance, ablation and tree tables.
 * Aborts (findings) beyond crashes and sanitizer reports: a request record
 * the reader returns that does not decode, damage counted without skipping.
 */
#include <math.h>   /* defines: NAN, INFINITY */
#include <stdio.h>  /* defines: fopen, FILE */
#include <stdlib.h> /* defines: abort, free */
#include <string.h> /* defines: strcmp */

#include "analysis/report.h"  /* defines: mtp_report_* */
#include "experiments/log.h"  /* defines: mtp_log_* */
#include "experiments/log_frame.h" /* defines: mtp_log_frame_check */
#include "fuzz.h"
#include "../support/log_edit.h" /* defines: log_edit_apply */

enum { EDIT_BYTES = 6, MAX_EDITS = 16 };

static const struct log_edit VALUES[] = {
    {.value = LOG_EDIT_INT, .i = -1},
    {.value = LOG_EDIT_INT, .i = 0},
    {.value = LOG_EDIT_INT, .i = 1},
    {.value = LOG_EDIT_INT, .i = 2},
    {.value = LOG_EDIT_INT, .i = 3},
    {.value = LOG_EDIT_INT, .i = 62},
    {.value = LOG_EDIT_INT, .i = 63},
    {.value = LOG_EDIT_INT, .i = 64},
    {.value = LOG_EDIT_INT, .i = 65},
    {.value = LOG_EDIT_INT, .i = 255},
    {.value = LOG_EDIT_INT, .i = INT32_MAX},
    {.value = LOG_EDIT_INT, .i = INT32_MIN},
    {.value = LOG_EDIT_INT, .i = (int64_t)INT32_MIN - 1},
    {.value = LOG_EDIT_UINT, .u = 1ull << 31},
    {.value = LOG_EDIT_UINT, .u = 0xFFFFFFFFull},
    {.value = LOG_EDIT_UINT, .u = 1ull << 32},
    {.value = LOG_EDIT_INT, .i = INT64_MAX},
    {.value = LOG_EDIT_INT, .i = INT64_MIN},
    {.value = LOG_EDIT_UINT, .u = UINT64_MAX},
    {.value = LOG_EDIT_DOUBLE, .d = NAN},
    {.value = LOG_EDIT_DOUBLE, .d = INFINITY},
    {.value = LOG_EDIT_DOUBLE, .d = -1.5},
    {.value = LOG_EDIT_DOUBLE, .d = 1e308},
    {.value = LOG_EDIT_NIL},
    {.value = LOG_EDIT_STR, .s = ""},
    {.value = LOG_EDIT_STR, .s = "request"},
    {.value = LOG_EDIT_STR, .s = "widths:4,"},
    {.value = LOG_EDIT_STR, .s = "widths:+4"},
    {.value = LOG_EDIT_STR, .s = "paths:0;1;0,0"},
    {.value = LOG_EDIT_STR, .s = "widths:63"},
    {.value = LOG_EDIT_STR, .s = "dynamic:63,7,3"},
    {.value = LOG_EDIT_STR, .s = "baseline"},
    {.value = LOG_EDIT_STR, .s = "adaptive"},
    {.value = LOG_EDIT_STR, .s = "none"},
    {.value = LOG_EDIT_STR, .s = "batch"},
    {.value = LOG_EDIT_INT, .i = 257},
    {.value = LOG_EDIT_EMPTY},
    {.value = LOG_EDIT_DELETE},
};
enum { N_VALUES = sizeof VALUES / sizeof VALUES[0] };

static const char *const BASES[] = {"tests/fixtures/logs/v2-trees.msgpack",
                                    "tests/fixtures/logs/v2-tiny.msgpack",
                                    "tests/fixtures/logs/v2-batch.msgpack"};
enum { N_BASES = sizeof BASES / sizeof BASES[0] };

struct base {
    uint8_t *data;
    size_t n;
    int records; /* frames in it: an edit's record byte is taken modulo this */
};

static int count_records(const uint8_t *data, size_t n)
{
    int k = 0;
    uint32_t len;
    for (size_t off = 0; off < n && mtp_log_frame_check(data, n, off, &len, NULL) ==
                                        MTP_LOG_FRAME_OK; off += MTP_LOG_FRAME_HEADER + len)
        k++;
    return k > 0 ? k : 1;
}

/* Base log I, read on first use; a missing file is a broken harness. */
static const struct base *base_log(int i)
{
    static struct base bases[N_BASES];
    if (!bases[i].data) {
        FILE *f = fopen(BASES[i], "rb");
        if (!f) {
            perror(BASES[i]);
            abort();
        }
        fseek(f, 0, SEEK_END);
        bases[i].n = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        bases[i].data = malloc(bases[i].n);
        if (!bases[i].data || fread(bases[i].data, 1, bases[i].n, f) != bases[i].n)
            abort();
        fclose(f);
        bases[i].records = count_records(bases[i].data, bases[i].n);
    }
    return &bases[i];
}

/* The edits that DATA spells (see the file comment) into E; their count. */
static int parse_edits(const uint8_t *data, size_t size, int records, struct log_edit *e)
{
    int n = 0;
    for (size_t at = 1; at + EDIT_BYTES <= size && n < MAX_EDITS; at += EDIT_BYTES, n++) {
        const uint8_t *b = data + at;
        e[n] = VALUES[b[4] % N_VALUES];
        e[n].record = b[0] % records;
        e[n].key = NULL;
        e[n].key_index = b[1];
        e[n].elem = b[2] == 0xff ? -1 : b[2];
        e[n].sub = b[3] >= 0x80 ? -1 : b[3];
    }
    return n;
}

static void read_all(const char *path, bool skip_damaged)
{
    struct mtp_log_reader *r;
    if (mtp_log_reader_open(path, &r) != 0)
        return;
    mtp_log_reader_skip_damaged(r, skip_damaged);
    const msgpack_object *rec;
    char type[32];
    while (mtp_log_reader_next(r, &rec, NULL) == 0 && rec) {
        if (strcmp(mtp_log_record_type(rec, type, sizeof type), "request") != 0)
            continue;
        struct mtp_request_record req;
        if (mtp_log_decode_request(rec, &req) != 0)
            abort(); /* the reader let through a record that does not decode */
        mtp_log_request_free(&req);
    }
    struct mtp_log_damage d;
    mtp_log_reader_damage(r, &d);
    if (d.records < 0 || (d.records > 0 && !skip_damaged))
        abort();
    mtp_log_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const struct base *b = base_log(data[0] % N_BASES);
    struct log_edit edits[MAX_EDITS];
    int n = parse_edits(data, size, b->records, edits);
    uint8_t *log;
    size_t len;
    (void)log_edit_apply(b->data, b->n, edits, n, &log, &len);
    const char *path = fuzz_scratch_file(log, len, 0);
    read_all(path, false);
    read_all(path, true);
    fuzz_report_all(path, 4); /* the intervals' code paths, not their precision */
    struct mtp_log_writer *w = NULL;
    struct mtp_log_resume st;
    if (mtp_log_open_resume(path, NULL, NULL, &w, &st) == 0) {
        mtp_log_resume_free(&st);
        (void)mtp_log_close(w);
    }
    free(log);
    return 0;
}

/*
 * test_safetensors.c - the safetensors reader: a good file with every kind of
 * entry (F32/BF16/F8/other dtypes, empty and 0-rank tensors, __metadata__),
 * each malformed header or offset case rejected with file, tensor and
 * expected/found in the message, and sharded checkpoints whose index must
 * agree with their shards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>  /* defines: snprintf */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strstr */

#include "core/error.h"
#include "engine/safetensors.h"
#include "tests/support/tiny_checkpoint.h"

struct fixture {
    char *dir;
    char path[512];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = tiny_make_tmpdir();
    if (!f->dir)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/t.safetensors", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tiny_remove_dir(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void test_good_file(void **state)
{
    struct fixture *f = *state;
    const float a[6] = {1, 2, 3, 4, 5, 6.5f};
    const uint16_t b[4] = {0x3F80, 0xC000, 0x0000, 0x4049}; /* 1, -2, 0, 3.140625 */
    const uint8_t c[3] = {0x38, 0x7E, 0x80};                /* 1, 448, -0 */
    const uint8_t d[2] = {0xFF, 0x01};
    const float s = 42.0f;
    const struct tiny_st_tensor t[] = {
        {"a", "F32", 2, {2, 3}, a, sizeof a},       {"s", "F32", 0, {0}, &s, 4},
        {"b", "BF16", 1, {4}, b, sizeof b},         {"c", "F8_E4M3", 1, {3}, c, sizeof c},
        {"d", "I8", 1, {2}, d, sizeof d},           {"e", "F32", 2, {0, 5}, NULL, 0},
    };
    assert_int_equal(tiny_st_write(f->path, t, 6, true), 0);
    struct mtp_checkpoint *ck = NULL;
    if (mtp_checkpoint_open_file(f->path, &ck))
        fail_msg("%s", mtp_error_message());
    assert_int_equal(mtp_checkpoint_count(ck), 6); /* __metadata__ is not a tensor */
    assert_int_equal(mtp_checkpoint_data_bytes(ck), sizeof a + 4 + sizeof b + 3 + 2);
    assert_string_equal(mtp_checkpoint_tensor(ck, 0)->name, "a"); /* header order */
    assert_string_equal(mtp_checkpoint_tensor(ck, 5)->name, "e");
    assert_null(mtp_checkpoint_tensor(ck, 6));
    assert_null(mtp_checkpoint_find(ck, "nope"));
    assert_null(mtp_checkpoint_find(ck, "__metadata__"));

    struct mtp_tensor_info *ta = mtp_checkpoint_find(ck, "a");
    assert_non_null(ta);
    assert_int_equal(ta->dtype, MTP_DTYPE_F32);
    assert_int_equal(ta->ndim, 2);
    assert_int_equal(ta->shape[0], 2);
    assert_int_equal(ta->shape[1], 3);
    assert_int_equal(ta->numel, 6);
    assert_int_equal(ta->nbytes, 24);
    assert_string_equal(ta->file, f->path);
    assert_int_equal(ta->used, 0);
    for (int i = 0; i < 6; i++)
        assert_true(mtp_dtype_load(MTP_DTYPE_F32, ta->data, (size_t)i) == a[i]);

    struct mtp_tensor_info *tb = mtp_checkpoint_find(ck, "b");
    assert_int_equal(tb->dtype, MTP_DTYPE_BF16);
    assert_true(mtp_dtype_load(tb->dtype, tb->data, 1) == -2.0f);
    assert_true(mtp_dtype_load(tb->dtype, tb->data, 3) == 3.140625f);
    struct mtp_tensor_info *tc = mtp_checkpoint_find(ck, "c");
    assert_int_equal(tc->dtype, MTP_DTYPE_F8_E4M3);
    assert_true(mtp_dtype_load(tc->dtype, tc->data, 1) == 448.0f);
    struct mtp_tensor_info *td = mtp_checkpoint_find(ck, "d");
    assert_int_equal(td->dtype, MTP_DTYPE_OTHER);
    assert_string_equal(td->dtype_name, "I8");
    assert_int_equal(td->nbytes, 2);
    assert_int_equal(((const uint8_t *)td->data)[0], 0xFF);
    struct mtp_tensor_info *ts = mtp_checkpoint_find(ck, "s");
    assert_int_equal(ts->ndim, 0);
    assert_int_equal(ts->numel, 1);
    assert_true(mtp_dtype_load(MTP_DTYPE_F32, ts->data, 0) == 42.0f);
    struct mtp_tensor_info *te = mtp_checkpoint_find(ck, "e");
    assert_int_equal(te->numel, 0);
    assert_int_equal(te->nbytes, 0);
    mtp_checkpoint_free(ck);
}

struct bad_file {
    const char *header;  /* header JSON text */
    size_t data_len;     /* bytes of data after the header */
    uint64_t hlen;       /* header length field; 0 = strlen(header) */
    const char *want;    /* substring of the message */
};

static const struct bad_file bad_files[] = {
    {"[1, 2]", 0, 0, "expected a JSON object"},
    {"{", 0, 0, "header JSON"},
    {"{\"a\": 5}", 0, 0, "tensor 'a': expected an object"},
    {"{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, 0, "tensor 'a': expected a dtype"},
    {"{\"a\": {\"dtype\": \"F12\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4, 0, "\"F12\""},
    {"{\"a\": {\"dtype\": \"F4\", \"shape\": [2], \"data_offsets\": [0, 1]}}", 1, 0,
     "unsupported dtype F4"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4, 0,
     "tensor 'a': expected shape"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", 4, 0,
     "tensor 'a': expected shape"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": \"2\", \"data_offsets\": [0, 8]}}", 8, 0,
     "tensor 'a': expected shape"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4,
     0, "tensor 'a': expected shape"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 4]}}",
     4, 0, "64 bits"},
    {"{\"a\": {\"dtype\": \"F64\", \"shape\": [4611686018427387904], \"data_offsets\": [0, 8]}}",
     8, 0, "fits in memory"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, 0, "tensor 'a': expected data_offsets"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, -4]}}", 4, 0,
     "expected data_offsets"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", 4, 0,
     "begin <= end"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 8, 0,
     "end - begin = 8"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4, 0,
     "data buffer"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
     " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
     12, 0, "overlapping"},
    {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
     " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
     8, 0, "duplicate"},
    {"{}", 0, 1000, "header length"},
    {"{}", 0, 200000000, "header length"},
    {"{}", 0, UINT64_MAX, "header length"},
};

static void test_bad_files(void **state)
{
    struct fixture *f = *state;
    static const unsigned char zeros[64];
    for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        const struct bad_file *b = &bad_files[i];
        uint64_t hlen = b->hlen ? b->hlen : strlen(b->header);
        assert_int_equal(tiny_st_write_raw(f->path, hlen, b->header, zeros, b->data_len), 0);
        struct mtp_checkpoint *ck = (struct mtp_checkpoint *)1;
        mtp_error_clear();
        if (mtp_checkpoint_open_file(f->path, &ck) != MTP_ERR)
            fail_msg("case %zu accepted: %s", i, b->header);
        assert_null(ck);
        const char *msg = mtp_error_message();
        if (!strstr(msg, b->want) || !strstr(msg, f->path))
            fail_msg("case %zu: message lacks \"%s\": %s", i, b->want, msg);
        if (getenv("MTP_TEST_VERBOSE"))
            print_message("%s\n", msg);
    }
}

static void test_short_and_missing(void **state)
{
    struct fixture *f = *state;
    struct mtp_checkpoint *ck;
    assert_int_equal(tiny_write_text(f->path, "abcde"), 0); /* 5 bytes */
    assert_int_equal(mtp_checkpoint_open_file(f->path, &ck), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "at least 8"));
    assert_int_equal(tiny_write_text(f->path, ""), 0);
    assert_int_equal(mtp_checkpoint_open_file(f->path, &ck), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "at least 8"));
    assert_int_equal(mtp_checkpoint_open_file("/nonexistent/x.safetensors", &ck), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "cannot open"));
    /* A directory with neither layout. */
    assert_int_equal(mtp_checkpoint_open_dir(f->dir, &ck), MTP_ERR);
    assert_non_null(strstr(mtp_error_message(), "found neither"));
}

/* Two shards: shard 1 holds x, y; shard 2 holds z (plus EXTRA_NAME if given). */
static void write_shards(struct fixture *f, const char *extra_name)
{
    char p[600];
    static const float x[2] = {1, 2}, y[3] = {3, 4, 5}, z[1] = {6};
    const struct tiny_st_tensor s1[] = {{"x", "F32", 1, {2}, x, 8}, {"y", "F32", 1, {3}, y, 12}};
    const struct tiny_st_tensor s2[] = {{"z", "F32", 1, {1}, z, 4},
                                        {extra_name, "F32", 1, {2}, x, 8}};
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", f->dir);
    assert_int_equal(tiny_st_write(p, s1, 2, false), 0);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", f->dir);
    assert_int_equal(tiny_st_write(p, s2, extra_name ? 2 : 1, true), 0);
}

static void write_index(struct fixture *f, const char *weight_map)
{
    char p[600], text[1024];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", f->dir);
    snprintf(text, sizeof text, "{\"metadata\": {\"total_size\": 24}, \"weight_map\": %s}",
             weight_map);
    assert_int_equal(tiny_write_text(p, text), 0);
}

#define S1 "\"model-00001-of-00002.safetensors\""
#define S2 "\"model-00002-of-00002.safetensors\""

static void test_sharded_good(void **state)
{
    struct fixture *f = *state;
    char p[600];
    write_shards(f, NULL);
    write_index(f, "{\"x\": " S1 ", \"y\": " S1 ", \"z\": " S2 "}");
    /* A broken single file next to the index must be ignored: the index wins. */
    snprintf(p, sizeof p, "%s/model.safetensors", f->dir);
    assert_int_equal(tiny_write_text(p, "garbage"), 0);
    struct mtp_checkpoint *ck;
    if (mtp_checkpoint_open_dir(f->dir, &ck))
        fail_msg("%s", mtp_error_message());
    assert_int_equal(mtp_checkpoint_count(ck), 3);
    assert_int_equal(mtp_checkpoint_data_bytes(ck), 24);
    struct mtp_tensor_info *z = mtp_checkpoint_find(ck, "z");
    assert_non_null(z);
    assert_non_null(strstr(z->file, "model-00002-of-00002.safetensors"));
    assert_true(mtp_dtype_load(MTP_DTYPE_F32, z->data, 0) == 6.0f);
    struct mtp_tensor_info *y = mtp_checkpoint_find(ck, "y");
    assert_non_null(strstr(y->file, "model-00001-of-00002.safetensors"));
    assert_true(mtp_dtype_load(MTP_DTYPE_F32, y->data, 2) == 5.0f);
    mtp_checkpoint_free(ck);
}

struct bad_index {
    const char *extra;      /* extra tensor in shard 2 */
    const char *weight_map; /* JSON */
    const char *want;
};

static const struct bad_index bad_indexes[] = {
    /* listed but missing from its shard */
    {NULL, "{\"x\": " S1 ", \"y\": " S1 ", \"z\": " S2 ", \"w\": " S1 "}", "tensor 'w'"},
    /* present in a shard but not in the map */
    {"q", "{\"x\": " S1 ", \"y\": " S1 ", \"z\": " S2 "}", "tensor 'q': expected an entry"},
    /* in the map under the other shard */
    {NULL, "{\"x\": " S1 ", \"y\": " S2 ", \"z\": " S2 "}", "tensor 'y': expected in shard"},
    /* the same tensor in both shards */
    {"x", "{\"x\": " S1 ", \"y\": " S1 ", \"z\": " S2 "}", "one file only"},
    /* a shard that does not exist */
    {NULL, "{\"x\": " S1 ", \"y\": " S1 ", \"z\": \"model-00003.safetensors\"}", "cannot open"},
    {NULL, "{\"x\": " S1 ", \"y\": " S1 ", \"z\": \"../etc/passwd\"}", "inside the model"},
    {NULL, "{\"x\": " S1 ", \"y\": " S1 ", \"z\": 3}", "tensor 'z'"},
    {NULL, "[]", "weight_map"},
};

static void test_sharded_bad(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < sizeof bad_indexes / sizeof bad_indexes[0]; i++) {
        const struct bad_index *b = &bad_indexes[i];
        write_shards(f, b->extra);
        write_index(f, b->weight_map);
        struct mtp_checkpoint *ck = (struct mtp_checkpoint *)1;
        mtp_error_clear();
        if (mtp_checkpoint_open_dir(f->dir, &ck) != MTP_ERR)
            fail_msg("case %zu accepted", i);
        assert_null(ck);
        if (!strstr(mtp_error_message(), b->want))
            fail_msg("case %zu: message lacks \"%s\": %s", i, b->want, mtp_error_message());
        if (getenv("MTP_TEST_VERBOSE"))
            print_message("%s\n", mtp_error_message());
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_and_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sharded_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sharded_bad, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

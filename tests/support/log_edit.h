/*
 * log_edit.h - edit one field of one record of an mtpbench-log/2 log and
 * re-frame it with a valid CRC: what a buggy writer or a bit flip that
 * happens to keep the checksum produces (issue 28). Used by
 * tests/test_log_validation.c and the field-level fuzz target
 * (tests/fuzz/fuzz_log_fields.c).
 *
 * Each record body is unpacked with msgpack-c, the addressed value replaced
 * in place, the body packed again and given a fresh frame header. Frames
 * that are not intact are copied as they are, and nothing after them is
 * edited.
 */
#ifndef TEST_LOG_EDIT_H
#define TEST_LOG_EDIT_H

#include <stddef.h> /* defines: size_t */
#include <stdint.h> /* defines: int64_t, uint64_t, uint8_t */

enum log_edit_value {
    LOG_EDIT_INT,    /* the integer .i (negative: a MessagePack negative integer) */
    LOG_EDIT_UINT,   /* the unsigned integer .u (any uint64) */
    LOG_EDIT_DOUBLE, /* the float .d (NaN and infinities too) */
    LOG_EDIT_NIL,
    LOG_EDIT_STR,    /* the string .s */
    LOG_EDIT_EMPTY,  /* an empty array */
    LOG_EDIT_DELETE, /* remove the key (at the top level), or the last element of the array */
    LOG_EDIT_VALUE_COUNT,
};

/* Where: record RECORD (0 = the run record), key KEY (or, when KEY is NULL,
 * the KEY_INDEX-th entry of the map, modulo its size), then element ELEM of
 * that value if it is an array or a map (modulo its size; < 0: the value
 * itself), then element SUB of that (same rule). What: VALUE. */
struct log_edit {
    int record;
    const char *key;
    int key_index;
    int elem, sub;
    enum log_edit_value value;
    int64_t i;
    uint64_t u;
    double d;
    const char *s;
};

/* The log of N bytes at LOG with the N_EDITS edits applied, in a new buffer
 * (*OUT, *OUT_N; free() it). Edits whose record or key is not there are
 * ignored. Returns how many were applied. */
int log_edit_apply(const uint8_t *log, size_t n, const struct log_edit *edits, int n_edits,
                   uint8_t **out, size_t *out_n);

/* The same from file IN to file OUT; aborts the test process when a file
 * cannot be read or written. */
int log_edit_file(const char *in, const char *out, const struct log_edit *edits, int n_edits);

#endif

/*
 * test_files.h - small files that several tests write into their temporary
 * directories: plain text, and a byte-level BPE tokenizer.json whose ids
 * 0..255 are the bytes themselves (no merges), which fits the 256-token
 * vocabulary of the fixture models.
 */
#ifndef MTP_TEST_FILES_H
#define MTP_TEST_FILES_H

#include <stddef.h> /* defines: size_t */

/* Write TEXT to DIR/REL; aborts the test (cmocka fail) when it cannot. */
void test_write_file(const char *dir, const char *rel, const char *text);

/* The whole of PATH in a new buffer (free() it; one spare byte after the
 * data), its length in *SIZE; fails the test when it cannot be read. */
char *test_read_whole_file(const char *path, size_t *size);

/* Replace PATH with the N bytes of DATA; fails the test when it cannot. */
void test_write_bytes(const char *path, const char *data, size_t n);

/* Write the byte tokenizer to DIR/REL. */
void test_write_byte_tokenizer(const char *dir, const char *rel);

#endif

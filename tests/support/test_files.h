/*
 * test_files.h - small files that several tests write into their temporary
 * directories: plain text, and a byte-level BPE tokenizer.json whose ids
 * 0..255 are the bytes themselves (no merges), which fits the 256-token
 * vocabulary of the fixture models.
 */
#ifndef MTP_TEST_FILES_H
#define MTP_TEST_FILES_H

/* Write TEXT to DIR/REL; aborts the test (cmocka fail) when it cannot. */
void test_write_file(const char *dir, const char *rel, const char *text);

/* Write the byte tokenizer to DIR/REL. */
void test_write_byte_tokenizer(const char *dir, const char *rel);

#endif

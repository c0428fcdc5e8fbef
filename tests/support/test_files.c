/* test_files.c - files the tests write (see test_files.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "test_files.h"

static FILE *open_in(const char *dir, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("cannot write %s", path);
    return f;
}

void test_write_file(const char *dir, const char *rel, const char *text)
{
    FILE *f = open_in(dir, rel);
    fputs(text, f);
    fclose(f);
}

char *test_read_whole_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(*size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, *size, f), *size);
    fclose(f);
    return buf;
}

void test_write_bytes(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("cannot write %s", path);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

void test_write_byte_tokenizer(const char *dir, const char *rel)
{
    FILE *f = open_in(dir, rel);
    fputs("{\"version\": \"1.0\", \"added_tokens\": [], \"normalizer\": null,"
          " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false,"
          " \"trim_offsets\": true, \"use_regex\": true}, \"post_processor\": null,"
          " \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false,"
          " \"trim_offsets\": true, \"use_regex\": true},"
          " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null,"
          " \"continuing_subword_prefix\": null, \"end_of_word_suffix\": null,"
          " \"fuse_unk\": false, \"byte_fallback\": false, \"vocab\": {",
          f);
    /* GPT-2's byte-to-character map: printable bytes map to themselves, the
     * others to U+0100 upwards in byte order. */
    for (int b = 0, shifted = 0; b < 256; b++) {
        bool keep = (b > 0x20 && b < 0x7f) || (b >= 0xa1 && b != 0xad);
        fprintf(f, "%s\"\\u%04x\": %d", b ? ", " : "", keep ? b : 0x100 + shifted++, b);
    }
    fputs("}, \"merges\": []}}\n", f);
    fclose(f);
}

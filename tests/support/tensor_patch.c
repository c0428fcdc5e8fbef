/* tensor_patch.c - see tensor_patch.h. Reads the header with jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "tensor_patch.h"

void test_patch_tensor(const char *path, const char *name, size_t offset, const void *bytes,
                       size_t n)
{
    FILE *f = fopen(path, "r+b");
    if (!f)
        fail_msg("cannot open %s", path);
    unsigned char len8[8];
    assert_int_equal(fread(len8, 1, 8, f), 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | len8[i];
    char *hdr = malloc(hlen + 1);
    assert_int_equal(fread(hdr, 1, hlen, f), hlen);
    hdr[hlen] = '\0';
    json_t *root = json_loads(hdr, 0, NULL);
    free(hdr);
    json_t *off = json_object_get(json_object_get(root, name), "data_offsets");
    if (!json_is_array(off))
        fail_msg("%s: no tensor %s", path, name);
    size_t begin = (size_t)json_integer_value(json_array_get(off, 0));
    size_t end = (size_t)json_integer_value(json_array_get(off, 1));
    json_decref(root);
    assert_true(offset + n <= end - begin);
    assert_int_equal(fseek(f, (long)(8 + hlen + begin + offset), SEEK_SET), 0);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

void test_patch_f32(const char *path, const char *name, size_t index, float value)
{
    test_patch_tensor(path, name, index * sizeof value, &value, sizeof value);
}

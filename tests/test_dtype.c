/*
 * test_dtype.c - dtype names and sizes, and the scalar decoders: every FP8
 * E4M3FN byte and every F16 bit pattern against an independent ldexp formula,
 * BF16 round trips, and mtp_dtype_load on unaligned data.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>   /* defines: ldexp, isnan, signbit */
#include <string.h> /* defines: memcpy, strcmp */

#include "core/dtype.h"

static void test_names_and_sizes(void **state)
{
    (void)state;
    assert_string_equal(mtp_dtype_name(MTP_DTYPE_F32), "F32");
    assert_string_equal(mtp_dtype_name(MTP_DTYPE_BF16), "BF16");
    assert_string_equal(mtp_dtype_name(MTP_DTYPE_F16), "F16");
    assert_string_equal(mtp_dtype_name(MTP_DTYPE_F8_E4M3), "F8_E4M3");
    assert_string_equal(mtp_dtype_name(MTP_DTYPE_I64), "I64");
    assert_int_equal(mtp_dtype_size(MTP_DTYPE_F32), 4);
    assert_int_equal(mtp_dtype_size(MTP_DTYPE_BF16), 2);
    assert_int_equal(mtp_dtype_size(MTP_DTYPE_F16), 2);
    assert_int_equal(mtp_dtype_size(MTP_DTYPE_F8_E4M3), 1);
    assert_int_equal(mtp_dtype_size(MTP_DTYPE_I32), 4);
    assert_int_equal(mtp_dtype_size(MTP_DTYPE_I64), 8);
    assert_int_equal(mtp_dtype_size(MTP_DTYPE_U8), 1);
    assert_int_equal(mtp_dtype_size(MTP_DTYPE_F64), 8);
    assert_int_equal(mtp_dtype_size(MTP_DTYPE_OTHER), 0);
}

/* Independent decoding of E4M3FN (docs/model.md §2.5), in double. */
static double fp8_reference(unsigned b)
{
    unsigned s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7)
        return NAN;
    double v = e == 0 ? ldexp(m / 8.0, -6) : ldexp(1.0 + m / 8.0, (int)e - 7);
    return s ? -v : v;
}

static void test_fp8_all_bytes(void **state)
{
    (void)state;
    int n_nan = 0;
    for (unsigned b = 0; b < 256; b++) {
        double ref = fp8_reference(b);
        float got = mtp_fp8_e4m3_to_f32((uint8_t)b);
        if (isnan(ref)) {
            assert_true(isnan(got));
            n_nan++;
            continue;
        }
        assert_false(isnan(got));
        assert_true((double)got == ref); /* exact: every E4M3 value is a float */
        assert_int_equal(!!signbit(got), b >> 7);
        uint8_t byte = (uint8_t)b;
        assert_true(mtp_dtype_load(MTP_DTYPE_F8_E4M3, &byte, 0) == got);
    }
    assert_int_equal(n_nan, 2); /* only 0x7F and 0xFF */
    assert_true(isnan(mtp_fp8_e4m3_table[0x7F]));
    assert_true(isnan(mtp_fp8_e4m3_table[0xFF]));
    assert_true(mtp_fp8_e4m3_table[0x7E] == 448.0f);
    assert_true(mtp_fp8_e4m3_table[0xFE] == -448.0f);
    assert_true(mtp_fp8_e4m3_table[0x38] == 1.0f);
    assert_true(mtp_fp8_e4m3_table[0x01] == 0x1p-9f); /* smallest subnormal */
    assert_true(mtp_fp8_e4m3_table[0x07] == 7 * 0x1p-9f); /* largest subnormal */
    assert_true(mtp_fp8_e4m3_table[0x08] == 0x1p-6f); /* smallest normal */
    assert_true(mtp_fp8_e4m3_table[0x80] == 0.0f);
    assert_true(signbit(mtp_fp8_e4m3_table[0x80])); /* -0 */
    assert_false(signbit(mtp_fp8_e4m3_table[0x00]));
}

/* Independent decoding of IEEE half precision. */
static double f16_reference(unsigned h)
{
    unsigned s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(m, -24);
    else
        v = ldexp(1.0 + m / 1024.0, (int)e - 15);
    return s ? -v : v;
}

static void test_f16_all_values(void **state)
{
    (void)state;
    for (unsigned h = 0; h < 65536; h++) {
        double ref = f16_reference(h);
        float got = mtp_f16_to_f32((uint16_t)h);
        if (isnan(ref)) {
            assert_true(isnan(got));
            continue;
        }
        assert_true((double)got == ref);
        assert_int_equal(!!signbit(got), h >> 15);
    }
    assert_true(mtp_f16_to_f32(0x3C00) == 1.0f);
    assert_true(mtp_f16_to_f32(0x7BFF) == 65504.0f);
    assert_true(mtp_f16_to_f32(0x0001) == 0x1p-24f);
}

static void test_bf16(void **state)
{
    (void)state;
    assert_true(mtp_bf16_to_f32(0x3F80) == 1.0f);
    assert_true(mtp_bf16_to_f32(0xC040) == -3.0f);
    assert_int_equal(mtp_f32_to_bf16(1.0f), 0x3F80);
    /* 1 + 2^-8 is a tie between 1 and 1 + 2^-7: rounds to even (1.0). */
    assert_int_equal(mtp_f32_to_bf16(1.0f + 0x1p-8f), 0x3F80);
    /* 1 + 3*2^-8 is a tie between 1 + 2^-7 (odd) and 1 + 2^-6: rounds up. */
    assert_int_equal(mtp_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82);
    assert_true(isnan(mtp_bf16_to_f32(mtp_f32_to_bf16(NAN))));
    for (unsigned h = 0; h < 65536; h += 7) {
        float f = mtp_bf16_to_f32((uint16_t)h);
        if (!isnan(f))
            assert_int_equal(mtp_f32_to_bf16(f), h);
    }
}

static void test_load_unaligned(void **state)
{
    (void)state;
    unsigned char buf[16] = {0};
    float f = -2.5f;
    memcpy(buf + 1 + 4, &f, 4); /* element 1 of an F32 row starting at buf+1 */
    assert_true(mtp_dtype_load(MTP_DTYPE_F32, buf + 1, 1) == -2.5f);
    uint16_t bf = 0x4049; /* 3.140625 */
    memcpy(buf + 3 + 2 * 2, &bf, 2);
    assert_true(mtp_dtype_load(MTP_DTYPE_BF16, buf + 3, 2) == 3.140625f);
    uint16_t h = 0xC500; /* -5 */
    memcpy(buf + 1, &h, 2);
    assert_true(mtp_dtype_load(MTP_DTYPE_F16, buf + 1, 0) == -5.0f);
    buf[9] = 0xFE;
    assert_true(mtp_dtype_load(MTP_DTYPE_F8_E4M3, buf, 9) == -448.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_sizes), cmocka_unit_test(test_fp8_all_bytes),
        cmocka_unit_test(test_f16_all_values),  cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_load_unaligned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

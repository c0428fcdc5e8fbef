/*
 * log_frame.c - CRC-32 and the frame headers of mtpbench-log/2 (log_frame.h).
 *
 * The CRC is written here (a 256-entry table built on first use) rather than
 * taken from zlib: it is 20 lines, and the project then needs no new build
 * dependency. It is the same function as zlib's crc32 and Python's
 * zlib.crc32, which analysis/read_log.py uses.
 */
#define _GNU_SOURCE /* memmem */
#include "log_frame.h"

#include <string.h> /* defines: memcmp, memcpy, memmem */

/* The constant parts of a header: bytes 0..16 and 21..27. */
static const uint8_t MAGIC_A[17] = {0x83, 0xa4, 't', 'y', 'p', 'e', 0xa5, 'f', 'r',
                                    'a',  'm',  'e', 0xa3, 'l', 'e', 'n', 0xce};
static const uint8_t MAGIC_B[7] = {0xa5, 'c', 'r', 'c', '3', '2', 0xce};
enum { LEN_AT = 17, MAGIC_B_AT = 21, CRC_AT = 28 };

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t mtp_log_crc32(const void *data, size_t n)
{
    /* Benign if two threads race here: both write the same values. */
    if (crc_table[1] == 0)
        crc_init();
    const uint8_t *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void mtp_log_frame_encode(uint8_t out[MTP_LOG_FRAME_HEADER], const void *body, uint32_t len)
{
    memcpy(out, MAGIC_A, sizeof MAGIC_A);
    put_be32(out + LEN_AT, len);
    memcpy(out + MAGIC_B_AT, MAGIC_B, sizeof MAGIC_B);
    put_be32(out + CRC_AT, mtp_log_crc32(body, len));
}

uint32_t mtp_log_frame_claimed_crc(const uint8_t *data, size_t off)
{
    return get_be32(data + off + CRC_AT);
}

/* Do the AVAIL bytes at P match the constant parts of a header so far? */
static bool header_prefix_ok(const uint8_t *p, size_t avail)
{
    size_t a = avail < sizeof MAGIC_A ? avail : sizeof MAGIC_A;
    if (memcmp(p, MAGIC_A, a) != 0)
        return false;
    if (avail <= MAGIC_B_AT)
        return true;
    size_t b = avail - MAGIC_B_AT < sizeof MAGIC_B ? avail - MAGIC_B_AT : sizeof MAGIC_B;
    return memcmp(p + MAGIC_B_AT, MAGIC_B, b) == 0;
}

enum mtp_log_frame_status mtp_log_frame_check(const uint8_t *data, size_t size, size_t off,
                                              uint32_t *len, uint32_t *crc_found)
{
    size_t avail = size - off;
    *len = 0;
    if (!header_prefix_ok(data + off, avail))
        return MTP_LOG_FRAME_BAD_HEADER;
    if (avail < LEN_AT + 4)
        return MTP_LOG_FRAME_CUT;
    uint32_t n = get_be32(data + off + LEN_AT);
    if (n == 0 || n > MTP_LOG_FRAME_MAX_BODY)
        return MTP_LOG_FRAME_BAD_HEADER;
    *len = n;
    if (avail < MTP_LOG_FRAME_HEADER || avail - MTP_LOG_FRAME_HEADER < n)
        return MTP_LOG_FRAME_CUT;
    uint32_t crc = mtp_log_crc32(data + off + MTP_LOG_FRAME_HEADER, n);
    if (crc_found)
        *crc_found = crc;
    return crc == get_be32(data + off + CRC_AT) ? MTP_LOG_FRAME_OK : MTP_LOG_FRAME_BAD_CRC;
}

bool mtp_log_frame_detect(const uint8_t *data, size_t size)
{
    if (size == 0)
        return false;
    if (header_prefix_ok(data, size))
        return true;
    return memmem(data, size, MAGIC_A, sizeof MAGIC_A) != NULL;
}

size_t mtp_log_frame_resync(const uint8_t *data, size_t size, size_t from)
{
    while (from < size) {
        const uint8_t *hit = memmem(data + from, size - from, MAGIC_A, sizeof MAGIC_A);
        if (!hit)
            return size;
        size_t at = (size_t)(hit - data);
        uint32_t len;
        enum mtp_log_frame_status s = mtp_log_frame_check(data, size, at, &len, NULL);
        if (s == MTP_LOG_FRAME_OK || s == MTP_LOG_FRAME_CUT)
            return at;
        from = at + 1;
    }
    return size;
}

int mtp_log_frame_count(const uint8_t *data, size_t from, size_t to)
{
    int n = 0;
    while (from < to) {
        const uint8_t *hit = memmem(data + from, to - from, MAGIC_A, sizeof MAGIC_A);
        if (!hit)
            break;
        n++;
        from = (size_t)(hit - data) + 1;
    }
    return n;
}

/*
 * log_frame.h - the record framing of mtpbench-log/2 (spec/log-format.md,
 * "Framing"): internal to the log reader and writer.
 *
 * Every record body (one MessagePack map) is preceded by a 32-byte frame
 * header that is itself a MessagePack map, so a plain msgpack reader sees
 * {"type": "frame", ...} records between the bodies and skips them as a
 * type it does not know:
 *
 *   offset  bytes                         MessagePack
 *    0      83                            fixmap, 3 entries
 *    1      a4 't' 'y' 'p' 'e'            "type"
 *    6      a5 'f' 'r' 'a' 'm' 'e'        "frame"
 *   12      a3 'l' 'e' 'n'                "len"
 *   16      ce LL LL LL LL                uint32 big-endian: body bytes
 *   21      a5 'c' 'r' 'c' '3' '2'        "crc32"
 *   27      ce CC CC CC CC                uint32 big-endian: CRC-32 of the body
 *
 * The fixed layout (always the 5-byte uint32 form) is what lets a reader
 * resynchronise after damage: it scans for the constant bytes and accepts a
 * header only if the body that follows has the right length and checksum.
 */
#ifndef MTP_LOG_FRAME_H
#define MTP_LOG_FRAME_H

#include <stdbool.h> /* defines: bool */
#include <stddef.h>  /* defines: size_t */
#include <stdint.h>  /* defines: uint8_t, uint32_t */

enum {
    MTP_LOG_FRAME_HEADER = 32,          /* bytes before each body */
    MTP_LOG_FRAME_MAX_BODY = 1 << 30,   /* a longer "len" is damage, not a record */
};

/* CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320: zlib's crc32), so
 * Python's zlib.crc32 checks a log with the standard library alone. */
uint32_t mtp_log_crc32(const void *data, size_t n);

/* The header for a body of LEN bytes at BODY into OUT. */
void mtp_log_frame_encode(uint8_t out[MTP_LOG_FRAME_HEADER], const void *body, uint32_t len);

enum mtp_log_frame_status {
    MTP_LOG_FRAME_OK,        /* a header, then LEN bytes whose CRC matches */
    MTP_LOG_FRAME_CUT,       /* a well-formed start that the end of the file cuts off */
    MTP_LOG_FRAME_BAD_HEADER,/* not a frame header */
    MTP_LOG_FRAME_BAD_CRC,   /* a whole frame whose body fails the checksum */
};

/* What the SIZE bytes at DATA hold at offset OFF (< SIZE). *LEN gets the
 * header's body length when the header is well formed (else 0); *CRC_FOUND
 * (may be NULL) the body's actual CRC when a whole body is there. */
enum mtp_log_frame_status mtp_log_frame_check(const uint8_t *data, size_t size, size_t off,
                                              uint32_t *len, uint32_t *crc_found);

/* The CRC-32 the header at DATA + OFF claims (a well-formed header). */
uint32_t mtp_log_frame_claimed_crc(const uint8_t *data, size_t off);

/* True when the file starts like mtpbench-log/2 (a frame header, or a prefix
 * of one), or holds a frame header anywhere (its start is damaged). */
bool mtp_log_frame_detect(const uint8_t *data, size_t size);

/* The offset >= FROM of the next frame that is whole and intact, or that is
 * cut off only by the end of the file; SIZE when there is none. */
size_t mtp_log_frame_resync(const uint8_t *data, size_t size, size_t from);

/* How many frame headers start in [FROM, TO): the records a damaged stretch
 * held (at least 1 is counted by the caller). */
int mtp_log_frame_count(const uint8_t *data, size_t from, size_t to);

#endif

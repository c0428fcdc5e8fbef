/*
 * log_skim.h - find where one MessagePack object ends without building it
 * (internal to the log reader).
 *
 * msgpack-c allocates a container's elements from its declared count before
 * it sees whether the bytes are there, so a damaged length (an array32 of 2^32
 * elements in 40 bytes) asks for tens of GB. Skimming first bounds that: an
 * object the skim accepts has every declared element inside the buffer (each
 * takes at least one byte), so unpacking it allocates in proportion to its
 * size. Found by the log fuzz target (tests/fuzz/fuzz_log.c).
 *
 * It also counts nesting: msgpack-c's unpacker holds at most
 * MTP_LOG_SKIM_MAX_DEPTH open containers and reports one more as "out of
 * memory", which would name the wrong cause (issue 28, case 13).
 */
#ifndef MTP_LOG_SKIM_H
#define MTP_LOG_SKIM_H

#include <msgpack/unpack_define.h> /* defines: MSGPACK_EMBED_STACK_SIZE */
#include <stddef.h>                 /* defines: size_t */

/* Open containers msgpack-c's unpacker holds; it refuses to open one more. */
enum { MTP_LOG_SKIM_MAX_DEPTH = MSGPACK_EMBED_STACK_SIZE };

enum mtp_log_skim {
    MTP_LOG_SKIM_OK,       /* one whole object; *END is just past it */
    MTP_LOG_SKIM_CONTINUE, /* the bytes end (or its declared sizes run) past SIZE */
    MTP_LOG_SKIM_ERROR,    /* a byte no MessagePack object starts with (0xc1) */
    MTP_LOG_SKIM_TOO_DEEP, /* a container opens inside MTP_LOG_SKIM_MAX_DEPTH open ones */
};

/* Skim the object starting at DATA + OFF (OFF < SIZE). */
enum mtp_log_skim mtp_log_skim_object(const char *data, size_t size, size_t off, size_t *end);

#endif

/*
 * log_pack.h - the few MessagePack packing steps that the records written
 * through mtp_log_write_packed share (log_plan.c, log_batch.c): a string, and
 * a key followed by an array of integers.
 */
#ifndef MTP_LOG_PACK_H
#define MTP_LOG_PACK_H

#include <msgpack.h> /* defines: msgpack_packer */
#include <stdint.h>
#include <string.h> /* defines: strlen */

static inline void mtp_log_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static inline void mtp_log_pack_i32s(msgpack_packer *pk, const char *key, const int32_t *v,
                                     size_t n)
{
    mtp_log_pack_str(pk, key);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_int32(pk, v[i]);
}

static inline void mtp_log_pack_u64s(msgpack_packer *pk, const char *key, const uint64_t *v,
                                     size_t n)
{
    mtp_log_pack_str(pk, key);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_uint64(pk, v[i]);
}

#endif

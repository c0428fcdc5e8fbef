/*
 * log_skim.c - the allocation-free MessagePack skim of log_skim.h.
 *
 * One pass with a count of elements still to read (no recursion): each
 * element's first byte says how many bytes of payload follow and how many
 * child elements it adds. A small stack of what each open container still
 * holds gives the nesting depth, bounded as msgpack-c bounds it.
 */
#include "log_skim.h"

#include <stdint.h> /* defines: uint64_t, uint8_t */

/* Big-endian unsigned integer of N (1, 2 or 4) bytes at P. */
static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* What a type byte announces. */
struct skim_kind {
    int len_bytes;     /* bytes of the length field after the type byte (0: none) */
    uint64_t fixed;    /* payload bytes besides those the length counts */
    int per_len;       /* the length counts: 0 payload bytes, 1 array elements, 2 map entries (x2) */
    uint64_t children; /* elements a fixarray/fixmap adds */
    int container;     /* 1 for an array or a map (even an empty one) */
};

/* Fill K for type byte B; 0 for 0xc1, which starts no object. */

static int classify(uint8_t b, struct skim_kind *k)
{
    *k = (struct skim_kind){0, 0, 0, 0, 0};
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 1;
    k->container = (b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf);
    if (b <= 0x8f) {
        k->children = 2u * (b & 0x0f);
        return 1;
    }
    if (b <= 0x9f) {
        k->children = b & 0x0f;
        return 1;
    }
    if (b <= 0xbf) {
        k->fixed = b & 0x1f;
        return 1;
    }
    switch (b) {
    case 0xc4: case 0xc5: case 0xc6: k->len_bytes = 1 << (b - 0xc4); return 1;
    case 0xc7: case 0xc8: case 0xc9: k->len_bytes = 1 << (b - 0xc7); k->fixed = 1; return 1;
    case 0xca: k->fixed = 4; return 1;
    case 0xcb: k->fixed = 8; return 1;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: k->fixed = 1u << (b - 0xcc); return 1;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: k->fixed = 1u << (b - 0xd0); return 1;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: k->fixed = 1 + (1u << (b - 0xd4)); return 1;
    case 0xd9: case 0xda: case 0xdb: k->len_bytes = 1 << (b - 0xd9); return 1;
    case 0xdc: case 0xdd: k->len_bytes = 2 << (b - 0xdc); k->per_len = 1; return 1;
    case 0xde: case 0xdf: k->len_bytes = 2 << (b - 0xde); k->per_len = 2; return 1;
    default: return 0; /* 0xc1: never used */
    }
}

enum mtp_log_skim mtp_log_skim_object(const char *data, size_t size, size_t off, size_t *end)
{
    const uint8_t *d = (const uint8_t *)data;
    uint64_t pending = 1; /* elements still to read */
    uint64_t left[MTP_LOG_SKIM_MAX_DEPTH + 1] = {1}; /* [0]: the object; [i]: open container i */
    int open = 0;
    size_t pos = off;
    while (pending > 0) {
        /* Every pending element needs at least one more byte. */
        if (pos >= size || pending > size - pos)
            return MTP_LOG_SKIM_CONTINUE;
        struct skim_kind k;
        if (!classify(d[pos++], &k))
            return MTP_LOG_SKIM_ERROR;
        if ((uint64_t)k.len_bytes > size - pos)
            return MTP_LOG_SKIM_CONTINUE;
        uint64_t len = k.len_bytes ? be(d + pos, k.len_bytes) : 0;
        pos += (size_t)k.len_bytes;
        uint64_t payload = k.fixed + (k.per_len == 0 ? len : 0);
        uint64_t children = k.children + (uint64_t)k.per_len * len;
        if (payload > size - pos)
            return MTP_LOG_SKIM_CONTINUE;
        pos += (size_t)payload;
        pending = pending - 1 + children;
        left[open]--;
        if (k.container && open == MTP_LOG_SKIM_MAX_DEPTH)
            return MTP_LOG_SKIM_TOO_DEEP;
        if (children > 0)
            left[++open] = children;
        while (open > 0 && left[open] == 0)
            open--;
    }
    *end = pos;
    return MTP_LOG_SKIM_OK;
}

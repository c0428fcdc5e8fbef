/*
 * synth_freq.c - token_frequencies.bin for a synthetic checkpoint
 * (spec/model-directory.md), so that draft vocabularies can be timed on it.
 * Counts follow Zipf's law (count of rank r = 10^9 / (r + 1)) over a seeded
 * random order of the ids, so the N most frequent ids are scattered through
 * the head as in a real vocabulary, not its first N rows.
 */
#include <errno.h>  /* defines: errno */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strerror */

#include "../engine/draft_vocab.h" /* defines: MTP_TOKEN_FREQ_FILE */
#include "../core/error.h"
#include "../engine/rng.h" /* defines: mtp_rng_splitmix64 */
#include "synth_internal.h"

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int b = 0; b < bytes; b++)
        p[b] = (unsigned char)(v >> (8 * b));
}

int mtp_synth_write_token_freq(const char *dir, int vocab, uint64_t seed)
{
    int32_t *order = mtp_xmalloc(sizeof *order * (size_t)vocab);
    for (int i = 0; i < vocab; i++)
        order[i] = i;
    uint64_t state = seed ^ 0x746f6b656e667271ull; /* "tokenfrq": a stream of its own */
    for (int i = vocab - 1; i > 0; i--) { /* Fisher-Yates */
        int j = (int)(mtp_rng_splitmix64(&state) % (uint64_t)(i + 1));
        int32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    size_t size = 24 + 8 * (size_t)vocab;
    unsigned char *buf = mtp_xcalloc(size, 1);
    uint64_t total = 0;
    for (int r = 0; r < vocab; r++) {
        uint64_t count = 1000000000ull / (uint64_t)(r + 1);
        put_le(buf + 24 + 8 * (size_t)order[r], count, 8);
        total += count;
    }
    memcpy(buf, "MTPFREQ1", 8);
    put_le(buf + 8, (uint64_t)vocab, 4);
    put_le(buf + 16, total, 8);
    free(order);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, MTP_TOKEN_FREQ_FILE);
    FILE *f = fopen(path, "wb");
    int rc = f && fwrite(buf, 1, size, f) == size ? MTP_OK : MTP_ERR;
    if (f && fclose(f))
        rc = MTP_ERR;
    free(buf);
    return rc ? mtp_error_set("synth: cannot write %s: %s", path, strerror(errno)) : MTP_OK;
}

/*
 * fuzz_safetensors.c - libFuzzer target: a safetensors file (8-byte header
 * length, JSON header, data) through mtp_checkpoint_open_file.
 *
 * The input is a file whose data may be cut short: it is padded with zeros
 * (sparse) to 8 + header length + 32 MiB, so seeds can be just the header of
 * a shipped checkpoint and tensor offsets still land inside the data.
 */
#include <stdlib.h> /* defines: free */

#include "engine/safetensors.h" /* defines: mtp_checkpoint_open_file */
#include "fuzz.h"

enum { PAD_DATA = 32u << 20 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t hlen = 0;
    for (int i = 7; i >= 0 && size >= 8; i--)
        hlen = (hlen << 8) | data[i];
    size_t want = size;
    if (size >= 8 && hlen < ((uint64_t)1 << 30))
        want = 8 + (size_t)hlen + PAD_DATA;
    const char *path = fuzz_scratch_file(data, size, want);
    struct mtp_checkpoint *ck = NULL;
    if (mtp_checkpoint_open_file(path, &ck) == 0) {
        size_t n = mtp_checkpoint_count(ck);
        for (size_t i = 0; i < n; i++) {
            struct mtp_tensor_info *t = mtp_checkpoint_tensor(ck, i);
            if (mtp_checkpoint_find(ck, t->name) == NULL)
                abort(); /* every listed tensor must be found by its name */
        }
    }
    mtp_checkpoint_free(ck);
    return 0;
}

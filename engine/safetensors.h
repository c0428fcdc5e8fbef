/*
 * safetensors.h - read-only, memory-mapped safetensors files and sharded
 * checkpoints (docs/model.md §7).
 *
 * A file is: u64 little-endian header length N, N bytes of JSON header, data.
 * Every header entry is validated before any tensor is returned: known dtype,
 * non-negative shape, end - begin == product(shape) * element size, offsets
 * inside the data buffer, and no two tensors overlapping. A bad file fails with
 * the file name, the tensor name, what was expected and what was found.
 */
#ifndef MTP_SAFETENSORS_H
#define MTP_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/dtype.h"

enum { MTP_MAX_DIMS = 8 };

struct mtp_tensor_info {
    char *name;
    enum mtp_dtype dtype;
    char dtype_name[16]; /* as written in the header (useful when dtype is OTHER) */
    int ndim;
    int64_t shape[MTP_MAX_DIMS];
    int64_t numel;
    size_t nbytes;
    const void *data;    /* points into the mapping */
    const char *file;    /* path of the file holding it (owned by the checkpoint) */
    int used;            /* set by the model binder; unused tensors are reported */
};

struct mtp_checkpoint; /* one file or a set of shards, all mapped */

/* Open DIR's model.safetensors, or the shards named by model.safetensors.index.json.
 * Returns MTP_OK and *OUT, or MTP_ERR with a message. */
int mtp_checkpoint_open_dir(const char *dir, struct mtp_checkpoint **out);

/* Open one safetensors file. */
int mtp_checkpoint_open_file(const char *path, struct mtp_checkpoint **out);

/* Page-cache advice for every file's mapping: RANDOM while the loader reads
 * small tensors scattered over the files (norms, FP8 scales, routers), so
 * that each first touch does not read ahead megabytes of the weights around
 * it (on a checkpoint larger than memory that read half of the file at
 * load); NORMAL afterwards, for decoding's sequential weight reads. */
void mtp_checkpoint_advise_random(struct mtp_checkpoint *ck, bool random);

void mtp_checkpoint_free(struct mtp_checkpoint *ck);

/* Lookup by name; NULL when absent. */
struct mtp_tensor_info *mtp_checkpoint_find(struct mtp_checkpoint *ck, const char *name);

/* All tensors, in header order of their files. */
size_t mtp_checkpoint_count(const struct mtp_checkpoint *ck);
struct mtp_tensor_info *mtp_checkpoint_tensor(struct mtp_checkpoint *ck, size_t i);

/* Total bytes of tensor data mapped. */
size_t mtp_checkpoint_data_bytes(const struct mtp_checkpoint *ck);

#endif

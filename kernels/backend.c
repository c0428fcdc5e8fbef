/*
 * backend.c - backend selection by name and the generic free.
 *
 * When the CUDA backend is not compiled in (MTP_HAVE_CUDA undefined), a stub
 * mtp_backend_cuda_create fails with a message saying why, so callers can ask
 * for "cuda" unconditionally and report the reason.
 */
#include "backend.h"

#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strcmp */

#include "../core/error.h" /* defines: mtp_error_set */

int mtp_weight_validate(const char *backend, const struct mtp_weight *w)
{
    const char *name = w->name ? w->name : "(unnamed)";
    if (!w->data)
        return MTP_OK;
    switch (w->dtype) {
    case MTP_DTYPE_F32:
    case MTP_DTYPE_BF16:
    case MTP_DTYPE_F16:
    case MTP_DTYPE_F8_E4M3:
        break;
    default:
        return mtp_error_set("%s backend: tensor %s: unsupported dtype %s (expected F32, BF16, "
                             "F16 or F8_E4M3)",
                             backend, name, mtp_dtype_name(w->dtype));
    }
    if (w->rows < 0 || w->cols < 0)
        return mtp_error_set("%s backend: tensor %s: negative shape [%d, %d]", backend, name,
                             w->rows, w->cols);
    if (w->dtype == MTP_DTYPE_F8_E4M3 && !w->scale_inv)
        return mtp_error_set("%s backend: FP8 tensor %s has no scale_inv", backend, name);
    if (w->dtype == MTP_DTYPE_F8_E4M3 && (w->block_rows <= 0 || w->block_cols <= 0))
        return mtp_error_set("%s backend: FP8 tensor %s: bad block size [%d, %d]", backend, name,
                             w->block_rows, w->block_cols);
    return MTP_OK;
}

int mtp_backend_create(const char *name, int n_threads, struct mtp_backend **out)
{
    *out = NULL;
    if (!name)
        return mtp_error_set("no backend name given (valid backends: cpu, cuda)");
    if (strcmp(name, "cpu") == 0)
        return mtp_backend_cpu_create(n_threads, out);
    if (strcmp(name, "cuda") == 0)
        return mtp_backend_cuda_create(0, out); /* n_threads is a CPU setting; device 0 */
    return mtp_error_set("unknown backend '%s' (valid backends: cpu, cuda)", name);
}

void mtp_backend_free(struct mtp_backend *be)
{
    if (!be)
        return;
    if (be->iface && be->iface->free)
        be->iface->free(be->ctx);
    free(be);
}

#ifndef MTP_HAVE_CUDA
int mtp_backend_cuda_create(int device, struct mtp_backend **out)
{
    (void)device;
    *out = NULL;
    return mtp_error_set(
        "mtpbench was built without the CUDA backend (nvcc not found or -DMTP_CUDA=OFF)");
}
#endif

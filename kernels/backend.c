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

#include "../engine/error.h" /* defines: mtp_error_set */

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

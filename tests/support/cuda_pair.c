/* cuda_pair.c - see cuda_pair.h. */
#include "cuda_pair.h"

#include "core/error.h"

int test_cuda_pair_open(struct test_cuda_pair *p, int threads)
{
    p->cuda = NULL;
    p->why[0] = '\0';
    if (mtp_backend_cpu_create(threads, &p->cpu))
        return -1;
    if (mtp_backend_cuda_create(0, &p->cuda)) {
        snprintf(p->why, sizeof p->why, "%s", mtp_error_message());
        mtp_error_clear();
        p->cuda = NULL;
    }
    return 0;
}

void test_cuda_pair_close(struct test_cuda_pair *p)
{
    mtp_backend_free(p->cuda);
    mtp_backend_free(p->cpu);
    p->cuda = p->cpu = NULL;
}

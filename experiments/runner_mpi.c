/*
 * runner_mpi.c - MPI for `mtpbench run` (see runner_mpi.h): init/finalize,
 * the few collectives the sharded runner needs, and the count messages of the
 * job-wide progress display. Without MTP_HAVE_MPI, stubs for one process.
 */
#include "runner_mpi.h"

#include <stdlib.h> /* defines: getenv, abort */
#include <string.h> /* defines: memcpy */

#include "../core/error.h"

#ifdef MTP_HAVE_MPI
#include <mpi.h> /* defines: MPI_Init, MPI_Isend, MPI_Iprobe */
#endif

/* Launchers announce the job in the environment: Open MPI's mpirun, PMIx
 * (Open MPI 5, srun --mpi=pmix), and PMI/PMI2 (srun, MPICH's hydra). */
bool mtp_mpi_launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE",
                                       "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return true;
    return false;
}

#ifdef MTP_HAVE_MPI

enum { TAG_COUNTS = 4101, TAG_FINAL = 4102 };

static MPI_Request pending = MPI_REQUEST_NULL;
static int64_t send_buf[3]; /* the in-flight message; untouched until it completes */

bool mtp_mpi_available(void) { return true; }

int mtp_mpi_init(int *rank, int *size, int *local_rank)
{
    int provided;
    /* Funneled: the CPU backend's threads compute, only the main thread calls MPI. */
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return mtp_error_set("MPI_Init_thread failed");
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, *rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, local_rank);
    MPI_Comm_free(&node);
    return MTP_OK;
}

void mtp_mpi_finalize(void)
{
    int on = 0, off = 0;
    MPI_Initialized(&on);
    MPI_Finalized(&off);
    if (on && !off)
        MPI_Finalize();
}

_Noreturn void mtp_mpi_abort(int code)
{
    MPI_Abort(MPI_COMM_WORLD, code);
    abort(); /* MPI_Abort does not return; this tells the compiler so */
}

void mtp_mpi_bcast(void *buf, size_t n)
{
    /* In chunks: MPI counts are int. */
    char *p = buf;
    while (n > 0) {
        int k = n > (1u << 30) ? (1 << 30) : (int)n;
        MPI_Bcast(p, k, MPI_BYTE, 0, MPI_COMM_WORLD);
        p += k;
        n -= (size_t)k;
    }
}

void mtp_mpi_barrier(void) { MPI_Barrier(MPI_COMM_WORLD); }

int64_t mtp_mpi_sum(int64_t v)
{
    int64_t s = 0;
    MPI_Allreduce(&v, &s, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    return s;
}

void mtp_mpi_counts_send(const struct mtp_mpi_counts *c, bool final)
{
    int done = 1;
    if (pending != MPI_REQUEST_NULL)
        MPI_Test(&pending, &done, MPI_STATUS_IGNORE);
    if (!done && !final)
        return;
    if (!done)
        MPI_Wait(&pending, MPI_STATUS_IGNORE);
    send_buf[0] = c->logged;
    send_buf[1] = c->tokens;
    send_buf[2] = c->steps;
    MPI_Isend(send_buf, 3, MPI_INT64_T, 0, final ? TAG_FINAL : TAG_COUNTS, MPI_COMM_WORLD,
              &pending);
    if (final)
        MPI_Wait(&pending, MPI_STATUS_IGNORE);
}

void mtp_mpi_counts_poll(struct mtp_mpi_counts *per_rank, int size, int *n_final, bool wait)
{
    for (;;) {
        int flag = 0;
        MPI_Status st;
        if (wait) {
            MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
            flag = 1;
            wait = false; /* one blocking receive, then whatever else is there */
        } else {
            MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
        }
        if (!flag || (st.MPI_TAG != TAG_COUNTS && st.MPI_TAG != TAG_FINAL))
            return;
        int64_t v[3];
        MPI_Recv(v, 3, MPI_INT64_T, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (st.MPI_SOURCE > 0 && st.MPI_SOURCE < size)
            per_rank[st.MPI_SOURCE] = (struct mtp_mpi_counts){v[0], v[1], v[2]};
        if (st.MPI_TAG == TAG_FINAL)
            (*n_final)++;
    }
}

#else /* one process, no MPI */

bool mtp_mpi_available(void) { return false; }

int mtp_mpi_init(int *rank, int *size, int *local_rank)
{
    *rank = 0;
    *size = 1;
    *local_rank = 0;
    return mtp_error_set("this mtpbench was built without MPI (configure with an MPI "
                         "implementation installed, e.g. Debian's libopenmpi-dev, and "
                         "-DMTP_MPI=ON)");
}

void mtp_mpi_finalize(void) {}
_Noreturn void mtp_mpi_abort(int code) { exit(code); }
void mtp_mpi_bcast(void *buf, size_t n) { (void)buf; (void)n; }
void mtp_mpi_barrier(void) {}
int64_t mtp_mpi_sum(int64_t v) { return v; }
void mtp_mpi_counts_send(const struct mtp_mpi_counts *c, bool final) { (void)c; (void)final; }
void mtp_mpi_counts_poll(struct mtp_mpi_counts *per_rank, int size, int *n_final, bool wait)
{
    (void)per_rank; (void)size; (void)n_final; (void)wait;
}

#endif

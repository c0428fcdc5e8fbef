/*
 * runner_mpi.h - the runner's use of MPI, behind plain functions so the rest
 * of the harness compiles without an MPI implementation (MTP_HAVE_MPI unset:
 * every function is a stub for a world of one process).
 *
 * Only `mtpbench run` uses MPI. A process is an MPI rank when it was started
 * by an MPI launcher (mpirun, srun): detected from the launcher's environment,
 * so a plain `mtpbench run` never initialises MPI.
 */
#ifndef MTP_RUNNER_MPI_H
#define MTP_RUNNER_MPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when built with MPI (MTP_HAVE_MPI). */
bool mtp_mpi_available(void);

/* True when an MPI launcher started this process (its environment says so). */
bool mtp_mpi_launched(void);

/* Initialise MPI; *RANK, *SIZE in MPI_COMM_WORLD, *LOCAL_RANK among the ranks
 * of this node. MTP_ERR (message set) without MPI or when MPI_Init fails. */
int mtp_mpi_init(int *rank, int *size, int *local_rank);
void mtp_mpi_finalize(void);
/* End every rank of the job with CODE (after an error on one rank: the others
 * would wait for it forever). Does not return. */
_Noreturn void mtp_mpi_abort(int code);

/* Broadcast N bytes of BUF from rank 0. */
void mtp_mpi_bcast(void *buf, size_t n);
void mtp_mpi_barrier(void);
/* The sum of V over all ranks, on every rank. */
int64_t mtp_mpi_sum(int64_t v);

/* What a rank has done so far in this process, for rank 0's progress display. */
struct mtp_mpi_counts {
    int64_t logged; /* requests logged */
    int64_t tokens; /* tokens emitted by decoding steps */
    int64_t steps;  /* decoding steps */
};

/* Ranks > 0: send C to rank 0 without waiting for it. With FINAL false, the
 * message is skipped when the previous one is still in flight (a progress
 * display can miss an update; a rank must never wait for it). With FINAL true,
 * the last message: waits until it is sent. */
void mtp_mpi_counts_send(const struct mtp_mpi_counts *c, bool final);

/* Rank 0: take the count messages that have arrived into PER_RANK[SIZE]
 * (latest per rank wins) and count final ones in *N_FINAL. With WAIT, block
 * until at least one message arrives. */
void mtp_mpi_counts_poll(struct mtp_mpi_counts *per_rank, int size, int *n_final, bool wait);

#endif

/*
 * emu_counters.h - what the host waited for, counted by the emulated runtime
 * (emu_runtime.cpp), so tests can hold the CUDA backend to a number of host
 * round trips per op. C and C++; only the emulation build defines these.
 *
 * On a GPU each counted call makes the host wait: a synchronize waits for the
 * stream; a copy between pageable host memory and the device waits too (a
 * device-to-host copy until it is done, a host-to-device copy for the
 * stream's earlier work, CUDA's "API synchronization behavior").
 */
#ifndef MTP_EMU_COUNTERS_H
#define MTP_EMU_COUNTERS_H

#ifdef __cplusplus
extern "C" {
#endif

struct mtp_emu_counters {
    long syncs;       /* cudaStreamSynchronize, cudaDeviceSynchronize, cudaEventSynchronize */
    long host_copies; /* cudaMemcpy(Async) host to device or device to host */
};

/* The counts since the process started (every thread together). */
void mtp_emu_counters_get(struct mtp_emu_counters *out);

#ifdef __cplusplus
}
#endif

#endif

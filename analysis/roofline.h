/*
 * roofline.h - the machine's measured limits for `mtpbench bench`: memory
 * bandwidth from a STREAM-like triad over buffers much larger than the last
 * level cache, and peak FP32 FLOP/s from a register-resident FMA loop. Both
 * use the given number of OpenMP threads, like the CPU backend.
 */
#ifndef MTP_ROOFLINE_H
#define MTP_ROOFLINE_H

#include <stddef.h>

/* Bytes of the last-level cache (sysconf / sysfs; 32 MiB when unknown). */
size_t mtp_roofline_llc_bytes(void);

/* Triad a[i] = b[i] + s * c[i] over three double arrays of TOTAL_BYTES in
 * all, REPEATS timed passes after one warm-up; returns the median bandwidth
 * in bytes/s (24 bytes moved per element, the STREAM convention). */
double mtp_roofline_triad(int threads, size_t total_bytes, int repeats);

/* Peak FP32 FLOP/s: each thread runs independent vector FMA chains in
 * registers; median of REPEATS runs (2 FLOPs per FMA lane). */
double mtp_roofline_peak_flops(int threads, int repeats);

#endif

/*
 * fuzz.h - what the libFuzzer targets under tests/fuzz/ share.
 *
 * Every target defines LLVMFuzzerTestOneInput. It is linked either with
 * libFuzzer (clang, -fsanitize=fuzzer: scripts/fuzz.sh) or with replay_main.c
 * (any compiler: ctest replays the seeds and tests/fuzz/regressions/<target>/
 * on every build). A target returns 0 whatever the input does; only a crash,
 * a sanitizer report or an abort counts as a finding.
 */
#ifndef MTP_FUZZ_H
#define MTP_FUZZ_H

#include <stddef.h> /* defines: size_t */
#include <stdint.h> /* defines: uint8_t */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Replace the contents of this process's scratch file (a memfd, so nothing
 * touches the disk and nothing is left behind) with DATA, then grow it to
 * at least MIN_SIZE bytes with zeros (sparse). Returns a path that open()
 * accepts ("/proc/self/fd/N"); the loaders under test take paths. Aborts if
 * the scratch file cannot be made (a broken harness, not a finding). */
const char *fuzz_scratch_file(const uint8_t *data, size_t size, size_t min_size);

/* DATA as a new NUL-terminated string (free() it). */
char *fuzz_strndup(const uint8_t *data, size_t size);

/* The log at PATH through the whole report: load (skipping damaged records,
 * so damaged inputs still reach the tables), every metric with BOOTSTRAP
 * resamples, the full, acceptance, ablation, tree and position views,
 * rendered as markdown and JSON to /dev/null. */
void fuzz_report_all(const char *path, int bootstrap);

#endif

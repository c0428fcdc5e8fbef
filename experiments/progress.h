/*
 * progress.h - a progress display for long runs, on stderr.
 *
 * On a terminal: one line redrawn in place ("\r" + ANSI clear-line), at most
 * ten times a second:
 *   [ 37/240] 15.4% | 182.3 tok/s | tau 2.41 | ETA 00:12:31 | mtp-exact-k3
 * Not on a terminal (CI, a redirected log): the same text as a plain line every
 * interval (default 10 s) and once at the end. Quiet: nothing at all.
 * Rates and ETA use the work done by this process only (see
 * mtp_progress_resume_from), so a resumed run does not look instantly fast.
 */
#ifndef MTP_PROGRESS_H
#define MTP_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h> /* defines: FILE */

struct mtp_progress; /* opaque */

/* A display for TOTAL requests on stderr (terminal detected with isatty).
 * Never fails (aborts on OOM). */
struct mtp_progress *mtp_progress_create(int64_t total, bool quiet);

/* The same on STREAM; TTY: 1 = redraw in place, 0 = plain lines; INTERVAL_S:
 * seconds between plain lines (<= 0 means 10). For tests and odd setups. */
struct mtp_progress *mtp_progress_create_on(FILE *stream, int64_t total, bool quiet, int tty,
                                            double interval_s);

/* DONE requests were finished before this process started (resume): they count
 * towards done/total but not towards rates or ETA. */
void mtp_progress_resume_from(struct mtp_progress *p, int64_t done);

/* Report progress: DONE requests finished in total (including resumed ones),
 * TOKENS emitted by decoding steps and STEPS taken by this process (tau =
 * TOKENS / STEPS), LABEL (may be NULL) shown at the end, e.g. the decoder.
 * Draws only when the rate limit allows. */
void mtp_progress_update(struct mtp_progress *p, int64_t done, int64_t tokens, int64_t steps,
                         const char *label);

/* Draw the final state (always, unless quiet), end the line, and free P.
 * NULL is fine. */
void mtp_progress_finish(struct mtp_progress *p);

/* The status text (no "\r", no newline) for the given numbers, into BUF; used
 * by the display and by tests. ELAPSED_S is this process's time; DONE0 the
 * resumed count. Returns BUF. */
char *mtp_progress_format(char *buf, int cap, int64_t done, int64_t done0, int64_t total,
                          int64_t tokens, int64_t steps, double elapsed_s, const char *label);

#endif

/*
 * error.h - how libmtp reports failures.
 *
 * Two tiers (docs/design.md §14.2):
 *   - Failures a caller must survive (bad files, bad configs, bad specs) return
 *     MTP_ERR and leave a message in a thread-local buffer: read it with
 *     mtp_error_message(). Messages name the file, the field or tensor, what
 *     was expected and what was found.
 *   - Programming bugs and environment failures (out of memory) abort through
 *     MTP_CHECK / mtp_xmalloc with file:line.
 */
#ifndef MTP_ERROR_H
#define MTP_ERROR_H

#include <stddef.h> /* defines: size_t */

enum mtp_status {
    MTP_OK = 0,
    MTP_ERR = 1,
};

/* Record a failure message (printf-style). Always returns MTP_ERR so callers can
 * write `return mtp_error_set(...)`. */
int mtp_error_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prefix the current message with more context ("loading DIR: " + old message).
 * Returns MTP_ERR. */
int mtp_error_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The message of the last failure on this thread ("" if none). */
const char *mtp_error_message(void);

/* Clear the message (tests use it between cases). */
void mtp_error_clear(void);

/* Allocation that aborts with a message when memory runs out (never NULL). */
void *mtp_xmalloc(size_t size);
void *mtp_xcalloc(size_t count, size_t size);
void *mtp_xrealloc(void *ptr, size_t size);
char *mtp_xstrdup(const char *s);

/* Abort with file:line when an internal invariant does not hold. */
#define MTP_CHECK(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            mtp_die_check(#cond, __func__, __FILE__, __LINE__);                                    \
    } while (0)

_Noreturn void mtp_die_check(const char *cond, const char *func, const char *file, int line);

#endif

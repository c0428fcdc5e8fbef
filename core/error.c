/* error.c - thread-local error messages and aborting allocators (see error.h). */
#include "error.h"

#include <stdarg.h> /* defines: va_list */
#include <stdio.h>  /* defines: vsnprintf, fprintf */
#include <stdlib.h> /* defines: malloc, abort */
#include <string.h> /* defines: strlen, memcpy */

enum { MTP_ERROR_CAPACITY = 4096 };

static _Thread_local char error_buf[MTP_ERROR_CAPACITY];

int mtp_error_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_buf, sizeof error_buf, fmt, ap);
    va_end(ap);
    return MTP_ERR;
}

int mtp_error_wrap(const char *fmt, ...)
{
    char old[MTP_ERROR_CAPACITY];
    memcpy(old, error_buf, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(error_buf, sizeof error_buf, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof error_buf)
        snprintf(error_buf + n, sizeof error_buf - (size_t)n, "%s", old);
    return MTP_ERR;
}

const char *mtp_error_message(void) { return error_buf; }

void mtp_error_clear(void) { error_buf[0] = '\0'; }

static _Noreturn void die_oom(size_t size)
{
    fprintf(stderr, "mtpbench: out of memory allocating %zu bytes\n", size);
    abort();
}

void *mtp_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        die_oom(size);
    return p;
}

void *mtp_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        die_oom(count * size);
    return p;
}

void *mtp_xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        die_oom(size);
    return p;
}

char *mtp_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = mtp_xmalloc(n);
    memcpy(p, s, n);
    return p;
}

void mtp_die_check(const char *cond, const char *func, const char *file, int line)
{
    fprintf(stderr, "mtpbench: internal check failed: %s\n  in %s at %s:%d\n", cond, func, file,
            line);
    abort();
}

/*
 * input_file.c - checked opening of user-supplied files (input_file.h).
 */
#include "input_file.h"

#include <errno.h>   /* defines: errno, ELOOP, ENOENT, ENXIO */
#include <fcntl.h>   /* defines: open, fcntl, O_NONBLOCK */
#include <stdbool.h> /* defines: bool */
#include <string.h>  /* defines: strerror */
#include <unistd.h>  /* defines: close */

#include "../core/error.h"

const char *mtp_input_kind(mode_t mode)
{
    if (S_ISREG(mode))
        return "a regular file";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    return "not a regular file";
}

/* strerror, with the one case whose libc wording misleads spelled out. */
static const char *open_reason(int err)
{
    if (err == ELOOP)
        return "too many levels of symbolic links (a symlink loop?)";
    return strerror(err);
}

/* What a reader accepts, and what a writer does: a log may go to /dev/null. */
static bool kind_ok(mode_t m, bool writing) { return S_ISREG(m) || (writing && S_ISCHR(m)); }

static int wrong_kind(const char *path, mode_t m, bool writing)
{
    mtp_error_set("%s: expected a regular file%s, found %s", path,
                  writing ? " (or a device such as /dev/null)" : "", mtp_input_kind(m));
    errno = EINVAL;
    return -1;
}

/* Name what sits at PATH when open(2) said ENXIO: a FIFO opened for writing
 * with O_NONBLOCK and no reader, or a device with nothing behind it. */
static int open_failed(const char *path, int err, bool writing)
{
    struct stat st;
    if (err == ENXIO && stat(path, &st) == 0 && !kind_ok(st.st_mode, writing))
        return wrong_kind(path, st.st_mode, writing);
    mtp_error_set("%s: cannot open: %s", path, open_reason(err));
    errno = err;
    return -1;
}

/* open(2) that never blocks, then fstat on the descriptor (no race with a
 * rename between check and use), then the kind check. */
static int open_checked(const char *path, int flags, mode_t mode, bool writing,
                        struct stat *st_out)
{
    /* O_NONBLOCK: opening a FIFO would otherwise wait for the other end. */
    int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC, mode);
    if (fd < 0)
        return open_failed(path, errno, writing);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        mtp_error_set("%s: cannot stat: %s", path, strerror(err));
        errno = err;
        return -1;
    }
    if (!kind_ok(st.st_mode, writing)) {
        close(fd);
        return wrong_kind(path, st.st_mode, writing);
    }
    /* Regular files ignore O_NONBLOCK today; clear it so no reader depends on that. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (st_out)
        *st_out = st;
    return fd;
}

int mtp_input_open(const char *path, struct stat *st_out)
{
    return open_checked(path, O_RDONLY, 0, false, st_out);
}

int mtp_output_open(const char *path, int flags, mode_t mode)
{
    return open_checked(path, O_WRONLY | flags, mode, true, NULL);
}

FILE *mtp_input_fopen(const char *path)
{
    int fd = mtp_input_open(path, NULL);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        mtp_error_set("%s: cannot open: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

json_t *mtp_input_load_json(const char *path, size_t flags)
{
    FILE *f = mtp_input_fopen(path);
    if (!f)
        return NULL;
    json_error_t jerr;
    json_t *root = json_loadf(f, flags, &jerr);
    fclose(f);
    if (!root)
        mtp_error_set("%s: line %d column %d: %s", path, jerr.line, jerr.column, jerr.text);
    return root;
}

int mtp_input_exists(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        return 1;
    if (errno == ENOENT || errno == ENOTDIR)
        return 0;
    mtp_error_set("%s: cannot stat: %s", path, open_reason(errno));
    return -1;
}

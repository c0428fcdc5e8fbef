/*
 * input_file.c - checked opening of user-supplied files (input_file.h).
 */
#include "input_file.h"

#include <errno.h>  /* defines: errno, ELOOP, ENOENT */
#include <fcntl.h>  /* defines: open, fcntl, O_NONBLOCK */
#include <string.h> /* defines: strerror */
#include <unistd.h> /* defines: close */

#include "error.h"

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

int mtp_input_open(const char *path, struct stat *st_out)
{
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        mtp_error_set("%s: cannot open: %s", path, open_reason(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        mtp_error_set("%s: cannot stat: %s", path, strerror(err));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        mtp_error_set("%s: expected a regular file, found %s", path, mtp_input_kind(st.st_mode));
        return -1;
    }
    /* Regular files ignore O_NONBLOCK today; clear it so no reader depends on that. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (st_out)
        *st_out = st;
    return fd;
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

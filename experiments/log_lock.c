/*
 * log_lock.c - one writer per log: an exclusive flock, and the holder's pid
 * for the message when it is taken (log_lock.h). The log is opened the way
 * every input is (input_file.h): a FIFO at the log's path would otherwise
 * block the open until some reader appeared.
 *
 * flock rather than fcntl record locks: a POSIX record lock is released when
 * the process closes *any* descriptor of the file, and the writer's own
 * process reopens the log to read it (resume). flock belongs to the open file
 * description, so only mtp_log_close (or death) releases it. flock cannot
 * report its holder, so the pid comes from /proc/locks, which lists each lock
 * with the pid that took it and the file's device and inode.
 */
#include "log_lock.h"

#include <errno.h>         /* defines: errno, EWOULDBLOCK, EEXIST */
#include <stdio.h>         /* defines: fopen, fgets, sscanf */
#include <string.h>        /* defines: strerror, strstr */
#include <sys/file.h>      /* defines: flock, LOCK_EX, LOCK_NB */
#include <sys/stat.h>      /* defines: fstat */
#include <sys/sysmacros.h> /* defines: major, minor */
#include <unistd.h>        /* defines: close */

#include "../core/error.h"      /* defines: mtp_error_set */
#include "../engine/input_file.h" /* defines: mtp_output_open */

/* The pid holding a FLOCK on the file of ST per /proc/locks, or -1. An exact
 * device match wins; an inode-only match is kept as a fallback because
 * overlay and FUSE file systems may list a different device than fstat. */
static long lock_holder(const struct stat *st)
{
    FILE *f = fopen("/proc/locks", "r");
    if (!f)
        return -1;
    char line[256];
    long exact = -1, by_inode = -1;
    while (fgets(line, sizeof line, f)) {
        char kind[16];
        long pid;
        unsigned maj, min;
        unsigned long long ino;
        if (strstr(line, "->")) /* a process waiting for the lock, not holding it */
            continue;
        if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%llu", kind, &pid, &maj, &min, &ino) != 5 ||
            strcmp(kind, "FLOCK") != 0 || ino != (unsigned long long)st->st_ino)
            continue;
        if (maj == major(st->st_dev) && min == minor(st->st_dev))
            exact = pid;
        else
            by_inode = pid;
    }
    fclose(f);
    return exact >= 0 ? exact : by_inode;
}

int mtp_log_lock(int fd, const char *path)
{
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return MTP_OK;
    int err = errno;
    if (err != EWOULDBLOCK)
        return mtp_error_set("LOG %s: cannot lock for writing: %s", path, strerror(err));
    struct stat st;
    long pid = fstat(fd, &st) == 0 ? lock_holder(&st) : -1;
    if (pid > 0)
        return mtp_error_set("LOG %s: another writer holds this log (pid %ld): two writers "
                             "would corrupt it; wait for that run to end or stop it, then "
                             "use --resume", path, pid);
    return mtp_error_set("LOG %s: another writer holds this log (pid unknown: /proc/locks "
                         "does not list it): two writers would corrupt it; wait for that run "
                         "to end or stop it, then use --resume", path);
}

int mtp_log_open_locked(const char *path, int flags)
{
    int fd = mtp_output_open(path, flags, 0644);
    if (fd < 0) {
        if (errno == EEXIST)
            mtp_error_set("LOG %s: cannot create: %s (resume it, or remove it to start over)",
                          path, strerror(EEXIST));
        else
            mtp_error_wrap("LOG ");
        return -1;
    }
    if (mtp_log_lock(fd, path)) {
        close(fd);
        return -1;
    }
    return fd;
}

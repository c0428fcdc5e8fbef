/*
 * fuzz_util.c - the scratch file and string helpers of fuzz.h.
 */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz.h"

#include <stdio.h>    /* defines: snprintf, perror */
#include <stdlib.h>   /* defines: malloc, abort */
#include <string.h>   /* defines: memcpy */
#include <sys/mman.h> /* defines: memfd_create */
#include <unistd.h>   /* defines: ftruncate, pwrite */

const char *fuzz_scratch_file(const uint8_t *data, size_t size, size_t min_size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("mtpbench-fuzz", MFD_CLOEXEC);
        if (fd < 0) {
            perror("fuzz: memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    size_t done = 0;
    if (ftruncate(fd, 0) != 0)
        abort();
    while (done < size) {
        ssize_t k = pwrite(fd, data + done, size - done, (off_t)done);
        if (k <= 0)
            abort();
        done += (size_t)k;
    }
    if (min_size > size && ftruncate(fd, (off_t)min_size) != 0)
        abort();
    return path;
}

char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

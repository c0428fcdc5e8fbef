/*
 * replay_main.c - run a fuzz target's entry point over files, without
 * libFuzzer: `fuzz_replay_<target> FILE|DIR...` (a directory stands for the
 * files in it, sorted; dot files and README* are skipped). ctest runs it on
 * the seeds and tests/fuzz/regressions/<target>/ on every build, so an input
 * that once crashed a target keeps being checked by the normal compiler (and
 * by the sanitizer build, scripts/sanitize.sh). Exit 0 when every input
 * returned; a regression shows up as a crash or abort.
 */
#include <dirent.h>   /* defines: scandir, alphasort */
#include <stdio.h>    /* defines: fopen, fread, fprintf */
#include <stdlib.h>   /* defines: malloc, free */
#include <string.h>   /* defines: strncmp, strcmp */
#include <sys/stat.h> /* defines: stat, S_ISDIR */

#include "fuzz.h"

/* Read PATH whole; NULL on failure (message printed). */
static uint8_t *read_whole(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, k;
    uint8_t *buf = malloc(cap);
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *size = n;
    return buf;
}

static int replay_file(const char *path)
{
    size_t size = 0;
    uint8_t *data = read_whole(path, &size);
    if (!data)
        return 1;
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

static int skip_entry(const struct dirent *e)
{
    return e->d_name[0] != '.' && strncmp(e->d_name, "README", 6) != 0;
}

/* Replays every file in DIR; adds to *COUNT. Returns the number of failures. */
static int replay_dir(const char *dir, int *count)
{
    struct dirent **names;
    int n = scandir(dir, &names, skip_entry, alphasort), failed = 0;
    if (n < 0) {
        perror(dir);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        failed += replay_file(path);
        (*count)++;
        free(names[i]);
    }
    free(names);
    return failed;
}

int main(int argc, char **argv)
{
    int failed = 0, count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            failed += replay_dir(argv[i], &count);
        } else {
            failed += replay_file(argv[i]);
            count++;
        }
    }
    fprintf(stderr, "replay: %d inputs, %d unreadable\n", count, failed);
    return failed ? 1 : 0;
}

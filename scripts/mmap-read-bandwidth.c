/*
 * mmap-read-bandwidth.c - how fast this machine streams the pages of a
 * checkpoint that is already in the page cache: every *.safetensors file of
 * DIR mapped read-only (as the loader maps them, 4 KiB pages), touched once
 * (page faults, outside the timing), then read with 32-byte loads by THREADS
 * threads (each a contiguous share), median of REPEATS passes. A decode reads
 * its weights the same way, so this is its ceiling; the triad of `inspect`
 * also writes, which a decode never does (RESULTS.md "At real dimensions").
 *
 *   cc -O2 -mavx2 -pthread scripts/mmap-read-bandwidth.c -o mmap-read-bandwidth
 *   ./mmap-read-bandwidth DIR [THREADS] [REPEATS]
 *
 * Built and run by scripts/decode-vs-bound.sh.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { MAX_FILES = 256, MAX_THREADS = 64, MAX_REPEATS = 64 };

struct span {
    const unsigned char *p;
    size_t len;
};

static struct span files[MAX_FILES];
static int n_files;
static size_t total;

struct share {
    size_t begin, end; /* byte offsets in the concatenation of the files */
    unsigned long long sink;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* XOR of every 32-byte block of [p, p + len) (len a multiple of 128). */
static unsigned long long read_span(const unsigned char *p, size_t len)
{
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i + 128 <= len; i += 128) {
        a = _mm256_xor_si256(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_loadu_si256((const __m256i *)(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_loadu_si256((const __m256i *)(p + i + 64)));
        d = _mm256_xor_si256(d, _mm256_loadu_si256((const __m256i *)(p + i + 96)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    return (unsigned long long)_mm256_extract_epi64(a, 0) ^ (unsigned long long)_mm256_extract_epi64(a, 3);
}

static void *read_share(void *arg)
{
    struct share *s = arg;
    size_t off = 0;
    for (int f = 0; f < n_files; off += files[f].len, f++) {
        if (s->end <= off || s->begin >= off + files[f].len)
            continue; /* the share does not meet this file */
        size_t lo = s->begin > off ? s->begin - off : 0;
        size_t hi = s->end < off + files[f].len ? s->end - off : files[f].len;
        if (lo < hi)
            s->sink ^= read_span(files[f].p + lo, (hi - lo) & ~(size_t)127);
    }
    return NULL;
}

static int map_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "mmap-read-bandwidth: cannot open directory %s\n", dir);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) && n_files < MAX_FILES) {
        size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
            fprintf(stderr, "mmap-read-bandwidth: cannot read %s\n", path);
            closedir(d);
            return -1;
        }
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (p == MAP_FAILED) {
            fprintf(stderr, "mmap-read-bandwidth: cannot map %s\n", path);
            closedir(d);
            return -1;
        }
        files[n_files++] = (struct span){p, (size_t)st.st_size};
        total += (size_t)st.st_size;
    }
    closedir(d);
    if (n_files == 0) {
        fprintf(stderr, "mmap-read-bandwidth: no *.safetensors file in %s\n", dir);
        return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: mmap-read-bandwidth DIR [THREADS] [REPEATS]\n");
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 1, repeats = argc > 3 ? atoi(argv[3]) : 3;
    if (threads < 1 || threads > MAX_THREADS || repeats < 1 || repeats > MAX_REPEATS) {
        fprintf(stderr, "mmap-read-bandwidth: THREADS must be 1..%d and REPEATS 1..%d\n",
                MAX_THREADS, MAX_REPEATS);
        return 2;
    }
    if (map_dir(argv[1]) != 0)
        return 1;
    double rates[MAX_REPEATS];
    unsigned long long sink = 0;
    for (int r = -1; r < repeats; r++) { /* pass -1 maps the pages (faults), untimed */
        pthread_t tid[MAX_THREADS];
        struct share sh[MAX_THREADS];
        double t0 = now_s();
        for (int t = 0; t < threads; t++) {
            sh[t] = (struct share){total / (size_t)threads * (size_t)t,
                                   t + 1 == threads ? total : total / (size_t)threads * (size_t)(t + 1), 0};
            pthread_create(&tid[t], NULL, read_share, &sh[t]);
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            sink += sh[t].sink; /* a sum: the passes read the same bytes */
        }
        if (r >= 0)
            rates[r] = (double)total / (now_s() - t0) / 1e9;
    }
    qsort(rates, (size_t)repeats, sizeof rates[0], cmp_double);
    printf("streaming read of %s (%.2f GB mapped, %d thread%s): median %.1f GB/s [%.1f, %.1f] "
           "(checksum %llx)\n",
           argv[1], (double)total / 1e9, threads, threads > 1 ? "s" : "", rates[repeats / 2],
           rates[0], rates[repeats - 1], sink);
    return 0;
}

/*
 * roofline.c - measured bandwidth and peak FLOP/s (see roofline.h).
 *
 * The library is built with -ffp-contract=off (batch-invariant numerics), so
 * the FMA loop asks for contraction explicitly on its own function; vector
 * extensions give the widest vectors the target has (-march=native).
 */
#include "roofline.h"

#include <omp.h>    /* defines: omp_get_max_threads */
#include <stdint.h> /* defines: uint64_t */
#include <stdio.h>  /* defines: FILE, fscanf */
#include <stdlib.h> /* defines: qsort, free */
#include <time.h>   /* defines: clock_gettime */
#include <unistd.h> /* defines: sysconf */

#include "core/error.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

size_t mtp_roofline_llc_bytes(void)
{
    long s = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
    s = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    if (s <= 0) {
        FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
        long kib = 0;
        if (f && fscanf(f, "%ldK", &kib) == 1)
            s = kib * 1024;
        if (f)
            fclose(f);
    }
    return s > 0 ? (size_t)s : (size_t)32 << 20;
}

double mtp_roofline_triad(int threads, size_t total_bytes, int repeats)
{
    if (threads <= 0)
        threads = omp_get_max_threads();
    size_t n = total_bytes / (3 * sizeof(double));
    double *a = mtp_xmalloc(n * sizeof *a), *b = mtp_xmalloc(n * sizeof *b),
           *c = mtp_xmalloc(n * sizeof *c);
    /* First touch by the threads that will read them (NUMA placement). */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 0.0;
        b[i] = 1.0;
        c[i] = 2.0;
    }
    double *rates = mtp_xmalloc(sizeof(double) * (size_t)(repeats + 1));
    for (int r = 0; r <= repeats; r++) {
        double t0 = now_s();
#pragma omp parallel for num_threads(threads) schedule(static)
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] + 3.0 * c[i];
        double dt = now_s() - t0;
        rates[r] = 3.0 * sizeof(double) * (double)n / dt;
    }
    double m = median(rates + 1, repeats); /* pass 0 is the warm-up */
    if (a[n / 2] != 7.0) /* keeps the stores alive; 1 + 3 * 2 */
        m = 0;
    free(rates);
    free(a);
    free(b);
    free(c);
    return m;
}

/* The widest FP32 vector of the target (lanes = MTP_VF_LANES). */
#if defined(__AVX512F__)
enum { MTP_VF_LANES = 16 };
#elif defined(__AVX__)
enum { MTP_VF_LANES = 8 };
#else
enum { MTP_VF_LANES = 4 };
#endif
typedef float mtp_vf __attribute__((vector_size(4 * MTP_VF_LANES)));

enum { FMA_CHAINS = 12, FMA_ITERS = 1 << 22 };

/* One thread's FMA chains; returns a value that depends on every chain. */
__attribute__((optimize("fp-contract=fast"), noinline)) static float fma_chains(float seed)
{
    mtp_vf acc[FMA_CHAINS], x = {0}, y = {0};
    for (int k = 0; k < MTP_VF_LANES; k++) {
        x[k] = 0.999999f;
        y[k] = seed * 1e-7f;
    }
    for (int j = 0; j < FMA_CHAINS; j++)
        acc[j] = x * (float)(j + 1);
    for (int i = 0; i < FMA_ITERS; i++)
        for (int j = 0; j < FMA_CHAINS; j++)
            acc[j] = acc[j] * x + y;
    float s = 0;
    for (int j = 0; j < FMA_CHAINS; j++)
        for (int k = 0; k < MTP_VF_LANES; k++)
            s += acc[j][k];
    return s;
}

double mtp_roofline_peak_flops(int threads, int repeats)
{
    if (threads <= 0)
        threads = omp_get_max_threads();
    double *rates = mtp_xmalloc(sizeof(double) * (size_t)(repeats + 1));
    volatile float sink = 0;
    for (int r = 0; r <= repeats; r++) {
        double t0 = now_s();
        float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
        total += fma_chains((float)omp_get_thread_num());
        double dt = now_s() - t0;
        sink += total;
        rates[r] = 2.0 * MTP_VF_LANES * FMA_CHAINS * (double)FMA_ITERS * threads / dt;
    }
    (void)sink;
    double m = median(rates + 1, repeats);
    free(rates);
    return m;
}

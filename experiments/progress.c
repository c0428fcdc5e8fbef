/*
 * progress.c - the progress display of long runs (see progress.h).
 *
 * Redraws are rate-limited by a monotonic clock, so calling update after every
 * request (or every step) costs a clock read, not a write to the terminal.
 */
#include "progress.h"

#include <stdio.h>  /* defines: fprintf, snprintf */
#include <stdlib.h> /* defines: free */
#include <time.h>   /* defines: clock_gettime */
#include <unistd.h> /* defines: isatty, fileno */

#include "../core/error.h"

enum { LINE_CAP = 256 };
static const double TTY_MIN_INTERVAL_S = 0.1; /* ten redraws a second are smooth enough */

struct mtp_progress {
    FILE *out;
    bool quiet, tty;
    double interval_s;   /* between plain lines */
    int64_t total, done0;
    int64_t done, tokens, steps;
    char label[64];
    double t0, last_draw; /* monotonic seconds */
    bool drawn;           /* a redrawable line is on screen (tty) */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct mtp_progress *mtp_progress_create_on(FILE *stream, int64_t total, bool quiet, int tty,
                                            double interval_s)
{
    struct mtp_progress *p = mtp_xcalloc(1, sizeof *p);
    p->out = stream;
    p->quiet = quiet;
    p->tty = tty != 0;
    p->interval_s = interval_s > 0 ? interval_s : 10.0;
    p->total = total;
    p->t0 = now_s();
    p->last_draw = p->t0;
    return p;
}

struct mtp_progress *mtp_progress_create(int64_t total, bool quiet)
{
    return mtp_progress_create_on(stderr, total, quiet, isatty(fileno(stderr)), 10.0);
}

void mtp_progress_resume_from(struct mtp_progress *p, int64_t done)
{
    p->done0 = done;
    p->done = done;
}

static void fmt_hms(char *buf, size_t cap, double s)
{
    if (!(s >= 0) || s > 359999) {
        snprintf(buf, cap, "--:--:--");
        return;
    }
    int t = (int)(s + 0.5);
    snprintf(buf, cap, "%02d:%02d:%02d", t / 3600 % 100, t / 60 % 60, t % 60);
}

char *mtp_progress_format(char *buf, int cap, int64_t done, int64_t done0, int64_t total,
                          int64_t tokens, int64_t steps, double elapsed_s, const char *label)
{
    double pct = total > 0 ? 100.0 * (double)done / (double)total : 100.0;
    double rate = elapsed_s > 0 ? (double)tokens / elapsed_s : 0;
    int64_t here = done - done0; /* finished by this process: the only honest rate */
    double eta = here > 0 ? elapsed_s / (double)here * (double)(total - done) : -1;
    char eta_s[48], tau_s[32];
    fmt_hms(eta_s, sizeof eta_s, eta);
    if (steps > 0)
        snprintf(tau_s, sizeof tau_s, "%.2f", (double)tokens / (double)steps);
    else
        snprintf(tau_s, sizeof tau_s, "-");
    int w = snprintf(NULL, 0, "%lld", (long long)total);
    snprintf(buf, (size_t)cap, "[%*lld/%lld] %5.1f%% | %.1f tok/s | tau %s | ETA %s%s%s", w,
             (long long)done, (long long)total, pct, rate, tau_s, eta_s, label ? " | " : "",
             label ? label : "");
    return buf;
}

static void draw(struct mtp_progress *p, double t)
{
    char line[LINE_CAP];
    mtp_progress_format(line, sizeof line, p->done, p->done0, p->total, p->tokens, p->steps,
                        t - p->t0, p->label[0] ? p->label : NULL);
    if (p->tty) {
        fprintf(p->out, "\r\033[2K%s", line); /* carriage return + ANSI erase line */
        p->drawn = true;
    } else {
        fprintf(p->out, "%s\n", line);
    }
    fflush(p->out);
    p->last_draw = t;
}

void mtp_progress_update(struct mtp_progress *p, int64_t done, int64_t tokens, int64_t steps,
                         const char *label)
{
    if (!p || p->quiet)
        return;
    p->done = done;
    p->tokens = tokens;
    p->steps = steps;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    double t = now_s();
    double wait = p->tty ? TTY_MIN_INTERVAL_S : p->interval_s;
    if (t - p->last_draw >= wait || (p->tty && !p->drawn))
        draw(p, t);
}

void mtp_progress_finish(struct mtp_progress *p)
{
    if (!p)
        return;
    if (!p->quiet) {
        draw(p, now_s());
        if (p->tty)
            fputc('\n', p->out);
        fflush(p->out);
    }
    free(p);
}

/*
 * bench_spinner.c - the CPU-bound competitor of bench --contended
 * (bench_spinner.h).
 *
 * Between fork and the child's loop only system calls run (the bench
 * process already has pool threads, so the child must not touch locks or
 * malloc): prctl, sched_setaffinity, raise, then arithmetic forever.
 */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include "bench_spinner.h"

#include <errno.h>    /* defines: errno */
#include <signal.h>   /* defines: kill, raise, SIGSTOP, SIGCONT, SIGKILL */
#include <sched.h>    /* defines: sched_getaffinity, sched_setaffinity */
#include <string.h>   /* defines: strerror */
#include <sys/wait.h> /* defines: waitpid, WUNTRACED */
#include <time.h>     /* defines: nanosleep */
#include <unistd.h>   /* defines: fork, getppid, _exit */
#ifdef __linux__
#include <sys/prctl.h> /* defines: prctl, PR_SET_PDEATHSIG */
#endif

#include "core/error.h" /* defines: mtp_error_set */

#ifdef __linux__
static void spin_forever(pid_t parent, int cpu)
{
    /* Die with the bench, however it ends; if it is already gone, now. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    sched_setaffinity(0, sizeof one, &one);
    raise(SIGSTOP); /* the bench resumes it around contended samples */
    volatile double x = 1.0;
    for (;;)
        x = x * 1.0000001 + 1e-9;
}
#endif

int mtp_bench_spinner_start(struct mtp_bench_spinner *s)
{
    s->pid = 0;
    s->cpu = -1;
#ifdef __linux__
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return mtp_error_set("bench --contended: sched_getaffinity: %s", strerror(errno));
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set))
            s->cpu = c;
    if (s->cpu < 0)
        return mtp_error_set("bench --contended: no CPU in the affinity mask");
    pid_t parent = getpid(), pid = fork();
    if (pid < 0)
        return mtp_error_set("bench --contended: fork: %s", strerror(errno));
    if (pid == 0)
        spin_forever(parent, s->cpu);
    s->pid = pid;
    int st;
    /* Wait until it has pinned itself and stopped. */
    if (waitpid(pid, &st, WUNTRACED) != pid || !WIFSTOPPED(st)) {
        mtp_bench_spinner_stop(s);
        return mtp_error_set("bench --contended: the competing process did not start");
    }
    return MTP_OK;
#else
    return mtp_error_set("bench --contended: needs Linux (sched_setaffinity, PR_SET_PDEATHSIG)");
#endif
}

void mtp_bench_spinner_resume(struct mtp_bench_spinner *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGCONT);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

void mtp_bench_spinner_pause(struct mtp_bench_spinner *s)
{
    if (s->pid > 0)
        kill(s->pid, SIGSTOP);
}

void mtp_bench_spinner_stop(struct mtp_bench_spinner *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    s->pid = 0;
}

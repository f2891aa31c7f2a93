// cflags: -pthread
/*
 * pid_users.c - a program that relies on its pid and tid staying what they were
 * (issue 16: pids stay what the processes know): a job of a parent and a child.
 *
 * usage: pid_users [STEPS [alone]]
 *
 * With `alone`, one process: no child.
 *
 * The parent holds a recursive mutex from its start (glibc records the owner's tid in
 * it) and starts a child that waits. Each step it takes the mutex again with trylock
 * (EBUSY if the recorded owner is no longer this thread), reads its own CPU clock
 * through clock_getcpuclockid() of the pid it noted at its start (which fails if its
 * pid changed) and checks that its child is still there by pid (kill(child, 0)) and
 * through the pidfd it opened of it (a signal 0, and not readable: not ended), then
 * prints `step N <digest>`. At the end it ends the child, reaps it by pid and prints
 * `done`.
 */
#include "common.h"
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    pthread_mutexattr_t a;
    pthread_mutex_t m;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&m, &a);
    if (pthread_mutex_lock(&m))
        fail("cannot lock the mutex");
    int alone = argc > 2 && !strcmp(argv[2], "alone");
    pid_t child = alone ? 0 : fork();
    if (child < 0)
        fail_errno("fork");
    if (child == 0 && !alone) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;)
            pace_ms(20);
    }
    pid_t me = getpid();
    /* A pidfd of the child: still the child's after a restore. */
    int child_fd = alone ? -1 : (int)syscall(SYS_pidfd_open, child, 0);
    if (!alone && child_fd < 0)
        fail_errno("pidfd_open of the child");
    uint64_t rng = 0xbb67ae8584caa73bULL, chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        int r = pthread_mutex_trylock(&m);
        if (r)
            fail("step %d: the mutex this thread holds is no longer its own (trylock: %d)", s, r);
        pthread_mutex_unlock(&m);
        clockid_t cid;
        r = clock_getcpuclockid(me, &cid);
        if (r)
            fail("step %d: clock_getcpuclockid(%d), this process's pid at its start, failed: %d", s, me, r);
        struct timespec ts;
        if (clock_gettime(cid, &ts))
            fail_errno("clock_gettime of the process's CPU clock");
        if (!alone && kill(child, 0))
            fail_errno("kill(child, 0)");
        if (!alone && syscall(SYS_pidfd_send_signal, child_fd, 0, NULL, 0))
            fail_errno("pidfd_send_signal to the child");
        struct pollfd pl = { child_fd, POLLIN, 0 };
        if (!alone && poll(&pl, 1, 0) != 0)
            fail("step %d: the child's pidfd says it ended", s);
        chain = fnv1a_u64(chain, xorshift64(&rng));
        step_line(s, chain);
        pace_ms(40);
    }
    int st;
    if (!alone && (kill(child, SIGTERM) || waitpid(child, &st, 0) != child || !WIFSIGNALED(st)))
        fail("the child was not reaped by its pid");
    done_line(chain);
    return 0;
}

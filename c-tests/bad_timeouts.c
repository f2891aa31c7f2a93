/*
 * bad_timeouts.c - waits given a timeout at an address that is not mapped: each call
 * fails with EFAULT, as the kernel says, whether or not mig's hooks look at the
 * timeout first (they must not fault on it).
 *
 * Prints one line per call (its result and errno), then `done`.
 */
#include "common.h"
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>

#define BAD ((void *)8)

static void show(const char *what, long r)
{
    emit("%s %ld %s\n", what, r, r < 0 ? strerror(errno) : "ok");
}

int main(void)
{
    int word = 0;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    errno = 0;
    show("nanosleep", nanosleep(BAD, NULL));
    errno = clock_nanosleep(CLOCK_MONOTONIC, 0, BAD, NULL); /* returns the error */
    show("clock_nanosleep", errno ? -1 : 0);
    errno = 0;
    show("sigtimedwait", sigtimedwait(&set, NULL, BAD));
    errno = 0;
    show("futex", syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, BAD, NULL, 0));
    errno = 0;
    show("raw nanosleep", syscall(SYS_nanosleep, BAD, NULL));
    emit("done\n");
    return 0;
}

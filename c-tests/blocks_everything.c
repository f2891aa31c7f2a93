// cflags: -pthread
/*
 * blocks_everything.c - a program that owns SIGUSR1 and SIGUSR2 (handlers of its own)
 * and blocks every signal in every thread, as DMTCP's dmtcp4 test does: no signal can
 * reach a handler of mig's. `mig checkpoint PID` must still work.
 *
 * usage: blocks_everything [STEPS]
 *
 * Main blocks all signals before it starts a worker (which inherits the mask). Each
 * step main sends itself SIGUSR1 and SIGUSR2, takes both with sigtimedwait (they wait,
 * blocked) and counts them; the worker sleeps 10 ms slices and counts its naps. Main
 * checks every step that its mask is still full, that its handlers are still its own
 * and were never run, and prints `step N <digest>` (of the counts it took, not of the
 * naps, which depend on timing).
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>

static volatile sig_atomic_t ran;
static int quit; /* atomic */

static void on_usr(int sig)
{
    (void)sig;
    ran = 1;
}

static void *worker(void *arg)
{
    (void)arg;
    long naps = 0;
    while (!__atomic_load_n(&quit, __ATOMIC_ACQUIRE)) {
        struct timespec req = { 0, 10 * 1000000L }, rem;
        while (nanosleep(&req, &rem) != 0) {
            if (errno != EINTR)
                fail_errno("nanosleep");
            req = rem;
        }
        naps++;
    }
    return (void *)naps;
}

static void check_state(void)
{
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP && !sigismember(&cur, s))
            fail("signal %d is no longer blocked", s);
    for (int s = SIGUSR1; s <= SIGUSR2; s += SIGUSR2 - SIGUSR1) {
        struct sigaction old;
        sigaction(s, NULL, &old);
        if (old.sa_handler != on_usr)
            fail("the handler of signal %d is no longer the program's", s);
    }
    if (ran)
        fail("a handler of the program ran while every signal was blocked");
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr;
    if (sigaction(SIGUSR1, &sa, NULL) != 0 || sigaction(SIGUSR2, &sa, NULL) != 0)
        fail_errno("sigaction");
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        fail("pthread_create");

    uint64_t chain = FNV_OFFSET;
    int taken = 0;
    for (int s = 1; s <= steps; s++) {
        kill(getpid(), SIGUSR1);
        kill(getpid(), SIGUSR2);
        sigset_t usr;
        sigemptyset(&usr);
        sigaddset(&usr, SIGUSR1);
        sigaddset(&usr, SIGUSR2);
        struct timespec zero = { 1, 0 };
        for (int i = 0; i < 2; i++) {
            int got = sigtimedwait(&usr, NULL, &zero);
            if (got != SIGUSR1 && got != SIGUSR2)
                fail("sigtimedwait took %d (%s)", got, got < 0 ? strerror(errno) : "another signal");
            taken++;
        }
        check_state();
        chain = fnv1a_u64(chain, (uint64_t)s * 1000 + (uint64_t)taken);
        step_line(s, chain);
        pace_ms(40);
    }
    __atomic_store_n(&quit, 1, __ATOMIC_RELEASE);
    void *naps;
    pthread_join(t, &naps);
    if ((long)naps <= 0)
        fail("the worker never slept");
    done_line(chain);
    return 0;
}

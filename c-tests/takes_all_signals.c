// cflags: -pthread
/*
 * takes_all_signals.c - a program that installs a handler of its own on every signal
 * it can catch, real-time ones included, and drops the ones it did not ask for, as the
 * Go runtime does: no signal is left for mig. Checkpoints must still work (threads
 * stopped from outside, the request written into a thread by `mig checkpoint`).
 *
 * usage: takes_all_signals [STEPS]
 *
 * A spinner thread counts in user space; a sleeper sleeps 5 ms slices (a sleep cut
 * short fails the run). Each step main raises SIGUSR1 (its handler counts it), checks
 * that every handler is still its own and that no other signal came, waits until the
 * spinner moved and prints `step N <digest>` of the SIGUSR1 count.
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>

static volatile sig_atomic_t usr1, others;
static int quit;               /* atomic */
static unsigned long spins;    /* atomic */

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        usr1++;
    else
        others++;
}

static void *spinner(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&quit, __ATOMIC_ACQUIRE))
        __atomic_add_fetch(&spins, 1, __ATOMIC_RELAXED);
    return NULL;
}

static void *sleeper(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&quit, __ATOMIC_ACQUIRE)) {
        struct timespec t0, t1, req = { 0, 5 * 1000000L };
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
        if (r != 0 || ns < 4900000L)
            fail("sleeper: a 5 ms sleep returned %d after %ld us", r, ns / 1000);
    }
    return NULL;
}

static int catchable(int s)
{
    return s != SIGKILL && s != SIGSTOP && !(s > 31 && s < SIGRTMIN);
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    for (int s = 1; s <= SIGRTMAX; s++)
        if (catchable(s) && sigaction(s, &sa, NULL) != 0)
            fail("sigaction %d: %s", s, strerror(errno));
    pthread_t t[2];
    if (pthread_create(&t[0], NULL, spinner, NULL) != 0 || pthread_create(&t[1], NULL, sleeper, NULL) != 0)
        fail("pthread_create");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        raise(SIGUSR1);
        for (int s = 1; s <= SIGRTMAX; s++) {
            struct sigaction old;
            if (catchable(s) && (sigaction(s, NULL, &old) != 0 || old.sa_handler != on_signal))
                fail("the handler of signal %d is no longer the program's", s);
        }
        if (usr1 != step || others != 0)
            fail("after %d raises: %d SIGUSR1, %d other signals", step, (int)usr1, (int)others);
        unsigned long before = __atomic_load_n(&spins, __ATOMIC_RELAXED);
        pace_ms(30);
        if (__atomic_load_n(&spins, __ATOMIC_RELAXED) == before)
            fail("the spinner does not spin");
        chain = fnv1a_u64(chain, (uint64_t)usr1 * 31 + (uint64_t)step);
        step_line(step, chain);
    }
    __atomic_store_n(&quit, 1, __ATOMIC_RELEASE);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    done_line(chain);
    return 0;
}

// cflags: -pthread
/*
 * many_masked.c - more threads that block every signal than one helper stops at once
 * (the tracer takes 256): every one must be stopped from outside and saved.
 *
 * usage: many_masked [STEPS] [THREADS]
 *
 * Each thread blocks every signal, then sleeps 5 ms slices and counts them until main
 * says stop. Main steps; at the end it stops them, joins them and checks that every
 * one counted and still blocks every signal.
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>

static int quit; /* atomic */
static int masked_ok = 1; /* atomic: cleared by a thread whose mask changed */

static void *sleeper(void *arg)
{
    sigset_t all, cur;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    long naps = 0;
    while (!__atomic_load_n(&quit, __ATOMIC_SEQ_CST)) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        naps++;
    }
    pthread_sigmask(SIG_SETMASK, NULL, &cur);
    for (int s = 1; s < 65; s++)
        if (s != SIGKILL && s != SIGSTOP && sigismember(&all, s) && !sigismember(&cur, s))
            __atomic_store_n(&masked_ok, 0, __ATOMIC_SEQ_CST);
    (void)arg;
    return (void *)naps;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int n = argc > 2 ? atoi(argv[2]) : 300;
    pthread_t *t = calloc(n, sizeof *t);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 << 10);
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], &attr, sleeper, NULL) != 0)
            fail("pthread_create %d", i);
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        chain = fnv1a_u64(chain, (uint64_t)step);
        step_line(step, chain);
        pace_ms(50);
    }
    __atomic_store_n(&quit, 1, __ATOMIC_SEQ_CST);
    int idle = 0;
    for (int i = 0; i < n; i++) {
        void *naps;
        pthread_join(t[i], &naps);
        idle += naps == NULL;
    }
    emit("threads %d: %d never slept, masks %s\n", n, idle, masked_ok ? "ok" : "changed");
    done_line(fnv1a_u64(chain, (uint64_t)idle * 2 + !masked_ok));
    return 0;
}

// cflags: -pthread
/*
 * threads_nostop.c - a thread that blocks every signal.
 *
 * usage: threads_nostop [STEPS [undumpable]]
 *
 * The worker blocks all signals (pthread_sigmask(SIG_BLOCK) with a full set)
 * before it does anything, so it can never take the library's stop signal: mig
 * stops it from outside (ptrace). With `undumpable` (PR_SET_DUMPABLE 0) no
 * process of its user may trace it: a checkpoint must then be abandoned after
 * its bounded wait, and the process must go on unharmed. Each step main hands the worker the step number
 * through a mutex + condvar; the worker computes a value from it and its
 * stack state, sleeps 10 ms (nanosleep, which no signal can interrupt here)
 * and answers; main prints the digest and paces 40 ms. The worker also checks at
 * every step that its signal mask is still full.
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond; /* CLOCK_MONOTONIC */
static int request;         /* step asked; -1 = quit */
static int answered;
static uint64_t answer;

static void *worker(void *arg)
{
    (void)arg;
    sigset_t all, full;
    sigfillset(&all);
    int r = pthread_sigmask(SIG_BLOCK, &all, NULL);
    if (r != 0)
        fail("pthread_sigmask: %d", r);
    /* What the kernel really blocks: everything glibc lets a program block. */
    if (pthread_sigmask(SIG_BLOCK, NULL, &full) != 0)
        fail("pthread_sigmask (query)");
    uint64_t acc = 0x510f6a1d2c3b4e5fULL;
    uint64_t rng = 0xa54ff53a5f1d36f1ULL;
    pthread_mutex_lock(&lock);
    for (int last = 0;;) {
        while (request == last)
            pthread_cond_wait(&cond, &lock);
        if (request < 0)
            break;
        last = request;
        pthread_mutex_unlock(&lock);

        sigset_t now;
        if (pthread_sigmask(SIG_BLOCK, NULL, &now) != 0)
            fail("pthread_sigmask (query)");
        for (int sig = 1; sig < NSIG; sig++)
            if (sigismember(&full, sig) != sigismember(&now, sig))
                fail("worker's signal mask changed at step %d (signal %d)", last, sig);
        for (int k = 0; k < 20000; k++)
            acc += xorshift64(&rng) ^ (uint64_t)last;
        struct timespec ts = { 0, 10 * 1000000L };
        if (nanosleep(&ts, NULL) != 0)
            fail_errno("nanosleep with every signal blocked");

        pthread_mutex_lock(&lock);
        if (last != answered + 1)
            fail("worker asked step %d after %d", last, answered);
        answer = acc;
        answered = last;
        pthread_cond_broadcast(&cond);
    }
    pthread_mutex_unlock(&lock);
    return (void *)(uintptr_t)(acc ^ 0xb10c);
}

/* Waits on `cond` (lock held) until `answered` == want, giving up after
 * ~20 s of waiting in 100 ms slices (an abandoned checkpoint takes 5 s). */
static void wait_answer(int want)
{
    for (int slices = 0; answered != want; slices++) {
        if (slices >= 200)
            fail("the worker did not answer step %d", want);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        int r = pthread_cond_timedwait(&cond, &lock, &ts);
        if (r != 0 && r != ETIMEDOUT)
            fail("pthread_cond_timedwait: %d", r);
    }
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    /* Not dumpable: no process of its user may trace it (only root may). */
    if (argc > 2 && strcmp(argv[2], "undumpable") == 0 && prctl(PR_SET_DUMPABLE, 0) != 0)
        fail_errno("prctl(PR_SET_DUMPABLE)");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cond, &ca);
    pthread_condattr_destroy(&ca);

    pthread_t t;
    int r = pthread_create(&t, NULL, worker, NULL);
    if (r != 0)
        fail("pthread_create: %d", r);
    uint64_t chain = FNV_OFFSET;
    uint64_t last_answer = 0;
    for (int s = 1; s <= steps; s++) {
        pthread_mutex_lock(&lock);
        request = s;
        pthread_cond_broadcast(&cond);
        wait_answer(s);
        last_answer = answer;
        pthread_mutex_unlock(&lock);
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);
        d = fnv1a_u64(d, last_answer);
        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(40); /* + the worker's 10 ms: steps ~50 ms apart */
    }
    pthread_mutex_lock(&lock);
    request = -1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    void *ret;
    r = pthread_join(t, &ret);
    if (r != 0)
        fail("pthread_join: %d", r);
    if ((uint64_t)(uintptr_t)ret != (last_answer ^ 0xb10c))
        fail("the worker returned a wrong value");
    done_line(chain);
    return 0;
}

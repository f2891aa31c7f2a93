// cflags: -pthread
/*
 * threads_sleepers.c - threads that spend their time in timed sleeps.
 *
 * - `sleeper` loops in nanosleep(120 ms), continued with the remaining time
 *   after EINTR, and increments `naps` under a mutex after each; the count
 *   depends on timing, so it is never printed, only checked > 0 at the end.
 * - `poller` waits in poll(NULL, 0, 70) (no descriptors: pipes and eventfds
 *   are not restored yet, so the wait is a pure timeout) and on each wake-up
 *   looks under a mutex for a "byte" main posted; it consumes it, counts it
 *   and signals main. Main posts one byte per step, paces, then waits until
 *   the poller consumed it before printing, so the printed count (which must
 *   equal the step number) is deterministic.
 */
#include "common.h"
#include <poll.h>
#include <pthread.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond; /* CLOCK_MONOTONIC */
static int stop;            /* all under lock */
static int pending;         /* bytes posted and not yet consumed */
static int consumed;        /* bytes the poller has read */
static uint64_t poll_hash;  /* the poller's hash of what it consumed */
static int naps;            /* completed sleeps */

static void *sleeper(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec req = { 0, 120 * 1000000L }, rem;
        while (nanosleep(&req, &rem) != 0) {
            if (errno != EINTR)
                fail_errno("nanosleep in the sleeper");
            req = rem;
        }
        pthread_mutex_lock(&lock);
        naps++;
        int quit = stop;
        pthread_mutex_unlock(&lock);
        if (quit)
            return (void *)(uintptr_t)0x51ee9;
    }
}

static void *poller(void *arg)
{
    (void)arg;
    uint64_t h = FNV_OFFSET;
    for (;;) {
        int r = poll(NULL, 0, 70);
        if (r < 0 && errno != EINTR)
            fail_errno("poll");
        if (r > 0)
            fail("poll with no descriptors returned %d", r);
        pthread_mutex_lock(&lock);
        while (pending > 0) {
            pending--;
            consumed++;
            h = fnv1a_u64(h, (uint64_t)consumed);
        }
        poll_hash = h;
        pthread_cond_broadcast(&cond);
        int quit = stop;
        pthread_mutex_unlock(&lock);
        if (quit)
            return (void *)(uintptr_t)0x9011;
    }
}

/* Waits on `cond` (lock held) until `pending` is 0, giving up after ~5 s of
 * waiting in 100 ms slices. */
static void wait_consumed(int s)
{
    for (int slices = 0; pending != 0; slices++) {
        if (slices >= 50)
            fail("the poller did not consume byte %d", s);
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
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cond, &ca);
    pthread_condattr_destroy(&ca);

    pthread_t st, pt;
    if (pthread_create(&st, NULL, sleeper, NULL) != 0 || pthread_create(&pt, NULL, poller, NULL) != 0)
        fail("pthread_create");

    uint64_t rng = 0x3c6ef372fe94f82bULL;
    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        pthread_mutex_lock(&lock);
        pending++;
        pthread_mutex_unlock(&lock);
        pace_ms(50);
        pthread_mutex_lock(&lock);
        wait_consumed(s);
        int c = consumed;
        uint64_t ph = poll_hash;
        pthread_mutex_unlock(&lock);
        if (c != s)
            fail("the poller consumed %d bytes after step %d", c, s);
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);
        d = fnv1a_u64(d, (uint64_t)c);
        d = fnv1a_u64(d, ph);
        d = fnv1a_u64(d, xorshift64(&rng));
        chain = fnv1a_u64(chain, d);
        step_line(s, d);
    }

    /* The sleeper naps every 120 ms: give it (bounded) time for one. */
    for (int waited = 0;; waited++) {
        pthread_mutex_lock(&lock);
        int n = naps;
        pthread_mutex_unlock(&lock);
        if (n > 0)
            break;
        if (waited >= 200)
            fail("the sleeper never woke up");
        pace_ms(10);
    }
    pthread_mutex_lock(&lock);
    stop = 1;
    pthread_mutex_unlock(&lock);
    void *ret;
    int r = pthread_join(st, &ret);
    if (r != 0 || (uintptr_t)ret != 0x51ee9)
        fail("pthread_join sleeper: %d", r);
    r = pthread_join(pt, &ret);
    if (r != 0 || (uintptr_t)ret != 0x9011)
        fail("pthread_join poller: %d", r);
    done_line(chain);
    return 0;
}

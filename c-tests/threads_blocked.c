// cflags: -pthread
/*
 * threads_blocked.c - threads blocked for the whole run.
 *
 * - `waiter` sits in pthread_cond_wait (on `cv` with `cv_lock`) until main
 *   sets `released` at the end;
 * - `locker` sits in pthread_mutex_lock on `held`, which main locks before
 *   creating it and keeps until the end;
 * - `joiner` sits in pthread_join of `waiter` and checks its return value.
 *
 * Main checks every step that none of them has woken up (`woken` stays 0)
 * and that each is still alive (pthread_kill(t, 0)), and prints a digest of
 * its own state (a PRNG and a 4 KiB heap buffer). At the end it releases them
 * (broadcast, unlock), joins locker and joiner, checks their return values,
 * and folds the `woken` counter (3) into the done line.
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>

static pthread_mutex_t cv_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int released; /* under cv_lock */
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static int woken; /* atomic */
static int ready; /* atomic: threads about to block */
static pthread_t waiter_t, locker_t, joiner_t;

#define WAITER_RET 0x5741495445ULL
#define LOCKER_RET 0x4c4f434b4552ULL
#define JOINER_RET 0x4a4f494e4552ULL

static void *waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&cv_lock);
    __atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
    while (!released) {
        int r = pthread_cond_wait(&cv, &cv_lock);
        if (r != 0)
            fail("pthread_cond_wait: %d", r);
    }
    pthread_mutex_unlock(&cv_lock);
    __atomic_add_fetch(&woken, 1, __ATOMIC_SEQ_CST);
    return (void *)(uintptr_t)WAITER_RET;
}

static void *locker(void *arg)
{
    (void)arg;
    __atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
    int r = pthread_mutex_lock(&held);
    if (r != 0)
        fail("pthread_mutex_lock: %d", r);
    __atomic_add_fetch(&woken, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&held);
    return (void *)(uintptr_t)LOCKER_RET;
}

static void *joiner(void *arg)
{
    (void)arg;
    void *ret;
    __atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
    int r = pthread_join(waiter_t, &ret);
    if (r != 0)
        fail("joiner: pthread_join: %d", r);
    if ((uint64_t)(uintptr_t)ret != WAITER_RET)
        fail("joiner: waiter returned a wrong value");
    __atomic_add_fetch(&woken, 1, __ATOMIC_SEQ_CST);
    return (void *)(uintptr_t)JOINER_RET;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    pthread_mutex_lock(&held);
    if (pthread_create(&waiter_t, NULL, waiter, NULL) != 0 ||
        pthread_create(&locker_t, NULL, locker, NULL) != 0 ||
        pthread_create(&joiner_t, NULL, joiner, NULL) != 0)
        fail("pthread_create");
    while (__atomic_load_n(&ready, __ATOMIC_SEQ_CST) < 3)
        pace_ms(1);
    pace_ms(10); /* let them get into their blocking calls */

    uint64_t rng = 0x853c49e6748fea9bULL;
    unsigned char *buf = malloc(4096);
    if (!buf)
        fail("malloc");
    memset(buf, 0x5a, 4096);
    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        if (__atomic_load_n(&woken, __ATOMIC_SEQ_CST) != 0)
            fail("a blocked thread woke up before step %d", s);
        if (pthread_kill(waiter_t, 0) != 0 || pthread_kill(locker_t, 0) != 0 ||
            pthread_kill(joiner_t, 0) != 0)
            fail("a blocked thread is gone at step %d", s);
        for (int k = 0; k < 64; k++) {
            uint64_t x = xorshift64(&rng);
            buf[x % 4096] ^= (unsigned char)(x >> 56);
        }
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);
        d = fnv1a_u64(d, rng);
        d = fnv1a(d, buf, 4096);
        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(50);
    }

    pthread_mutex_lock(&cv_lock);
    released = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&cv_lock);
    pthread_mutex_unlock(&held);
    void *ret;
    int r = pthread_join(locker_t, &ret);
    if (r != 0)
        fail("pthread_join locker: %d", r);
    if ((uint64_t)(uintptr_t)ret != LOCKER_RET)
        fail("locker returned a wrong value");
    r = pthread_join(joiner_t, &ret);
    if (r != 0)
        fail("pthread_join joiner: %d", r);
    if ((uint64_t)(uintptr_t)ret != JOINER_RET)
        fail("joiner returned a wrong value");
    int w = __atomic_load_n(&woken, __ATOMIC_SEQ_CST);
    if (w != 3)
        fail("woken = %d after releasing, expected 3", w);
    chain = fnv1a_u64(chain, (uint64_t)w);
    free(buf);
    done_line(chain);
    return 0;
}

// cflags: -pthread
/*
 * threads_churn.c - threads created and joined during the run.
 *
 * Every step main creates 2 short-lived threads; each computes a PRNG chain
 * seeded from (step, k) in a malloc'd buffer (so threads use malloc arenas
 * too) for a couple of milliseconds, and returns its result, which main
 * checks against the copy the thread stored and folds into the digest. A
 * long-lived thread exists from before step 1 to the end: each step main
 * hands it the step number through a mutex + condvar and waits for its
 * answer, which depends on its accumulated stack state. So a checkpoint finds
 * a varying set of threads, and after a restore new threads must be
 * creatable and joinable.
 */
#include "common.h"
#include <pthread.h>

#define SHORT_WORK 40000
#define BUF_WORDS 512

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond; /* CLOCK_MONOTONIC */
static int request;         /* step asked of the long-lived thread; -1 = quit */
static int answered;        /* last step it answered */
static uint64_t answer;

/* Waits on `cond` (lock held) until *word == want, giving up after ~5 s of
 * waiting in 100 ms slices (restarted slices keep a checkpoint harmless). */
static void wait_for(const int *word, int want, const char *what)
{
    for (int slices = 0; *word != want; slices++) {
        if (slices >= 50)
            fail("timed out waiting for %s", what);
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

static void *long_lived(void *arg)
{
    (void)arg;
    uint64_t acc = 0x6a09e667f3bcc908ULL;
    uint64_t seen[8] = { 0 };
    pthread_mutex_lock(&lock);
    for (int last = 0;;) {
        while (request == last)
            pthread_cond_wait(&cond, &lock);
        if (request < 0)
            break;
        last = request;
        if (last != answered + 1)
            fail("long-lived thread: asked step %d after %d", last, answered);
        acc = fnv1a_u64(acc, (uint64_t)last * 0x9e3779b97f4a7c15ULL);
        seen[last % 8] ^= acc;
        answer = fnv1a(acc, seen, sizeof seen);
        answered = last;
        pthread_cond_broadcast(&cond);
    }
    pthread_mutex_unlock(&lock);
    return (void *)(uintptr_t)(acc ^ 0x1009);
}

struct job {
    int step, k;
    uint64_t out;
};

static void *short_lived(void *arg)
{
    struct job *j = arg;
    uint64_t *buf = malloc(BUF_WORDS * sizeof *buf);
    if (!buf)
        fail("malloc in a short-lived thread");
    uint64_t rng = ((uint64_t)j->step << 32) ^ (uint64_t)(j->k + 1) ^ 0xbb67ae8584caa73bULL;
    for (int i = 0; i < BUF_WORDS; i++)
        buf[i] = xorshift64(&rng);
    for (int i = 0; i < SHORT_WORK; i++) {
        uint64_t x = xorshift64(&rng);
        buf[x % BUF_WORDS] += x >> 7;
    }
    j->out = fnv1a(FNV_OFFSET, buf, BUF_WORDS * sizeof *buf);
    free(buf);
    return (void *)(uintptr_t)j->out;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cond, &ca);
    pthread_condattr_destroy(&ca);

    pthread_t lt;
    int r = pthread_create(&lt, NULL, long_lived, NULL);
    if (r != 0)
        fail("pthread_create long-lived: %d", r);

    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        struct job jobs[2] = { { s, 0, 0 }, { s, 1, 0 } };
        pthread_t t[2];
        for (int k = 0; k < 2; k++) {
            r = pthread_create(&t[k], NULL, short_lived, &jobs[k]);
            if (r != 0)
                fail("pthread_create at step %d: %d", s, r);
        }
        pthread_mutex_lock(&lock);
        request = s;
        pthread_cond_broadcast(&cond);
        wait_for(&answered, s, "the long-lived thread");
        uint64_t a = answer;
        pthread_mutex_unlock(&lock);

        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);
        d = fnv1a_u64(d, a);
        for (int k = 0; k < 2; k++) {
            void *ret;
            r = pthread_join(t[k], &ret);
            if (r != 0)
                fail("pthread_join at step %d: %d", s, r);
            if ((uint64_t)(uintptr_t)ret != jobs[k].out)
                fail("short-lived thread %d returned a wrong value at step %d", k, s);
            d = fnv1a_u64(d, jobs[k].out);
        }
        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(50);
    }
    pthread_mutex_lock(&lock);
    request = -1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    void *ret;
    r = pthread_join(lt, &ret);
    if (r != 0)
        fail("pthread_join long-lived: %d", r);
    chain = fnv1a_u64(chain, (uint64_t)(uintptr_t)ret);
    done_line(chain);
    return 0;
}

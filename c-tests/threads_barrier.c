// cflags: -pthread
/*
 * threads_barrier.c - 4 worker threads computing in lock step (a BSP loop).
 *
 * Each step has two pthread_barrier waits shared by the 4 workers and main:
 * after the first, every worker reads the whole previous generation of the
 * shared array and its own stack state, computes (a few hundred microseconds
 * of integer work) and writes its slot of the next generation; after the
 * second, main hashes that generation, prints the step and paces while the
 * workers sit in the first barrier of the next step. Each worker keeps its
 * state in stack variables (an accumulator, a PRNG state and a 64-entry
 * history it re-verifies every step against a checksum also on its stack).
 * At the end main joins the workers and checks each pthread_join value.
 */
#include "common.h"
#include <pthread.h>

#define WORKERS 4
#define HIST 64
#define SPIN 20000

static int steps;
static pthread_barrier_t barrier;
/* Two generations: step s reads gen[(s - 1) & 1] and writes gen[s & 1]. */
static uint64_t gen[2][WORKERS];

static uint64_t magic(int i)
{
    return 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
}

static uint64_t hist_sum(const uint64_t *h)
{
    return fnv1a(FNV_OFFSET, h, HIST * sizeof h[0]);
}

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint64_t acc = 1000003ULL * (uint64_t)(me + 1);
    uint64_t rng = 0x243f6a8885a308d3ULL ^ (uint64_t)me;
    uint64_t hist[HIST];
    for (int k = 0; k < HIST; k++)
        hist[k] = (uint64_t)k * (uint64_t)(me + 7);
    uint64_t sum = hist_sum(hist);
    for (int s = 1; s <= steps; s++) {
        int r = pthread_barrier_wait(&barrier);
        if (r != 0 && r != PTHREAD_BARRIER_SERIAL_THREAD)
            fail("worker %d: barrier wait 1: %d", me, r);
        if (hist_sum(hist) != sum)
            fail("worker %d: stack history corrupted at step %d", me, s);
        const uint64_t *prev = gen[(s - 1) & 1];
        for (int j = 0; j < WORKERS; j++)
            acc = (acc ^ prev[j]) * FNV_PRIME + (uint64_t)j;
        for (int k = 0; k < SPIN; k++)
            acc += xorshift64(&rng) >> (k & 15);
        hist[s % HIST] ^= acc;
        sum = hist_sum(hist);
        gen[s & 1][me] = acc;
        r = pthread_barrier_wait(&barrier);
        if (r != 0 && r != PTHREAD_BARRIER_SERIAL_THREAD)
            fail("worker %d: barrier wait 2: %d", me, r);
    }
    return (void *)(uintptr_t)(acc ^ magic(me));
}

int main(int argc, char **argv)
{
    steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int r = pthread_barrier_init(&barrier, NULL, WORKERS + 1);
    if (r != 0)
        fail("pthread_barrier_init: %d", r);
    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        r = pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
        if (r != 0)
            fail("pthread_create: %d", r);
    }
    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        r = pthread_barrier_wait(&barrier);
        if (r != 0 && r != PTHREAD_BARRIER_SERIAL_THREAD)
            fail("main: barrier wait 1: %d", r);
        r = pthread_barrier_wait(&barrier);
        if (r != 0 && r != PTHREAD_BARRIER_SERIAL_THREAD)
            fail("main: barrier wait 2: %d", r);
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);
        d = fnv1a(d, gen[s & 1], sizeof gen[0]);
        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(50);
    }
    for (int i = 0; i < WORKERS; i++) {
        void *ret;
        r = pthread_join(t[i], &ret);
        if (r != 0)
            fail("pthread_join %d: %d", i, r);
        if ((uint64_t)(uintptr_t)ret != (gen[steps & 1][i] ^ magic(i)))
            fail("worker %d returned a wrong value", i);
        chain = fnv1a_u64(chain, (uint64_t)(uintptr_t)ret);
    }
    pthread_barrier_destroy(&barrier);
    done_line(chain);
    return 0;
}

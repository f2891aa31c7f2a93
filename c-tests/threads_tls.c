// cflags: -pthread
/*
 * threads_tls.c - __thread variables and glibc's per-thread records.
 *
 * 3 workers and main run in lock step through a barrier (two waits per
 * step). Every step each of them updates its own __thread variables - an
 * initialised u64, a zero-initialised u64 and a zero-initialised u32 array -
 * and checks them against values recomputed from its index and the step.
 * Each worker also checks, every step, that
 * - the addresses of its __thread variables, pthread_self() and the stack
 *   that pthread_getattr_np reports are those saved when it started;
 * - gettid() is stable within the step, and glibc's record of its tid is
 *   right: before the step main sends it SIGRTMIN with pthread_kill (which
 *   signals the tid in glibc's record of the *target* thread) and waits for
 *   the handler to count it in the slot of the thread it ran in (found
 *   through a __thread index, so through the receiving thread's own TLS):
 *   every thread's count must be the number of signals sent to it, so each
 *   worker has handled exactly s of them at step s, and main none;
 * - pthread_kill(other, 0) == 0 for the next worker and for main.
 * The digest covers every thread's __thread values; no tid is printed.
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>

#define WORKERS 3
#define ARR 16
#define INIT_VALUE 0x0123456789abcdefULL
#define LCG_MUL 6364136223846793005ULL

static __thread uint64_t tls_init = INIT_VALUE;
static __thread uint64_t tls_zero;
static __thread uint32_t tls_arr[ARR];
static __thread int tls_index = -1;

static int steps;
static pthread_barrier_t barrier;
static pthread_t threads[WORKERS];
static pthread_t main_thread;
/* SIGRTMIN handled by each thread (counted by the handler, in the slot of
 * the thread it ran in), and sent to each by main. */
static volatile sig_atomic_t handled[WORKERS + 1];
static int sent[WORKERS + 1];
/* Per-thread results of the step (the hash of its __thread values). */
static uint64_t result[WORKERS + 1];
/* Workers that have set their __thread index (atomic). */
static int started;

static void on_rtmin(int sig)
{
    (void)sig;
    int i = tls_index;
    if (i >= 0 && i <= WORKERS)
        handled[i] = handled[i] + 1;
}

static void barrier_wait(const char *who, int n)
{
    int r = pthread_barrier_wait(&barrier);
    if (r != 0 && r != PTHREAD_BARRIER_SERIAL_THREAD)
        fail("%s: barrier wait %d: %d", who, n, r);
}

/* Updates the calling thread's __thread values for step s, checks them
 * against values derived from (me, s) only, returns their hash. */
static uint64_t tls_step(int me, int s)
{
    tls_init = tls_init * LCG_MUL + (uint64_t)(me + 1);
    tls_zero += (uint64_t)(me + 1) * (uint64_t)s;
    tls_arr[s % ARR] += (uint32_t)(me * 1000 + s);

    uint64_t want_init = INIT_VALUE;
    uint32_t want_arr[ARR] = { 0 };
    for (int k = 1; k <= s; k++) {
        want_init = want_init * LCG_MUL + (uint64_t)(me + 1);
        want_arr[k % ARR] += (uint32_t)(me * 1000 + k);
    }
    uint64_t want_zero = (uint64_t)(me + 1) * (uint64_t)s * (uint64_t)(s + 1) / 2;
    if (tls_index != me)
        fail("thread %d: __thread index is %d at step %d", me, tls_index, s);
    if (tls_init != want_init)
        fail("thread %d: initialised __thread value wrong at step %d", me, s);
    if (tls_zero != want_zero)
        fail("thread %d: zero-initialised __thread value wrong at step %d", me, s);
    if (memcmp(tls_arr, want_arr, sizeof want_arr) != 0)
        fail("thread %d: __thread array wrong at step %d", me, s);
    uint64_t h = fnv1a_u64(FNV_OFFSET, (uint64_t)me);
    h = fnv1a_u64(h, tls_init);
    h = fnv1a_u64(h, tls_zero);
    return fnv1a(h, tls_arr, sizeof tls_arr);
}

static void check_fresh_tls(int who)
{
    if (tls_init != INIT_VALUE || tls_zero != 0 || tls_index != -1)
        fail("thread %d: __thread variables not initialised at start", who);
    for (int k = 0; k < ARR; k++)
        if (tls_arr[k] != 0)
            fail("thread %d: __thread array not zero at start", who);
}

static void stack_of(pthread_t t, void **addr, size_t *size)
{
    pthread_attr_t a;
    int r = pthread_getattr_np(t, &a);
    if (r != 0)
        fail("pthread_getattr_np: %d", r);
    r = pthread_attr_getstack(&a, addr, size);
    if (r != 0)
        fail("pthread_attr_getstack: %d", r);
    pthread_attr_destroy(&a);
}

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    check_fresh_tls(me);
    tls_index = me;
    __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
    const pthread_t self = pthread_self();
    const void *addr_init = &tls_init, *addr_zero = &tls_zero, *addr_arr = tls_arr;
    void *stack;
    size_t stack_size;
    stack_of(self, &stack, &stack_size);

    for (int s = 1; s <= steps; s++) {
        barrier_wait("worker", 1);
        pid_t tid = gettid();
        if (!pthread_equal(pthread_self(), self))
            fail("thread %d: pthread_self() changed at step %d", me, s);
        if ((const void *)&tls_init != addr_init || (const void *)&tls_zero != addr_zero ||
            (const void *)tls_arr != addr_arr)
            fail("thread %d: __thread variables moved at step %d", me, s);
        void *st;
        size_t st_size;
        stack_of(pthread_self(), &st, &st_size);
        if (st != stack || st_size != stack_size)
            fail("thread %d: pthread_getattr_np stack changed at step %d", me, s);
        if (handled[me] != s)
            fail("thread %d: handled %d signals from main by step %d", me, (int)handled[me], s);
        if (pthread_kill(pthread_self(), 0) != 0)
            fail("thread %d: pthread_kill(self, 0) failed at step %d", me, s);
        int r = pthread_kill(threads[(me + 1) % WORKERS], 0);
        if (r != 0)
            fail("thread %d: pthread_kill(next worker, 0) = %d at step %d", me, r, s);
        r = pthread_kill(main_thread, 0);
        if (r != 0)
            fail("thread %d: pthread_kill(main, 0) = %d at step %d", me, r, s);
        result[me] = tls_step(me, s);
        if (gettid() != tid)
            fail("thread %d: gettid() changed within step %d", me, s);
        barrier_wait("worker", 2);
    }
    return (void *)(uintptr_t)(tls_zero ^ 0x7e57);
}

/* Sends SIGRTMIN to worker i and waits (bounded) until its handler ran in
 * that worker; checks that no other thread handled one it was not sent. */
static void ping(int i, int s)
{
    sent[i]++;
    int r = pthread_kill(threads[i], SIGRTMIN);
    if (r != 0)
        fail("pthread_kill(worker %d, SIGRTMIN) = %d at step %d", i, r, s);
    for (int waited = 0; handled[i] != sent[i]; waited++) {
        if (waited >= 5000)
            fail("SIGRTMIN sent to worker %d was never handled by it at step %d", i, s);
        pace_ms(1);
    }
    for (int k = 0; k <= WORKERS; k++)
        if (handled[k] != sent[k])
            fail("thread %d handled %d signals, %d were sent to it, at step %d", k, (int)handled[k], sent[k], s);
}

int main(int argc, char **argv)
{
    steps = steps_arg(argc, argv, DEFAULT_STEPS);
    check_fresh_tls(WORKERS);
    tls_index = WORKERS;
    main_thread = pthread_self();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_rtmin;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGRTMIN, &sa, NULL) != 0)
        fail_errno("sigaction");

    int r = pthread_barrier_init(&barrier, NULL, WORKERS + 1);
    if (r != 0)
        fail("pthread_barrier_init: %d", r);
    for (int i = 0; i < WORKERS; i++) {
        r = pthread_create(&threads[i], NULL, worker, (void *)(intptr_t)i);
        if (r != 0)
            fail("pthread_create: %d", r);
    }
    while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < WORKERS)
        pace_ms(1);
    const void *addr_init = &tls_init;
    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        for (int i = 0; i < WORKERS; i++)
            ping(i, s);
        barrier_wait("main", 1);
        if ((const void *)&tls_init != addr_init)
            fail("main: __thread variable moved at step %d", s);
        if (!pthread_equal(pthread_self(), main_thread))
            fail("main: pthread_self() changed at step %d", s);
        result[WORKERS] = tls_step(WORKERS, s);
        barrier_wait("main", 2);
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);
        d = fnv1a(d, result, sizeof result);
        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(50);
    }
    for (int i = 0; i < WORKERS; i++) {
        void *ret;
        r = pthread_join(threads[i], &ret);
        if (r != 0)
            fail("pthread_join %d: %d", i, r);
        uint64_t want = (uint64_t)(i + 1) * (uint64_t)steps * (uint64_t)(steps + 1) / 2;
        if ((uint64_t)(uintptr_t)ret != (want ^ 0x7e57))
            fail("worker %d returned a wrong value", i);
    }
    done_line(chain);
    return 0;
}

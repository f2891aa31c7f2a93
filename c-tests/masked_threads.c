// cflags: -pthread
/*
 * masked_threads.c - threads that block every signal, so that no signal handler of
 * mig's can run in them (issue 14: jemalloc's background thread, runtimes' workers).
 *
 * usage: masked_threads [STEPS]
 *
 * Each thread blocks every signal as it starts and then serves main, one command per
 * step:
 * - `spinner` (pthread_sigmask, and an alternate signal stack of its own) waits for
 *   each command spinning in user space, inside one asm loop that holds a 256-bit
 *   pattern in %ymm8 (when the CPU has AVX): the pattern must be intact when the
 *   command comes, so the extended FPU state survives being stopped there.
 * - `reader` (raw rt_sigprocmask) reads one byte per step from a pipe with raw
 *   read(2) calls.
 * - `sleeper` (pthread_sigmask) sleeps 20 ms slices with clock_nanosleep (relative,
 *   no remainder) while it waits for its command; a sleep must never return early.
 * - `epoller` (pthread_sigmask) waits in epoll_wait (no timeout) for an eventfd that
 *   main writes once per step.
 * After each command a thread checks that its signal mask is still full (and the
 * spinner that its alternate stack is the same), and answers with what it counted.
 * Main prints `step N <digest>` of the answers; any EINTR, early sleep, lost pattern,
 * changed mask or stack fails the run.
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>

static int cmd[4];  /* atomic: the step each thread is asked to do */
static int done[4]; /* atomic: the last step each thread did */
static uint64_t result[4];
static int pipefd[2], efd, epfd;
static int have_avx;

static void check_mask(const char *who)
{
    sigset_t cur, full;
    sigfillset(&full);
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    for (int s = 1; s < 65; s++) {
        if (s == SIGKILL || s == SIGSTOP || (s > 31 && s < SIGRTMIN))
            continue;
        if (sigismember(&cur, s) != sigismember(&full, s))
            fail("%s: signal %d is no longer blocked", who, s);
    }
}

static void block_all(void)
{
    sigset_t all;
    sigfillset(&all);
    if (pthread_sigmask(SIG_SETMASK, &all, NULL) != 0)
        fail("pthread_sigmask");
}

static int wait_cmd(int who, int last)
{
    int c;
    while ((c = __atomic_load_n(&cmd[who], __ATOMIC_ACQUIRE)) == last)
        ;
    return c;
}

static void answer(int who, int step, uint64_t r)
{
    result[who] = r;
    __atomic_store_n(&done[who], step, __ATOMIC_RELEASE);
}

static const uint64_t pattern[4] = { 0x0123456789abcdefULL, 0xfedcba9876543210ULL, 0x5555aaaa5555aaaaULL, 0x1357924680acebdfULL };

/* Spins until cmd[0] != last with `pattern` in %ymm8 throughout; returns the command
 * and puts what %ymm8 held at the end in `out`. */
static int spin_holding_ymm8(int last, uint64_t out[4])
{
    int c;
    __asm__ volatile(
        "vmovdqu (%[pat]), %%ymm8\n"
        "1:\n\t"
        "pause\n\t"
        "movl (%[cmd]), %[c]\n\t"
        "cmpl %[last], %[c]\n\t"
        "je 1b\n\t"
        "vmovdqu %%ymm8, (%[out])\n\t"
        "vzeroupper\n"
        : [c] "=&r"(c)
        : [pat] "r"(pattern), [cmd] "r"(&cmd[0]), [last] "r"(last), [out] "r"(out)
        : "xmm8", "memory", "cc");
    return c;
}

static void *spinner(void *arg)
{
    (void)arg;
    block_all();
    static char alt[64 * 1024];
    stack_t ss = { .ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0)
        fail_errno("sigaltstack");
    uint64_t h = FNV_OFFSET;
    for (int last = 0;;) {
        int c;
        if (have_avx) {
            uint64_t held[4];
            c = spin_holding_ymm8(last, held);
            if (memcmp(held, pattern, sizeof held) != 0)
                fail("spinner: %%ymm8 changed while it waited for step %d: %016llx %016llx %016llx %016llx", c, (unsigned long long)held[0],
                     (unsigned long long)held[1], (unsigned long long)held[2], (unsigned long long)held[3]);
        } else {
            c = wait_cmd(0, last);
        }
        if (c < 0)
            return NULL;
        check_mask("spinner");
        stack_t now;
        if (sigaltstack(NULL, &now) != 0 || now.ss_sp != alt || now.ss_size != sizeof alt || (now.ss_flags & SS_DISABLE))
            fail("spinner: its alternate signal stack changed");
        h = fnv1a_u64(h, (uint64_t)c * 3);
        answer(0, c, h);
        last = c;
    }
}

static void *reader(void *arg)
{
    (void)arg;
    uint64_t all = ~0ULL;
    if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, 8) != 0)
        fail_errno("rt_sigprocmask");
    uint64_t h = FNV_OFFSET;
    for (int n = 1;; n++) {
        unsigned char b;
        long r = syscall(SYS_read, pipefd[0], &b, 1);
        if (r != 1)
            fail("reader: read returned %ld (%s)", r, r < 0 ? strerror(errno) : "end");
        if (b == 0xff)
            return NULL;
        check_mask("reader");
        h = fnv1a_u64(h, b);
        answer(1, n, h);
    }
}

static void *sleeper(void *arg)
{
    (void)arg;
    block_all();
    uint64_t naps = 0;
    for (int last = 0;;) {
        int c = __atomic_load_n(&cmd[2], __ATOMIC_ACQUIRE);
        if (c < 0)
            return (void *)(uintptr_t)naps;
        if (c == last) {
            struct timespec t0, t1, req = { 0, 20 * 1000000L };
            clock_gettime(CLOCK_MONOTONIC, &t0);
            int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double slept = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
            if (r != 0)
                fail("sleeper: clock_nanosleep returned %s after %.3f s", strerror(r), slept);
            if (slept < 0.019)
                fail("sleeper: a 20 ms sleep returned after %.3f s", slept);
            naps++;
            continue;
        }
        check_mask("sleeper");
        answer(2, c, (uint64_t)c * 7);
        last = c;
    }
}

static void *epoller(void *arg)
{
    (void)arg;
    block_all();
    uint64_t total = 0;
    for (;;) {
        struct epoll_event ev;
        int r = epoll_wait(epfd, &ev, 1, -1);
        if (r != 1)
            fail("epoller: epoll_wait returned %d (%s)", r, r < 0 ? strerror(errno) : "nothing");
        uint64_t v;
        if (read(efd, &v, sizeof v) != sizeof v)
            fail_errno("epoller: read of the eventfd");
        if (v >= 1000)
            return NULL;
        total += v;
        check_mask("epoller");
        answer(3, (int)total, total * 11);
    }
}

static void wait_done(int who, int step)
{
    for (int ms = 0; __atomic_load_n(&done[who], __ATOMIC_ACQUIRE) != step; ms++) {
        if (ms > 10000)
            fail("thread %d did not do step %d", who, step);
        pace_ms(1);
    }
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    __builtin_cpu_init();
    have_avx = __builtin_cpu_supports("avx");
    if (pipe(pipefd) != 0)
        fail_errno("pipe");
    efd = eventfd(0, 0);
    epfd = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 };
    if (efd < 0 || epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev) != 0)
        fail_errno("eventfd/epoll");

    pthread_t t[4];
    void *(*fn[4])(void *) = { spinner, reader, sleeper, epoller };
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, fn[i], NULL) != 0)
            fail("pthread_create");

    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        __atomic_store_n(&cmd[0], s, __ATOMIC_RELEASE);
        __atomic_store_n(&cmd[2], s, __ATOMIC_RELEASE);
        unsigned char b = (unsigned char)(s * 37);
        if (write(pipefd[1], &b, 1) != 1)
            fail_errno("write to the reader");
        uint64_t one = 1;
        if (write(efd, &one, sizeof one) != sizeof one)
            fail_errno("write to the eventfd");
        for (int i = 0; i < 4; i++)
            wait_done(i, s);
        for (int i = 0; i < 4; i++)
            chain = fnv1a_u64(chain, result[i]);
        step_line(s, chain);
        pace_ms(40);
    }
    __atomic_store_n(&cmd[0], -1, __ATOMIC_RELEASE);
    __atomic_store_n(&cmd[2], -1, __ATOMIC_RELEASE);
    unsigned char quit = 0xff;
    uint64_t big = 1000;
    if (write(pipefd[1], &quit, 1) != 1 || write(efd, &big, sizeof big) != sizeof big)
        fail_errno("write");
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    done_line(chain);
    return 0;
}

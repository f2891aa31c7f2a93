// cflags: -pthread
/*
 * small_altstack.c - threads that spend their time in a signal handler running on a
 * 32 KiB alternate signal stack without a guard page, as Go's runtime does.
 *
 * Each thread's SIGALRM/SIGPROF handler runs on its own 32 KiB sigaltstack, laid out
 * right above 64 KiB of canary bytes; it prints its step from inside the handler and
 * stays there a while, so a checkpoint signal arriving then finds the thread on that
 * stack. A handler of mig's that used more than the room left would overwrite the
 * canary (or fault): every step checks it.
 * Usage: small_altstack [steps]
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define CANARY (64 * 1024)
#define ALTSTACK (32 * 1024)

struct area {
    unsigned char *base; /* canary, then the stack */
};

static struct area areas[2];
static volatile int steps_total;
static volatile int step_no;
static uint64_t chain = FNV_OFFSET;

static void check_canary(int who)
{
    for (size_t i = 0; i < CANARY; i++)
        if (areas[who].base[i] != 0xa5)
            fail("the canary below thread %d's signal stack was overwritten at %zu", who, CANARY - i);
}

static void make_area(int who)
{
    areas[who].base = mmap(NULL, CANARY + ALTSTACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (areas[who].base == MAP_FAILED)
        fail_errno("mmap");
    memset(areas[who].base, 0xa5, CANARY);
}

static void setup_altstack(int who)
{
    stack_t ss = { .ss_sp = areas[who].base + CANARY, .ss_size = ALTSTACK, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0)
        fail_errno("sigaltstack");
}

static void busy_ms(int ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}

/* The main thread's handler: one step per signal, printed from the signal stack. */
static void on_alarm(int sig)
{
    (void)sig;
    check_canary(0);
    check_canary(1);
    int s = ++step_no;
    chain = fnv1a_u64(chain, (uint64_t)s * 0x9e3779b97f4a7c15ULL);
    step_line(s, chain);
    busy_ms(60);
}

/* The second thread's: it just stays on its signal stack most of the time. */
static void on_prof(int sig)
{
    (void)sig;
    busy_ms(30);
}

static void *worker(void *arg)
{
    (void)arg;
    setup_altstack(1);
    for (;;) {
        syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGPROF);
        usleep(1000);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    steps_total = steps_arg(argc, argv, DEFAULT_STEPS);
    make_area(0);
    make_area(1);
    setup_altstack(0);
    struct sigaction sa = { 0 };
    sa.sa_flags = SA_ONSTACK | SA_RESTART;
    sigemptyset(&sa.sa_mask); /* mig's signals can come while a handler runs */
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_prof;
    sigaction(SIGPROF, &sa, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        fail("pthread_create");
    while (step_no < steps_total) {
        raise(SIGALRM);
        pace_ms(5);
    }
    check_canary(0);
    check_canary(1);
    done_line(chain);
    return 0;
}

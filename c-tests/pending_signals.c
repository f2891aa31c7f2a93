/*
 * pending_signals.c - signals sent and not taken yet come back pending.
 *
 * The process blocks SIGHUP, SIGTERM and two real-time signals in every thread, then
 * has them sent: SIGHUP to the process (kill), SIGTERM to a worker thread
 * (pthread_kill), SIGRTMIN+1 three times to the process with values 11, 22, 33
 * (sigqueue), SIGRTMIN+2 to the main thread with value 44 (pthread_sigqueue). It
 * steps with all of them pending; a checkpoint (and a restore) happens meanwhile.
 * After the last step each thread takes its signals (sigtimedwait) and checks which
 * are pending, for whom, in what order, with what value, code and sender: the verdict
 * is folded into the digest and printed.
 */
#define _GNU_SOURCE
#include "common.h"
#include <pthread.h>
#include <signal.h>

/* The kernel's code for a thread-directed kill differs between versions: printed, so
 * the restored run must show the same. */
#define ANY_CODE 1000

static pid_t first_pid;
static pthread_barrier_t sent, checked;
static uint64_t worker_verdict;

static uint64_t take(int sig, int code, int value, const char *what)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    siginfo_t info;
    struct timespec zero = {0, 0};
    if (sigtimedwait(&one, &info, &zero) != sig) {
        emit("%s: signal %d is not pending\n", what, sig);
        return 1;
    }
    if (code == ANY_CODE)
        emit("%s: signal %d came with code %d\n", what, sig, info.si_code);
    else if (info.si_code != code)
        emit("%s: signal %d came with code %d (want %d)\n", what, sig, info.si_code, code);
    if ((code != ANY_CODE && info.si_code != code) || info.si_pid != first_pid || (value >= 0 && info.si_value.sival_int != value)) {
        emit("%s: signal %d came from pid %d (want %d), value %d (want %d)\n", what, sig, (int)info.si_pid, (int)first_pid,
             info.si_value.sival_int, value);
        return 2;
    }
    return 0;
}

static uint64_t own_pending(void)
{
    sigset_t set;
    sigpending(&set);
    uint64_t bits = 0;
    for (int s = 1; s < 64; s++)
        if (sigismember(&set, s))
            bits |= 1ull << (s - 1);
    return bits;
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&sent);
    pthread_barrier_wait(&checked);
    /* Its own SIGTERM and the process's signals; not the main thread's. */
    uint64_t want = 1ull << (SIGTERM - 1) | 1ull << (SIGHUP - 1) | 1ull << (SIGRTMIN + 1 - 1);
    uint64_t have = own_pending();
    if (have != want)
        emit("worker: pending %llx, want %llx\n", (unsigned long long)have, (unsigned long long)want);
    worker_verdict = (have != want) + take(SIGTERM, ANY_CODE, -1, "worker");
    return NULL;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    first_pid = getpid();
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGRTMIN + 1);
    sigaddset(&block, SIGRTMIN + 2);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    pthread_barrier_init(&sent, NULL, 2);
    pthread_barrier_init(&checked, NULL, 2);
    pthread_t w;
    if (pthread_create(&w, NULL, worker, NULL) != 0)
        fail("pthread_create");
    kill(getpid(), SIGHUP);
    pthread_kill(w, SIGTERM);
    for (int v = 11; v <= 33; v += 11)
        sigqueue(getpid(), SIGRTMIN + 1, (union sigval){.sival_int = v});
    pthread_sigqueue(pthread_self(), SIGRTMIN + 2, (union sigval){.sival_int = 44});
    pthread_barrier_wait(&sent);

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        chain = fnv1a_u64(chain, (uint64_t)step);
        step_line(step, chain);
        pace_ms(50);
    }

    /* The worker sees its own and the process's; then the main thread takes the rest. */
    pthread_barrier_wait(&checked);
    pthread_join(w, NULL);
    uint64_t want = 1ull << (SIGHUP - 1) | 1ull << (SIGRTMIN + 1 - 1) | 1ull << (SIGRTMIN + 2 - 1);
    uint64_t have = own_pending();
    uint64_t verdict = worker_verdict * 100 + (have != want);
    if (have != want)
        emit("main: pending %llx, want %llx\n", (unsigned long long)have, (unsigned long long)want);
    verdict += take(SIGHUP, SI_USER, -1, "main");
    for (int v = 11; v <= 33; v += 11)
        verdict += take(SIGRTMIN + 1, SI_QUEUE, v, "main");
    verdict += take(SIGRTMIN + 2, SI_QUEUE, 44, "main");
    if (own_pending() != 0)
        emit("main: still pending %llx\n", (unsigned long long)own_pending()), verdict++;
    emit("signals %s\n", verdict == 0 ? "ok" : "wrong");
    done_line(fnv1a_u64(chain, verdict));
    return 0;
}

// cflags: -pthread
/*
 * mutex_owner.c - mutexes a thread owns across the checkpoint stay its own.
 *
 * glibc records the owner of a recursive or error-checking mutex as the owner's
 * tid (its cached tid, in struct pthread) and compares it with the caller's on
 * every lock and unlock. A worker locks a recursive mutex twice and an
 * error-checking one once at the start and keeps them for the whole run. Every
 * step main hands it a turn (semaphores) and the worker checks, as the owner,
 * that the recursive one locks again (trylock 0, then unlock 0) and that the
 * error-checking one unlocks and locks again (EPERM if it were no longer its
 * own), and that a trylock from main finds both busy (EBUSY). The step line
 * folds in a bit mask of the checks that failed (0 when all hold). At the end
 * the worker unlocks everything and main finds both mutexes free.
 *
 * Restored threads keep their tids only where the kernel lets the restore
 * choose them (clone3 with set_tid: root, or CAP_CHECKPOINT_RESTORE).
 */
#include "common.h"
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>

static pthread_mutex_t rec, chk;
static sem_t turn, answered;
static volatile int stop;
static volatile unsigned bad;

static void *worker(void *arg)
{
    (void)arg;
    if (pthread_mutex_lock(&rec) || pthread_mutex_lock(&rec) || pthread_mutex_lock(&chk))
        fail("worker: cannot take its mutexes");
    sem_post(&answered);
    for (;;) {
        while (sem_wait(&turn) != 0)
            ;
        if (stop)
            break;
        unsigned b = 0;
        if (pthread_mutex_trylock(&rec) != 0)
            b |= 1;
        else if (pthread_mutex_unlock(&rec) != 0)
            b |= 2;
        if (pthread_mutex_unlock(&chk) != 0)
            b |= 4;
        else if (pthread_mutex_lock(&chk) != 0)
            b |= 8;
        bad = b;
        sem_post(&answered);
    }
    int r = pthread_mutex_unlock(&rec) | pthread_mutex_unlock(&rec) | pthread_mutex_unlock(&chk);
    return (void *)(intptr_t)(r ? 1 : 2);
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&rec, &a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&chk, &a);
    sem_init(&turn, 0, 0);
    sem_init(&answered, 0, 0);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL))
        fail("pthread_create");
    while (sem_wait(&answered) != 0)
        ;
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        sem_post(&turn);
        while (sem_wait(&answered) != 0)
            ;
        unsigned b = bad;
        if (pthread_mutex_trylock(&rec) != EBUSY)
            b |= 16;
        if (pthread_mutex_trylock(&chk) != EBUSY)
            b |= 32;
        if (b)
            emit("step %d: checks failed: %#x\n", step, b);
        chain = fnv1a_u64(chain, (uint64_t)step * 7 + b);
        step_line(step, chain);
        pace_ms(50);
    }
    stop = 1;
    sem_post(&turn);
    void *ret;
    pthread_join(t, &ret);
    int freed = pthread_mutex_trylock(&rec) == 0 && pthread_mutex_trylock(&chk) == 0;
    done_line(fnv1a_u64(chain, (uint64_t)(intptr_t)ret * 10 + freed));
    return 0;
}

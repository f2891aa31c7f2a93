// cflags: -pthread
/*
 * attributes.c - process attributes and each thread's scheduling come back.
 *
 * At the start the process sets oom_score_adj 500, the ADDR_NO_RANDOMIZE
 * personality bit, PR_SET_CHILD_SUBREAPER, PR_SET_THP_DISABLE,
 * PR_SET_NO_NEW_PRIVS and PR_SET_PDEATHSIG (SIGCONT, harmless). Main takes nice
 * 3, a timer slack of 200 us and the last CPU; a worker takes SCHED_BATCH with
 * nice 7, a timer slack of 123 us and CPU 0. Every step main hands the worker a
 * turn (semaphores) and both check their own settings (and main the
 * process-wide ones); the step line folds in a bit mask of what changed (0 when
 * nothing did), and a line names it. None of this needs privilege.
 */
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

static sem_t turn, answered;
static volatile int stop;
static volatile unsigned worker_bad;
static int last_cpu;

static int nice_now(void)
{
    return getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
}

static unsigned check_thread(int policy, int nice, unsigned long slack, int cpu)
{
    unsigned bad = 0;
    if (sched_getscheduler(0) != policy)
        bad |= 1;
    if (nice_now() != nice)
        bad |= 2;
    if ((unsigned long)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) != slack)
        bad |= 4;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1 || !CPU_ISSET(cpu, &set))
        bad |= 8;
    return bad;
}

static void set_thread(int policy, int nice, unsigned long slack, int cpu)
{
    struct sched_param sp = { 0 };
    if (sched_setscheduler(0, policy, &sp) != 0)
        fail_errno("sched_setscheduler");
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice) != 0)
        fail_errno("setpriority");
    if (prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0) != 0)
        fail_errno("PR_SET_TIMERSLACK");
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        fail_errno("sched_setaffinity");
}

static void *worker(void *arg)
{
    (void)arg;
    set_thread(SCHED_BATCH, 7, 123000, 0);
    sem_post(&answered);
    for (;;) {
        while (sem_wait(&turn) != 0)
            ;
        if (stop)
            break;
        worker_bad = check_thread(SCHED_BATCH, 7, 123000, 0) << 8;
        sem_post(&answered);
    }
    return NULL;
}

static unsigned check_process(void)
{
    unsigned bad = 0;
    FILE *f = fopen("/proc/self/oom_score_adj", "r");
    int adj = 0;
    if (!f || fscanf(f, "%d", &adj) != 1 || adj != 500)
        bad |= 0x10000;
    if (f)
        fclose(f);
    if (!(personality(0xffffffff) & ADDR_NO_RANDOMIZE))
        bad |= 0x20000;
    int v = 0;
    if (prctl(PR_GET_CHILD_SUBREAPER, &v, 0, 0, 0) != 0 || v != 1)
        bad |= 0x40000;
    if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != 1)
        bad |= 0x80000;
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        bad |= 0x100000;
    v = 0;
    if (prctl(PR_GET_PDEATHSIG, &v, 0, 0, 0) != 0 || v != SIGCONT)
        bad |= 0x200000;
    return bad;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    FILE *f = fopen("/proc/self/oom_score_adj", "w");
    if (!f || fprintf(f, "500\n") < 0 || fclose(f) != 0)
        fail_errno("oom_score_adj");
    if (personality(personality(0xffffffff) | ADDR_NO_RANDOMIZE) < 0)
        fail_errno("personality");
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) || prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
        prctl(PR_SET_PDEATHSIG, SIGCONT, 0, 0, 0))
        fail_errno("prctl");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    last_cpu = cpus > 1 ? (int)cpus - 1 : 0;
    set_thread(SCHED_OTHER, 3, 200000, last_cpu);
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
        unsigned bad = worker_bad | check_thread(SCHED_OTHER, 3, 200000, last_cpu) | check_process();
        if (bad)
            emit("step %d: attributes changed: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 977 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    stop = 1;
    sem_post(&turn);
    pthread_join(t, NULL);
    done_line(chain);
    return 0;
}

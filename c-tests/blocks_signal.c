/*
 * blocks_signal.c - a subject that blocks the checkpoint signal (SIGUSR1) for a while.
 *
 * usage: blocks_signal [STEPS [FROM [TO]]]
 *
 * 40 steps by default; SIGUSR1 is blocked before step FROM (default 3) is printed
 * and unblocked after step TO - 1 (default 30): a checkpoint asked meanwhile stays
 * pending until then. State: a counter (LCG); the digest covers it and the step.
 */
#include "common.h"
#include <signal.h>

static void mask(int how)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    if (sigprocmask(how, &s, NULL) != 0)
        fail_errno("sigprocmask");
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int from = argc > 2 ? atoi(argv[2]) : 3;
    int to = argc > 3 ? atoi(argv[3]) : 30;
    uint64_t counter = 7;
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        if (step == from)
            mask(SIG_BLOCK);
        if (step == to)
            mask(SIG_UNBLOCK);
        counter = counter * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t d = fnv1a_u64(fnv1a_u64(FNV_OFFSET, counter), (uint64_t)step);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

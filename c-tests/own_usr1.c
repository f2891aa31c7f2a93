/*
 * own_usr1.c - a program that uses SIGUSR1 itself (raises it every step and counts
 * deliveries). Under mig it gets a warning; with MIG_SIGNAL set to another signal its
 * SIGUSR1 stays its own and checkpoints still work.
 */
#include "common.h"
#include <signal.h>

static volatile sig_atomic_t delivered;

static void on_usr1(int sig)
{
    (void)sig;
    delivered++;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        fail_errno("sigaction");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        raise(SIGUSR1);
        if (delivered != step)
            fail("SIGUSR1 delivered %d times after %d raises", (int)delivered, step);
        chain = fnv1a_u64(chain, (uint64_t)delivered * 1000003u);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

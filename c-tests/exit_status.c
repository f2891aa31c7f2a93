/*
 * exit_status.c - a subject that ends with an exit status of its own.
 *
 * usage: exit_status [STEPS [STATUS]]
 *
 * 20 steps by default, then the done line and exit(STATUS) (default 0): a restarted
 * process's own status must reach whoever restarted it, whatever it is.
 */
#include "common.h"

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, 20);
    int status = argc > 2 ? atoi(argv[2]) : 0;
    uint64_t counter = 3;
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        counter = counter * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t d = fnv1a_u64(FNV_OFFSET, counter);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(50);
    }
    done_line(chain);
    return status;
}

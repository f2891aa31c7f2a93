/*
 * busy.c - the most trivial subject: a counter and nothing else.
 *
 * Used for overhead tests (the library loaded but never checkpointing) and
 * rollback tests where the state should be as small as possible. Unlike
 * chain.c it has no heap buffer and runs the default 40 steps.
 */
#include "common.h"

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    uint64_t chain = FNV_OFFSET;

    for (int step = 1; step <= steps; step++) {
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)step * step);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(50);
    }
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}

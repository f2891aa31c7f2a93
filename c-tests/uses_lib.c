// ldflags: -L. -lstep -Wl,-rpath,$ORIGIN
/*
 * uses_lib.c - calls into libstep.so (built next to the binary by the tests), whose
 * writable data is part of the digest: a restore must bring back library data, and
 * must refuse when the library file changed since the checkpoint.
 */
#include "common.h"

uint64_t step_value(int step);
extern uint64_t step_total;

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        uint64_t d = fnv1a_u64(fnv1a_u64(FNV_OFFSET, step_value(step)), step_total);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

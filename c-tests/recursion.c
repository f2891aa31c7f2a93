/*
 * recursion.c - deep stacks.
 *
 * Each step recurses ~20000 frames deep (the depth varies per step between
 * 17500 and 22499), every frame holding a small local array derived from
 * its depth and a per-frame seed. At the deepest point the program sleeps,
 * so a checkpoint usually lands with ~1.5 MiB of live stack. On the way
 * back each frame verifies its locals and folds them into a sum.
 */
#include "common.h"

#define BASE_DEPTH 17500
#define DEPTH_SPREAD 5000
#define LOCALS 6

static int target_depth;

static uint32_t expected(uint32_t seed, int depth, int i)
{
    return seed * (uint32_t)(2 * i + 1) + (uint32_t)depth;
}

__attribute__((noinline))
static uint64_t dive(int depth, uint32_t seed)
{
    /* volatile: keep the array in this frame's stack memory */
    volatile uint32_t local[LOCALS];
    for (int i = 0; i < LOCALS; i++)
        local[i] = expected(seed, depth, i);

    uint64_t sum;
    if (depth == target_depth) {
        pace_ms(50); /* the checkpoint usually lands here */
        sum = 0x5eed;
    } else {
        sum = dive(depth + 1, seed * 1664525u + 1013904223u);
    }

    for (int i = 0; i < LOCALS; i++) {
        if (local[i] != expected(seed, depth, i))
            fail("frame %d local %d corrupt", depth, i);
        sum = sum * 31 + local[i];
    }
    return sum;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    uint64_t chain = FNV_OFFSET;

    for (int step = 1; step <= steps; step++) {
        target_depth = BASE_DEPTH + (step * 997) % DEPTH_SPREAD;
        uint64_t sum = dive(1, (uint32_t)step);
        uint64_t d = fnv1a_u64(fnv1a_u64(FNV_OFFSET, (uint64_t)target_depth), sum);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
    }
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}

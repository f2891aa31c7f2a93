/*
 * chain.c - simple subject for multi-generation chains and rollback.
 *
 * 60 steps by default (~3 s) so that it can be checkpointed, restored,
 * checkpointed again from the restored process, and so on. State: a 64-bit
 * counter (LCG) and a 64 KiB heap buffer of which a few words change every
 * step; the digest covers both.
 */
#include "common.h"

#define BUF_WORDS (64 * 1024 / 8)

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, 60);
    uint64_t counter = 42;
    uint64_t rng = 0x853c49e6748fea9bULL;
    uint64_t *buf = calloc(BUF_WORDS, sizeof *buf);
    if (!buf)
        fail("out of memory");

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        counter = counter * 6364136223846793005ULL + 1442695040888963407ULL;
        for (int i = 0; i < 16; i++)
            buf[xorshift64(&rng) % BUF_WORDS] ^= counter + (uint64_t)i;

        uint64_t d = fnv1a(fnv1a_u64(FNV_OFFSET, counter), buf, BUF_WORDS * sizeof *buf);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(50);
    }
    free(buf);
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}

/*
 * chain.c - simple subject for multi-generation chains and rollback.
 *
 * usage: chain [STEPS [BUF_KIB]]
 *
 * 60 steps by default (~3 s) so that it can be checkpointed, restored,
 * checkpointed again from the restored process, and so on. State: a 64-bit
 * counter (LCG) and a heap buffer (64 KiB by default, every page written
 * once) of which a few words change every step; the digest covers both.
 */
#include "common.h"

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, 60);
    size_t BUF_WORDS = (argc > 2 ? strtoull(argv[2], NULL, 10) : 64) * 1024 / 8;
    uint64_t counter = 42;
    uint64_t rng = 0x853c49e6748fea9bULL;
    uint64_t *buf = calloc(BUF_WORDS, sizeof *buf);
    if (!buf || !BUF_WORDS)
        fail("out of memory");
    for (size_t i = 0; i < BUF_WORDS; i += 512)
        buf[i] = xorshift64(&rng);

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

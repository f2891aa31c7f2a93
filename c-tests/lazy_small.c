/*
 * lazy_small.c - a small buffer next to a large one, read at once after a restore.
 *
 * usage: lazy_small [STEPS [BIG_MIB]]
 *
 * One private anonymous mapping: the big buffer (BIG_MIB MiB, 32 by default), the
 * small one (a page) right after it, then 4 PROT_NONE pages (so that the mapping does
 * not merge with one above it, and a thread's first pages are not next to it). Every
 * page of both buffers is written at start. Tells where the small buffer is on stderr
 * (`small <hex address>`, for the test that damages its saved data). Each step changes
 * the small buffer and a few words of the big one, then hashes the small buffer over
 * and over for 50 ms (so a checkpoint finds it doing that, and a restored run reads it
 * at once), and prints its digest. A pass of that loop that took more than 10 ms (the
 * process was stopped, or restored) hashes the small buffer again and tells the digest
 * on stderr at once (`resumed <step> <digest>`): so a run restored from an image whose
 * small buffer is damaged must be killed before it prints anything on either (a lazy
 * restore hands over a page only once its block's CRC matched; when the image was
 * mapped and checked behind the program, it printed a wrong digest at once). Default
 * 20 steps.
 */
#include "common.h"

#include <sys/mman.h>

#define PAGE 4096UL

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, 20);
    size_t big = (argc > 2 ? strtoull(argv[2], NULL, 10) : 32) << 20;
    uint8_t *base = mmap(NULL, big + 5 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        fail_errno("mmap");
    if (mprotect(base + big + PAGE, 4 * PAGE, PROT_NONE) != 0)
        fail_errno("mprotect");
    uint64_t *small = (uint64_t *)(base + big);
    uint64_t rng = 0x853c49e6748fea9bULL;
    for (size_t i = 0; i < (big + PAGE) / 8; i += 8)
        ((uint64_t *)base)[i] = xorshift64(&rng);
    fprintf(stderr, "small %lx\n", (unsigned long)small);

    uint64_t counter = 42, chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        counter = counter * 6364136223846793005ULL + 1442695040888963407ULL;
        small[counter % (PAGE / 8)] ^= counter;
        for (int i = 0; i < 16; i++)
            ((uint64_t *)base)[xorshift64(&rng) % (big / 8)] += counter;
        uint64_t d, t = now_ns(), until = t + 50000000ULL;
        do {
            uint64_t last = t;
            d = fnv1a(fnv1a_u64(FNV_OFFSET, counter), small, PAGE);
            t = now_ns();
            if (t - last > 10000000ULL) {
                d = fnv1a(fnv1a_u64(FNV_OFFSET, counter), small, PAGE);
                fprintf(stderr, "resumed %d %016llx\n", step, (unsigned long long)d);
            }
        } while (t < until);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
    }
    done_line(fnv1a(fnv1a_u64(chain, (uint64_t)steps), base, big + PAGE));
    return 0;
}

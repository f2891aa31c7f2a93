/*
 * guard_pages.c - a buffer with guard pages (MADV_GUARD_INSTALL, Linux 6.13) in it.
 *
 * Any access to a guard page faults: a checkpoint that read one killed the process
 * (or its forked writer). The subject writes and digests the pages around the guards
 * at every step, never the guards themselves.
 * Usage: guard_pages [steps]
 */
#include "common.h"
#include <sys/mman.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define PAGES 64

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    size_t pg = 4096;
    unsigned char *buf = mmap(NULL, PAGES * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        fail("mmap");
    memset(buf, 0x5a, PAGES * pg);
    /* Guards at pages 3, 20-21 and 63. */
    int guards[] = { 3, 20, 21, 63 };
    for (size_t i = 0; i < sizeof guards / sizeof guards[0]; i++)
        if (madvise(buf + guards[i] * pg, pg, MADV_GUARD_INSTALL) != 0)
            fail("MADV_GUARD_INSTALL: %s", strerror(errno));
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        uint64_t d = FNV_OFFSET;
        for (int p = 0; p < PAGES; p++) {
            if (p == 3 || p == 20 || p == 21 || p == 63)
                continue;
            buf[p * pg + xorshift64(&rng) % pg] ^= (unsigned char)step;
            d = fnv1a(d, buf + p * pg, pg);
        }
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(40);
    }
    done_line(chain);
    return 0;
}

/*
 * bench_heap.c - subject for scripts/bench.sh (not a test-protocol program).
 *
 * usage: bench_heap HEAP_MIB [TOUCH_MIB [random|half [SEED]]]
 *
 * mallocs HEAP_MIB MiB and fills the first TOUCH_MIB MiB (default: all of it)
 * with a xorshift64 sequence from SEED (give each run its own, so that no two
 * images hold the same bytes), so every touched page is resident and distinct:
 * "random" makes it incompressible, "half" zeroes the high 32 bits of every
 * word (compressible about 2:1). It then checks the heap once (timed), prints
 *
 *   ready <pid> <ns of one check pass>
 *
 * and loops on nanosleep(1 ms) reading CLOCK_MONOTONIC. An iteration that took
 * longer than GAP_NS means the program was not running meanwhile (stopped by a
 * checkpoint, or checkpointed, killed and restored):
 *
 *   gap <ns the iteration took> <CLOCK_REALTIME ns right after it>
 *
 * After a gap longer than CHECK_AFTER_NS the heap is read back and checked:
 *
 *   checked <CLOCK_REALTIME ns when done> ok|FAIL <first bad word index>
 *
 * Every line is one write(2). The program exits by itself after an hour.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GAP_NS 2000000ull          /* 2 ms: an iteration normally takes ~1.06 ms */
#define CHECK_AFTER_NS 50000000ull /* 50 ms */
static uint64_t seed = 0x9e3779b97f4a7c15ull;

static uint64_t now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void say(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0 && write(1, buf, (size_t)n) < 0)
        _exit(3);
}

static inline uint64_t next(uint64_t *x, uint64_t mask)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x & mask;
}

static void fill(uint64_t *p, size_t words, uint64_t mask)
{
    uint64_t x = seed;
    for (size_t i = 0; i < words; i++)
        p[i] = next(&x, mask);
}

/* Index of the first wrong word, or SIZE_MAX. */
static size_t check(const uint64_t *p, size_t words, uint64_t mask)
{
    uint64_t x = seed;
    uint64_t bad = 0;
    for (size_t i = 0; i < words; i++)
        bad |= p[i] ^ next(&x, mask);
    if (!bad)
        return SIZE_MAX;
    x = seed;
    for (size_t i = 0; i < words; i++)
        if (p[i] != next(&x, mask))
            return i;
    return SIZE_MAX;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s HEAP_MIB [TOUCH_MIB [random|half [SEED]]]\n", argv[0]);
        return 2;
    }
    size_t heap_mib = strtoull(argv[1], NULL, 10);
    size_t touch_mib = argc > 2 ? strtoull(argv[2], NULL, 10) : heap_mib;
    uint64_t mask = (argc > 3 && strcmp(argv[3], "half") == 0) ? 0xffffffffull : ~0ull;
    if (argc > 4)
        seed = strtoull(argv[4], NULL, 10) | 1; /* xorshift needs a non-zero state */
    if (heap_mib == 0 || touch_mib > heap_mib) {
        fprintf(stderr, "bench_heap: bad sizes\n");
        return 2;
    }
    uint64_t *heap = malloc(heap_mib << 20);
    if (!heap) {
        fprintf(stderr, "bench_heap: cannot allocate %zu MiB\n", heap_mib);
        return 1;
    }
    size_t words = (touch_mib << 20) / sizeof(uint64_t);
    fill(heap, words, mask);
    uint64_t t0 = now(CLOCK_MONOTONIC);
    size_t bad = check(heap, words, mask);
    uint64_t pass_ns = now(CLOCK_MONOTONIC) - t0;
    if (bad != SIZE_MAX) {
        say("FAIL heap wrong right after filling it at word %zu\n", bad);
        return 1;
    }
    say("ready %d %llu\n", (int)getpid(), (unsigned long long)pass_ns);

    uint64_t start = now(CLOCK_REALTIME);
    uint64_t last = now(CLOCK_MONOTONIC);
    for (;;) {
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
        uint64_t t = now(CLOCK_MONOTONIC);
        uint64_t gap = t - last;
        if (gap > GAP_NS) {
            uint64_t rt = now(CLOCK_REALTIME);
            say("gap %llu %llu\n", (unsigned long long)gap, (unsigned long long)rt);
            if (gap > CHECK_AFTER_NS) {
                bad = check(heap, words, mask);
                rt = now(CLOCK_REALTIME);
                if (bad == SIZE_MAX)
                    say("checked %llu ok\n", (unsigned long long)rt);
                else
                    say("checked %llu FAIL %zu\n", (unsigned long long)rt, bad);
            }
            t = now(CLOCK_MONOTONIC);
            if (now(CLOCK_REALTIME) - start > 3600ull * 1000000000ull)
                return 0;
        }
        last = t;
    }
}

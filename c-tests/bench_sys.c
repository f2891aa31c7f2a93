/*
 * bench_sys.c - subject for scripts/bench.sh: the cost of the preloaded library
 * on a program that is never checkpointed.
 *
 * usage: bench_sys open|mmap|compute|touch ITERATIONS
 *
 *   open     open("/dev/null", O_RDONLY) + close, per iteration
 *   mmap     mmap 4 KiB private anonymous + munmap, per iteration, always into the
 *            same one-page hole between two PROT_NONE pages. Left to itself the
 *            kernel puts the page next to the highest anonymous mapping, where it
 *            merges with it (and munmap splits it again) or not, depending on what
 *            else is mapped: preloading any library (libz, libgcc_s) changes that
 *            and makes this loop 20 % faster, which says nothing about the library.
 *   compute  64 xorshift64 steps per iteration, no system calls
 *   touch    ITERATIONS MiB of fresh anonymous memory, written once (a page fault per
 *            page) and given back at exit: on a virtual machine whose host backs guest
 *            memory lazily this costs far more than on bare metal, and memory freed a
 *            moment ago is cheap again. Prints "<ns> <MiB/s>"
 *
 * Prints the loop's own duration (CLOCK_MONOTONIC) in ns and a digest of the
 * work (so the computation cannot be optimised away): "<ns> <digest>".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static uint64_t now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s open|mmap|compute|touch ITERATIONS\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    uint64_t n = strtoull(argv[2], NULL, 10);
    uint64_t digest = 0;
    uint64_t t0 = now();
    if (strcmp(mode, "open") == 0) {
        for (uint64_t i = 0; i < n; i++) {
            int fd = open("/dev/null", O_RDONLY);
            if (fd < 0) {
                perror("open /dev/null");
                return 1;
            }
            digest += (uint64_t)fd;
            close(fd);
        }
    } else if (strcmp(mode, "mmap") == 0) {
        char *guard = mmap(NULL, 3 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (guard == MAP_FAILED || munmap(guard + 4096, 4096) != 0) {
            perror("mmap guard");
            return 1;
        }
        t0 = now();
        for (uint64_t i = 0; i < n; i++) {
            void *p = mmap(guard + 4096, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p != guard + 4096) {
                fprintf(stderr, "bench_sys: mmap did not take the hole (%p)\n", p);
                return 1;
            }
            digest += (uint64_t)(uintptr_t)p >> 12;
            munmap(p, 4096);
        }
    } else if (strcmp(mode, "compute") == 0) {
        uint64_t x = 0x9e3779b97f4a7c15ull;
        for (uint64_t i = 0; i < n; i++) {
            for (int k = 0; k < 64; k++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            digest += x;
        }
    } else if (strcmp(mode, "touch") == 0) {
        size_t len = (size_t)n << 20;
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        for (size_t off = 0; off < len; off += 4096)
            p[off] = 1;
        uint64_t ns = now() - t0;
        printf("%llu %.0f\n", (unsigned long long)ns, n * 1e9 / (double)ns);
        return 0;
    } else {
        fprintf(stderr, "bench_sys: unknown mode %s\n", mode);
        return 2;
    }
    uint64_t t1 = now();
    printf("%llu %016llx\n", (unsigned long long)(t1 - t0), (unsigned long long)digest);
    return 0;
}

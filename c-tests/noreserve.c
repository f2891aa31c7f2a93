/*
 * noreserve.c - a MAP_NORESERVE reservation larger than memory and swap.
 *
 * Maps, readable and writable, twice the machine's memory plus swap with
 * MAP_NORESERVE (the kernel's overcommit check would refuse it without), writes
 * one word every 64 MiB of its first GiB at each step and checks the words of
 * earlier steps. Each step it also checks /proc/self/smaps: the mapping must
 * still be one that reserves no swap ("nr" in VmFlags). A restore that maps it
 * again without MAP_NORESERVE fails (ENOMEM) or shows without "nr".
 */
#include "common.h"
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>

static int noreserve_flag(uintptr_t start)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        fail_errno("/proc/self/smaps");
    char line[512];
    int in = 0, found = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = s == start;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line, " nr") != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    struct sysinfo si;
    if (sysinfo(&si) != 0)
        fail_errno("sysinfo");
    size_t len = 2 * ((size_t)si.totalram + (size_t)si.totalswap) * si.mem_unit;
    len = (len + (1UL << 30) - 1) & ~((1UL << 30) - 1);
    uint64_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        fail_errno("mmap");
    const size_t stride = (64UL << 20) / sizeof *m;
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        for (int k = 1; k < step && k <= 16; k++)
            if (m[(size_t)(k - 1) * stride] != (uint64_t)k * 0x9e3779b97f4a7c15ULL)
                fail("the word of step %d is gone", k);
        if (step <= 16)
            m[(size_t)(step - 1) * stride] = (uint64_t)step * 0x9e3779b97f4a7c15ULL;
        if (noreserve_flag((uintptr_t)m) != 1)
            fail("the mapping reserves swap now (no \"nr\" in its VmFlags)");
        chain = fnv1a_u64(chain, (uint64_t)step);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

/*
 * advice.c - the advice and locks the kernel keeps for a mapping come back.
 *
 * Six mappings of 4 MiB (2 MiB aligned), each given one thing with madvise or
 * mlock: MADV_DONTFORK, MADV_DONTDUMP, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
 * MADV_WIPEONFORK, mlock (of 64 KiB, a mapping of its own). Every step each mapping
 * gets a word written, and the program reads its VmFlags in /proc/self/smaps: each
 * must show what it was given (dc, dd, hg, nh, wf, lo), and the words of earlier
 * steps must be there (a checkpoint written by a forked copy would have found the
 * MADV_WIPEONFORK mapping zeroed and the MADV_DONTFORK one missing). The step line
 * folds in a bit mask of what differed (0 when nothing did).
 */
#include "common.h"
#include <string.h>
#include <sys/mman.h>

#define N 6
#define LEN (4UL << 20)
static const char *want[N] = { " dc", " dd", " hg", " nh", " wf", " lo" };
static uint64_t *map[N];

static unsigned flags_of(int i)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        fail_errno("/proc/self/smaps");
    char line[1024];
    int in = 0;
    unsigned found = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        char c;
        if (sscanf(line, "%lx-%lx %c", &s, &e, &c) == 3) {
            in = s == (uintptr_t)map[i];
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line, want[i]) != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    static const int advice[N] = { MADV_DONTFORK, MADV_DONTDUMP, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_WIPEONFORK, -1 };
    for (int i = 0; i < N; i++) {
        size_t len = i == 5 ? 64 << 10 : LEN;
        /* 2 MiB aligned, so that huge pages could be used. */
        char *raw = mmap(NULL, len + (2UL << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED)
            fail_errno("mmap");
        uintptr_t at = ((uintptr_t)raw + (2UL << 20) - 1) & ~((2UL << 20) - 1);
        map[i] = (uint64_t *)at;
        /* Guard pages around it, so that no neighbour merges with it. */
        if (at > (uintptr_t)raw)
            mprotect(raw, at - (uintptr_t)raw, PROT_NONE);
        mprotect((char *)at + len, (uintptr_t)raw + len + (2UL << 20) - at - len, PROT_NONE);
        int r = i == 5 ? mlock(map[i], len) : madvise(map[i], len, advice[i]);
        if (r != 0)
            fail_errno(i == 5 ? "mlock" : "madvise");
    }
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = 0;
        for (int i = 0; i < N; i++) {
            size_t words = (i == 5 ? (64 << 10) : LEN) / 8;
            for (int k = 1; k < step; k++)
                if (map[i][(size_t)k * 509 % words] != (uint64_t)k * 0x9e3779b97f4a7c15ULL + i)
                    bad |= 1u << (8 + i);
            map[i][(size_t)step * 509 % words] = (uint64_t)step * 0x9e3779b97f4a7c15ULL + i;
            if (!flags_of(i))
                bad |= 1u << i;
        }
        if (bad)
            emit("step %d: mappings not as advised: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 17 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

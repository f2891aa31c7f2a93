/*
 * lazy_events.c - memory calls and a fork right after a lazy restore, before the
 * memory is loaded.
 *
 * A lazy restore maps the big private regions as anonymous memory that a loader
 * process fills in the background (in address order), a page at once wherever the
 * program touches one first; what the program does to that memory meanwhile must act
 * as on the memory it had. This program makes, at start, private anonymous blocks of
 * 2 MiB or more (each is loaded lazily):
 *   - M (1024 pages, even pages written), D, E (1024 pages, even written), F, G
 *     (512 pages each, every page written), then
 *   - H, 192 MiB, the first word of every page written, made last: lowest in memory, so the loader
 *     loads it first and the blocks above are still missing when step 4 comes.
 * Steps 1-3 and 5.. change a few words of each block and hash every block (from step
 * 4 on also M's and E's untouched pages, which must read 0). A checkpoint at step 3,
 * restored, comes back in the middle of step 3's pause; step 4 then, before reading any
 * of it:
 *   - fork: the child hashes the written pages of M and E (not loaded yet) and
 *     prints `child <digest>`;
 *   - mprotect(G pages 300..307, PROT_READ) (three mappings now), G read across them,
 *     mprotect back;
 *     the parent waits for it;
 *   - mremap(E, MREMAP_MAYMOVE | MREMAP_FIXED) onto a reserved place;
 *   - munmap(F pages 256..511), then a fresh mapping there reads 0 and is written;
 *   - mremap(M, 1024 -> 2048 pages, MREMAP_MAYMOVE): M's pages keep their contents,
 *     the new half reads 0;
 *   - madvise(G pages 0..255, MADV_FREE), then rewritten;
 *   - madvise(D, MADV_DONTNEED): D reads 0, is written again.
 * Every check failing prints FAIL. Default 8 steps, 50 ms apart.
 */
#include "common.h"

#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096UL
#define WPP (PAGE / 8)
#define M_PAGES 1024
#define D_PAGES 512
#define E_PAGES 1024
#define F_PAGES 512
#define G_PAGES 512
#define H_PAGES (192 * 256)
#define STEP_CALLS 4

static uint64_t *m, *d, *e, *f, *g, *h;
static size_t m_pages = M_PAGES;

static uint64_t pattern(uint64_t block, size_t page, size_t word, uint64_t gen)
{
    uint64_t x = (block << 56) ^ ((uint64_t)page << 32) ^ (uint64_t)word ^ (gen * 0x9e3779b97f4a7c15ULL);
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ULL;
    return x ^ (x >> 32);
}

static void write_page(uint64_t *block, uint64_t id, size_t page, uint64_t gen)
{
    for (size_t w = 0; w < WPP; w++)
        block[page * WPP + w] = pattern(id, page, w, gen);
}

static void *map_block(size_t pages)
{
    void *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fail_errno("mmap");
    return p;
}

static void check_zero(const uint64_t *p, size_t pages, const char *what, size_t first)
{
    for (size_t pg = 0; pg < pages; pg++)
        for (size_t w = 0; w < WPP; w++)
            if (p[pg * WPP + w] != 0)
                fail("%s page %zu does not read 0", what, first + pg);
}

static uint64_t hash_pages(uint64_t hash, const uint64_t *p, size_t pages, int all)
{
    for (size_t pg = 0; pg < pages; pg += all ? 1 : 2)
        hash = fnv1a(hash, p + pg * WPP, PAGE);
    return hash;
}

/* H holds one word per page: the first. */
static uint64_t hash_h(uint64_t hash)
{
    for (size_t pg = 0; pg < H_PAGES; pg++)
        hash = fnv1a_u64(hash, h[pg * WPP]);
    return hash;
}

static void churn(uint64_t counter, uint64_t *rng)
{
    for (int i = 0; i < 4; i++) {
        d[xorshift64(rng) % (D_PAGES * WPP)] ^= counter + (uint64_t)i;
        f[xorshift64(rng) % (F_PAGES / 2 * WPP)] += counter;
        g[xorshift64(rng) % (G_PAGES * WPP)] -= counter;
        h[xorshift64(rng) % H_PAGES * WPP] ^= counter;
        size_t pg = 2 * (xorshift64(rng) % (M_PAGES / 2));
        m[pg * WPP + xorshift64(rng) % WPP] ^= counter - (uint64_t)i;
        pg = 2 * (xorshift64(rng) % (E_PAGES / 2));
        e[pg * WPP + xorshift64(rng) % WPP] += counter;
    }
}

static void calls(uint64_t gen)
{
    fflush(stdout);
    pid_t child = fork();
    if (child < 0)
        fail_errno("fork");
    if (child == 0) {
        uint64_t c = hash_pages(FNV_OFFSET, m, m_pages, 0);
        c = hash_pages(c, e, E_PAGES, 0);
        emit("child %016llx\n", (unsigned long long)c);
        _exit(0);
    }
    int st;
    if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("the child did not end well");

    /* G split in three mappings by a protection, and read across them. */
    if (mprotect(g + 300 * WPP, 8 * PAGE, PROT_READ) != 0)
        fail_errno("mprotect(G pages 300..307, PROT_READ)");
    uint64_t x = 0;
    for (size_t pg = 296; pg < 312; pg++)
        x ^= ((volatile uint64_t *)g)[pg * WPP + 1];
    if (mprotect(g + 300 * WPP, 8 * PAGE, PROT_READ | PROT_WRITE) != 0)
        fail_errno("mprotect(G pages 300..307, PROT_READ | PROT_WRITE)");
    g[296 * WPP] ^= x;

    void *to = mmap(NULL, E_PAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (to == MAP_FAILED)
        fail_errno("mmap");
    void *p = mremap(e, E_PAGES * PAGE, E_PAGES * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    if (p != to)
        fail_errno("mremap(E, moved, MREMAP_MAYMOVE | MREMAP_FIXED)");
    e = p;

    uint64_t *half = f + (F_PAGES / 2) * WPP;
    if (munmap(half, F_PAGES / 2 * PAGE) != 0)
        fail_errno("munmap(F's second half)");
    if (mmap(half, F_PAGES / 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) != half)
        fail_errno("mmap(F's second half again)");
    check_zero(half, F_PAGES / 2, "F mapped again", F_PAGES / 2);
    for (size_t pg = F_PAGES / 2; pg < F_PAGES; pg++)
        write_page(f, 'F', pg, gen);

    p = mremap(m, M_PAGES * PAGE, 2 * M_PAGES * PAGE, MREMAP_MAYMOVE);
    if (p == MAP_FAILED)
        fail_errno("mremap(M, grown twice as large, MREMAP_MAYMOVE)");
    m = p;
    m_pages = 2 * M_PAGES;

    if (madvise(g, 256 * PAGE, MADV_FREE) != 0)
        fail_errno("madvise(G, MADV_FREE)");
    for (size_t pg = 0; pg < 256; pg++)
        write_page(g, 'G', pg, gen);

    if (madvise(d, D_PAGES * PAGE, MADV_DONTNEED) != 0)
        fail_errno("madvise(D, MADV_DONTNEED)");
    check_zero(d, D_PAGES, "after MADV_DONTNEED, D", 0);
    for (size_t pg = 0; pg < D_PAGES; pg++)
        write_page(d, 'D', pg, gen);
    check_zero(m + M_PAGES * WPP, M_PAGES, "grown M", M_PAGES);
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, 8);
    m = map_block(M_PAGES);
    d = map_block(D_PAGES);
    e = map_block(E_PAGES);
    f = map_block(F_PAGES);
    g = map_block(G_PAGES);
    h = map_block(H_PAGES);
    for (size_t pg = 0; pg < M_PAGES; pg += 2)
        write_page(m, 'M', pg, 0);
    for (size_t pg = 0; pg < E_PAGES; pg += 2)
        write_page(e, 'E', pg, 0);
    for (size_t pg = 0; pg < D_PAGES; pg++)
        write_page(d, 'D', pg, 0);
    for (size_t pg = 0; pg < F_PAGES; pg++)
        write_page(f, 'F', pg, 0);
    for (size_t pg = 0; pg < G_PAGES; pg++)
        write_page(g, 'G', pg, 0);
    for (size_t pg = 0; pg < H_PAGES; pg++)
        h[pg * WPP] = pattern('H', pg, 0, 0);

    uint64_t counter = 42, chain = FNV_OFFSET, rng = 0x853c49e6748fea9bULL;
    for (int step = 1; step <= steps; step++) {
        counter = counter * 6364136223846793005ULL + 1442695040888963407ULL;
        int all = step >= STEP_CALLS;
        if (step == STEP_CALLS)
            calls(counter);
        else
            churn(counter, &rng);
        if (all) {
            for (size_t pg = 1; pg < M_PAGES; pg += 2)
                check_zero(m + pg * WPP, 1, "M", pg);
            for (size_t pg = 1; pg < E_PAGES; pg += 2)
                check_zero(e + pg * WPP, 1, "E", pg);
        }
        uint64_t x = fnv1a_u64(FNV_OFFSET, counter);
        x = hash_pages(fnv1a_u64(x, m_pages), m, m_pages, all);
        x = hash_pages(x, d, D_PAGES, 1);
        x = hash_pages(x, e, E_PAGES, all);
        x = hash_pages(x, f, F_PAGES, 1);
        x = hash_pages(x, g, G_PAGES, 1);
        x = hash_h(x);
        chain = fnv1a_u64(chain, x);
        step_line(step, x);
        pace_ms(50);
    }
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}

/*
 * lazy_memory.c - memory calls on a lazily restored process.
 *
 * A lazy restore brings big private regions back as anonymous memory that a loader
 * fills in (see lazy_events.c for calls while it loads; here they come once it is
 * done, and were, with the image mapped, calls across the many mappings one region
 * became). This program makes, at start, four anonymous private blocks:
 *   - M, 640 pages, only the even pages written;
 *   - D, 320 pages, every page written;
 *   - E, 640 pages, only the even pages written, like M;
 *   - G, 320 pages, every page written, as D.
 * Every step changes a few words of the written pages (as chain.c does) and
 * prints `step <n> <digest>`. Then, at fixed steps, with libc's calls:
 *   - step 8: madvise(D, MADV_DONTNEED) and madvise(M pages 4..11, MADV_DONTNEED)
 *     return 0 and leave zeros; D and the even pages of M in that range are written again;
 *   - step 9: madvise(D, MADV_FREE) returns 0; D is written again (after
 *     MADV_FREE the contents are old or zero: written before they are read);
 *   - step 10: mremap(M, 640 pages, 1280 pages, MREMAP_MAYMOVE) succeeds; the
 *     written pages keep their contents, the untouched ones and the new half
 *     read 0;
 *   - step 11: mremap(M, 1280 pages, 640 pages, 0) shrinks it in place, and
 *     mremap(E, 640 pages, 640 pages, MREMAP_MAYMOVE | MREMAP_FIXED) moves E
 *     onto a reserved free place; contents checked;
 *   - step 12: mremap(G, 320 pages, 640 pages, MREMAP_MAYMOVE) succeeds; G's pages are
 *     unchanged and the new ones read 0.
 * A failing call or a wrong byte prints FAIL (with errno for a call).
 *
 * The digest covers D, G and the written pages of M and E at every step, and from
 * step 8 on all of M and E: their untouched pages must not be read before (a read
 * maps the zero page, which /proc/self/pagemap reports present: a checkpoint would
 * save those pages too). The
 * untouched pages are checked to read 0 at every step from 8 on.
 * Default 20 steps, 50 ms apart (a checkpoint at step 3 comes well before the
 * first of the fixed steps; one at step 13 after the last).
 */
#include "common.h"

#include <sys/mman.h>

#define PAGE 4096UL
#define WPP (PAGE / 8) /* words per page */
/* Each block holds more than 1 MiB of written pages: a lazy restore reads in regions
 * with less (what a resumed program touches first) and maps only bigger ones. */
#define M_PAGES 640
#define D_PAGES 320
#define E_PAGES 640
#define G_PAGES 320
#define G_GROWN 640
#define STEP_DONTNEED 8
#define STEP_FREE 9
#define STEP_GROW 10
#define STEP_SHRINK_MOVE 11
#define STEP_GROW_WHOLE 12

static uint64_t *m, *d, *e, *g;
static size_t m_pages = M_PAGES, g_pages = G_PAGES;
static uint64_t rng = 0x853c49e6748fea9bULL;

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

/* The untouched (odd) pages of a block read 0. */
static void check_odd_zero(const uint64_t *p, size_t pages, const char *what)
{
    for (size_t pg = 1; pg < pages; pg += 2)
        check_zero(p + pg * WPP, 1, what, pg);
}

static uint64_t hash_pages(uint64_t h, const uint64_t *p, size_t pages, int all)
{
    for (size_t pg = 0; pg < pages; pg += all ? 1 : 2)
        h = fnv1a(h, p + pg * WPP, PAGE);
    return h;
}

/* A few words changed, in D and in the even pages of M and E. */
static void churn(uint64_t counter)
{
    for (int i = 0; i < 8; i++) {
        d[xorshift64(&rng) % (D_PAGES * WPP)] ^= counter + (uint64_t)i;
        size_t pg = 2 * (xorshift64(&rng) % (M_PAGES / 2));
        m[pg * WPP + xorshift64(&rng) % WPP] ^= counter - (uint64_t)i;
    }
    size_t pg = 2 * (xorshift64(&rng) % (E_PAGES / 2));
    e[pg * WPP + xorshift64(&rng) % WPP] += counter;
}

static void dontneed(uint64_t gen)
{
    if (madvise(d, D_PAGES * PAGE, MADV_DONTNEED) != 0)
        fail_errno("madvise(D, MADV_DONTNEED)");
    check_zero(d, D_PAGES, "after MADV_DONTNEED, D", 0);
    for (size_t pg = 0; pg < D_PAGES; pg++)
        write_page(d, 'D', pg, gen);

    uint64_t *r = m + 4 * WPP;
    if (madvise(r, 8 * PAGE, MADV_DONTNEED) != 0)
        fail_errno("madvise(M pages 4..11, MADV_DONTNEED)");
    check_zero(r, 8, "after MADV_DONTNEED, M", 4);
    for (size_t pg = 4; pg < 12; pg += 2)
        write_page(m, 'M', pg, gen);
    check_odd_zero(m, m_pages, "M");
}

static void free_d(uint64_t gen)
{
    if (madvise(d, D_PAGES * PAGE, MADV_FREE) != 0)
        fail_errno("madvise(D, MADV_FREE)");
    for (size_t pg = 0; pg < D_PAGES; pg++)
        write_page(d, 'D', pg, gen);
    for (size_t pg = 0; pg < D_PAGES; pg++)
        for (size_t w = 0; w < WPP; w++)
            if (d[pg * WPP + w] != pattern('D', pg, w, gen))
                fail("after MADV_FREE and a rewrite, D page %zu is wrong", pg);
}

/* A copy of the first `pages` pages of `p` (all of them readable by now). */
static uint64_t *copy_of(const uint64_t *p, size_t pages)
{
    uint64_t *c = malloc(pages * PAGE);
    if (!c)
        fail("out of memory");
    memcpy(c, p, pages * PAGE);
    return c;
}

static void grow_m(void)
{
    uint64_t *was = copy_of(m, M_PAGES);
    void *p = mremap(m, M_PAGES * PAGE, 2 * M_PAGES * PAGE, MREMAP_MAYMOVE);
    if (p == MAP_FAILED)
        fail_errno("mremap(M, grown twice as large, MREMAP_MAYMOVE)");
    m = p;
    m_pages = 2 * M_PAGES;
    if (memcmp(m, was, M_PAGES * PAGE) != 0)
        fail("M's pages changed when it grew");
    check_odd_zero(m, M_PAGES, "grown M");
    check_zero(m + M_PAGES * WPP, M_PAGES, "grown M", M_PAGES);
    free(was);
}

static void shrink_m_and_move_e(void)
{
    uint64_t *was = copy_of(m, M_PAGES);
    void *p = mremap(m, 2 * M_PAGES * PAGE, M_PAGES * PAGE, 0);
    if (p == MAP_FAILED)
        fail_errno("mremap(M, shrunk back, 0)");
    if (p != m)
        fail("M did not shrink in place");
    m_pages = M_PAGES;
    if (memcmp(m, was, M_PAGES * PAGE) != 0)
        fail("M's pages changed when it shrank");
    free(was);

    was = copy_of(e, E_PAGES);
    /* A free place: reserved, then replaced by the move. */
    void *to = mmap(NULL, E_PAGES * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (to == MAP_FAILED)
        fail_errno("mmap");
    p = mremap(e, E_PAGES * PAGE, E_PAGES * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    if (p == MAP_FAILED)
        fail_errno("mremap(E, moved, MREMAP_MAYMOVE | MREMAP_FIXED)");
    if (p != to)
        fail("E did not move where it was asked to");
    e = p;
    if (memcmp(e, was, E_PAGES * PAGE) != 0)
        fail("E's pages changed when it moved");
    check_odd_zero(e, E_PAGES, "moved E");
    free(was);
}

static void grow_g(void)
{
    uint64_t *was = copy_of(g, G_PAGES);
    void *p = mremap(g, G_PAGES * PAGE, G_GROWN * PAGE, MREMAP_MAYMOVE);
    if (p == MAP_FAILED)
        fail_errno("mremap(G, grown, MREMAP_MAYMOVE)");
    g = p;
    g_pages = G_GROWN;
    if (memcmp(g, was, G_PAGES * PAGE) != 0)
        fail("G's pages changed when it grew");
    check_zero(g + G_PAGES * WPP, G_GROWN - G_PAGES, "grown G", G_PAGES);
    free(was);
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, 20);
    m = map_block(M_PAGES);
    d = map_block(D_PAGES);
    e = map_block(E_PAGES);
    g = map_block(G_PAGES);
    for (size_t pg = 0; pg < M_PAGES; pg += 2)
        write_page(m, 'M', pg, 0);
    for (size_t pg = 0; pg < D_PAGES; pg++)
        write_page(d, 'D', pg, 0);
    for (size_t pg = 0; pg < E_PAGES; pg += 2)
        write_page(e, 'E', pg, 0);
    for (size_t pg = 0; pg < G_PAGES; pg++)
        write_page(g, 'G', pg, 0);

    uint64_t counter = 42, chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        counter = counter * 6364136223846793005ULL + 1442695040888963407ULL;
        churn(counter);
        switch (step) {
        case STEP_DONTNEED:
            dontneed(counter);
            break;
        case STEP_FREE:
            free_d(counter);
            break;
        case STEP_GROW:
            grow_m();
            break;
        case STEP_SHRINK_MOVE:
            shrink_m_and_move_e();
            break;
        case STEP_GROW_WHOLE:
            grow_g();
            break;
        }
        int all = step >= STEP_DONTNEED;
        if (all) {
            check_odd_zero(m, M_PAGES, "M");
            check_odd_zero(e, E_PAGES, "E");
        }
        uint64_t h = fnv1a_u64(FNV_OFFSET, counter);
        h = fnv1a_u64(h, m_pages);
        h = hash_pages(h, m, m_pages, all);
        h = hash_pages(h, d, D_PAGES, 1);
        h = hash_pages(h, e, E_PAGES, all);
        h = fnv1a_u64(h, g_pages);
        h = hash_pages(h, g, g_pages, 1);
        chain = fnv1a_u64(chain, h);
        step_line(step, h);
        pace_ms(50);
    }
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}

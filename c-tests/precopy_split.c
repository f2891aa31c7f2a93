/*
 * precopy_split.c - a subject for pre-copied checkpoints: the program maps a
 * block right after a long-lived one and mremaps the two as one range while the
 * image is being written.
 *
 * `precopy_split [steps]` (default 40). At start: a 96 MiB array, every page
 * written (a pre-copy of it takes a while), and a block A of 4 pages written with
 * a pattern, followed by 12 free pages and a PROT_NONE guard page (17 pages
 * reserved PROT_NONE right below the array if that is free, A mapped over the
 * first 4, the next 12 unmapped). A step changes one word of A, then 4 times, with
 * a 5 ms pause in between:
 *   - rewrites a fourth of a 4 MiB window of the array (the window moves every
 *     step; each word a bijective function of its old value and of the step);
 *   - maps B, 4 pages, right after A with MAP_FIXED_NOREPLACE and leaves it
 *     untouched; grows A with mremap(A, 8 pages, 16 pages, MREMAP_MAYMOVE), a range
 *     covering A and B (FAIL with errno if that fails); checks A's contents and
 *     that its other 12 pages read 0; unmaps all but the first 4 pages. If the
 *     pages after A are not free (the address was reused: EEXIST), this block work
 *     is left out; nothing printed depends on it;
 * then prints `step <n> <digest>`, the digest covering the array and A, and pauses
 * 5 ms. An mremap every ~6 ms: the copier of a pre-copy, which goes through the
 * mappings in address order, tracks A, then copies the array, and meanwhile the
 * program's mremap comes.
 * A stays where it is: the mremap grows it in place, up to the guard page. (An
 * anonymous mapping moved by mremap keeps the page offset of where it was made,
 * and a new mapping next to it never merges with it; should the pages up to the
 * guard have been taken and the mremap moved A, it is moved back.)
 * Without mig the mremap never fails: B, untouched, merges with A into one mapping.
 * While a pre-copy's copier tracks A with userfaultfd, B (mapped afterwards, not
 * tracked) does not merge with it, and an mremap across both fails with EFAULT
 * unless mig ends the pre-copy first. (After a lazy restore A is mapped from the
 * image, B is anonymous: the same mremap fails unless mig makes A anonymous.)
 */
#include "common.h"

#include <sys/mman.h>

#define PAGE 4096UL
#define WPP (PAGE / 8)
#define ARRAY_MIB 96
#define WINDOW_MIB 4
#define A_PAGES 4
#define PARTS 4 /* block work a step */
#define PAUSE_MS 5

static uint64_t *arr;
static size_t words;
static uint64_t *a;

static uint64_t a_word(size_t i)
{
    return i * 0x9e3779b97f4a7c15ULL ^ 0x5bd1e995;
}

/* FNV-1a over 64-bit words in four lanes (96 MiB a step). */
static uint64_t hash_words(uint64_t h, const uint64_t *p, size_t n)
{
    uint64_t l[4] = { h, h ^ 1, h ^ 2, h ^ 3 };
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++)
            l[k] = (l[k] ^ p[i + k]) * FNV_PRIME;
    for (; i < n; i++)
        l[0] = (l[0] ^ p[i]) * FNV_PRIME;
    for (int k = 0; k < 4; k++)
        h = fnv1a_u64(h, l[k]);
    return h;
}

/* Maps B after A and grows A over it; returns 0 if the pages after A were taken. */
static int grow_over_b(const uint64_t *expect)
{
    char *after = (char *)a + A_PAGES * PAGE;
    void *b = mmap(after, A_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (b == MAP_FAILED) {
        if (errno == EEXIST)
            return 0;
        fail_errno("mmap(MAP_FIXED_NOREPLACE) after A");
    }
    if (b != after) { /* a kernel without MAP_FIXED_NOREPLACE: somewhere else */
        munmap(b, A_PAGES * PAGE);
        return 0;
    }
    void *p = mremap(a, 2 * A_PAGES * PAGE, 4 * A_PAGES * PAGE, MREMAP_MAYMOVE);
    if (p == MAP_FAILED)
        fail_errno("mremap(A and B, 8 pages, 16 pages, MREMAP_MAYMOVE)");
    uint64_t *n = p;
    if (memcmp(n, expect, A_PAGES * PAGE) != 0)
        fail("A's pages changed when it grew");
    for (size_t i = A_PAGES * WPP; i < 4 * A_PAGES * WPP; i++)
        if (n[i] != 0)
            fail("page %zu of grown A does not read 0", i / WPP);
    if (munmap(n + A_PAGES * WPP, 3 * A_PAGES * PAGE) != 0)
        fail_errno("munmap");
    if (n != a) {
        fprintf(stderr, "precopy_split: A moved, moved back\n");
        if (mremap(n, A_PAGES * PAGE, A_PAGES * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, a) != a)
            fail_errno("mremap(A, MREMAP_FIXED) back");
    }
    return 1;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    words = (size_t)ARRAY_MIB << 17;
    arr = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arr == MAP_FAILED)
        fail_errno("mmap array");
    for (size_t i = 0; i < words; i++)
        arr[i] = i * 0x9e3779b97f4a7c15ULL + 1;

    const size_t reserve = (4 * A_PAGES + 1) * PAGE;
    char *r = mmap((char *)arr - reserve, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (r == MAP_FAILED)
        r = mmap(NULL, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED)
        fail_errno("mmap");
    a = mmap(r, A_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (a == MAP_FAILED)
        fail_errno("mmap A");
    if (munmap(r + A_PAGES * PAGE, 3 * A_PAGES * PAGE) != 0)
        fail_errno("munmap");
    static uint64_t shadow[A_PAGES * WPP]; /* what A holds */
    for (size_t i = 0; i < A_PAGES * WPP; i++)
        a[i] = shadow[i] = a_word(i);

    const size_t window = (size_t)WINDOW_MIB << 17, windows = words / window;
    uint64_t rng = 0x2545f4914f6cdd1dULL, chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        size_t k = xorshift64(&rng) % (A_PAGES * WPP);
        a[k] = shadow[k] = shadow[k] * 3 + (uint64_t)step;
        uint64_t *w = arr + (size_t)step % windows * window;
        uint64_t add = (uint64_t)step * 0x632be59bd9b4e019ULL;
        for (size_t part = 0; part < PARTS; part++) {
            for (size_t i = part * window / PARTS; i < (part + 1) * window / PARTS; i++)
                w[i] = w[i] * 0xd6e8feb86659fd93ULL + add;
            grow_over_b(shadow);
            if (part < PARTS - 1)
                pace_ms(PAUSE_MS);
        }

        uint64_t h = fnv1a_u64(FNV_OFFSET, (uint64_t)step);
        h = hash_words(h, arr, words);
        h = hash_words(h, a, A_PAGES * WPP);
        chain = fnv1a_u64(chain, h);
        step_line(step, h);
        pace_ms(PAUSE_MS);
    }
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}

/*
 * heap_churn.c - malloc/free/realloc churn over brk heap and mmap'd chunks.
 *
 * A table of slots holds ~200 live blocks of 16 B .. 256 KiB. Every byte of
 * a block is a function of (slot, generation, position), so after a restore
 * any lost, stale or shifted heap byte is detected. Each step performs a
 * fixed, PRNG-driven series of operations, verifies every live block and
 * hashes them all.
 */
#include "common.h"

#include <malloc.h>

#define SLOTS 224
#define OPS_PER_STEP 64
#define MMAP_THRESHOLD (64 * 1024)

struct block {
    unsigned char *p;
    size_t size;
    uint32_t gen; /* generation: changes whenever the contents are rewritten */
};

static struct block table[SLOTS];
static uint64_t rng = 0x9e3779b97f4a7c15ULL; /* fixed seed */
static uint32_t next_gen = 1;

static unsigned char pattern(size_t slot, uint32_t gen, size_t j)
{
    uint32_t s = (uint32_t)slot * 2654435761u ^ gen * 40503u;
    return (unsigned char)(s + j * 31 + (j >> 8) * 7 + (j >> 16));
}

static void fill(size_t slot)
{
    struct block *b = &table[slot];
    b->gen = next_gen++;
    for (size_t j = 0; j < b->size; j++)
        b->p[j] = pattern(slot, b->gen, j);
}

/* Check the first `len` bytes of a slot against its current pattern. */
static void verify(size_t slot, size_t len, const char *when)
{
    const struct block *b = &table[slot];
    for (size_t j = 0; j < len; j++)
        if (b->p[j] != pattern(slot, b->gen, j))
            fail("slot %zu (size %zu) byte %zu corrupt %s", slot, b->size, j, when);
}

/* Log-uniform size in [16, 256 KiB): about 1 in 7 blocks is >= 64 KiB
 * and therefore an mmap'd chunk, the rest live in the brk heap. */
static size_t random_size(void)
{
    unsigned e = 4 + (unsigned)(xorshift64(&rng) % 14); /* 2^4 .. 2^17 */
    size_t base = (size_t)1 << e;
    return base + (size_t)(xorshift64(&rng) % base);
}

static void alloc_slot(size_t slot)
{
    struct block *b = &table[slot];
    b->size = random_size();
    b->p = malloc(b->size);
    if (!b->p)
        fail("malloc(%zu) failed", b->size);
    fill(slot);
}

static void one_op(void)
{
    size_t slot = (size_t)(xorshift64(&rng) % SLOTS);
    unsigned what = (unsigned)(xorshift64(&rng) % 8);
    struct block *b = &table[slot];

    if (!b->p) {
        alloc_slot(slot);
    } else if (what < 1) { /* free: ~1/8 of ops, so ~200 of 224 slots stay live */
        free(b->p);
        b->p = NULL;
        b->size = 0;
    } else if (what < 5) { /* realloc: old prefix must survive the move */
        size_t old = b->size, nsize = random_size();
        unsigned char *np = realloc(b->p, nsize);
        if (!np)
            fail("realloc(%zu) failed", nsize);
        b->p = np;
        b->size = nsize;
        verify(slot, old < nsize ? old : nsize, "after realloc");
        fill(slot);
    } else { /* rewrite in place */
        fill(slot);
    }
}

static uint64_t digest(void)
{
    uint64_t h = FNV_OFFSET;
    for (size_t i = 0; i < SLOTS; i++) {
        const struct block *b = &table[i];
        h = fnv1a_u64(h, i);
        h = fnv1a_u64(h, b->size);
        h = fnv1a_u64(h, b->gen);
        if (b->p)
            h = fnv1a(h, b->p, b->size);
    }
    return h;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);

    /* A fixed threshold disables glibc's dynamic threshold, which would
     * otherwise move freed large blocks into the brk heap over time. */
    if (!mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        fail("mallopt");

    for (size_t i = 0; i < SLOTS; i++)
        if (i % 9 != 0) /* start with ~200 live blocks */
            alloc_slot(i);

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        for (int k = 0; k < OPS_PER_STEP; k++)
            one_op();
        size_t live = 0;
        for (size_t i = 0; i < SLOTS; i++) {
            if (table[i].p) {
                verify(i, table[i].size, "at step check");
                live++;
            }
        }
        uint64_t d = fnv1a_u64(digest(), live);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(35);
    }

    for (size_t i = 0; i < SLOTS; i++)
        free(table[i].p);
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}

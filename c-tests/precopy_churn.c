/*
 * precopy_churn.c - a subject for pre-copied checkpoints: memory keeps changing
 * while the image is being written.
 *
 * `precopy_churn [steps] [array-MiB] [mremap] [calm]` (defaults 40 and 48).
 * Each step is busy work (~17 ms for 48 MiB), so every pre-copy round finds pages
 * written since the last one, and others left alone since the first; then a 15 ms
 * pause, so that the machine is not saturated (a copier running at a low priority
 * gets its turn; two subjects fit on two cores). A step:
 *   - rewrites the hot sixth of a malloc'd array (private anonymous memory; the
 *     hot window moves every 8 steps) in two passes of 256 KiB chunks, and one word
 *     in 1 of 32 pages of the whole array (other pages each step); `calm`: the hot
 *     window stays where it is and no other page of the array is written, so what
 *     is written between two looks at it stays bounded however long they take; each
 *     word written is a bijective function of its old value and of the step, so a
 *     stale page changes every later digest;
 *   - between chunks, 16 times a step, one event chosen by a fixed PRNG:
 *       * a slot of mmap'd blocks is munmap'd and mapped again (another size,
 *         sometimes only partly touched, so untouched pages must stay zero), or
 *         its upper half is munmap'd (the block shrinks in place), or it grows:
 *         mapped anew bigger, copied, the old one unmapped (with `mremap`: by
 *         mremap, which may move it);
 *       * a big malloc'd block (glibc serves them with mmap: fixed threshold) is
 *         freed and made again, or moved to another size: malloc, copy, free
 *         (with `mremap`: realloc, which glibc does with mremap);
 *       * a small malloc'd block in the brk heap is freed and made again (the heap
 *         is trimmed eagerly, so brk moves both ways);
 *       * bytes are written into a pipe the program holds both ends of (a backlog
 *         of up to 32 KiB stays queued) and read() back, the kernel writing them
 *         straight into the array or a block, at an odd offset across page
 *         boundaries;
 *       * bytes are read() from precopy_churn.dat (1 MiB, made in the cwd at start)
 *         into one of those places, the file offset wrapping at its end;
 *   - prints `step <n> <digest>`, the digest covering the whole array, every block
 *     with its size, the pipe's counters, the file offset and the PRNG.
 * `mremap` changes how blocks grow, not what is printed.
 * Bytes read from the pipe and the file are checked as they arrive (FAIL on a
 * wrong byte). Whether and when a checkpoint happened changes nothing printed.
 */
#include "common.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>

#define PAGE 4096UL
#define CHUNK_WORDS (1UL << 15) /* 256 KiB */
#define PASSES 2
#define WINDOWS 6 /* the hot window is a sixth of the array */
#define EVENTS_PER_PASS 8
#define SCATTER 64 /* a pass writes one word in 1 of SCATTER pages */
#define MAPS 8
#define MAP_MAX_PAGES 32 /* 128 KiB */
#define BIGS 4
#define BIG_MAX (2UL << 20)
#define HEAPS 8
#define HEAP_MAX (100 * 1024)
#define MMAP_THRESHOLD (128 * 1024)
#define PIPE_BACKLOG (32 * 1024)
#define FILE_BYTES (1UL << 20)
#define IO_MAX 9000 /* a read spans up to three pages */

static uint64_t *arr;
static size_t words;

static struct {
    unsigned char *p;
    size_t len;
} maps[MAPS], bigs[BIGS], heaps[HEAPS];

static uint64_t rng = 0x2545f4914f6cdd1dULL; /* fixed seed */
/* Grow with mremap(2) (realloc too). Off by default, so that the tests' checkpoints
 * of it stay pre-copied: an mremap across a mapping the copier tracks and one mapped
 * next to it since makes mig end the pre-copy (the checkpoint forks instead). */
static int use_mremap;
static int calm;
static int pipefd[2], filefd;
static uint64_t piped_in, piped_out; /* bytes written to / read from the pipe */
static uint64_t file_off;            /* the file's offset, as the program tracks it */
static unsigned char iobuf[IO_MAX];

static uint64_t rnd(uint64_t n)
{
    return xorshift64(&rng) % n;
}

/* The n-th byte ever written into the pipe, and the byte at offset n of the file. */
static unsigned char pipe_byte(uint64_t n)
{
    return (unsigned char)(n * 131 + (n >> 9) * 7 + 3);
}

static unsigned char file_byte(uint64_t n)
{
    return (unsigned char)((n * 2654435761u) >> 13 ^ n >> 12);
}

static void fill(unsigned char *p, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(seed + i * 37 + (i >> 12) * 11);
}

/* Fast word hash (FNV-1a over 64-bit words, not bytes: 48 MiB a step). */
static uint64_t hash_words(uint64_t h, const void *p, size_t len)
{
    const unsigned char *b = p;
    size_t n = len / 8;
    for (size_t i = 0; i < n; i++) {
        uint64_t w;
        memcpy(&w, b + 8 * i, 8);
        h = (h ^ w) * FNV_PRIME;
    }
    return fnv1a(h, b + 8 * n, len % 8);
}

static void map_slot(int s)
{
    size_t pages = 1 + rnd(MAP_MAX_PAGES);
    size_t len = pages * PAGE;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fail_errno("mmap");
    /* Touch every page, or only every third one (the rest must stay zero). */
    int sparse = rnd(3) == 0;
    uint64_t seed = xorshift64(&rng);
    for (size_t pg = 0; pg < pages; pg++)
        if (!sparse || pg % 3 == 0)
            fill(p + pg * PAGE, PAGE, seed + pg);
    maps[s].p = p;
    maps[s].len = len;
}

static void map_event(void)
{
    int s = (int)rnd(MAPS);
    unsigned what = (unsigned)rnd(4);
    if (what < 2 || maps[s].len < 2 * PAGE) { /* unmap, map again */
        if (munmap(maps[s].p, maps[s].len) != 0)
            fail_errno("munmap");
        map_slot(s);
    } else if (what == 2) { /* shrink: unmap the upper half */
        size_t keep = maps[s].len / PAGE / 2 * PAGE;
        if (munmap(maps[s].p + keep, maps[s].len - keep) != 0)
            fail_errno("munmap upper half");
        maps[s].len = keep;
    } else { /* grow (may move) */
        size_t len = maps[s].len + (1 + rnd(MAP_MAX_PAGES)) * PAGE;
        unsigned char *p;
        if (use_mremap) {
            p = mremap(maps[s].p, maps[s].len, len, MREMAP_MAYMOVE);
            if (p == MAP_FAILED)
                fail_errno("mremap");
        } else {
            p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                fail_errno("mmap");
            memcpy(p, maps[s].p, maps[s].len);
            if (munmap(maps[s].p, maps[s].len) != 0)
                fail_errno("munmap");
        }
        fill(p + maps[s].len, len - maps[s].len, xorshift64(&rng));
        maps[s].p = p;
        maps[s].len = len;
    }
}

static size_t big_size(void)
{
    return (MMAP_THRESHOLD + rnd(BIG_MAX - MMAP_THRESHOLD)) & ~7UL;
}

static void big_event(void)
{
    int s = (int)rnd(BIGS);
    size_t len = big_size();
    if (rnd(2) == 0) {
        free(bigs[s].p);
        bigs[s].p = malloc(len);
        if (!bigs[s].p)
            fail("malloc(%zu) failed", len);
        fill(bigs[s].p, len, xorshift64(&rng));
    } else {
        size_t old = bigs[s].len;
        unsigned char *p;
        if (use_mremap) {
            p = realloc(bigs[s].p, len);
            if (!p)
                fail("realloc(%zu) failed", len);
        } else {
            p = malloc(len);
            if (!p)
                fail("malloc(%zu) failed", len);
            memcpy(p, bigs[s].p, old < len ? old : len);
            free(bigs[s].p);
        }
        if (len > old)
            fill(p + old, len - old, xorshift64(&rng));
        bigs[s].p = p;
    }
    bigs[s].len = len;
}

static void heap_event(void)
{
    int s = (int)rnd(HEAPS);
    free(heaps[s].p);
    heaps[s].len = (1024 + rnd(HEAP_MAX - 1024)) & ~7UL;
    heaps[s].p = malloc(heaps[s].len);
    if (!heaps[s].p)
        fail("malloc(%zu) failed", heaps[s].len);
    fill(heaps[s].p, heaps[s].len, xorshift64(&rng));
}

/* Where the kernel is to write `len` bytes: the array, an mmap'd block or a big
 * block, at an unaligned offset. */
static unsigned char *destination(size_t len)
{
    for (;;) {
        unsigned where = (unsigned)rnd(5);
        unsigned char *p;
        size_t room;
        if (where < 2) {
            p = (unsigned char *)arr;
            room = words * 8;
        } else if (where == 2) {
            int s = (int)rnd(MAPS);
            p = maps[s].p;
            room = maps[s].len;
        } else if (where == 3) {
            int s = (int)rnd(BIGS);
            p = bigs[s].p;
            room = bigs[s].len;
        } else {
            int s = (int)rnd(HEAPS);
            p = heaps[s].p;
            room = heaps[s].len;
        }
        if (room > len)
            return p + rnd(room - len);
    }
}

static size_t read_some(int fd, unsigned char *dst, size_t len, const char *what)
{
    for (;;) {
        ssize_t n = read(fd, dst, len);
        if (n >= 0)
            return (size_t)n;
        if (errno != EINTR)
            fail_errno(what);
    }
}

static void pipe_event(void)
{
    size_t backlog = (size_t)(piped_in - piped_out);
    size_t n = rnd(IO_MAX);
    if (backlog + n > PIPE_BACKLOG)
        n = PIPE_BACKLOG - backlog;
    for (size_t i = 0; i < n; i++)
        iobuf[i] = pipe_byte(piped_in + i);
    write_all(pipefd[1], iobuf, n);
    piped_in += n;
    backlog += n;
    /* Read some of it back (rarely all: a checkpoint finds bytes queued). */
    size_t want = rnd((backlog < IO_MAX ? backlog : IO_MAX) + 1);
    unsigned char *dst = destination(IO_MAX);
    size_t got = 0;
    while (got < want) {
        size_t r = read_some(pipefd[0], dst + got, want - got, "read pipe");
        if (r == 0)
            fail("end of file on the pipe");
        got += r;
    }
    for (size_t i = 0; i < got; i++)
        if (dst[i] != pipe_byte(piped_out + i))
            fail("pipe byte %llu is wrong", (unsigned long long)(piped_out + i));
    piped_out += got;
}

static void file_event(void)
{
    size_t want = 1 + rnd(IO_MAX - 1);
    unsigned char *dst = destination(IO_MAX);
    size_t got = read_some(filefd, dst, want, "read precopy_churn.dat");
    size_t expect = FILE_BYTES - file_off < want ? FILE_BYTES - file_off : want;
    if (got != expect)
        fail("read %zu bytes of the file at %llu, not %zu", got, (unsigned long long)file_off, expect);
    for (size_t i = 0; i < got; i++)
        if (dst[i] != file_byte(file_off + i))
            fail("file byte %llu is wrong", (unsigned long long)(file_off + i));
    file_off += got;
    if (file_off == FILE_BYTES) {
        if (lseek(filefd, 0, SEEK_SET) != 0)
            fail_errno("lseek");
        file_off = 0;
    }
    if ((uint64_t)lseek(filefd, 0, SEEK_CUR) != file_off)
        fail("the file offset is not %llu", (unsigned long long)file_off);
}

static void event(void)
{
    switch (rnd(5)) {
    case 0:
        map_event();
        break;
    case 1:
        big_event();
        break;
    case 2:
        heap_event();
        break;
    case 3:
        pipe_event();
        break;
    default:
        file_event();
        break;
    }
}

static void make_file(void)
{
    /* Written aside and renamed: a run still reading the file keeps its own. */
    char tmp[64];
    snprintf(tmp, sizeof tmp, "precopy_churn.dat.%d", (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        fail_errno("create precopy_churn.dat");
    static unsigned char buf[1 << 16];
    for (uint64_t off = 0; off < FILE_BYTES; off += sizeof buf) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = file_byte(off + i);
        write_all(fd, buf, sizeof buf);
    }
    if (close(fd) != 0 || rename(tmp, "precopy_churn.dat") != 0)
        fail_errno("close and rename precopy_churn.dat");
    filefd = open("precopy_churn.dat", O_RDONLY);
    if (filefd < 0)
        fail_errno("open precopy_churn.dat");
}

static uint64_t digest(int step)
{
    uint64_t h = fnv1a_u64(FNV_OFFSET, (uint64_t)step);
    h = hash_words(h, arr, words * 8);
    for (int s = 0; s < MAPS; s++) {
        h = fnv1a_u64(h, maps[s].len);
        h = hash_words(h, maps[s].p, maps[s].len);
    }
    for (int s = 0; s < BIGS; s++) {
        h = fnv1a_u64(h, bigs[s].len);
        h = hash_words(h, bigs[s].p, bigs[s].len);
    }
    for (int s = 0; s < HEAPS; s++) {
        h = fnv1a_u64(h, heaps[s].len);
        h = hash_words(h, heaps[s].p, heaps[s].len);
    }
    h = fnv1a_u64(h, piped_in);
    h = fnv1a_u64(h, piped_out);
    h = fnv1a_u64(h, file_off);
    return fnv1a_u64(h, rng);
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    long mib = argc > 2 ? strtol(argv[2], NULL, 10) : 48;
    int bad = mib < 1 || mib > 4096;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "mremap") == 0)
            use_mremap = 1;
        else if (strcmp(argv[i], "calm") == 0)
            calm = 1;
        else
            bad = 1;
    }
    if (bad) {
        fprintf(stderr, "usage: %s [steps] [array-MiB] [mremap] [calm]\n", argv[0]);
        return 2;
    }
    /* Fixed: glibc's dynamic threshold would move freed big blocks into the heap.
     * No padding and an eager trim: brk follows the small blocks up and down. */
    if (!mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) || !mallopt(M_TOP_PAD, 0) ||
        !mallopt(M_TRIM_THRESHOLD, 16 * 1024))
        fail("mallopt");
    if (pipe(pipefd) != 0)
        fail_errno("pipe");
    make_file();

    words = (size_t)mib << 17;
    arr = malloc(words * 8);
    if (!arr)
        fail("malloc(%ld MiB) failed", mib);
    for (size_t i = 0; i < words; i++)
        arr[i] = i * 0x9e3779b97f4a7c15ULL;
    for (int s = 0; s < MAPS; s++)
        map_slot(s);
    for (int s = 0; s < BIGS; s++) {
        bigs[s].len = big_size();
        bigs[s].p = malloc(bigs[s].len);
        if (!bigs[s].p)
            fail("malloc(%zu) failed", bigs[s].len);
        fill(bigs[s].p, bigs[s].len, xorshift64(&rng));
    }

    for (int s = 0; s < HEAPS; s++)
        heap_event();

    const size_t page_words = PAGE / 8, pages = words / page_words;
    const size_t window = words / WINDOWS;
    const size_t chunks = window > CHUNK_WORDS ? window / CHUNK_WORDS : 1;
    const size_t every = chunks / EVENTS_PER_PASS ? chunks / EVENTS_PER_PASS : 1;
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        uint64_t *hot = arr + (calm ? 0 : (size_t)(step / 8 % WINDOWS) * window);
        for (int pass = 0; pass < PASSES; pass++) {
            uint64_t add = (uint64_t)step << 8 | (uint64_t)pass;
            for (size_t c = 0; c < chunks; c++) {
                /* A chunk of the hot window... */
                size_t end = c + 1 < chunks ? (c + 1) * CHUNK_WORDS : window;
                for (size_t i = c * CHUNK_WORDS; i < end; i++)
                    hot[i] = (hot[i] ^ (hot[i] >> 29)) * 6364136223846793005ULL + add;
                /* ...a word in some pages of the chunk's share of the array... */
                for (size_t pg = c * pages / chunks; !calm && pg < (c + 1) * pages / chunks; pg++) {
                    uint64_t m = (pg ^ add) * 0x9e3779b97f4a7c15ULL;
                    if ((m >> 56) % SCATTER == 0) {
                        uint64_t *w = arr + pg * page_words + (m >> 20) % page_words;
                        *w = (*w ^ (*w >> 31)) * 0xbf58476d1ce4e5b9ULL + add;
                    }
                }
                /* ...and now and then an event. */
                if (c % every == every - 1)
                    event();
            }
        }
        uint64_t d = digest(step);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(15);
    }
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}

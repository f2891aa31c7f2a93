/*
 * mappings.c - anonymous mappings with different sharing and protections.
 *
 *   priv   4 MiB  private rw, only partly touched (most pages never faulted in)
 *   shm    64 KiB MAP_SHARED|MAP_ANONYMOUS rw
 *   ro     64 KiB private, filled, then mprotect'ed read-only
 *   guard  64 KiB private rw followed directly by a PROT_NONE guard page
 *   resv   64 MiB PROT_NONE reservation; after step N/4 a 1 MiB window inside
 *          it becomes rw, after step N/2 the window grows to 2 MiB
 *
 * Every step mutates the writable regions, then checks the protections two
 * ways: /proc/self/maps must show exactly the expected permissions over each
 * address range (neighbouring VMAs may merge, so ranges are checked for
 * coverage, not for identical lines), and write probes under a SIGSEGV
 * handler must fault exactly where they should. The digest covers the
 * contents of every accessible region.
 */
#include "common.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#define MiB (1024UL * 1024UL)
#define KiB 1024UL

static size_t page;
static unsigned char *priv, *shm, *ro, *guard, *resv;
static size_t resv_rw_len; /* bytes of resv made rw, starting at RESV_RW_OFF */

#define PRIV_LEN (4 * MiB)
#define SMALL_LEN (64 * KiB)
#define RESV_LEN (64 * MiB)
#define RESV_RW_OFF (16 * MiB)

/* ---- /proc/self/maps checks ---- */

struct vma {
    unsigned long start, end;
    char perms[5];
};

static struct vma vmas[512];
static int nvmas;

static void load_maps(void)
{
    static char buf[256 * 1024];
    size_t len = 0;
    int fd = open("/proc/self/maps", O_RDONLY);
    if (fd < 0)
        fail_errno("open /proc/self/maps");
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail_errno("read /proc/self/maps");
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            fail("/proc/self/maps too large");
    }
    close(fd);
    buf[len] = '\0';

    nvmas = 0;
    for (char *line = buf; *line; ) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        struct vma *v = &vmas[nvmas];
        if (sscanf(line, "%lx-%lx %4s", &v->start, &v->end, v->perms) == 3) {
            if (++nvmas == (int)(sizeof vmas / sizeof vmas[0]))
                fail("too many mappings");
        }
        if (!nl)
            break;
        line = nl + 1;
    }
}

/* [addr, addr+len) must be fully covered by VMAs that all have `perms`. */
static void expect_perms(const char *name, const void *addr, size_t len, const char *perms)
{
    unsigned long a = (unsigned long)addr, b = a + len, covered = a;
    for (int i = 0; i < nvmas && covered < b; i++) {
        const struct vma *v = &vmas[i];
        if (v->end <= covered || v->start >= b)
            continue;
        if (v->start > covered)
            fail("%s: part of the range is unmapped", name);
        if (strcmp(v->perms, perms) != 0)
            fail("%s: permissions %s, expected %s", name, v->perms, perms);
        covered = v->end;
    }
    if (covered < b)
        fail("%s: end of the range is unmapped", name);
}

/* ---- fault probes ---- */

static sigjmp_buf probe_env;

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(probe_env, 1);
}

/* Rewrites one byte with its own value; returns 0 if that faults. */
static int probe_writable(void *addr)
{
    volatile unsigned char *p = addr;
    if (sigsetjmp(probe_env, 1))
        return 0;
    *p = *p;
    return 1;
}

static void expect_writable(const char *name, void *addr, int want)
{
    if (probe_writable(addr) != want)
        fail("%s: write %s", name, want ? "faulted" : "did not fault");
}

/* ---- setup, mutation, checks ---- */

static void *map(size_t len, int prot, int flags)
{
    void *p = mmap(NULL, len, prot, flags | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fail_errno("mmap");
    return p;
}

static void setup(void)
{
    page = (size_t)sysconf(_SC_PAGESIZE);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, NULL) != 0)
        fail_errno("sigaction");

    priv = map(PRIV_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (size_t i = 0; i < PRIV_LEN / page; i++)
        if (i < 64 || i % 16 == 0) /* partly touched */
            priv[i * page + i % page] = (unsigned char)(i + 1);

    shm = map(SMALL_LEN, PROT_READ | PROT_WRITE, MAP_SHARED);
    for (size_t i = 0; i < SMALL_LEN; i++)
        shm[i] = (unsigned char)(i * 7);

    ro = map(SMALL_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    for (size_t i = 0; i < SMALL_LEN; i++)
        ro[i] = (unsigned char)(i * 13 + 5);
    if (mprotect(ro, SMALL_LEN, PROT_READ) != 0)
        fail_errno("mprotect ro");

    guard = map(SMALL_LEN + page, PROT_READ | PROT_WRITE, MAP_PRIVATE);
    if (mprotect(guard + SMALL_LEN, page, PROT_NONE) != 0)
        fail_errno("mprotect guard");

    resv = map(RESV_LEN, PROT_NONE, MAP_PRIVATE | MAP_NORESERVE);
}

static void grow_window(size_t new_len)
{
    if (mprotect(resv + RESV_RW_OFF + resv_rw_len, new_len - resv_rw_len,
                 PROT_READ | PROT_WRITE) != 0)
        fail_errno("mprotect resv");
    for (size_t i = resv_rw_len; i < new_len; i += page)
        resv[RESV_RW_OFF + i] = 0xa5;
    resv_rw_len = new_len;
}

static void mutate(int step, int steps)
{
    uint32_t k = (uint32_t)step;

    /* The reservation window opens after a quarter of the run and doubles
     * after half of it (steps 11 and 21 of 40). */
    if (step == steps / 4 + 1 && resv_rw_len < 1 * MiB)
        grow_window(1 * MiB);
    if (step == steps / 2 + 1 && resv_rw_len < 2 * MiB)
        grow_window(2 * MiB);

    for (uint32_t i = 0; i < 4; i++) {
        size_t pg = (k * 7u + i * 131u) % (PRIV_LEN / page);
        priv[pg * page + (k * 31u) % page] += (unsigned char)(k + i);
    }
    ((uint64_t *)shm)[k % (SMALL_LEN / 8)] += k * 0x0101010101010101ULL;
    guard[(k * 4099u) % SMALL_LEN] ^= (unsigned char)k;
    guard[SMALL_LEN - 1] = (unsigned char)k; /* last byte before the guard page */
    if (resv_rw_len)
        resv[RESV_RW_OFF + (k * 8191u) % resv_rw_len] += 3;
}

static void check(void)
{
    load_maps();
    expect_perms("priv", priv, PRIV_LEN, "rw-p");
    expect_perms("shm", shm, SMALL_LEN, "rw-s");
    expect_perms("ro", ro, SMALL_LEN, "r--p");
    expect_perms("guard body", guard, SMALL_LEN, "rw-p");
    expect_perms("guard page", guard + SMALL_LEN, page, "---p");
    expect_perms("resv below window", resv, RESV_RW_OFF, "---p");
    if (resv_rw_len)
        expect_perms("resv window", resv + RESV_RW_OFF, resv_rw_len, "rw-p");
    expect_perms("resv above window", resv + RESV_RW_OFF + resv_rw_len,
                 RESV_LEN - RESV_RW_OFF - resv_rw_len, "---p");

    expect_writable("priv", priv + PRIV_LEN - 1, 1);
    expect_writable("shm", shm, 1);
    expect_writable("ro", ro + page, 0);
    expect_writable("guard page", guard + SMALL_LEN, 0);
    expect_writable("resv below window", resv + RESV_RW_OFF - 1, 0);
    expect_writable("resv above window", resv + RESV_RW_OFF + resv_rw_len, 0);
}

static uint64_t digest(void)
{
    uint64_t h = FNV_OFFSET;
    h = fnv1a(h, priv, PRIV_LEN);
    h = fnv1a(h, shm, SMALL_LEN);
    h = fnv1a(h, ro, SMALL_LEN);
    h = fnv1a(h, guard, SMALL_LEN);
    h = fnv1a_u64(h, resv_rw_len);
    h = fnv1a(h, resv + RESV_RW_OFF, resv_rw_len);
    return h;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    uint64_t chain = FNV_OFFSET;

    setup();
    for (int step = 1; step <= steps; step++) {
        mutate(step, steps);
        check();
        uint64_t d = digest();
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(45);
    }
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}

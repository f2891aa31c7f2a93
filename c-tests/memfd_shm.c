/*
 * memfd_shm.c - memfd and POSIX shared memory, mapped shared more than once.
 *
 * Usage: memfd_shm [steps] [shm-name]. The shm objects are <shm-name>-a and
 * <shm-name>-b (default: a name made from the pid); names are never printed.
 *
 * - memfd "mig-memfd", 64 KiB: mapped MAP_SHARED twice in full (m1, m2) and
 *   once from offset 16 KiB for 16 KiB (m3); also written with write(2) at
 *   the descriptor's own offset, which wraps at 60 KiB.
 * - shm A, 32 KiB: descriptor kept open, mapped MAP_SHARED twice.
 * - shm B, 16 KiB: mapped MAP_SHARED once, descriptor closed; each step opens
 *   it again by name (shm_open, O_RDONLY) and reads it with pread.
 * Each step writes through one mapping (a few chunks at step-dependent
 * offsets), through the other, and with pwrite; then every mapping and a pread
 * of each object must equal a private shadow copy (so a mapping that stopped
 * being shared, lost contents, or contents that were not put back after the
 * original process went on writing, all FAIL). The digest hashes the shadows
 * and the memfd's offset. At the end the shm objects are unlinked.
 */
#include "common.h"
#include "fd_common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define MSZ (64 * 1024)
#define ASZ (32 * 1024)
#define BSZ (16 * 1024)
#define M3OFF (16 * 1024)
#define M3SZ (16 * 1024)

static unsigned char shadow_m[MSZ], shadow_a[ASZ], shadow_b[BSZ], rb[MSZ];

static void *map(int fd, size_t len, off_t off, const char *what)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
    if (p == MAP_FAILED)
        fail("mmap %s: %s", what, strerror(errno));
    return p;
}

static void fill(unsigned char *dst, unsigned char *shadow, size_t off, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)((seed * 131 + i * 7 + (i >> 5)) ^ (seed >> 3));
        dst[off + i] = c;
        shadow[off + i] = c;
    }
}

static void same(const void *a, const void *b, size_t len, const char *what)
{
    if (memcmp(a, b, len) != 0) {
        const unsigned char *x = a, *y = b;
        size_t i = 0;
        while (x[i] == y[i])
            i++;
        fail("%s differs from what was written at byte %zu", what, i);
    }
}

static void pread_all(int fd, unsigned char *dst, size_t len, const char *what)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, dst + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail("pread %s: %s", what, n < 0 ? strerror(errno) : "short file");
        got += (size_t)n;
    }
}

static void pwrite_all(int fd, const unsigned char *src, size_t len, off_t off, const char *what)
{
    ssize_t n;
    do
        n = pwrite(fd, src, len, off);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)len)
        fail("pwrite %s: %s", what, n < 0 ? strerror(errno) : "short");
}

static void check_size(int fd, off_t want, const char *what)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        fail_errno("fstat");
    if (st.st_size != want)
        fail("%s has %lld bytes, expected %lld", what, (long long)st.st_size, (long long)want);
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    fd_baseline();
    char base[200], name_a[240], name_b[240];
    if (argc > 2)
        snprintf(base, sizeof base, "%s", argv[2]);
    else
        snprintf(base, sizeof base, "/mig-memfd-shm-%d", (int)getpid());
    snprintf(name_a, sizeof name_a, "%s-a", base);
    snprintf(name_b, sizeof name_b, "%s-b", base);

    int mfd = memfd_create("mig-memfd", 0);
    if (mfd < 0)
        fail_errno("memfd_create");
    if (ftruncate(mfd, MSZ) != 0)
        fail_errno("ftruncate memfd");
    unsigned char *m1 = map(mfd, MSZ, 0, "memfd 1"), *m2 = map(mfd, MSZ, 0, "memfd 2");
    unsigned char *m3 = map(mfd, M3SZ, M3OFF, "memfd at 16 KiB");
    if (m1 == m2)
        fail("the two memfd mappings are at one address");

    int afd = shm_open(name_a, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (afd < 0)
        fail_errno("shm_open a");
    if (ftruncate(afd, ASZ) != 0)
        fail_errno("ftruncate shm a");
    unsigned char *a1 = map(afd, ASZ, 0, "shm a 1"), *a2 = map(afd, ASZ, 0, "shm a 2");

    int bfd = shm_open(name_b, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (bfd < 0)
        fail_errno("shm_open b");
    if (ftruncate(bfd, BSZ) != 0)
        fail_errno("ftruncate shm b");
    unsigned char *b1 = map(bfd, BSZ, 0, "shm b");
    close(bfd);

    off_t moff = 0;
    uint64_t chain = FNV_OFFSET;
    unsigned char chunk[1024];
    for (int s = 1; s <= steps; s++) {
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);
        int mine[] = { mfd, afd };
        check_open_fds(mine, 2);

        /* memfd: through m1, through m2, with pwrite and with write. */
        for (int k = 0; k < 3; k++)
            fill(m1, shadow_m, (size_t)((s * 7919 + k * 21001) % (MSZ - 1024)), 700, (uint64_t)(s * 3 + k));
        fill(m2, shadow_m, (size_t)((s * 4099) % (MSZ - 512)), 500, (uint64_t)s + 1000);
        size_t po = (size_t)((s * 3331) % (MSZ - sizeof chunk));
        fill(chunk, shadow_m + po, 0, sizeof chunk, (uint64_t)s + 2000);
        pwrite_all(mfd, chunk, sizeof chunk, (off_t)po, "memfd");
        if (lseek(mfd, 0, SEEK_CUR) != moff)
            fail("memfd offset %lld, expected %lld", (long long)lseek(mfd, 0, SEEK_CUR), (long long)moff);
        fill(chunk, shadow_m + moff, 0, 64, (uint64_t)s + 3000);
        write_all(mfd, chunk, 64);
        moff += 64;
        if (moff >= 60 * 1024) {
            moff = 0;
            lseek(mfd, 0, SEEK_SET);
        }
        same(m1, shadow_m, MSZ, "memfd mapping 1");
        same(m2, shadow_m, MSZ, "memfd mapping 2");
        same(m3, shadow_m + M3OFF, M3SZ, "memfd mapping at 16 KiB");
        pread_all(mfd, rb, MSZ, "memfd");
        same(rb, shadow_m, MSZ, "memfd (pread)");
        check_size(mfd, MSZ, "the memfd");
        char link[64], target[256];
        snprintf(link, sizeof link, "/proc/self/fd/%d", mfd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        if (strncmp(target, "/memfd:mig-memfd", 16) != 0)
            fail("the memfd is now %s", target);

        /* shm a: two mappings and the descriptor. */
        fill(a1, shadow_a, (size_t)((s * 1237) % (ASZ - 900)), 900, (uint64_t)s + 4000);
        fill(a2, shadow_a, (size_t)((s * 2221) % (ASZ - 300)), 300, (uint64_t)s + 5000);
        po = (size_t)((s * 997) % (ASZ - 256));
        fill(chunk, shadow_a + po, 0, 256, (uint64_t)s + 6000);
        pwrite_all(afd, chunk, 256, (off_t)po, "shm a");
        same(a1, shadow_a, ASZ, "shm a mapping 1");
        same(a2, shadow_a, ASZ, "shm a mapping 2");
        pread_all(afd, rb, ASZ, "shm a");
        same(rb, shadow_a, ASZ, "shm a (pread)");
        check_size(afd, ASZ, "shm a");

        /* shm b: only the mapping; the object is reopened by name. */
        fill(b1, shadow_b, (size_t)((s * 613) % (BSZ - 400)), 400, (uint64_t)s + 7000);
        int fd = shm_open(name_b, O_RDONLY, 0);
        if (fd < 0)
            fail("shm_open b again: %s", strerror(errno));
        check_size(fd, BSZ, "shm b");
        pread_all(fd, rb, BSZ, "shm b");
        close(fd);
        same(rb, shadow_b, BSZ, "shm b (reopened)");
        same(b1, shadow_b, BSZ, "shm b mapping");

        d = fnv1a(d, shadow_m, MSZ);
        d = fnv1a(d, shadow_a, ASZ);
        d = fnv1a(d, shadow_b, BSZ);
        d = fnv1a_u64(d, (uint64_t)moff);
        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(50);
    }
    if (shm_unlink(name_a) != 0 || shm_unlink(name_b) != 0)
        fail_errno("shm_unlink");
    done_line(chain);
    return 0;
}

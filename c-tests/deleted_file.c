/*
 * deleted_file.c - an open file that has been unlinked.
 *
 * scratch.dat is created in the current directory, given a header and then
 * unlinked while still open. Each step appends a record with write(2) (at
 * the descriptor's offset, which is the end), rewrites an earlier record in
 * place with pwrite(2), and reads the whole file back with pread(2) to
 * compare it with an in-memory shadow copy. The restore must bring the file
 * back unlinked, with the content and offset it had at checkpoint time.
 * The digest covers the content read back and the current offset. The file's mode
 * (0640, set with fchmod) and its modification time (as the last step's writes left
 * it) must be unchanged when the next step begins: a restore must not make them the
 * restoring process's umask and the time of the restore.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/stat.h>

#define HEADER "mig scratch file v1\n\0\0\0\0\0\0\0\0\0\0\0\0" /* 32 bytes */
#define HEADER_LEN 32

struct record {
    uint32_t magic;
    uint32_t index;
    uint32_t touches; /* how often pwrite rewrote this record */
    uint32_t step;    /* step that last wrote it */
    uint64_t payload[4];
};

_Static_assert(sizeof(HEADER) == HEADER_LEN + 1, "header length");

static uint64_t rng = 0x2545f4914f6cdd1dULL; /* picks the record to rewrite */
static struct record *shadow; /* what the file must contain */
static unsigned char *readback;

static off_t rec_off(int i)
{
    return (off_t)HEADER_LEN + (off_t)i * (off_t)sizeof(struct record);
}

static void verify_and_hash(int fd, int nrecs, uint64_t *h)
{
    size_t want = (size_t)rec_off(nrecs), got = 0;
    struct stat st;

    if (fstat(fd, &st) != 0)
        fail_errno("fstat");
    if (st.st_nlink != 0)
        fail("scratch.dat has %lu links, expected 0 (unlinked)", (unsigned long)st.st_nlink);
    if ((size_t)st.st_size != want)
        fail("file size %lld, expected %zu", (long long)st.st_size, want);

    while (got < want) {
        ssize_t n = pread(fd, readback + got, want - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail("pread at %zu failed", got);
        got += (size_t)n;
    }
    if (memcmp(readback, HEADER, HEADER_LEN) != 0)
        fail("header corrupt");
    if (memcmp(readback + HEADER_LEN, shadow, want - HEADER_LEN) != 0)
        fail("records differ from the shadow copy");

    off_t pos = lseek(fd, 0, SEEK_CUR);
    if (pos != (off_t)want)
        fail("offset %lld, expected %zu", (long long)pos, want);

    *h = fnv1a(*h, readback, want);
    *h = fnv1a_u64(*h, (uint64_t)pos);
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);

    shadow = calloc((size_t)steps, sizeof *shadow);
    readback = malloc((size_t)rec_off(steps));
    if (!shadow || !readback)
        fail("out of memory");

    int fd = open("scratch.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        fail_errno("open scratch.dat");
    if (write(fd, HEADER, HEADER_LEN) != HEADER_LEN)
        fail_errno("write header");
    if (unlink("scratch.dat") != 0)
        fail_errno("unlink scratch.dat");

    if (fchmod(fd, 0640) != 0)
        fail_errno("fchmod");
    struct timespec last_mtime = { 0, 0 };

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        int i = step - 1;
        struct stat st;
        if (fstat(fd, &st) != 0)
            fail_errno("fstat");
        if ((st.st_mode & 07777) != 0640)
            fail("mode %o, expected 640", (unsigned)(st.st_mode & 07777));
        if (step > 1 && (st.st_mtim.tv_sec != last_mtime.tv_sec || st.st_mtim.tv_nsec != last_mtime.tv_nsec))
            fail("the modification time changed between steps");

        /* append record i at the current offset */
        struct record *r = &shadow[i];
        r->magic = 0x4d494721; /* "!GIM" */
        r->index = (uint32_t)i;
        r->step = (uint32_t)step;
        for (int w = 0; w < 4; w++)
            r->payload[w] = ((uint64_t)step << 32) * 0x9e3779b97f4a7c15ULL + (uint64_t)w;
        if (write(fd, r, sizeof *r) != (ssize_t)sizeof *r)
            fail_errno("write record");

        /* rewrite an earlier record in place */
        int j = (int)(xorshift64(&rng) % (uint64_t)step);
        shadow[j].touches++;
        shadow[j].step = (uint32_t)step;
        shadow[j].payload[step % 4] ^= (uint64_t)step * 0x0101010101010101ULL;
        if (pwrite(fd, &shadow[j], sizeof shadow[j], rec_off(j)) != (ssize_t)sizeof shadow[j])
            fail_errno("pwrite record");

        if (fstat(fd, &st) != 0)
            fail_errno("fstat");
        last_mtime = st.st_mtim;
        uint64_t d = FNV_OFFSET;
        verify_and_hash(fd, step, &d);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(50);
    }
    close(fd);
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}

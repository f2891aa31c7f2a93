/*
 * sparse_files.c - sparse files whose contents the image carries stay sparse.
 *
 * A deleted file of 1 GiB and a memfd of 256 MiB, each with three short records
 * written into holes (at the start, in the middle, near the end). Every step: the
 * size is the same, few blocks are allocated (the file is still sparse), each
 * record reads back, and a hole reads as zeros. A restore that wrote the files
 * whole would allocate every block (and the image would be as large). The step line
 * folds in a bit mask of what differed (0 when nothing did).
 */
#include "common.h"
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define BIG (1L << 30)
#define MEM (256L << 20)

static unsigned check(int fd, off_t size, int bit)
{
    static const char *rec[3] = { "head of the file", "in the middle", "near the end" };
    off_t at[3] = { 0, size / 2, size - 4096 };
    unsigned bad = 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size != size || st.st_blocks * 512 > (1 << 20))
        bad |= 1u << bit;
    for (int i = 0; i < 3; i++) {
        char buf[32] = { 0 };
        if (pread(fd, buf, strlen(rec[i]), at[i]) != (ssize_t)strlen(rec[i]) || memcmp(buf, rec[i], strlen(rec[i])) != 0)
            bad |= 2u << bit;
    }
    char hole[64];
    if (pread(fd, hole, sizeof hole, size / 4) != (ssize_t)sizeof hole)
        bad |= 4u << bit;
    for (size_t i = 0; i < sizeof hole; i++)
        if (hole[i])
            bad |= 4u << bit;
    return bad;
}

static void fill(int fd, off_t size)
{
    static const char *rec[3] = { "head of the file", "in the middle", "near the end" };
    off_t at[3] = { 0, size / 2, size - 4096 };
    if (ftruncate(fd, size) != 0)
        fail_errno("ftruncate");
    for (int i = 0; i < 3; i++)
        if (pwrite(fd, rec[i], strlen(rec[i]), at[i]) != (ssize_t)strlen(rec[i]))
            fail_errno("pwrite");
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int del = open("sparse.tmp", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (del < 0)
        fail_errno("open");
    fill(del, BIG);
    unlink("sparse.tmp");
    int mem = memfd_create("sparse", MFD_CLOEXEC);
    if (mem < 0)
        fail_errno("memfd_create");
    fill(mem, MEM);
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = check(del, BIG, 0) | check(mem, MEM, 4);
        if (bad)
            emit("step %d: sparse files not as they were: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 53 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

/*
 * lease.c - leases held across the checkpoint come back held (issue 15).
 *
 * usage: lease [STEPS]
 *
 * In its working directory it makes `read.dat` and `write.dat`, takes a read lease
 * (F_SETLEASE F_RDLCK) through a read-only descriptor of the first and a write lease
 * (F_WRLCK) through a read-write descriptor of the second. Every step it asks
 * F_GETLEASE of both: a lease lost (F_UNLCK) fails the run. Prints `step N <digest>`
 * and `done`.
 */
#include "common.h"
#include <fcntl.h>

static int leased(const char *name, int flags, int type)
{
    int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, name, strlen(name)) < 0 || close(fd))
        fail_errno(name);
    fd = open(name, flags);
    if (fd < 0)
        fail_errno(name);
    if (fcntl(fd, F_SETLEASE, type))
        fail_errno("F_SETLEASE");
    return fd;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, 20);
    int r = leased("read.dat", O_RDONLY, F_RDLCK);
    int w = leased("write.dat", O_RDWR, F_WRLCK);
    uint64_t d = FNV_OFFSET;
    for (int i = 1; i <= steps; i++) {
        int lr = fcntl(r, F_GETLEASE), lw = fcntl(w, F_GETLEASE);
        if (lr != F_RDLCK || lw != F_WRLCK)
            fail("step %d: the leases are %d and %d, not %d and %d", i, lr, lw, F_RDLCK, F_WRLCK);
        d = fnv1a_u64(d, (uint64_t)(i * 16 + lr * 4 + lw));
        step_line(i, d);
        pace_ms(50);
    }
    done_line(d);
    return 0;
}

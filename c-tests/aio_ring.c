/*
 * aio_ring.c - a kernel AIO context (io_setup) comes back with what it held.
 *
 * The process sets up a context, reads a file through it three times (one io_submit
 * of three preads) and reaps only the first: the other two completions wait in the
 * ring. It steps; a checkpoint (and a restore) happens meanwhile. After the steps it
 * reaps the two waiting completions (data, object and result as submitted, the bytes
 * in their buffers), reads through the context again and checks those bytes, and
 * checks that the context is the one io_setup gave. The verdict is folded into the
 * digest.
 */
#include "common.h"
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <sys/syscall.h>

static char bufs[4][32];
static struct iocb cbs[4];

static void prep(int i, int fd, long off)
{
    memset(&cbs[i], 0, sizeof cbs[i]);
    cbs[i].aio_data = 100 + i;
    cbs[i].aio_lio_opcode = IOCB_CMD_PREAD;
    cbs[i].aio_fildes = fd;
    cbs[i].aio_buf = (uint64_t)(uintptr_t)bufs[i];
    cbs[i].aio_nbytes = 16;
    cbs[i].aio_offset = off;
}

static int check(const struct io_event *ev, int i, long off)
{
    char want[17];
    for (int k = 0; k < 16; k++)
        want[k] = 'a' + (off + k) % 26;
    if (ev->data != (uint64_t)(100 + i) || ev->obj != (uint64_t)(uintptr_t)&cbs[i] || ev->res != 16 || memcmp(bufs[i], want, 16) != 0) {
        emit("completion %d: data %llu obj %s res %lld bytes %.16s\n", i, (unsigned long long)ev->data,
             ev->obj == (uint64_t)(uintptr_t)&cbs[i] ? "ok" : "wrong", (long long)ev->res, bufs[i]);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int fd = open("aio_ring.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        fail_errno("open aio_ring.dat");
    char text[4096];
    for (int k = 0; k < (int)sizeof text; k++)
        text[k] = 'a' + k % 26;
    if (write(fd, text, sizeof text) != (ssize_t)sizeof text)
        fail_errno("write");
    aio_context_t ctx = 0;
    if (syscall(SYS_io_setup, 16, &ctx) != 0)
        fail_errno("io_setup");
    aio_context_t first = ctx;
    prep(0, fd, 0);
    prep(1, fd, 100);
    prep(2, fd, 200);
    struct iocb *list[3] = {&cbs[0], &cbs[1], &cbs[2]};
    if (syscall(SYS_io_submit, ctx, 3, list) != 3)
        fail_errno("io_submit");
    struct io_event ev[3];
    if (syscall(SYS_io_getevents, ctx, 1, 1, ev, NULL) != 1)
        fail_errno("io_getevents");
    int verdict = check(&ev[0], 0, 0);

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        chain = fnv1a_u64(chain, (uint64_t)step);
        step_line(step, chain);
        pace_ms(50);
    }

    struct timespec zero = {0, 0};
    long n = syscall(SYS_io_getevents, ctx, 0, 3, ev, &zero);
    if (n != 2) {
        emit("%ld completions waited in the ring, not 2 (%s)\n", n, n < 0 ? strerror(errno) : "");
        verdict++;
    } else {
        verdict += check(&ev[0], 1, 100) + check(&ev[1], 2, 200);
    }
    prep(3, fd, 300);
    list[0] = &cbs[3];
    if (syscall(SYS_io_submit, ctx, 1, list) != 1 || syscall(SYS_io_getevents, ctx, 1, 1, ev, NULL) != 1) {
        emit("the context no longer reads: %s\n", strerror(errno));
        verdict++;
    } else {
        verdict += check(&ev[0], 3, 300);
    }
    if (ctx != first)
        verdict++;
    syscall(SYS_io_destroy, ctx);
    emit("aio %s\n", verdict == 0 ? "ok" : "wrong");
    done_line(fnv1a_u64(chain, (uint64_t)verdict));
    return 0;
}

/*
 * fd_passing.c [STEPS] [fork] - descriptors in flight (SCM_RIGHTS) in socket queues
 * come back with their messages (issues 15 and 16): queues the process holds both
 * ends of, or, with `fork`, queues between a parent and its child.
 *
 * Before the first step, queued and not received:
 * - stream pair s: "A" carrying a pipe's read end (the pipe holds "through the pipe")
 *   and a copy of the open file fd_passing.dat (offset 3; the process keeps its own
 *   descriptor of that open file); "BC" carrying nothing; "D" carrying an eventfd
 *   (count 5) and the receiving end of another stream pair (its queue holds "inner")
 *   (a read takes "BCD" and D's descriptors at once);
 * - datagram pair d: "x" carrying a memfd ("in a memfd"), "yz" carrying the pipe's
 *   write end.
 * The process closes its own descriptors of the pipe, eventfd, memfd and inner end:
 * they live only in flight. Each step until STEPS/2 checks (peeking, without fds)
 * that the queued bytes are there; at STEPS/2 it receives everything and checks
 * each descriptor: the pipe's bytes, the file's shared offset (reading 2 bytes
 * through the received copy moves the process's own), the eventfd's count, the inner
 * end's queue, the memfd's contents, and writing through the received write end
 * reaches the received read end, which sees end of file once that end is closed (no
 * copy of it lingers). The step line folds in a bit mask of what differed.
 * With `fork`, a child forked once everything is queued keeps the receiving ends and
 * does the steps; the parent keeps the sending ends (and its copy of the file) and
 * waits for it, ending with its status.
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void send_fds(int sock, const char *text, const int *fds, int n)
{
    struct iovec iov = { (void *)text, strlen(text) };
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (n > 0) {
        m.msg_control = u.buf;
        m.msg_controllen = CMSG_SPACE(n * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(n * sizeof(int));
        memcpy(CMSG_DATA(c), fds, n * sizeof(int));
    }
    if (sendmsg(sock, &m, 0) != (ssize_t)strlen(text))
        fail_errno("sendmsg");
}

/* Receives one message into buf (NUL-terminated) and up to 4 descriptors; returns
 * how many descriptors came. */
static int recv_fds(int sock, char *buf, size_t len, int *fds)
{
    struct iovec iov = { buf, len - 1 };
    union {
        char buf[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
    ssize_t r = recvmsg(sock, &m, MSG_DONTWAIT);
    if (r < 0)
        fail_errno("recvmsg");
    buf[r] = 0;
    int n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds + n, CMSG_DATA(c), k * sizeof(int));
            n += k;
        }
    if (m.msg_flags & MSG_CTRUNC)
        fail("control messages truncated");
    return n;
}

static int has(int fd, const char *want)
{
    char buf[64] = { 0 };
    ssize_t r = read(fd, buf, sizeof buf - 1);
    return r == (ssize_t)strlen(want) && memcmp(buf, want, r) == 0;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int s[2], d[2], inner[2], pp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) || socketpair(AF_UNIX, SOCK_DGRAM, 0, d) || socketpair(AF_UNIX, SOCK_STREAM, 0, inner) || pipe(pp))
        fail_errno("socketpair, pipe");
    write_all(pp[1], "through the pipe", 16);
    int file = open("fd_passing.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (file < 0)
        fail_errno("open fd_passing.dat");
    write_all(file, "0123456789", 10);
    lseek(file, 3, SEEK_SET);
    int efd = eventfd(5, 0);
    int mfd = memfd_create("passed", 0);
    if (efd < 0 || mfd < 0)
        fail_errno("eventfd, memfd_create");
    write_all(mfd, "in a memfd", 10);
    if (send(inner[0], "inner", 5, 0) != 5)
        fail_errno("send inner");

    send_fds(s[0], "A", (int[]){ pp[0], file }, 2);
    send_fds(s[0], "BC", NULL, 0);
    send_fds(s[0], "D", (int[]){ efd, inner[1] }, 2);
    send_fds(d[0], "x", (int[]){ mfd }, 1);
    send_fds(d[0], "yz", (int[]){ pp[1] }, 1);
    close(pp[0]);
    close(pp[1]);
    close(efd);
    close(mfd);
    close(inner[1]);
    if (argc > 2 && strcmp(argv[2], "fork") == 0) {
        pid_t child = fork();
        if (child < 0)
            fail_errno("fork");
        if (child > 0) {
            close(s[1]);
            close(d[1]);
            int st;
            while (waitpid(child, &st, 0) < 0)
                if (errno != EINTR)
                    fail_errno("waitpid");
            return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
        }
        close(s[0]);
        close(d[0]);
    }

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = 0;
        char buf[64];
        if (step < steps / 2) {
            /* Still queued: a peek without room for descriptors sees "A". */
            if (recv(s[1], buf, 1, MSG_PEEK | MSG_DONTWAIT) != 1 || buf[0] != 'A')
                bad |= 1;
        } else if (step == steps / 2) {
            int a[4], dd[4], x[4], yz[4];
            if (recv_fds(s[1], buf, sizeof buf, a) != 2 || strcmp(buf, "A") != 0)
                bad |= 2;
            else {
                if (!has(a[0], "through the pipe"))
                    bad |= 4;
                char two[3] = { 0 };
                if (lseek(a[1], 0, SEEK_CUR) != 3 || read(a[1], two, 2) != 2 || strcmp(two, "34") != 0 || lseek(file, 0, SEEK_CUR) != 5)
                    bad |= 8;
            }
            /* A stream read runs on into the next message with descriptors, and
             * takes them. */
            if (recv_fds(s[1], buf, sizeof buf, dd) != 2 || strcmp(buf, "BCD") != 0)
                bad |= 32;
            else {
                uint64_t count = 0;
                if (read(dd[0], &count, 8) != 8 || count != 5)
                    bad |= 64;
                if (recv(dd[1], buf, sizeof buf, MSG_DONTWAIT) != 5 || memcmp(buf, "inner", 5) != 0)
                    bad |= 128;
            }
            if (recv_fds(d[1], buf, sizeof buf, x) != 1 || strcmp(buf, "x") != 0)
                bad |= 256;
            else {
                char m[16] = { 0 };
                if (pread(x[0], m, 10, 0) != 10 || strcmp(m, "in a memfd") != 0)
                    bad |= 512;
            }
            if (recv_fds(d[1], buf, sizeof buf, yz) != 1 || strcmp(buf, "yz") != 0)
                bad |= 1024;
            else if (bad & 2)
                bad |= 2048;
            else {
                write_all(yz[0], "back", 4);
                if (!has(a[0], "back"))
                    bad |= 4096;
                /* The last write end closed: end of file, unless a copy of it
                 * lingers somewhere in the process. */
                close(yz[0]);
                fcntl(a[0], F_SETFL, O_NONBLOCK);
                char c;
                if (read(a[0], &c, 1) != 0)
                    bad |= 16384;
            }
            errno = 0;
            if (recv(s[1], buf, sizeof buf, MSG_DONTWAIT) != -1 || errno != EAGAIN)
                bad |= 8192;
        }
        if (bad)
            emit("step %d: descriptors in flight differ: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 31 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

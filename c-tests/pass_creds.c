/*
 * pass_creds.c - a socket pair end with SO_PASSCRED keeps it, and the messages queued
 * for it still carry their sender's credentials (this process's).
 *
 * The process makes a datagram socket pair, sets SO_PASSCRED on one end and sends two
 * messages to it. It steps; a checkpoint (and a restore) happens meanwhile. At the end
 * it receives both: each must come with SCM_CREDENTIALS naming this process (its pid
 * now, its uid and gid), and the end must still have SO_PASSCRED.
 */
#define _GNU_SOURCE
#include "common.h"
#include <sys/socket.h>

static int take(int fd, const char *want)
{
    char buf[32] = {0};
    union {
        char space[CMSG_SPACE(sizeof(struct ucred))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {buf, sizeof buf - 1};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control.space;
    m.msg_controllen = sizeof control.space;
    ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
    struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&m) : NULL;
    if (n < 0 || strcmp(buf, want) != 0) {
        emit("message %s: got %zd bytes \"%s\"\n", want, n, n > 0 ? buf : "");
        return 1;
    }
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS) {
        emit("message %s: no credentials\n", want);
        return 1;
    }
    struct ucred u;
    memcpy(&u, CMSG_DATA(c), sizeof u);
    if (u.pid != getpid() || u.uid != getuid() || u.gid != getgid()) {
        emit("message %s: credentials %d %u %u, not this process's\n", want, (int)u.pid, (unsigned)u.uid, (unsigned)u.gid);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0)
        fail_errno("socketpair");
    int on = 1;
    if (setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0)
        fail_errno("SO_PASSCRED");
    if (send(sv[0], "first", 5, 0) != 5 || send(sv[0], "second", 6, 0) != 6)
        fail_errno("send");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        chain = fnv1a_u64(chain, (uint64_t)step);
        step_line(step, chain);
        pace_ms(50);
    }
    int bad = take(sv[1], "first") + take(sv[1], "second");
    int v = 0;
    socklen_t len = sizeof v;
    if (getsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &v, &len) != 0 || v != 1) {
        emit("SO_PASSCRED is off\n");
        bad++;
    }
    emit("credentials %s\n", bad ? "wrong" : "ok");
    done_line(fnv1a_u64(chain, (uint64_t)bad));
    return 0;
}

/*
 * sock_shutdown.c - socket pair ends shut down (shutdown(2)) stay shut down.
 *
 * Three UNIX socket pairs:
 * - stream a-b: a sends "bye" and shuts down writing; b leaves it unread;
 * - stream c-d: c shuts down writing with nothing sent;
 * - datagram e-f: e shuts down reading.
 * Every step, without changing anything: a cannot send (EPIPE); b still has "bye"
 * queued (peeked); d sees end of file (a peek returns 0, not EAGAIN); f cannot send
 * to e (EPIPE). The step line folds in a bit mask of what differed (0 when nothing).
 */
#include "common.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int ab[2], cd[2], ef[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, ab) || socketpair(AF_UNIX, SOCK_STREAM, 0, cd) || socketpair(AF_UNIX, SOCK_DGRAM, 0, ef))
        fail_errno("socketpair");
    if (send(ab[0], "bye", 3, 0) != 3 || shutdown(ab[0], SHUT_WR) || shutdown(cd[0], SHUT_WR) || shutdown(ef[0], SHUT_RD))
        fail_errno("send, shutdown");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = 0;
        char buf[8];
        errno = 0;
        if (send(ab[0], "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL) != -1 || errno != EPIPE)
            bad |= 1;
        if (recv(ab[1], buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT) != 3 || memcmp(buf, "bye", 3) != 0)
            bad |= 2;
        if (recv(cd[1], buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT) != 0)
            bad |= 4;
        errno = 0;
        if (send(ef[1], "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL) != -1 || errno != EPIPE)
            bad |= 8;
        if (bad)
            emit("step %d: sockets not shut down as they were: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 29 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

/*
 * sock_filter.c [STEPS] - a classic BPF socket filter (SO_ATTACH_FILTER), locked
 * (SO_LOCK_FILTER), comes back with its socket (issue 15).
 *
 * A UDP socket bound to 127.0.0.1 takes only datagrams whose first byte is 'A'. Each
 * step another UDP socket sends it "B<step>" then "A<step>": exactly "A<step>" must
 * arrive; the filter must still read back as 4 instructions, locked. The step line
 * folds in a bit mask of what differed.
 */
#include "common.h"
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    /* The filter sees the UDP header (8 bytes), then the payload. */
    struct sock_filter code[] = {
        { BPF_LD | BPF_B | BPF_ABS, 0, 0, 8 },
        { BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 'A' },
        { BPF_RET | BPF_K, 0, 0, 0xffff },
        { BPF_RET | BPF_K, 0, 0, 0 },
    };
    struct sock_fprog prog = { 4, code };
    int u = socket(AF_INET, SOCK_DGRAM, 0), s = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (u < 0 || s < 0 || bind(u, (struct sockaddr *)&a, al) || getsockname(u, (struct sockaddr *)&a, &al))
        fail_errno("udp socket");
    if (setsockopt(u, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) || setsockopt(u, SOL_SOCKET, SO_LOCK_FILTER, &one, sizeof one))
        fail_errno("SO_ATTACH_FILTER, SO_LOCK_FILTER");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = 0;
        char out[16], in[16];
        snprintf(out, sizeof out, "B%d", step);
        if (sendto(s, out, strlen(out), 0, (struct sockaddr *)&a, al) < 0)
            fail_errno("sendto");
        out[0] = 'A';
        if (sendto(s, out, strlen(out), 0, (struct sockaddr *)&a, al) < 0)
            fail_errno("sendto");
        ssize_t n = recv(u, in, sizeof in, MSG_DONTWAIT);
        if (n != (ssize_t)strlen(out) || memcmp(in, out, (size_t)n) != 0)
            bad |= 1;
        errno = 0;
        if (recv(u, in, sizeof in, MSG_DONTWAIT) != -1 || errno != EAGAIN)
            bad |= 2;
        socklen_t len = 0;
        if (getsockopt(u, SOL_SOCKET, SO_GET_FILTER, NULL, &len) != 0 || len != 4)
            bad |= 4;
        int locked = 0;
        len = sizeof locked;
        if (getsockopt(u, SOL_SOCKET, SO_LOCK_FILTER, &locked, &len) != 0 || !locked)
            bad |= 8;
        if (bad)
            emit("step %d: the socket filter is not as it was: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 43 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

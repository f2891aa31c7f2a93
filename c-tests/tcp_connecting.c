/*
 * tcp_connecting.c PORT [STEPS] - a TCP connection being made (SYN_SENT) across a
 * checkpoint (issue 15).
 *
 * It connects, without waiting, to 127.0.0.1:PORT, a listener of the test's whose
 * queue is full: the connection waits in SYN_SENT, its SYNs dropped. Each step folds
 * the connection's TCP state into its digest and prints `step <n> <digest>`. Then it
 * prints `waiting`, the test accepts what filled the queue, and the connection is
 * made (a SYN sent again gets through): it waits for it (poll, 10 s at most), says
 * what SO_ERROR said, sends "hello", and prints `done <digest>`.
 */
#include "common.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

static int state(int fd)
{
    struct tcp_info info;
    socklen_t len = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len))
        fail_errno("TCP_INFO");
    return info.tcpi_state;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        fail("usage: tcp_connecting PORT [STEPS]");
    int steps = steps_arg(argc - 1, argv + 1, 20);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (s < 0)
        fail_errno("socket");
    if (connect(s, (struct sockaddr *)&to, sizeof to) == 0 || errno != EINPROGRESS)
        fail("connect did not wait: errno %d", errno);
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        chain = fnv1a_u64(chain, (uint64_t)state(s));
        step_line(step, chain);
        pace_ms(50);
    }
    emit("waiting\n");
    struct pollfd p = { .fd = s, .events = POLLOUT };
    int n = poll(&p, 1, 10000);
    int err = -1;
    socklen_t len = sizeof err;
    getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
    emit("connected: poll %d, SO_ERROR %d, state %d\n", n, err, state(s));
    write_all(s, "hello", 5);
    done_line(chain);
    return 0;
}

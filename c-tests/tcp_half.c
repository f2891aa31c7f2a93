/*
 * tcp_half.c [PORT] [STEPS] - TCP connections shut down one way (issue 15: a
 * connection that is not established comes back too).
 *
 * Without PORT (or with "self"), both ends are the process's: it connects to a
 * listener of its own on 127.0.0.1 and accepts; the accepted end `a` sends the lines
 * "1".."STEPS" and shuts down its sending side (its FIN: `a` is then in FIN_WAIT2,
 * the connecting end `s` in CLOSE_WAIT); `s` sends a block of BLOCK bytes, which `a`
 * reads only at the end; a second connection's connecting end `c` has shut down only
 * its receiving side (still ESTABLISHED: poll says POLLRDHUP). With PORT, `s` connects to a peer outside the process (the
 * test, on 127.0.0.1:PORT) that does what `a` does, and checks the block.
 *
 * Each step reads one line from `s`, a byte at a time, and prints `step <n> <digest>`
 * over the lines read, both ends' TCP states and what poll says of `c`. After the steps `s` reads the end of
 * the stream (read returns 0), sends "bye" and shuts down its side too; `a` reads the
 * block, "bye" and the end: a line says what it got. Then `done <digest>`.
 */
#include "common.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BLOCK 3000

static int state(int fd)
{
    struct tcp_info info;
    socklen_t len = sizeof info;
    if (fd < 0)
        return 0;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len))
        fail_errno("TCP_INFO");
    return info.tcpi_state;
}

int main(int argc, char **argv)
{
    int self = argc < 2 || strcmp(argv[1], "self") == 0;
    int steps = steps_arg(argc - 1, argv + 1, 30);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t to_len = sizeof to;
    int listener = -1, a = -1, c = -1, d = -1;
    if (self) {
        listener = socket(AF_INET, SOCK_STREAM, 0);
        if (listener < 0 || bind(listener, (struct sockaddr *)&to, to_len) || listen(listener, 1) || getsockname(listener, (struct sockaddr *)&to, &to_len))
            fail_errno("listener");
    } else {
        to.sin_port = htons(atoi(argv[1]));
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&to, to_len))
        fail_errno("connect");
    if (self) {
        if ((a = accept(listener, NULL, NULL)) < 0)
            fail_errno("accept");
        c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&to, to_len) || (d = accept(listener, NULL, NULL)) < 0 || shutdown(c, SHUT_RD))
            fail_errno("the second connection");
        close(listener);
        for (int i = 1; i <= steps; i++) {
            char line[16];
            int n = snprintf(line, sizeof line, "%d\n", i);
            write_all(a, line, n);
        }
        shutdown(a, SHUT_WR);
    }
    static unsigned char block[BLOCK];
    for (int i = 0; i < BLOCK; i++)
        block[i] = (unsigned char)(i * 7 + i / 251);
    write_all(s, block, BLOCK);
    /* The peer's FIN in, and acknowledged: the states are then the same every run. */
    for (int i = 0; i < 400 && (state(s) != TCP_CLOSE_WAIT || (self && state(a) != TCP_FIN_WAIT2)); i++)
        pace_ms(5);

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        char line[32];
        read_line(s, line, sizeof line, step);
        chain = fnv1a_str(chain, line);
        chain = fnv1a_u64(chain, (uint64_t)state(s) << 8 | (uint64_t)state(a));
        if (c >= 0) {
            struct pollfd p = { .fd = c, .events = POLLIN | POLLRDHUP };
            chain = fnv1a_u64(chain, poll(&p, 1, 0) == 1 ? (uint64_t)p.revents : 0);
        }
        step_line(step, chain);
        pace_ms(50);
    }
    char end;
    ssize_t r = read(s, &end, 1);
    emit("the stream ends: read returned %zd (errno %d)\n", r, r < 0 ? errno : 0);
    write_all(s, "bye", 3);
    shutdown(s, SHUT_WR);
    if (self) {
        static unsigned char got[BLOCK + 16];
        size_t have = 0;
        for (;;) {
            ssize_t k = read(a, got + have, sizeof got - have);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                emit("the peer read %zu bytes, then %zd (errno %d)\n", have, k, k < 0 ? errno : 0);
                break;
            }
            have += (size_t)k;
        }
        int whole = have == BLOCK + 3 && memcmp(got, block, BLOCK) == 0 && memcmp(got + BLOCK, "bye", 3) == 0;
        emit("the peer got %s\n", whole ? "the block and bye" : "something else");
    }
    done_line(chain);
    return 0;
}

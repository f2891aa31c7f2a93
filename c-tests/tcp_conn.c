/*
 * tcp_conn.c PORT [STEPS] - a TCP connection to a peer outside the process (the test,
 * listening on 127.0.0.1:PORT), with bytes in both of its kernel queues (issue 15:
 * established connections come back intact with repair mode).
 *
 * Connected, it sends BLOCK bytes of a pattern at once, which the peer reads only at
 * the end (its receive buffer is small: most of them wait in this process's send
 * queue). The peer sends the lines "1".."STEPS" at once; each step reads one line, a
 * byte at a time (the others wait in this process's receive queue), and prints
 * `step <n> <digest>` over the lines read; then `done <digest>`, and it closes the
 * connection. The peer checks that the pattern arrived whole.
 */
#include "common.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define BLOCK (64 * 1024)

int main(int argc, char **argv)
{
    if (argc < 2)
        fail("usage: tcp_conn PORT [STEPS]");
    int port = atoi(argv[1]);
    int steps = steps_arg(argc - 1, argv + 1, 30);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int sndbuf = 256 * 1024;
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf))
        fail_errno("socket");
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(s, (struct sockaddr *)&a, sizeof a))
        fail_errno("connect");
    static unsigned char block[BLOCK];
    for (int i = 0; i < BLOCK; i++)
        block[i] = (unsigned char)(i * 7 + i / 251);
    write_all(s, block, BLOCK);

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        char line[32];
        size_t n = 0;
        for (;;) {
            char c;
            ssize_t r = read(s, &c, 1);
            if (r < 0 && errno == EINTR)
                continue;
            if (r != 1)
                fail("step %d: read returned %zd (errno %d)", step, r, r < 0 ? errno : 0);
            if (c == '\n')
                break;
            if (n < sizeof line - 1)
                line[n++] = c;
        }
        line[n] = 0;
        if (atoi(line) != step)
            emit("step %d: read the line \"%s\"\n", step, line);
        chain = fnv1a_str(chain, line);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    close(s);
    return 0;
}

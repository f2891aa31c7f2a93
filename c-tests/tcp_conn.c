/*
 * tcp_conn.c PORT|self|self6|fork [STEPS] - a TCP connection with bytes in both of
 * its kernel queues (issue 15: established connections come back intact with repair
 * mode). PORT: to a peer outside the process (the test, listening on
 * 127.0.0.1:PORT); `self` (`self6`: over IPv6): to a listener of its own on
 * 127.0.0.1 (::1), whose accepted end is the peer, both ends in the process; `fork`:
 * as `self`, then a child takes the connecting end and does the steps, the parent
 * keeps the peer's, waits for the child and checks the block.
 *
 * Connected, it sends BLOCK bytes of a pattern at once, which the peer reads only at
 * the end (its receive buffer is small: most of them wait in this process's send
 * queue). The peer sends the lines "1".."STEPS" at once; each step reads one line, a
 * byte at a time (the others wait in this process's receive queue), and prints
 * `step <n> <digest>` over the lines read; then `done <digest>`, and it closes the
 * connection. The peer checks that the pattern arrived whole (its own end, with
 * `self`: a line says where it differs).
 */
#include "common.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define BLOCK (64 * 1024)

/* Reads the block from `peer` and compares it; folds where it differs into `chain`. */
static uint64_t check_block(int peer, const unsigned char *block, uint64_t chain)
{
    static unsigned char got[BLOCK];
    size_t n = 0;
    while (n < BLOCK) {
        ssize_t r = read(peer, got + n, BLOCK - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            fail("the peer read %zu bytes of the block, then %zd (errno %d)", n, r, r < 0 ? errno : 0);
        n += (size_t)r;
    }
    for (size_t i = 0; i < BLOCK; i++)
        if (got[i] != block[i]) {
            emit("the block differs from byte %zu\n", i);
            return fnv1a_u64(chain, i);
        }
    return chain;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        fail("usage: tcp_conn PORT|self|self6 [STEPS]");
    int forked = strcmp(argv[1], "fork") == 0;
    int self = forked || strncmp(argv[1], "self", 4) == 0, v6 = strcmp(argv[1], "self6") == 0;
    int steps = steps_arg(argc - 1, argv + 1, 30);
    int domain = v6 ? AF_INET6 : AF_INET;
    struct sockaddr_storage to = { 0 };
    socklen_t to_len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&to;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&to;
        a->sin_family = AF_INET;
        a->sin_port = self ? 0 : htons(atoi(argv[1]));
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    int listener = -1, peer = -1;
    if (self) {
        /* The peer's small receive buffer, inherited from its listener. */
        int small = 4096;
        listener = socket(domain, SOCK_STREAM, 0);
        if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) || bind(listener, (struct sockaddr *)&to, to_len) ||
            listen(listener, 1) || getsockname(listener, (struct sockaddr *)&to, &to_len))
            fail_errno("listener");
    }
    int s = socket(domain, SOCK_STREAM, 0);
    int sndbuf = 256 * 1024;
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf))
        fail_errno("socket");
    if (connect(s, (struct sockaddr *)&to, to_len))
        fail_errno("connect");
    static unsigned char block[BLOCK];
    for (int i = 0; i < BLOCK; i++)
        block[i] = (unsigned char)(i * 7 + i / 251);
    if (self) {
        if ((peer = accept(listener, NULL, NULL)) < 0)
            fail_errno("accept");
        for (int i = 1; i <= steps; i++) {
            char line[16];
            int n = snprintf(line, sizeof line, "%d\n", i);
            write_all(peer, line, n);
        }
    }
    write_all(s, block, BLOCK);
    if (forked) {
        pid_t child = fork();
        if (child < 0)
            fail_errno("fork");
        if (child > 0) {
            close(s);
            int st;
            while (waitpid(child, &st, 0) < 0)
                if (errno != EINTR)
                    fail_errno("waitpid");
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail("the child ended with status %#x", st);
            done_line(check_block(peer, block, FNV_OFFSET));
            return 0;
        }
        close(peer);
        close(listener);
    }

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        char line[32];
        read_line(s, line, sizeof line, step);
        if (atoi(line) != step)
            emit("step %d: read the line \"%s\"\n", step, line);
        chain = fnv1a_str(chain, line);
        step_line(step, chain);
        pace_ms(50);
    }
    if (forked)
        exit(0);
    if (self)
        chain = check_block(peer, block, chain);
    done_line(chain);
    close(s);
    return 0;
}

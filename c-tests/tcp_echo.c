/*
 * tcp_echo.c [noreuse] - a single-threaded poll() echo server on a TCP and a
 * UNIX listener, driven by the test (a client in tests/fds.rs).
 *
 * Descriptors: 3 the TCP listener (127.0.0.1, port chosen by the kernel,
 * SO_REUSEADDR unless `noreuse`), 4 the UNIX listener (echo.sock in the cwd), then one per
 * client. Once both listen, the port is written to the file `port` in the cwd
 * (written aside and renamed; never printed). Every line a client sends is
 * echoed back to it (send with MSG_NOSIGNAL) and counted; the line "quit"
 * gets "bye" and ends the server; the line "close" gets "bye" and the server
 * closes that connection first (its end then lingers in TIME_WAIT).
 *
 * Standard output (deterministic for a given client script):
 *   conn <k> tcp|unix     client k (1, 2, ...) accepted
 *   step <n> <digest>     request n echoed (digest: n, client, kind, the line)
 *   closed <k>            client k seen closed (read 0 or an error such as
 *                         ECONNRESET, or a failed echo) and its descriptor closed;
 *                         for a UNIX client a write must then fail with EPIPE
 *   done <digest>         after "quit" (digest over every request)
 * Clients are served in the order they were accepted. poll() waits at most
 * 10 s: an idle server FAILs instead of hanging a broken test.
 */
#include "common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#define MAXC 16
#define LINE 1024

struct client {
    int fd;
    int serial;
    int unix_kind;
    size_t have;
    char buf[LINE];
};

static struct client clients[MAXC];
static int nclients, serials, requests;
static uint64_t all = FNV_OFFSET;

static void drop(int i)
{
    close(clients[i].fd);
    emit("closed %d\n", clients[i].serial);
    memmove(&clients[i], &clients[i + 1], (size_t)(nclients - i - 1) * sizeof clients[0]);
    nclients--;
}

static void accept_on(int l, int unix_kind)
{
    int fd;
    do
        fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        fail_errno("accept4");
    if (nclients == MAXC)
        fail("too many clients");
    struct client *c = &clients[nclients++];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->serial = ++serials;
    c->unix_kind = unix_kind;
    emit("conn %d %s\n", c->serial, unix_kind ? "unix" : "tcp");
}

static void reply(struct client *c, const char *text, size_t len, int *dead)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(c->fd, text + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            *dead = 1;
            return;
        }
        off += (size_t)w;
    }
}

/* Reads what client i sent; returns 1 when it was dropped. */
static int serve(int i)
{
    struct client *c = &clients[i];
    ssize_t r;
    do
        r = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0 && errno == EAGAIN)
        return 0;
    if (r <= 0) {
        /* A UNIX peer that is gone (or a connection that came back reset) must
         * refuse writes with EPIPE. (Over TCP the first write after a FIN may
         * still succeed, so it is not tried there.) */
        if (c->unix_kind) {
            ssize_t w = write(c->fd, "x", 1);
            if (w >= 0 || errno != EPIPE)
                fail("client %d: write after it hung up returned %zd (%s)", c->serial, w,
                     w < 0 ? strerror(errno) : "written");
        }
        drop(i);
        return 1;
    }
    c->have += (size_t)r;
    char *nl;
    int dead = 0;
    while (!dead && (nl = memchr(c->buf, '\n', c->have)) != NULL) {
        size_t len = (size_t)(nl - c->buf) + 1;
        if (len == 5 && memcmp(c->buf, "quit\n", 5) == 0) {
            reply(c, "bye\n", 4, &dead);
            done_line(all);
            exit(0);
        }
        if (len == 6 && memcmp(c->buf, "close\n", 6) == 0) {
            reply(c, "bye\n", 4, &dead);
            drop(i);
            return 1;
        }
        reply(c, c->buf, len, &dead);
        if (!dead) {
            requests++;
            uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)requests);
            d = fnv1a_u64(d, (uint64_t)c->serial);
            d = fnv1a_u64(d, (uint64_t)c->unix_kind);
            d = fnv1a(d, c->buf, len);
            all = fnv1a_u64(all, d);
            step_line(requests, d);
        }
        memmove(c->buf, c->buf + len, c->have - len);
        c->have -= len;
    }
    if (c->have == sizeof c->buf)
        fail("line too long from client %d", c->serial);
    if (dead) {
        drop(i);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int reuse = !(argc > 1 && strcmp(argv[1], "noreuse") == 0);
    signal(SIGPIPE, SIG_IGN); /* MSG_NOSIGNAL as well: belt and braces */

    int tl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (tl < 0)
        fail_errno("socket");
    int one = 1;
    if (reuse && setsockopt(tl, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        fail_errno("SO_REUSEADDR");
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = 0 };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(tl, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(tl, 8) != 0)
        fail_errno("bind/listen 127.0.0.1:0");
    socklen_t sl = sizeof sin;
    if (getsockname(tl, (struct sockaddr *)&sin, &sl) != 0)
        fail_errno("getsockname");

    int ul = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ul < 0)
        fail_errno("socket");
    struct sockaddr_un sun = { .sun_family = AF_UNIX, .sun_path = "echo.sock" };
    unlink("echo.sock");
    if (bind(ul, (struct sockaddr *)&sun, sizeof sun) != 0 || listen(ul, 8) != 0)
        fail_errno("bind/listen echo.sock");

    FILE *f = fopen("port.tmp", "w");
    if (!f || fprintf(f, "%u\n", ntohs(sin.sin_port)) < 0 || fclose(f) != 0 || rename("port.tmp", "port") != 0)
        fail_errno("writing the port file");

    for (;;) {
        struct pollfd pf[2 + MAXC];
        pf[0] = (struct pollfd){ tl, POLLIN, 0 };
        pf[1] = (struct pollfd){ ul, POLLIN, 0 };
        for (int i = 0; i < nclients; i++)
            pf[2 + i] = (struct pollfd){ clients[i].fd, POLLIN, 0 };
        int n = nclients;
        int r = poll(pf, (nfds_t)(2 + n), 10000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            fail_errno("poll");
        if (r == 0)
            fail("idle for 10 s");
        /* Clients first, in accept order (indices shift as clients go). */
        int gone = 0;
        for (int i = 0; i < n; i++) {
            if (pf[2 + i].revents & (POLLNVAL))
                fail("client %d: descriptor not open", clients[i - gone].serial);
            if (pf[2 + i].revents)
                gone += serve(i - gone);
        }
        if (pf[0].revents & POLLIN)
            accept_on(tl, 0);
        if (pf[1].revents & POLLIN)
            accept_on(ul, 1);
        if ((pf[0].revents | pf[1].revents) & ~POLLIN)
            fail("listener revents %#x %#x", pf[0].revents, pf[1].revents);
    }
}

/*
 * dgram_queue.c [STEPS] [pending] - datagrams queued on bound datagram sockets come
 * back with their senders' addresses, whether the sender is gone or still there
 * (issue 15).
 *
 * Before the first step, queued and not received:
 * - on a UNIX datagram socket bound to recv.sock: "one" and "two" from a socket
 *   bound to gone.sock (closed and its file removed since), "anon" from an unnamed
 *   socket, "live" from a socket bound to alive.sock, which the process keeps;
 * - on a UNIX datagram socket bound to an abstract name: "abs" from a socket bound
 *   to another abstract name, closed since;
 * - on a UDP socket bound to 127.0.0.1 (a port the kernel chose): "udp" from a UDP
 *   socket bound to 127.0.0.1 (closed since).
 * Each step before STEPS/2 peeks that the first datagram is there; at STEPS/2 all are
 * received and checked, bytes and sender address. The step line folds in a bit mask
 * of what differed.
 * With `pending`, a UNIX listener (listen.sock) also has a connection from the process
 * itself that it never accepts: a checkpoint cannot save it, and says so.
 */
#include "common.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static socklen_t unix_addr(struct sockaddr_un *a, const char *name, int abstract)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t len = strlen(name);
    memcpy(a->sun_path + (abstract ? 1 : 0), name, len);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (abstract ? 1 : 1));
}

static int unix_dgram(const char *name, int abstract)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0)
        fail_errno("socket");
    if (name) {
        struct sockaddr_un a;
        socklen_t len = unix_addr(&a, name, abstract);
        if (!abstract)
            unlink(name);
        if (bind(fd, (struct sockaddr *)&a, len) != 0)
            fail_errno("bind");
    }
    return fd;
}

static void send_to(int fd, const char *text, const struct sockaddr *to, socklen_t len)
{
    if (sendto(fd, text, strlen(text), 0, to, len) != (ssize_t)strlen(text))
        fail_errno("sendto");
}

/* Receives one datagram; whether it is `want` from the address `from` (`from_len`
 * bytes; NULL: an unnamed sender, whose address has no bytes). */
static int got(int fd, const char *want, const void *from, socklen_t from_len)
{
    char buf[64];
    struct sockaddr_storage a;
    socklen_t alen = sizeof a;
    ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&a, &alen);
    if (n != (ssize_t)strlen(want) || memcmp(buf, want, (size_t)n) != 0)
        return 0;
    return alen == from_len && (!from || memcmp(&a, from, from_len) == 0);
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    char abs_recv[64], abs_send[64];
    snprintf(abs_recv, sizeof abs_recv, "mig-dgram-recv-%d", (int)getpid());
    snprintf(abs_send, sizeof abs_send, "mig-dgram-send-%d", (int)getpid());
    struct sockaddr_un to_r, to_a, from_gone, from_alive, from_abs;
    socklen_t to_r_len = unix_addr(&to_r, "recv.sock", 0), to_a_len = unix_addr(&to_a, abs_recv, 1);
    socklen_t gone_len = unix_addr(&from_gone, "gone.sock", 0), alive_len = unix_addr(&from_alive, "alive.sock", 0);
    socklen_t abs_len = unix_addr(&from_abs, abs_send, 1);
    int r = unix_dgram("recv.sock", 0), a = unix_dgram(abs_recv, 1);
    int gone = unix_dgram("gone.sock", 0), anon = unix_dgram(NULL, 0), alive = unix_dgram("alive.sock", 0), abs = unix_dgram(abs_send, 1);
    send_to(gone, "one", (struct sockaddr *)&to_r, to_r_len);
    send_to(gone, "two", (struct sockaddr *)&to_r, to_r_len);
    send_to(anon, "anon", (struct sockaddr *)&to_r, to_r_len);
    send_to(alive, "live", (struct sockaddr *)&to_r, to_r_len);
    send_to(abs, "abs", (struct sockaddr *)&to_a, to_a_len);
    close(gone);
    unlink("gone.sock");
    close(anon);
    close(abs);

    int u = socket(AF_INET, SOCK_DGRAM, 0), us = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to_u = { .sin_family = AF_INET }, from_u = { .sin_family = AF_INET };
    to_u.sin_addr.s_addr = from_u.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t ul = sizeof to_u, usl = sizeof from_u;
    if (u < 0 || us < 0 || bind(u, (struct sockaddr *)&to_u, ul) || bind(us, (struct sockaddr *)&from_u, usl) ||
        getsockname(u, (struct sockaddr *)&to_u, &ul) || getsockname(us, (struct sockaddr *)&from_u, &usl))
        fail_errno("udp sockets");
    send_to(us, "udp", (struct sockaddr *)&to_u, ul);
    close(us);

    if (argc > 2 && strcmp(argv[2], "pending") == 0) {
        int l = socket(AF_UNIX, SOCK_STREAM, 0), c = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un la;
        socklen_t ll = unix_addr(&la, "listen.sock", 0);
        unlink("listen.sock");
        if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&la, ll) || listen(l, 4) || connect(c, (struct sockaddr *)&la, ll))
            fail_errno("listener");
    }

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = 0;
        char buf[8];
        if (step < steps / 2) {
            if (recv(r, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT) != 3 || memcmp(buf, "one", 3) != 0)
                bad |= 1;
        } else if (step == steps / 2) {
            if (!got(r, "one", &from_gone, gone_len))
                bad |= 2;
            if (!got(r, "two", &from_gone, gone_len))
                bad |= 4;
            if (!got(r, "anon", NULL, 0))
                bad |= 8;
            if (!got(r, "live", &from_alive, alive_len))
                bad |= 16;
            if (!got(a, "abs", &from_abs, abs_len))
                bad |= 32;
            if (!got(u, "udp", &from_u, usl))
                bad |= 64;
            errno = 0;
            if (recv(r, buf, sizeof buf, MSG_DONTWAIT) != -1 || errno != EAGAIN)
                bad |= 128;
            /* The sender that stayed can still send. */
            send_to(alive, "more", (struct sockaddr *)&to_r, to_r_len);
            if (!got(r, "more", &from_alive, alive_len))
                bad |= 256;
        }
        if (bad)
            emit("step %d: queued datagrams differ: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 41 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

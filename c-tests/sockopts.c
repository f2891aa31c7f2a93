/*
 * sockopts.c - socket options come back as they were.
 *
 * A TCP listener on 127.0.0.1 (port from the kernel) with SO_RCVBUF 100000,
 * SO_SNDBUF 60000, SO_LINGER on for 7 s, SO_KEEPALIVE with TCP_KEEPIDLE 77,
 * TCP_KEEPINTVL 11 and TCP_KEEPCNT 5, TCP_NODELAY, and SO_REUSEADDR off; a UDP
 * socket with SO_BROADCAST and IP_FREEBIND, bound to 127.0.0.1; and a TCP
 * connection to a second listener (SO_REUSEADDR on: its port can be bound again
 * while the killed connection lingers), both ends in the process (a restore brings
 * them back whole with repair mode as root, else reset, but TCP sockets still:
 * SO_DOMAIN AF_INET). Right after
 * setting them it reads every option back (the kernel doubles buffer sizes); every
 * step it reads them again and compares. The step line folds in a bit mask of the
 * options that differ (0 when none does), and a line names it.
 */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

struct opt {
    int *fd, level, name;
};

static int tcp, udp, aux, client, served;
static const struct opt opts[] = {
    { &tcp, SOL_SOCKET, SO_RCVBUF },      { &tcp, SOL_SOCKET, SO_SNDBUF },       { &tcp, SOL_SOCKET, SO_KEEPALIVE },
    { &tcp, IPPROTO_TCP, TCP_KEEPIDLE },  { &tcp, IPPROTO_TCP, TCP_KEEPINTVL }, { &tcp, IPPROTO_TCP, TCP_KEEPCNT },
    { &tcp, IPPROTO_TCP, TCP_NODELAY },   { &tcp, SOL_SOCKET, SO_REUSEADDR },   { &tcp, SOL_SOCKET, SO_ACCEPTCONN },
    { &udp, SOL_SOCKET, SO_BROADCAST },   { &udp, IPPROTO_IP, IP_FREEBIND },    { &udp, SOL_SOCKET, SO_RCVBUF },
    { &client, SOL_SOCKET, SO_DOMAIN },   { &served, SOL_SOCKET, SO_DOMAIN },   { &client, SOL_SOCKET, SO_TYPE },
};
#define NOPTS (int)(sizeof opts / sizeof opts[0])

static int get(const struct opt *o)
{
    int v = -1;
    socklen_t len = sizeof v;
    if (getsockopt(*o->fd, o->level, o->name, &v, &len) != 0)
        return -1;
    return v;
}

static void set(int fd, int level, int name, int v)
{
    if (setsockopt(fd, level, name, &v, sizeof v) != 0)
        fail_errno("setsockopt");
}

static void bind_local(int fd)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_errno("bind");
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    tcp = socket(AF_INET, SOCK_STREAM, 0);
    udp = socket(AF_INET, SOCK_DGRAM, 0);
    if (tcp < 0 || udp < 0)
        fail_errno("socket");
    set(tcp, SOL_SOCKET, SO_RCVBUF, 100000);
    set(tcp, SOL_SOCKET, SO_SNDBUF, 60000);
    struct linger l = { 1, 7 };
    if (setsockopt(tcp, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0)
        fail_errno("SO_LINGER");
    set(tcp, SOL_SOCKET, SO_KEEPALIVE, 1);
    set(tcp, IPPROTO_TCP, TCP_KEEPIDLE, 77);
    set(tcp, IPPROTO_TCP, TCP_KEEPINTVL, 11);
    set(tcp, IPPROTO_TCP, TCP_KEEPCNT, 5);
    set(tcp, IPPROTO_TCP, TCP_NODELAY, 1);
    set(tcp, SOL_SOCKET, SO_REUSEADDR, 0);
    bind_local(tcp);
    if (listen(tcp, 8) != 0)
        fail_errno("listen");
    struct sockaddr_in at;
    socklen_t at_len = sizeof at;
    aux = socket(AF_INET, SOCK_STREAM, 0);
    client = socket(AF_INET, SOCK_STREAM, 0);
    if (aux < 0 || client < 0)
        fail_errno("socket");
    set(aux, SOL_SOCKET, SO_REUSEADDR, 1);
    bind_local(aux);
    if (listen(aux, 1) != 0 || getsockname(aux, (struct sockaddr *)&at, &at_len) != 0 || connect(client, (struct sockaddr *)&at, at_len) != 0)
        fail_errno("connect");
    served = accept(aux, NULL, NULL);
    if (served < 0)
        fail_errno("accept");
    set(udp, SOL_SOCKET, SO_BROADCAST, 1);
    set(udp, IPPROTO_IP, IP_FREEBIND, 1);
    bind_local(udp);
    int want[NOPTS];
    for (int i = 0; i < NOPTS; i++)
        want[i] = get(&opts[i]);
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = 0;
        for (int i = 0; i < NOPTS; i++)
            if (get(&opts[i]) != want[i])
                bad |= 1u << i;
        struct linger now = { 0, 0 };
        socklen_t len = sizeof now;
        if (getsockopt(tcp, SOL_SOCKET, SO_LINGER, &now, &len) != 0 || now.l_onoff != 1 || now.l_linger != 7)
            bad |= 1u << NOPTS;
        if (bad)
            emit("step %d: socket options changed: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 131 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

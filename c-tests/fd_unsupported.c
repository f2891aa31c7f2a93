/*
 * fd_unsupported.c - descriptors mig cannot restore, next to one it can.
 *
 * Descriptor 3 is an AF_NETLINK (NETLINK_ROUTE) socket, 4 a pidfd of the
 * process itself (pidfd_open: made again for the restored process), 5 and 6 a
 * pipe that carries a few bytes from each step to the next. A checkpoint must
 * name 3 in a warning (not the pidfd nor the pipe), and must neither crash nor
 * stop the program.
 *
 * After the last step the program tries both: an RTM_GETLINK dump request
 * written to the netlink socket must be answered (poll, at most 2 s), and
 * pidfd_send_signal(fd, 0) must succeed. The done line says what happened:
 *   done <digest> netlink-works|netlink-broken pidfd-works|pidfd-broken
 * "broken" means the call failed or saw end of file, without blocking and
 * without a crash (a restored process gets broken pipe ends for them). SIGPIPE
 * is ignored. The steps and the digest do not depend on either.
 */
#include "common.h"
#include "fd_common.h"

#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>

static int netlink_works(int nl)
{
    struct {
        struct nlmsghdr h;
        struct rtgenmsg g;
    } req;
    memset(&req, 0, sizeof req);
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = RTM_GETLINK;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = 1;
    req.g.rtgen_family = AF_UNSPEC;
    ssize_t w;
    do
        w = write(nl, &req, sizeof req);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)sizeof req) {
        fprintf(stderr, "netlink write: %zd (%s)\n", w, w < 0 ? strerror(errno) : "short");
        return 0;
    }
    struct pollfd pf = { nl, POLLIN, 0 };
    int r;
    do
        r = poll(&pf, 1, 2000);
    while (r < 0 && errno == EINTR);
    if (r != 1 || !(pf.revents & POLLIN)) {
        fprintf(stderr, "netlink poll: %d revents %#x\n", r, r == 1 ? pf.revents : 0);
        return 0;
    }
    static char buf[65536];
    ssize_t n;
    do
        n = read(nl, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    if (n < (ssize_t)sizeof(struct nlmsghdr)) {
        fprintf(stderr, "netlink read: %zd (%s)\n", n, n < 0 ? strerror(errno) : "short");
        return 0;
    }
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    return h->nlmsg_seq == 1 && (h->nlmsg_type == RTM_NEWLINK || h->nlmsg_type == NLMSG_DONE);
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    fd_baseline();
    signal(SIGPIPE, SIG_IGN);
    int nl = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
    if (nl < 0)
        fail_errno("socket AF_NETLINK");
    int pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (pfd < 0)
        fail_errno("pidfd_open");
    int p[2];
    if (pipe(p) != 0)
        fail_errno("pipe");

    uint64_t chain = FNV_OFFSET;
    unsigned char carried = 0;
    for (int s = 1; s <= steps; s++) {
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);
        int mine[] = { nl, pfd, p[0], p[1] };
        check_open_fds(mine, 4);
        if (s > 1) {
            unsigned char c;
            ssize_t r;
            do
                r = read(p[0], &c, 1);
            while (r < 0 && errno == EINTR);
            if (r != 1 || c != carried)
                fail("pipe: read %zd, byte %u, expected %u", r, r == 1 ? c : 0, carried);
            d = fnv1a(d, &c, 1);
        }
        carried = (unsigned char)(s * 37);
        write_all(p[1], &carried, 1);
        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(50);
    }
    int nl_ok = netlink_works(nl);
    int pid_ok = syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0) == 0;
    if (!pid_ok)
        fprintf(stderr, "pidfd_send_signal: %s\n", strerror(errno));
    emit("done %016llx netlink-%s pidfd-%s\n", (unsigned long long)chain, nl_ok ? "works" : "broken",
         pid_ok ? "works" : "broken");
    return 0;
}

/*
 * epoll_orphan.c [STEPS] - an epoll registration whose descriptor number was closed
 * while its file lives on through another descriptor (issue 15): the kernel keeps the
 * registration, and so must a restore.
 *
 * A pipe's read end is registered (data 7), copied (dup), and closed: the copy is
 * registered too (data 8). Each step writes a byte into the pipe: one epoll_wait must
 * report both registrations, readable; the byte is then read through the copy. The
 * step line folds in a bit mask of what differed.
 */
#include "common.h"
#include <sys/epoll.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int p[2];
    int ep = epoll_create1(0);
    if (ep < 0 || pipe(p) != 0)
        fail_errno("epoll_create1, pipe");
    struct epoll_event a = { .events = EPOLLIN, .data.u64 = 7 }, b = { .events = EPOLLIN, .data.u64 = 8 };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &a) != 0)
        fail_errno("epoll_ctl");
    int copy = dup(p[0]);
    close(p[0]);
    if (copy < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, copy, &b) != 0)
        fail_errno("dup, epoll_ctl");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = 0;
        write_all(p[1], "x", 1);
        struct epoll_event ev[4];
        int n = epoll_wait(ep, ev, 4, 1000);
        uint64_t seen = 0;
        for (int i = 0; i < n; i++)
            if (ev[i].events & EPOLLIN)
                seen |= 1u << ev[i].data.u64;
        if (n != 2 || seen != ((1u << 7) | (1u << 8)))
            bad |= 1;
        char c;
        if (read(copy, &c, 1) != 1 || c != 'x')
            bad |= 2;
        if (epoll_wait(ep, ev, 4, 0) != 0)
            bad |= 4;
        if (bad)
            emit("step %d: the epoll set is not as it was: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 67 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

/*
 * epoll_order.c - the order in which a level-triggered epoll set reports ready
 * descriptors, across a checkpoint.
 *
 * usage: epoll_order [STEPS]
 *
 * Before step 1: four pipes, their read ends registered in order 0..3 (data = index,
 * level-triggered); bytes written to pipes 2, 0 and 3, in that order (pipe 1 stays
 * empty). The kernel keeps ready descriptors in the order they became ready, and a
 * level-triggered report puts each back at the end, so every `epoll_wait` of 3 events
 * reports 2, 0, 3. Each step the program asks for one event at a time three times (the
 * order turns: each report moves the reported one to the end) and prints `step N
 * <digest>` of the data it got, so any other order after a restore shows.
 */
#include "common.h"
#include <sys/epoll.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int ep = epoll_create1(0), p[4][2];
    if (ep < 0)
        fail_errno("epoll_create1");
    for (int i = 0; i < 4; i++) {
        if (pipe(p[i]) != 0)
            fail_errno("pipe");
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)i };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, p[i][0], &ev) != 0)
            fail_errno("epoll_ctl");
    }
    int order[3] = { 2, 0, 3 };
    for (int i = 0; i < 3; i++)
        write_all(p[order[i]][1], "x", 1);
    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        for (int k = 0; k < 3; k++) {
            struct epoll_event ev;
            if (epoll_wait(ep, &ev, 1, 0) != 1)
                fail("no ready descriptor at step %d", s);
            chain = fnv1a_u64(chain, ev.data.u64);
        }
        step_line(s, chain);
        pace_ms(30);
    }
    done_line(chain);
    return 0;
}

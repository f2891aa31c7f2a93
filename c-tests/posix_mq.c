/*
 * posix_mq.c [STEPS] - POSIX message queues come back with their attributes and
 * messages (issue 15).
 *
 * Queue /mig-mq-<pid> (8 messages of 64 bytes at most, mode 0640) holds "low"
 * (priority 1) and "high" (priority 5); the process holds it read-write and, through
 * a second open, write-only. Another queue (4 of 32 bytes), opened read-write and
 * non-blocking, holds "nameless" and had its name removed (mq_unlink). Each step
 * checks both queues' attributes and message counts; at STEPS/2 it receives every
 * message (highest priority first), checks them, and sends them again. The last step
 * removes the named queue. The step line folds in a bit mask of what differed.
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <string.h>
#include <sys/stat.h>

static int has(mqd_t q, long maxmsg, long msgsize, long cur, int nonblock)
{
    struct mq_attr a;
    return mq_getattr(q, &a) == 0 && a.mq_maxmsg == maxmsg && a.mq_msgsize == msgsize && a.mq_curmsgs == cur &&
           !!(a.mq_flags & O_NONBLOCK) == nonblock;
}

static int takes(mqd_t q, const char *want, unsigned prio)
{
    char buf[64];
    unsigned p = 0;
    ssize_t n = mq_receive(q, buf, sizeof buf, &p);
    return n == (ssize_t)strlen(want) && memcmp(buf, want, (size_t)n) == 0 && p == prio;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    char name[64], other[64];
    snprintf(name, sizeof name, "/mig-mq-%d", (int)getpid());
    snprintf(other, sizeof other, "/mig-mq-%d-nameless", (int)getpid());
    mq_unlink(name);
    mq_unlink(other);
    struct mq_attr at = { .mq_maxmsg = 8, .mq_msgsize = 64 }, ot = { .mq_maxmsg = 4, .mq_msgsize = 32 };
    umask(0);
    mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0640, &at);
    mqd_t w = mq_open(name, O_WRONLY);
    mqd_t n = mq_open(other, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0600, &ot);
    if (q < 0 || w < 0 || n < 0)
        fail_errno("mq_open");
    mq_unlink(other);
    if (mq_send(q, "low", 3, 1) || mq_send(w, "high", 4, 5) || mq_send(n, "nameless", 8, 0))
        fail_errno("mq_send");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = 0;
        if (!has(q, 8, 64, 2, 0))
            bad |= 1;
        if (!has(n, 4, 32, 1, 1))
            bad |= 2;
        if (step == steps / 2) {
            if (!takes(q, "high", 5))
                bad |= 4;
            if (!takes(q, "low", 1))
                bad |= 8;
            if (!takes(n, "nameless", 0))
                bad |= 16;
            if (mq_send(w, "low", 3, 1) || mq_send(q, "high", 4, 5) || mq_send(n, "nameless", 8, 0))
                fail_errno("mq_send");
        }
        struct stat st;
        if (fstat(q, &st) != 0 || (st.st_mode & 0777) != 0640)
            bad |= 32;
        if (bad)
            emit("step %d: the message queues are not as they were: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 53 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    mq_unlink(name);
    done_line(chain);
    return 0;
}

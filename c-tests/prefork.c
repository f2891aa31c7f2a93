/*
 * prefork.c - a pre-forked server: the parent listens on a TCP socket (127.0.0.1, a
 * port the kernel picks) and forks two workers that accept on that one socket; an
 * eventfd made before the fork counts the requests served (issue 16: a descriptor
 * inherited across fork is one open file description again, a listener too: the
 * workers do not each bind the port again).
 *
 * usage: prefork [STEPS]
 *
 * Each step the parent connects, sends a number and reads the worker's answer (the
 * number squared, mixed), whichever worker took the connection; the worker adds 1 to
 * the eventfd. The parent reads the eventfd (it must say 1: one request served) and
 * folds the answer into `step N <digest>`. At the end it ends the workers and reaps
 * them.
 */
#include "common.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

static void worker(int listener, int served)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    for (;;) {
        int c = accept(listener, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            fail_errno("worker: accept");
        }
        uint64_t x;
        ssize_t n;
        while ((n = read(c, &x, sizeof x)) < 0 && errno == EINTR) {
        }
        if (n != (ssize_t)sizeof x)
            fail("worker: a short request");
        x = x * x ^ 0x5bd1e995;
        uint64_t one = 1;
        /* Counted before the answer: the parent reads the count once answered. */
        if (write(served, &one, sizeof one) != (ssize_t)sizeof one)
            fail_errno("worker: eventfd");
        write_all(c, &x, sizeof x);
        close(c);
    }
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof a) || listen(listener, 16) || getsockname(listener, (struct sockaddr *)&a, &len))
        fail_errno("listening");
    int served = eventfd(0, 0);
    if (served < 0)
        fail_errno("eventfd");
    pid_t workers[2];
    for (int i = 0; i < 2; i++) {
        workers[i] = fork();
        if (workers[i] < 0)
            fail_errno("fork");
        if (workers[i] == 0)
            worker(listener, served);
    }
    uint64_t rng = 0x9e3779b97f4a7c15ULL, chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0)
            fail_errno("socket");
        while (connect(c, (struct sockaddr *)&a, sizeof a) != 0) {
            if (errno != EINTR)
                fail_errno("connect");
        }
        uint64_t x = xorshift64(&rng), y = 0, count = 0;
        write_all(c, &x, sizeof x);
        ssize_t n;
        while ((n = read(c, &y, sizeof y)) < 0 && errno == EINTR) {
        }
        if (n != (ssize_t)sizeof y || y != (x * x ^ 0x5bd1e995))
            fail("step %d: a wrong answer", s);
        /* Until the worker closed its end: no connection is open between steps, when
         * the checkpoint comes. */
        char end;
        while ((n = read(c, &end, 1)) < 0 && errno == EINTR) {
        }
        if (n != 0)
            fail("step %d: more than the answer", s);
        close(c);
        while ((n = read(served, &count, sizeof count)) < 0 && errno == EINTR) {
        }
        if (n != (ssize_t)sizeof count || count != 1)
            fail("step %d: the eventfd counted %llu requests, not 1", s, (unsigned long long)count);
        chain = fnv1a_u64(chain, y);
        step_line(s, chain);
        /* Longer than a checkpoint of the job takes on a busy machine: the next
         * connection (between two processes of the job, which would come back reset)
         * is not open yet when it comes. */
        pace_ms(120);
    }
    for (int i = 0; i < 2; i++) {
        int st;
        kill(workers[i], SIGTERM);
        if (waitpid(workers[i], &st, 0) != workers[i] || !WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
            fail("worker %d did not end as asked", i);
    }
    done_line(chain);
    return 0;
}

/*
 * session_job.c - a job in a session of its own, as a batch system starts one: the
 * root calls setsid() and starts two children that run until they are signalled
 * (issue 16: process groups and sessions come back; one signal to the group reaches
 * the whole restored job).
 *
 * usage: session_job [STEPS]
 *
 * The root prints `step N <digest>` at a 40 ms pace, checking each time that it leads
 * its session and that its children are in its group; the children only wait. At the
 * end the root ends each child with SIGTERM, reaps it (its status must be that) and
 * prints `done`.
 */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    if (setsid() < 0)
        fail_errno("setsid");
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        if (kids[i] < 0)
            fail_errno("fork");
        if (kids[i] == 0)
            for (;;)
                pace_ms(20);
    }
    uint64_t rng = 0x6a09e667f3bcc909ULL, chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        if (getsid(0) != getpid() || getpgid(kids[s % 2]) != getpid())
            fail("step %d: the session is %d and child %d's group %d, not this process's", s, getsid(0), kids[s % 2], getpgid(kids[s % 2]));
        chain = fnv1a_u64(chain, xorshift64(&rng));
        step_line(s, chain);
        pace_ms(40);
    }
    for (int i = 0; i < 2; i++) {
        int st;
        kill(kids[i], SIGTERM);
        if (waitpid(kids[i], &st, 0) != kids[i] || !WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
            fail("child %d did not end by the SIGTERM sent to it", kids[i]);
    }
    done_line(chain);
    return 0;
}

/*
 * unreaped.c - a parent with two children that have ended and that it reaps only at
 * its end (issue 16: a child exited but not yet reaped comes back so, with its status).
 *
 * usage: unreaped [STEPS]
 *
 * One child exits with status 5, the other is killed by SIGTERM; the parent waits
 * until both have ended (without reaping them), then prints `step N <digest>` at a
 * 40 ms pace. At the end it reaps each by its pid: the statuses must be those, and no
 * other child may be left; then `done`.
 */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

static pid_t start(int how)
{
    pid_t pid = fork();
    if (pid < 0)
        fail_errno("fork");
    if (pid == 0) {
        if (how == SIGTERM)
            raise(SIGTERM);
        _exit(how);
    }
    siginfo_t info;
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT))
        fail_errno("waitid");
    return pid;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    pid_t five = start(5), term = start(SIGTERM);
    uint64_t rng = 0x853c49e6748fea9bULL, chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        chain = fnv1a_u64(chain, xorshift64(&rng));
        step_line(s, chain);
        pace_ms(40);
    }
    int st;
    if (waitpid(five, &st, 0) != five || !WIFEXITED(st) || WEXITSTATUS(st) != 5)
        fail("child %d: status %#x, not an exit with 5", five, st);
    if (waitpid(term, &st, 0) != term || !WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
        fail("child %d: status %#x, not killed by SIGTERM", term, st);
    if (waitpid(-1, &st, WNOHANG) != -1 || errno != ECHILD)
        fail("a child is left that was not started");
    done_line(chain);
    return 0;
}

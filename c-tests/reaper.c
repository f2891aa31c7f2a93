/*
 * reaper.c - runs a command as a child subreaper and reaps everything under it, so
 * that the pids of a job killed by a test are free again at once (this machine's
 * pid 1 does not reap orphans: their zombies would keep the pids a restore asks for).
 *
 * usage: [REAPER_PRELOAD=lib] reaper COMMAND [ARGS...]
 *
 * The command runs with LD_PRELOAD=$REAPER_PRELOAD (the reaper itself without it).
 * The reaper exits once no process is left under it, with the command's status (128 +
 * the signal that ended it).
 */
#include "common.h"
#include <sys/prctl.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        fail("usage: reaper COMMAND [ARGS...]");
    if (prctl(PR_SET_CHILD_SUBREAPER, 1))
        fail_errno("PR_SET_CHILD_SUBREAPER");
    pid_t cmd = fork();
    if (cmd < 0)
        fail_errno("fork");
    if (cmd == 0) {
        const char *preload = getenv("REAPER_PRELOAD");
        if (preload)
            setenv("LD_PRELOAD", preload, 1);
        execvp(argv[1], argv + 1);
        fail_errno("exec");
    }
    int status = 0, st;
    pid_t p;
    while ((p = wait(&st)) > 0 || errno == EINTR)
        if (p == cmd)
            status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return status;
}

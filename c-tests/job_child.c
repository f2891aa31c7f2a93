/*
 * job_child.c - a parent with one child that runs the library too, with the parent's
 * MIG_IMAGE (issue 16: a child's image must never replace its parent's).
 *
 * usage: job_child [STEPS [fork|exec]]
 *
 * The parent starts the child before step 1: `fork` (default) keeps the forked copy
 * running; `exec` runs this program again as `job_child child`, which inherits the
 * library and the environment. The child creates `child.ready` in the cwd once it
 * runs, then counts quietly (a 20 ms pace) until the parent ends it. The parent prints
 * `step N <digest>` of a counter, pacing 40 ms, then kills and reaps the child (its
 * status must be the SIGTERM the parent sent) and prints `done`.
 */
#include "common.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

static void child_loop(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open("child.ready", O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0)
        fail_errno("child.ready");
    close(fd);
    for (;;)
        pace_ms(20);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "child") == 0)
        child_loop();
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int use_exec = argc > 2 && strcmp(argv[2], "exec") == 0;
    pid_t child = fork();
    if (child < 0)
        fail_errno("fork");
    if (child == 0) {
        if (use_exec) {
            execl("/proc/self/exe", argv[0], "child", (char *)NULL);
            fail_errno("exec");
        }
        child_loop();
    }
    uint64_t rng = 0x9e3779b97f4a7c15ULL, chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        chain = fnv1a_u64(chain, xorshift64(&rng));
        step_line(s, chain);
        pace_ms(40);
    }
    kill(child, SIGTERM);
    int st;
    if (waitpid(child, &st, 0) != child || !WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
        fail("the child did not end by the SIGTERM sent to it");
    done_line(chain);
    return 0;
}

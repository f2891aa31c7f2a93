/*
 * blocks_signal.c - a subject that blocks the checkpoint signal (SIGUSR1) for a while.
 *
 * usage: blocks_signal [STEPS [FROM [TO [HOLD [fork]]]]]
 *
 * 40 steps by default; SIGUSR1 is blocked before step FROM (default 3) is printed
 * and unblocked before step TO (default 30) is: a checkpoint asked meanwhile stays
 * pending until then. With HOLD (a path), it is also blocked whenever that file exists
 * (looked at before each step), and the process waits, stepping no further, until it
 * is gone: a test decides when the process may take a checkpoint request, however
 * long that takes. With `fork`, the first time HOLD goes away the process starts a
 * child (which steps silently until its parent ends) before it takes the signal
 * again: a checkpoint asked while it was held finds a child the asker did not see.
 * State: a counter (LCG); the digest covers it and the step, not when the signal was
 * blocked.
 */
#include "common.h"
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int from = argc > 2 ? atoi(argv[2]) : 3;
    int to = argc > 3 ? atoi(argv[3]) : 30;
    const char *hold = argc > 4 ? argv[4] : NULL;
    int fork_once = argc > 5 && strcmp(argv[5], "fork") == 0, was_held = 0;
    pid_t child = 0;
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    int blocked = 0;
    uint64_t counter = 7;
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        int held;
        do {
            held = hold && access(hold, F_OK) == 0;
            if (was_held && !held && fork_once && child == 0) {
                pid_t parent = getpid();
                child = fork();
                if (child < 0)
                    fail_errno("fork");
                if (child == 0) {
                    /* Its own checkpoint signal is not held. */
                    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
                    prctl(PR_SET_PDEATHSIG, SIGKILL);
                    while (getppid() == parent)
                        pace_ms(50);
                    _exit(0);
                }
            }
            was_held = held;
            int want = (step >= from && step < to) || held;
            if (want != blocked) {
                if (sigprocmask(want ? SIG_BLOCK : SIG_UNBLOCK, &usr1, NULL) != 0)
                    fail_errno("sigprocmask");
                blocked = want;
            }
            if (held)
                pace_ms(10);
        } while (held);
        counter = counter * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t d = fnv1a_u64(fnv1a_u64(FNV_OFFSET, counter), (uint64_t)step);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(50);
    }
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    done_line(chain);
    return 0;
}

/*
 * sig_actions.c - the signal actions a program reads back are those it set.
 *
 * At start, the process reads every signal's action and prints those that are not the
 * default: none, as without mig (mig's own handlers read back as the default; flags
 * too, but on the two it puts back, where glibc adds its own). It then
 * takes SIGUSR1 and SIGUSR2 for itself (raising each once) and puts back the actions it
 * read, as a library does that borrows a signal. It steps (the checkpoint signal still
 * asks for a checkpoint meanwhile), and prints the actions again at the end, after the
 * checkpoint and the restore.
 */
#include "common.h"
#include <signal.h>

static volatile sig_atomic_t got;

static void on_usr(int sig)
{
    got += sig;
}

static void actions(const char *when)
{
    char list[512] = "";
    for (int s = 1; s < 65; s++) {
        struct sigaction a;
        if (s == SIGKILL || s == SIGSTOP || sigaction(s, NULL, &a) != 0)
            continue;
        if (a.sa_handler != SIG_DFL || (a.sa_flags != 0 && s != SIGUSR1 && s != SIGUSR2)) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof list - n, " %d", s);
        }
    }
    emit("%s: not default:%s\n", when, list[0] ? list : " none");
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    actions("at start");
    struct sigaction mine, old1, old2;
    memset(&mine, 0, sizeof mine);
    mine.sa_handler = on_usr;
    sigaction(SIGUSR1, &mine, &old1);
    sigaction(SIGUSR2, &mine, &old2);
    raise(SIGUSR1);
    raise(SIGUSR2);
    sigaction(SIGUSR1, &old1, NULL);
    sigaction(SIGUSR2, &old2, NULL);
    actions("put back");
    uint64_t chain = fnv1a_u64(FNV_OFFSET, (uint64_t)got);
    for (int step = 1; step <= steps; step++) {
        chain = fnv1a_u64(chain, (uint64_t)step);
        step_line(step, chain);
        pace_ms(50);
    }
    actions("at the end");
    done_line(chain);
    return 0;
}

/*
 * no_children.c - a program that owns its children: it counts SIGCHLD and checks each
 * step that wait() finds no child at all. mig's forked checkpoint writer must stay
 * invisible to it. Its heap changes every step, so a forked image that is not a
 * snapshot of one moment shows up in the digests.
 */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

static volatile sig_atomic_t sigchld;

static void on_chld(int sig)
{
    (void)sig;
    sigchld++;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    struct sigaction sa = {0};
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    enum { WORDS = 1 << 20 }; /* 8 MiB */
    uint64_t *heap = malloc(WORDS * sizeof *heap);
    if (!heap)
        fail_errno("malloc");
    for (size_t i = 0; i < WORDS; i++)
        heap[i] = i;
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        int st;
        pid_t w = waitpid(-1, &st, WNOHANG);
        if (w != -1 || errno != ECHILD)
            fail("wait found a child (%d)", (int)w);
        if (sigchld)
            fail("SIGCHLD arrived %d times", (int)sigchld);
        /* Rewrite the whole heap: a torn copy would mix two steps. */
        for (size_t i = 0; i < WORDS; i++)
            heap[i] = heap[i] * 6364136223846793005ULL + (uint64_t)step;
        chain = fnv1a(chain, heap, WORDS * sizeof *heap);
        step_line(step, chain);
        pace_ms(50);
    }
    emit("done no-children\n");
    return 0;
}

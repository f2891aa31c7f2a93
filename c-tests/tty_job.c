/*
 * tty_job.c - a job on a terminal (issue 16: the controlling terminal and its
 * foreground group come back): a parent prints steps while its child answers what is
 * typed on the terminal.
 *
 * usage: tty_job [STEPS]
 *
 * Run by a shell with job control (`set -m`), the job is the terminal's foreground
 * group. The child reads lines from standard input (the terminal) and prints `got
 * <line>` for each (and a FAIL line if the terminal is not its session's controlling
 * terminal with its group in the foreground), until `quit`, then exits 7. The parent prints `step N <digest>`
 * at a 40 ms pace, then reaps the child (its status must be 7) and prints `done`. A
 * child that is not in the terminal's foreground group after a restore is stopped by
 * SIGTTIN at its read: no `got` line comes, and the parent waits for ever.
 */
#include "common.h"
#include <sys/wait.h>
#include <termios.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, 100);
    pid_t child = fork();
    if (child < 0)
        fail_errno("fork");
    if (child == 0) {
        char line[256];
        while (fgets(line, sizeof line, stdin)) {
            line[strcspn(line, "\r\n")] = 0;
            if (!strcmp(line, "quit"))
                _exit(7);
            emit("got %s\n", line);
            if (tcgetsid(0) != getsid(0) || tcgetpgrp(0) != getpgrp())
                emit("FAIL the terminal is not the child's controlling terminal with its group in the foreground\n");
        }
        _exit(1);
    }
    uint64_t d = FNV_OFFSET;
    for (int i = 1; i <= steps; i++) {
        d = fnv1a_u64(d, (uint64_t)i * 2654435761u);
        step_line(i, d);
        pace_ms(40);
    }
    int st;
    if (waitpid(child, &st, 0) != child)
        fail_errno("waitpid of the child");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 7)
        fail("the child ended with status %#x", st);
    done_line(d);
    return 0;
}

/*
 * fifo_job.c [STEPS] - a named FIFO whose write end a parent and its child share (one
 * open file description, inherited), its read end the parent's (issue 16): made once
 * for the job, and nothing else of the restore holds it open.
 *
 * The child writes STEPS/2 bytes at once, and exits after STEPS/2 steps' time. The
 * parent reads one byte a step (so a checkpoint finds bytes queued, which must come
 * back once) and closes its copy of the write end at step STEPS/2 - 2. Once the child
 * is gone (the parent reaps it at the end), a read must see end of file (no writer is
 * left) and every byte must have come; else FAIL.
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    unlink("job.fifo");
    if (mkfifo("job.fifo", 0600) != 0)
        fail_errno("mkfifo");
    int r = open("job.fifo", O_RDONLY | O_NONBLOCK);
    int w = open("job.fifo", O_WRONLY);
    if (r < 0 || w < 0)
        fail_errno("open job.fifo");
    pid_t child = fork();
    if (child < 0)
        fail_errno("fork");
    if (child == 0) {
        close(r);
        for (int i = 1; i <= steps / 2; i++)
            write_all(w, "x", 1);
        pace_ms(50 * steps / 2);
        _exit(0);
    }
    uint64_t chain = FNV_OFFSET;
    int got = 0;
    char buf[64];
    ssize_t n;
    for (int step = 1; step <= steps; step++) {
        if (step == steps / 2 - 2)
            close(w);
        if ((n = read(r, buf, 1)) > 0)
            got += (int)n;
        chain = fnv1a_u64(chain, (uint64_t)step * 71);
        step_line(step, chain);
        pace_ms(50);
    }
    if (waitpid(child, NULL, 0) != child)
        fail_errno("waitpid of the child");
    while ((n = read(r, buf, sizeof buf)) > 0)
        got += (int)n;
    if (n != 0)
        fail("no end of file on the FIFO after its writers ended (%d bytes came): %s", got, n < 0 ? strerror(errno) : "");
    if (got != steps / 2)
        fail("%d bytes came through the FIFO, not %d", got, steps / 2);
    done_line(chain);
    return 0;
}

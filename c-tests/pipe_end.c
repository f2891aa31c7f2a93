/*
 * pipe_end.c - holds both ends of a pipe. The final write and read through it must
 * succeed, uninterrupted and after a restore alike (a broken restore would show as
 * EPIPE and end of file). The last line says which, so the test can tell.
 */
#include "common.h"
#include <signal.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int p[2];
    if (pipe(p) != 0)
        fail_errno("pipe");
    signal(SIGPIPE, SIG_IGN); /* a broken pipe must be an EPIPE, not a death */
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        chain = fnv1a_u64(chain, (uint64_t)step * 77);
        step_line(step, chain);
        pace_ms(50);
    }
    char c = 'x';
    ssize_t w = write(p[1], &c, 1);
    int werr = errno;
    ssize_t r = read(p[0], &c, 1);
    if (w == 1 && r == 1 && c == 'x')
        emit("done pipe-works\n");
    else if (w < 0 && werr == EPIPE && r == 0)
        emit("done pipe-broken\n");
    else
        fail("pipe in an unexpected state: write %zd (errno %d), read %zd", w, werr, r);
    return 0;
}

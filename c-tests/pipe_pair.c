/*
 * pipe_pair.c - a parent and a forked child over two pipes, with bytes in flight both
 * ways (issue 16: a job is saved and restored whole).
 *
 * usage: pipe_pair [STEPS [pipes|socketpair [MIB [PACE_MS]]]]
 *
 * With `socketpair`, one UNIX stream socket pair carries both directions instead.
 * With MIB, the parent also computes over MIB MiB of memory it fills at start (a word
 * of it each step goes into the digest); PACE_MS replaces the 40 ms pace.
 *
 * The child reads numbers from the parent, a 5 ms pace each, and answers each with
 * its square mixed with a running sum of its own; at the end of its input it exits
 * with status 7. Each step the parent sends 4 numbers, waits 40 ms (its answers sit
 * in the pipe back, and some numbers still in the pipe there), reads the 4 answers,
 * and prints `step N <digest>` of them. At the end it closes the pipe, reaps the
 * child (its status must be 7, and its pid the one fork gave) and prints `done`.
 * A byte lost or repeated in either pipe, or a child that is not its child after a
 * restore, changes the digests or fails the run.
 */
#include "common.h"
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

static void read_all(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            fail("read returned EINTR");
        if (n <= 0)
            fail_errno("read");
        got += (size_t)n;
    }
}

static void child(int in, int out)
{
    uint64_t sum = 0, x;
    for (;;) {
        size_t got = 0;
        while (got < sizeof x) {
            ssize_t n = read(in, (char *)&x + got, sizeof x - got);
            if (n == 0 && got == 0)
                _exit(7);
            if (n <= 0)
                fail_errno("child read");
            got += (size_t)n;
        }
        pace_ms(5);
        sum += x;
        uint64_t answer = x * x ^ sum;
        write_all(out, &answer, sizeof answer);
    }
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int down[2], up[2];
    if (argc > 2 && strcmp(argv[2], "socketpair") == 0) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
            fail_errno("socketpair");
        /* The parent's end both ways, the child's end both ways. */
        down[1] = up[0] = sv[0];
        down[0] = up[1] = sv[1];
    } else if (pipe(down) || pipe(up))
        fail_errno("pipe");
    pid_t pid = fork();
    if (pid < 0)
        fail_errno("fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(down[1]);
        if (up[0] != down[1])
            close(up[0]);
        child(down[0], up[1]);
    }
    close(down[0]);
    if (up[1] != down[0])
        close(up[1]);
    size_t words = argc > 3 ? (size_t)atoi(argv[3]) << 17 : 0;
    int pace = argc > 4 ? atoi(argv[4]) : 40;
    uint64_t *mem = words ? malloc(words * sizeof *mem) : NULL;
    uint64_t fill = 0x853c49e6748fea9bULL;
    if (words && !mem)
        fail("no memory");
    for (size_t i = 0; i < words; i++)
        mem[i] = xorshift64(&fill);
    uint64_t rng = 0x2545f4914f6cdd1dULL, chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        if (words) {
            size_t at = (size_t)s * 7919 % words;
            mem[at] ^= chain;
            chain = fnv1a_u64(chain, mem[(at * 31 + 17) % words]);
        }
        uint64_t xs[4];
        for (int i = 0; i < 4; i++)
            xs[i] = xorshift64(&rng) & 0xffffffff;
        write_all(down[1], xs, sizeof xs);
        pace_ms(pace);
        uint64_t answers[4];
        read_all(up[0], answers, sizeof answers);
        for (int i = 0; i < 4; i++)
            chain = fnv1a_u64(chain, answers[i]);
        step_line(s, chain);
    }
    close(down[1]);
    int st;
    if (waitpid(pid, &st, 0) != pid)
        fail_errno("waitpid of the child");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 7)
        fail("the child ended with status %#x, not 7", st);
    done_line(chain);
    return 0;
}

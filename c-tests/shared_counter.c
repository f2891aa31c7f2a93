/*
 * shared_counter.c - a parent and a forked child that work on one page of anonymous
 * shared memory (MAP_SHARED | MAP_ANONYMOUS), taking turns over a pipe each way
 * (issue 16: memory a job's processes share is shared again after a restore).
 *
 * usage: shared_counter [STEPS]
 *
 * Each step the parent puts a number in the page and wakes the child; the child
 * replaces it with its square mixed with a running sum kept in the page too, and wakes
 * the parent, which folds the result into `step N <digest>`. Memory that came back as
 * two copies leaves the parent reading its own number: the digests differ.
 */
#include "common.h"
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

struct page {
    uint64_t x, sum;
};

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    struct page *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fail_errno("mmap");
    int down[2], up[2];
    if (pipe(down) || pipe(up))
        fail_errno("pipe");
    pid_t pid = fork();
    if (pid < 0)
        fail_errno("fork");
    char b;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(down[1]);
        close(up[0]);
        while (read(down[0], &b, 1) == 1) {
            p->sum += p->x;
            p->x = p->x * p->x ^ p->sum;
            write_all(up[1], &b, 1);
        }
        _exit(0);
    }
    close(down[0]);
    close(up[1]);
    uint64_t rng = 0x9e3779b97f4a7c15ULL, chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        p->x = xorshift64(&rng) & 0xffffffff;
        write_all(down[1], "x", 1);
        if (read(up[0], &b, 1) != 1)
            fail_errno("read from the child");
        chain = fnv1a_u64(chain, p->x);
        step_line(s, chain);
        pace_ms(40);
    }
    close(down[1]);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("the child did not end well");
    done_line(chain);
    return 0;
}

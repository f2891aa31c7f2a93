/*
 * deleted_cwd.c - a process whose working directory was removed under it.
 *
 * It makes a directory in its working directory, enters it and removes it (by
 * its absolute path). Every step it checks what a program in a removed
 * directory sees: getcwd fails with ENOENT, /proc/self/cwd ends with
 * " (deleted)", and a file cannot be created there (ENOENT). The step line
 * folds in a bit mask of what differed (0 when nothing did).
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

static unsigned check(void)
{
    unsigned bad = 0;
    char buf[4096];
    errno = 0;
    if (getcwd(buf, sizeof buf) != NULL || errno != ENOENT)
        bad |= 1;
    ssize_t n = readlink("/proc/self/cwd", buf, sizeof buf - 1);
    if (n < 10 || memcmp(buf + n - 10, " (deleted)", 10) != 0)
        bad |= 2;
    errno = 0;
    int fd = open("here", O_WRONLY | O_CREAT, 0600);
    if (fd >= 0 || errno != ENOENT)
        bad |= 4;
    if (fd >= 0)
        close(fd);
    return bad;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    char dir[4096];
    if (!getcwd(dir, sizeof dir - 32))
        fail_errno("getcwd");
    strcat(dir, "/gone");
    if (mkdir(dir, 0700) != 0 || chdir(dir) != 0 || rmdir(dir) != 0)
        fail_errno("mkdir, chdir, rmdir");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = check();
        if (bad)
            emit("step %d: the working directory is not a removed one: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 31 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

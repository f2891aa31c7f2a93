/*
 * shared_file.c - a parent and its child writing one file through a descriptor the
 * child inherited (issue 16: one open file description in every process that holds
 * it, one offset for all).
 *
 * usage: shared_file [STEPS]
 *
 * The parent opens `shared.out` (in the working directory, truncated, no O_APPEND) as
 * descriptor 5 and forks. Each step the parent writes `P <n>` and tells the child
 * (a pipe), which writes `C <n>` and answers (another pipe); each checks that the
 * offset is where the other left it, then the parent prints `step N <digest>` of the
 * offset. At the end the child exits 7, the parent reaps it, reads the file back and
 * prints `done <digest of the file>`. Two descriptions after a restore (each process
 * its own offset) overwrite each other's lines: the offsets and the file differ.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/wait.h>

static void put(int fd, char who, int n)
{
    char line[32];
    int len = snprintf(line, sizeof line, "%c %d\n", who, n);
    write_all(fd, line, (size_t)len);
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, 60);
    int f = open("shared.out", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f < 0 || dup2(f, 5) != 5)
        fail_errno("open shared.out");
    close(f);
    int down[2], up[2];
    if (pipe(down) || pipe(up))
        fail_errno("pipe");
    pid_t child = fork();
    if (child < 0)
        fail_errno("fork");
    if (child == 0) {
        close(down[1]);
        close(up[0]);
        int n;
        while (read(down[0], &n, sizeof n) == sizeof n) {
            off_t was;
            if (read(down[0], &was, sizeof was) != sizeof was)
                _exit(1);
            if (lseek(5, 0, SEEK_CUR) != was)
                fail("child: the offset is %lld, the parent left it at %lld", (long long)lseek(5, 0, SEEK_CUR), (long long)was);
            put(5, 'C', n);
            off_t now = lseek(5, 0, SEEK_CUR);
            write_all(up[1], &now, sizeof now);
        }
        _exit(7);
    }
    close(down[0]);
    close(up[1]);
    uint64_t d = FNV_OFFSET;
    for (int i = 1; i <= steps; i++) {
        put(5, 'P', i);
        off_t was = lseek(5, 0, SEEK_CUR);
        write_all(down[1], &i, sizeof i);
        write_all(down[1], &was, sizeof was);
        off_t now;
        if (read(up[0], &now, sizeof now) != sizeof now)
            fail_errno("read from the child");
        if (lseek(5, 0, SEEK_CUR) != now)
            fail("parent: the offset is %lld, the child left it at %lld", (long long)lseek(5, 0, SEEK_CUR), (long long)now);
        d = fnv1a_u64(d, (uint64_t)now);
        step_line(i, d);
        pace_ms(40);
    }
    close(down[1]);
    int st;
    if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
        fail("the child did not end with status 7 (%#x)", st);
    char buf[8192];
    int r = open("shared.out", O_RDONLY);
    ssize_t n = r < 0 ? -1 : read(r, buf, sizeof buf);
    if (n < 0)
        fail_errno("read shared.out");
    done_line(fnv1a(d, buf, (size_t)n));
    return 0;
}

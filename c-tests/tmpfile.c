/*
 * tmpfile.c - a file made with O_TMPFILE (no name, deleted from the start) and written
 * to, then given a name with linkat after the restore, as programs do to publish a file
 * atomically.
 *
 * usage: tmpfile [STEPS]
 *
 * Before step 1: `open(".", O_TMPFILE | O_RDWR)`, 3000 bytes of a pattern written. Each
 * step appends the step number (as 4 bytes) and prints `step N <digest>` of the file's
 * contents read back with pread. At the end the file is linked as `published` in the
 * cwd, read back through that name and compared, then removed; `done <digest>`.
 */
#include "common.h"
#include <fcntl.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int fd = open(".", O_TMPFILE | O_RDWR, 0600);
    if (fd < 0)
        fail_errno("open O_TMPFILE");
    char buf[4096];
    for (int i = 0; i < 3000; i++)
        buf[i] = (char)(i * 7 + 3);
    write_all(fd, buf, 3000);
    off_t size = 3000;
    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        uint32_t v = (uint32_t)s;
        write_all(fd, &v, sizeof v);
        size += sizeof v;
        static char all[3000 + 4 * 1000];
        if (size > (off_t)sizeof all)
            fail("too many steps");
        if (pread(fd, all, (size_t)size, 0) != size)
            fail_errno("pread");
        chain = fnv1a(chain, all, (size_t)size);
        step_line(s, chain);
        pace_ms(30);
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    unlink("published");
    if (linkat(AT_FDCWD, path, AT_FDCWD, "published", AT_SYMLINK_FOLLOW) != 0)
        fail_errno("linkat of the O_TMPFILE file");
    static char back[3000 + 4 * 1000], mine[3000 + 4 * 1000];
    int pfd = open("published", O_RDONLY);
    if (pfd < 0 || read(pfd, back, sizeof back) != size || pread(fd, mine, (size_t)size, 0) != size || memcmp(back, mine, (size_t)size) != 0)
        fail("the published file differs from the O_TMPFILE one");
    close(pfd);
    unlink("published");
    done_line(chain);
    return 0;
}

/*
 * saved_file.c - a file the program writes, put back as it was at the checkpoint.
 *
 * It creates `data.log` in its working directory and every step writes one line at
 * its own offset (pwrite, the offset kept in memory), then reads the whole file
 * back and checks that it is exactly the lines it wrote. A restore must find the
 * file as it was at the checkpoint: lines the killed process wrote afterwards, or a
 * file removed meanwhile, would show as a mismatch. The step line folds in whether
 * the file matched (and a line says when it did not).
 */
#include "common.h"
#include <fcntl.h>
#include <string.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int fd = open("data.log", O_RDWR | O_CREAT | O_TRUNC, 0640);
    if (fd < 0)
        fail_errno("open data.log");
    static char want[1 << 16], got[1 << 16];
    size_t have = 0;
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        char line[64];
        int n = snprintf(line, sizeof line, "line %d %016llx\n", step, (unsigned long long)chain);
        if (have + (size_t)n > sizeof want)
            fail("too many steps");
        if (pwrite(fd, line, (size_t)n, (off_t)have) != n)
            fail_errno("pwrite");
        memcpy(want + have, line, (size_t)n);
        have += (size_t)n;
        ssize_t r = pread(fd, got, sizeof got, 0);
        int same = r == (ssize_t)have && memcmp(got, want, have) == 0;
        if (!same)
            emit("step %d: data.log is not what was written (%zd bytes, %zu written)\n", step, r, have);
        chain = fnv1a_u64(chain, (uint64_t)step * 2 + (uint64_t)same);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

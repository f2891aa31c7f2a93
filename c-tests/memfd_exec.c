/*
 * memfd_exec.c [STEPS] - a program kept in a sealed memfd is executed after a restore
 * (issue 15: memfd seals and execution of a memfd).
 *
 * Before the first step the process copies its own executable into a memfd
 * (MFD_ALLOW_SEALING, close-on-exec) and seals it against writes, growth and
 * shrinking. Each step checks the seals are still there and that a write is refused.
 * After the last step it runs the memfd (fexecve) as `memfd_exec ran <digest>`, which
 * prints `done <digest>` from the new program.
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEALS (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

extern char **environ;

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "ran") == 0) {
        emit("done %s\n", argv[2]);
        return 0;
    }
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int self = open("/proc/self/exe", O_RDONLY);
    int mfd = memfd_create("memfd_exec", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (self < 0 || mfd < 0)
        fail_errno("open /proc/self/exe, memfd_create");
    char buf[65536];
    ssize_t n;
    while ((n = read(self, buf, sizeof buf)) > 0)
        write_all(mfd, buf, (size_t)n);
    close(self);
    if (fcntl(mfd, F_ADD_SEALS, SEALS) != 0)
        fail_errno("F_ADD_SEALS");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = 0;
        if (fcntl(mfd, F_GET_SEALS) != SEALS)
            bad |= 1;
        errno = 0;
        if (pwrite(mfd, "x", 1, 0) != -1 || errno != EPERM)
            bad |= 2;
        if (bad)
            emit("step %d: the memfd is not as it was: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 37 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    char digest[32];
    snprintf(digest, sizeof digest, "%016llx", (unsigned long long)chain);
    char *args[] = { argv[0], "ran", digest, NULL };
    fexecve(mfd, args, environ);
    fail_errno("fexecve of the memfd");
}

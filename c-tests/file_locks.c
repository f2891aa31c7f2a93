/*
 * file_locks.c - file locks held across the checkpoint come back held.
 *
 * In its working directory it makes three files and locks them:
 * - posix.dat: POSIX record locks (fcntl F_SETLK), a write lock on bytes 10..29
 *   and a read lock from byte 100 to the end of the file;
 * - ofd.dat: an open file description write lock (F_OFD_SETLK) on bytes 0..4;
 * - flock.dat: a flock write lock, through a descriptor that is then dup'ed
 *   (one lock of one open file description).
 * Every step a forked child opens the files afresh and asks (F_GETLK,
 * F_OFD_GETLK, flock with LOCK_NB) what another process would find: each lock
 * held, by its parent for POSIX ones, and nothing where no lock was taken. The
 * child's verdict (a bit mask of what was wrong, 0 when all is well) is folded
 * into the step line. With `hold` as the second argument it only makes and
 * locks the files, prints "locked" and waits to be killed (a lock in the way of
 * a restore).
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>

static int lock_range(int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
    return fcntl(fd, cmd, &fl);
}

/* What another process finds: the type of the lock in the way of a write lock
 * on [start, start + len), and who holds it (POSIX only). */
static short probe(int fd, int cmd, short type, off_t start, off_t len, pid_t *who)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };
    if (fcntl(fd, cmd, &fl) != 0)
        return -1;
    *who = fl.l_pid;
    return fl.l_type;
}

static int verdict(void)
{
    int bad = 0;
    pid_t who = 0, parent = getppid();
    int p = open("posix.dat", O_RDWR);
    if (probe(p, F_GETLK, F_WRLCK, 15, 1, &who) != F_WRLCK || who != parent)
        bad |= 1;
    if (probe(p, F_GETLK, F_WRLCK, 50, 1, &who) != F_UNLCK)
        bad |= 2;
    if (probe(p, F_GETLK, F_RDLCK, 200, 1, &who) != F_UNLCK)
        bad |= 4;
    if (probe(p, F_GETLK, F_WRLCK, 200, 1, &who) != F_RDLCK || who != parent)
        bad |= 8;
    int o = open("ofd.dat", O_RDWR);
    if (probe(o, F_OFD_GETLK, F_RDLCK, 2, 1, &who) != F_WRLCK)
        bad |= 16;
    if (probe(o, F_OFD_GETLK, F_WRLCK, 5, 1, &who) != F_UNLCK)
        bad |= 32;
    int f = open("flock.dat", O_RDWR);
    if (flock(f, LOCK_SH | LOCK_NB) == 0 || errno != EWOULDBLOCK)
        bad |= 64;
    return bad;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int hold = argc > 2 && strcmp(argv[2], "hold") == 0;
    int p = open("posix.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
    int o = open("ofd.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
    int f = open("flock.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (p < 0 || o < 0 || f < 0)
        fail_errno("open");
    if (ftruncate(p, 4096) != 0 || ftruncate(o, 4096) != 0)
        fail_errno("ftruncate");
    if (lock_range(p, F_SETLK, F_WRLCK, 10, 20) != 0 || lock_range(p, F_SETLK, F_RDLCK, 100, 0) != 0)
        fail_errno("F_SETLK");
    if (lock_range(o, F_OFD_SETLK, F_WRLCK, 0, 5) != 0)
        fail_errno("F_OFD_SETLK");
    if (flock(f, LOCK_EX | LOCK_NB) != 0)
        fail_errno("flock");
    int f2 = dup(f);
    if (f2 < 0)
        fail_errno("dup");
    if (hold) {
        emit("locked\n");
        for (;;)
            pause();
    }
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        pid_t child = fork();
        if (child < 0)
            fail_errno("fork");
        if (child == 0)
            _exit(verdict());
        int status;
        while (waitpid(child, &status, 0) < 0)
            if (errno != EINTR)
                fail_errno("waitpid");
        int bad = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
        if (bad)
            emit("step %d: locks not as taken: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 131 + (uint64_t)bad);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

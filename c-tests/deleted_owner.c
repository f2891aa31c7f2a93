/*
 * deleted_owner.c - a deleted file, a /dev/shm file and a memfd keep their owner.
 *
 * usage: deleted_owner [STEPS] [UID]
 *
 * Run as root: the process makes a file in its directory, gives it owner UID:UID
 * (fchown) and mode 0640, and unlinks it; does the same with a file in /dev/shm
 * (kept) and a memfd. It steps; a checkpoint (and a restore) happens meanwhile. At the
 * end it prints each file's owner and mode as fstat sees them.
 */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

static void owned(int fd, uid_t uid, const char *what)
{
    if (fd < 0)
        fail_errno(what);
    if (write(fd, "owned\n", 6) != 6 || fchown(fd, uid, uid) != 0 || fchmod(fd, 0640) != 0)
        fail_errno(what);
}

static void show(int fd, const char *what)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        fail_errno("fstat");
    emit("%s: owner %u:%u mode %o\n", what, (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777));
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    uid_t uid = argc > 2 ? (uid_t)atoi(argv[2]) : 4242;
    int deleted = open("deleted_owner.dat", O_RDWR | O_CREAT | O_TRUNC, 0600);
    owned(deleted, uid, "deleted file");
    unlink("deleted_owner.dat");
    char shm_path[64];
    snprintf(shm_path, sizeof shm_path, "/dev/shm/mig-owner-%d", (int)getpid());
    int shm = open(shm_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    owned(shm, uid, "shm file");
    int mem = memfd_create("owner", 0);
    owned(mem, uid, "memfd");

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        chain = fnv1a_u64(chain, (uint64_t)step);
        step_line(step, chain);
        pace_ms(50);
    }
    show(deleted, "deleted file");
    show(shm, "shm file");
    show(mem, "memfd");
    unlink(shm_path);
    done_line(chain);
    return 0;
}

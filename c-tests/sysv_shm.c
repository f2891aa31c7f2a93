/*
 * sysv_shm.c - a System V shared memory segment (shmget/shmat), used by a parent
 * and a forked child, or by one process (issue 16: SysV shared memory between a
 * job's processes is shared again; it is still a SysV segment with its id).
 *
 * usage: sysv_shm [STEPS] [private|keyed] [alone]
 *
 * private (the default): an IPC_PRIVATE segment of 3 pages and 100 bytes, marked
 * for removal (IPC_RMID) once every attach is made, as programs do so that it goes
 * with them. keyed: a segment with a key made from the pid, never marked; the program
 * finds it again by its key every step and removes it at the end.
 * The parent attaches it read-write; the child (or, alone, the process itself)
 * inherits that attach and attaches it again read-only elsewhere. Each step the
 * parent puts a number in the segment (first and last page) and wakes the child,
 * which checks its read-only view shows it, mixes it with a running sum kept in the
 * segment and wakes the parent, which folds the result into `step N <digest>`.
 * Every step both check `shmctl(IPC_STAT)` on the id they hold: the size, the
 * number of attaches (3), the removal mark; keyed, `shmget(key)` gives the same id.
 * At the end every `shmdt` must succeed, and a private segment must be gone.
 */
#include "common.h"
#include <signal.h>
#include <sys/ipc.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define SIZE (3 * 4096 + 100)
#define TAIL (3 * 4096 + 8)

struct page {
    uint64_t x, sum;
};

static int keyed;
static key_t key;

static void check(int id, int dest_expected, const char *who)
{
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) != 0)
        fail("%s: shmctl(IPC_STAT) on the segment's id: %s", who, strerror(errno));
    if (ds.shm_segsz != SIZE)
        fail("%s: the segment's size is %zu, not %d", who, (size_t)ds.shm_segsz, SIZE);
    if (ds.shm_nattch != 3)
        fail("%s: the segment has %lu attaches, not 3", who, (unsigned long)ds.shm_nattch);
    if (!!(ds.shm_perm.mode & SHM_DEST) != dest_expected)
        fail("%s: the segment is %smarked for removal", who, dest_expected ? "not " : "");
    if ((ds.shm_perm.mode & 0777) != 0640)
        fail("%s: the segment's mode is %o", who, ds.shm_perm.mode & 0777);
    if (keyed && shmget(key, 0, 0) != id)
        fail("%s: shmget by the key does not give the segment's id: %s", who, strerror(errno));
}

/* The child's side of a step (or the process's own, alone). */
static void transform(struct page *p, const struct page *ro)
{
    if (ro->x != p->x || ((const uint64_t *)((const char *)ro + TAIL))[0] != p->x)
        fail("the read-only attach does not show the segment");
    p->sum += p->x;
    p->x = p->x * p->x ^ p->sum;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc > 2 ? 2 : argc, argv, DEFAULT_STEPS);
    int alone = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "keyed"))
            keyed = 1;
        else if (!strcmp(argv[i], "alone"))
            alone = 1;
        else if (strcmp(argv[i], "private"))
            fail("unknown mode %s", argv[i]);
    }
    key = keyed ? (key_t)(0x6d000000 | (getpid() & 0xffffff)) : IPC_PRIVATE;
    int id = shmget(key, SIZE, IPC_CREAT | IPC_EXCL | 0640);
    if (id < 0)
        fail_errno("shmget");
    struct page *p = shmat(id, NULL, 0);
    if (p == (void *)-1)
        fail_errno("shmat");
    uint64_t *tail = (uint64_t *)((char *)p + TAIL);
    int down[2], up[2];
    if (pipe(down) || pipe(up))
        fail_errno("pipe");
    pid_t pid = alone ? 0 : fork();
    if (pid < 0)
        fail_errno("fork");
    char b;
    const struct page *ro = NULL;
    if (pid == 0) {
        ro = shmat(id, NULL, SHM_RDONLY);
        if (ro == (void *)-1)
            fail_errno("shmat read-only");
    }
    if (pid == 0 && !alone) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(down[1]);
        close(up[0]);
        write_all(up[1], "r", 1);
        while (read(down[0], &b, 1) == 1) {
            check(id, !keyed, "child");
            transform(p, ro);
            write_all(up[1], &b, 1);
        }
        if (shmdt(ro) != 0 || shmdt(p) != 0)
            fail_errno("child: shmdt");
        _exit(0);
    }
    if (!alone && read(up[0], &b, 1) != 1)
        fail_errno("waiting for the child's attach");
    if (!keyed && shmctl(id, IPC_RMID, NULL) != 0)
        fail_errno("shmctl(IPC_RMID)");
    if (alone) {
        /* A third attach, so that the count is the parent and child's. */
        if (shmat(id, NULL, SHM_RDONLY) == (void *)-1)
            fail_errno("shmat");
    }
    uint64_t rng = 0x9e3779b97f4a7c15ULL, chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        p->x = xorshift64(&rng) & 0xffffffff;
        *tail = p->x;
        if (alone) {
            transform(p, ro);
        } else {
            write_all(down[1], "x", 1);
            if (read(up[0], &b, 1) != 1)
                fail_errno("read from the child");
        }
        check(id, !keyed, "parent");
        chain = fnv1a_u64(chain, p->x);
        step_line(s, chain);
        pace_ms(40);
    }
    if (!alone) {
        close(down[1]);
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("the child did not end well");
    }
    if (shmdt(p) != 0)
        fail_errno("shmdt");
    if (keyed && shmctl(id, IPC_RMID, NULL) != 0)
        fail_errno("shmctl(IPC_RMID) at the end");
    if (!keyed && !alone && shmctl(id, IPC_STAT, &(struct shmid_ds){ 0 }) == 0)
        fail("the segment outlived its last attach");
    done_line(chain);
    return 0;
}

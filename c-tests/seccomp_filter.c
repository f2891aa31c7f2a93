/*
 * seccomp_filter.c - a process under seccomp filters of its own.
 *
 * usage: seccomp_filter [STEPS [MODE]]
 *
 * It sets PR_SET_NO_NEW_PRIVS and installs, before it starts a thread, a filter that
 * makes system call 184 (tuxcall, not implemented: ENOSYS without a filter) fail with
 * errno 77; with MODE "libc" (the default) through prctl(PR_SET_SECCOMP), with MODE
 * "raw" by a system call of its own that no library sees. Once the thread runs, a
 * second filter (185, security: errno 78) through syscall(SYS_seccomp) with
 * SECCOMP_FILTER_FLAG_TSYNC, for both threads. Each step folds into its digest what
 * calls 184 and 185 return in each thread (gettid must still work), and how many
 * filters each thread runs under (Seccomp_filters of its status).
 */
#include "common.h"
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* A filter making system call `nr` fail with `err`, all others allowed. */
static struct sock_fprog make(long nr, int err, struct sock_filter insns[6])
{
    struct sock_filter f[6] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 2),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)err),
    };
    memcpy(insns, f, sizeof f);
    return (struct sock_fprog){ .len = 6, .filter = insns };
}

/* What one thread sees: the three calls' errnos and its filter count. */
static uint64_t probe(uint64_t h)
{
    for (long nr = 184; nr <= 185; nr++) {
        errno = 0;
        long r = syscall(nr);
        h = fnv1a_u64(h, (uint64_t)r);
        h = fnv1a_u64(h, (uint64_t)errno);
    }
    if (syscall(SYS_gettid) <= 0)
        fail("gettid under the filters");
    char buf[4096];
    int fd = open("/proc/thread-self/status", O_RDONLY);
    if (fd < 0)
        fail_errno("open status");
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        fail_errno("read status");
    buf[n] = 0;
    const char *f = strstr(buf, "Seccomp_filters:");
    if (!f)
        fail("no Seccomp_filters in the status");
    return fnv1a_u64(h, (uint64_t)atol(f + strlen("Seccomp_filters:")));
}

static int ask[2], answer[2];

static void *worker(void *arg)
{
    (void)arg;
    char c;
    while (read(ask[0], &c, 1) == 1) {
        uint64_t h = probe(FNV_OFFSET);
        write_all(answer[1], &h, sizeof h);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int raw = argc > 2 && strcmp(argv[2], "raw") == 0;
    struct sock_filter first[6], second[6];
    struct sock_fprog p1 = make(184, 77, first), p2 = make(185, 78, second);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        fail_errno("PR_SET_NO_NEW_PRIVS");
    if (raw) {
        long r;
        __asm__ volatile("syscall"
                         : "=a"(r)
                         : "0"((long)SYS_seccomp), "D"((long)SECCOMP_SET_MODE_FILTER), "S"(0L), "d"(&p1)
                         : "rcx", "r11", "memory");
        if (r != 0)
            fail("raw seccomp: %ld", r);
    } else if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p1) != 0) {
        fail_errno("prctl seccomp");
    }
    if (pipe(ask) != 0 || pipe(answer) != 0)
        fail_errno("pipe");
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0)
        fail("pthread_create");
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &p2) != 0)
        fail_errno("seccomp TSYNC");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        uint64_t d = probe(fnv1a_u64(FNV_OFFSET, (uint64_t)step)), theirs = 0;
        write_all(ask[1], "?", 1);
        if (read(answer[0], &theirs, sizeof theirs) != sizeof theirs)
            fail_errno("read the worker's answer");
        d = fnv1a_u64(d, theirs);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

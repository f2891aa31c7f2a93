/*
 * seccomp_filter.c - a process under a seccomp filter of its own.
 *
 * It sets PR_SET_NO_NEW_PRIVS and installs a filter that allows every system call
 * (the kernel still counts it: Seccomp_filters 1), then counts steps. mig cannot
 * read a filter back: a restore by a process that does not run under as many
 * filters must be refused before anything is replaced.
 */
#include "common.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = { .len = 1, .filter = &allow };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        fail_errno("seccomp");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        chain = fnv1a_u64(chain, (uint64_t)step);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

/*
 * membarrier.c - membarrier registrations come back.
 *
 * The process registers for private expedited membarriers (as some runtimes and
 * user-space RCU libraries do) and every step issues one: without the registration
 * the kernel refuses it (EPERM). The step line folds in whether it succeeded.
 */
#include "common.h"
#include <linux/membarrier.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0)
        fail_errno("membarrier register");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        int ok = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
        if (!ok)
            emit("step %d: the membarrier registration is gone\n", step);
        chain = fnv1a_u64(chain, (uint64_t)step * 3 + (uint64_t)ok);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

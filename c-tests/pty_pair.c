/*
 * pty_pair.c [STEPS] - a pseudo-terminal pair the process holds both ends of comes
 * back as a pair (issue 15), whatever terminal the restoring process has.
 *
 * openpty(), the slave in raw mode, a window of 33 rows and 99 columns. Each step
 * writes "ping <step>" to the master and reads it from the slave, then the other way
 * round; checks the slave is still raw, the window size, and that the two ends are
 * one pair (the master's number names the slave's device). The step line folds in a
 * bit mask of what differed.
 */
#include "common.h"
#include <pty.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int m, s;
    struct winsize ws = { .ws_row = 33, .ws_col = 99 };
    if (openpty(&m, &s, NULL, NULL, &ws))
        fail_errno("openpty");
    struct termios t;
    if (tcgetattr(s, &t))
        fail_errno("tcgetattr");
    cfmakeraw(&t);
    if (tcsetattr(s, TCSANOW, &t))
        fail_errno("tcsetattr");
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = 0;
        char b[32], r[32];
        int n = snprintf(b, sizeof b, "ping %d", step);
        if (write(m, b, (size_t)n) != n || read(s, r, sizeof r) != n || memcmp(r, b, (size_t)n) != 0)
            bad |= 1;
        if (write(s, b, (size_t)n) != n || read(m, r, sizeof r) != n || memcmp(r, b, (size_t)n) != 0)
            bad |= 2;
        struct termios now;
        if (tcgetattr(s, &now) || (now.c_lflag & (ICANON | ECHO | ISIG)) || (now.c_oflag & OPOST))
            bad |= 4;
        struct winsize w;
        if (ioctl(m, TIOCGWINSZ, &w) || w.ws_row != 33 || w.ws_col != 99)
            bad |= 8;
        int num = 0;
        struct stat st;
        if (ioctl(m, TIOCGPTN, &num) || fstat(s, &st) || minor(st.st_rdev) + 256 * (major(st.st_rdev) - 136) != (unsigned)num)
            bad |= 16;
        if (bad)
            emit("step %d: the pseudo-terminal is not as it was: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 59 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

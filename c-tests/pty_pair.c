/*
 * pty_pair.c [STEPS] [fork] - a pseudo-terminal pair the process holds both ends of
 * comes back as a pair (issue 15), whatever terminal the restoring process has; with
 * `fork`, a pair whose slave a child holds on its standard input (issue 16).
 *
 * openpty(), the slave in raw mode, a window of 33 rows and 99 columns. Each step
 * writes "ping <step>" to the master and reads it from the slave, then the other way
 * round; checks the slave is still raw, the window size, and that the two ends are
 * one pair (the master's number names the slave's device). The step line folds in a
 * bit mask of what differed.
 * With `fork`, a child takes the slave as its standard input and controlling terminal
 * in a session of its own (as forkpty leaves it; it closes the master);
 * each step the parent writes "ping <step>" to the master and the child answers on
 * the slave with "pong <step> <its own mask>" (the slave still raw, still its
 * controlling terminal with its group in the foreground, /dev/tty opens); the parent checks
 * the answer and the window size, prints the step, and ends the child with "quit".
 */
#include "common.h"
#include <fcntl.h>
#include <pty.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>

static int raw(int fd)
{
    struct termios now;
    return tcgetattr(fd, &now) == 0 && !(now.c_lflag & (ICANON | ECHO | ISIG)) && !(now.c_oflag & OPOST);
}

static int forked(int m, int s, int steps)
{
    pid_t child = fork();
    if (child < 0)
        fail_errno("fork");
    if (child == 0) {
        close(m);
        /* As forkpty leaves it: a session of its own, the slave its controlling
         * terminal and standard input. */
        if (setsid() < 0 || dup2(s, 0) != 0 || ioctl(0, TIOCSCTTY, 0) != 0)
            fail_errno("setsid, dup2, TIOCSCTTY");
        close(s);
        char b[64];
        ssize_t n;
        while ((n = read(0, b, sizeof b - 1)) > 0) {
            b[n] = 0;
            if (strcmp(b, "quit") == 0)
                exit(0);
            int step = atoi(b + 5);
            char r[64];
            int own = tcgetsid(0) == getsid(0) && tcgetpgrp(0) == getpgrp();
            int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
            if (tty >= 0)
                close(tty);
            int k = snprintf(r, sizeof r, "pong %d %d", step, (raw(0) ? 0 : 1) | (own ? 0 : 2) | (tty >= 0 ? 0 : 4));
            if (write(0, r, (size_t)k) != k)
                exit(3);
        }
        exit(2);
    }
    close(s);
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = 0;
        char b[32], r[64], want[64];
        int n = snprintf(b, sizeof b, "ping %d", step);
        int k = snprintf(want, sizeof want, "pong %d 0", step);
        if (write(m, b, (size_t)n) != n)
            bad |= 1;
        ssize_t got = read(m, r, sizeof r);
        if (got != k || memcmp(r, want, (size_t)k) != 0)
            bad |= 2;
        struct winsize w;
        if (ioctl(m, TIOCGWINSZ, &w) || w.ws_row != 33 || w.ws_col != 99)
            bad |= 8;
        if (bad)
            emit("step %d: the pseudo-terminal is not as it was: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 61 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    if (write(m, "quit", 4) != 4)
        fail_errno("write quit");
    int st;
    if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("the child ended with status %#x", st);
    done_line(chain);
    return 0;
}

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
    if (argc > 2 && strcmp(argv[2], "fork") == 0)
        return forked(m, s, steps);
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

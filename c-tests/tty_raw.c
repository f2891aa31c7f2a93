/*
 * tty_raw.c - a program in raw terminal mode.
 *
 * Standard input must be a terminal (the test runs it on a pseudo-terminal,
 * which is also its stdout and stderr). At the start the program puts it in
 * raw mode (cfmakeraw, 57600 baud) and keeps a dup of it on descriptor 10.
 * Each step checks, on fd 10 first and then on fd 0, that isatty() holds and
 * that tcgetattr() still shows exactly those modes; otherwise it prints
 * `FAIL fd <n> ...` naming what the descriptor now is (its /proc/self/fd link)
 * and exits 1. With OPOST off the lines reach the terminal's master side with
 * "\n" alone, no "\r".
 *
 * After the last step it prints `input?` and waits (at most 5 s) for three
 * bytes on fd 0 with no newline: in canonical mode they would never be
 * delivered; with ECHO off they are not echoed. The bytes go into the done
 * digest. The digest covers the termios fields, which for a pty created with
 * default settings do not vary.
 */
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <termios.h>

static struct termios want;

static void check_fd(int fd)
{
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    if (n <= 0)
        snprintf(target, sizeof target, "closed");
    /* A pty's name (/dev/pts/N) differs from run to run: not in the message. */
    if (strncmp(target, "/dev/pts/", 9) == 0)
        snprintf(target, sizeof target, "a pty");
    if (!isatty(fd))
        fail("fd %d is not a terminal (%s)", fd, target);
    struct termios t;
    if (tcgetattr(fd, &t) != 0)
        fail("fd %d: tcgetattr: %s (%s)", fd, strerror(errno), target);
    if (t.c_iflag != want.c_iflag || t.c_oflag != want.c_oflag || t.c_cflag != want.c_cflag ||
        t.c_lflag != want.c_lflag)
        fail("fd %d: terminal modes changed (iflag %#x oflag %#x cflag %#x lflag %#x)", fd, t.c_iflag, t.c_oflag,
             t.c_cflag, t.c_lflag);
    if (memcmp(t.c_cc, want.c_cc, sizeof t.c_cc) != 0)
        fail("fd %d: control characters changed", fd);
    if (cfgetispeed(&t) != B57600 || cfgetospeed(&t) != B57600)
        fail("fd %d: speed changed", fd);
    if ((t.c_lflag & (ICANON | ECHO | ISIG)) || (t.c_oflag & OPOST) || t.c_cc[VMIN] != 1 || t.c_cc[VTIME] != 0)
        fail("fd %d: not in raw mode", fd);
}

static uint64_t hash_modes(uint64_t h)
{
    h = fnv1a_u64(h, want.c_iflag);
    h = fnv1a_u64(h, want.c_oflag);
    h = fnv1a_u64(h, want.c_cflag);
    h = fnv1a_u64(h, want.c_lflag);
    return fnv1a(h, want.c_cc, sizeof want.c_cc);
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    if (!isatty(0))
        fail("stdin is not a terminal");
    struct termios t;
    if (tcgetattr(0, &t) != 0)
        fail_errno("tcgetattr");
    cfmakeraw(&t);
    cfsetispeed(&t, B57600);
    cfsetospeed(&t, B57600);
    if (tcsetattr(0, TCSANOW, &t) != 0)
        fail_errno("tcsetattr");
    if (tcgetattr(0, &want) != 0)
        fail_errno("tcgetattr");
    if (dup2(0, 10) != 10)
        fail_errno("dup2");

    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        check_fd(10);
        check_fd(0);
        uint64_t d = hash_modes(fnv1a_u64(FNV_OFFSET, (uint64_t)s));
        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(50);
    }

    emit("input?\n");
    char in[3];
    size_t got = 0;
    for (int slices = 0; got < sizeof in; slices++) {
        struct pollfd pf = { 0, POLLIN, 0 };
        int r = poll(&pf, 1, 100);
        if (r < 0 && errno != EINTR)
            fail_errno("poll on stdin");
        if (r == 1) {
            ssize_t n = read(0, in + got, sizeof in - got);
            if (n <= 0 && !(n < 0 && errno == EINTR))
                fail("read on stdin returned %zd", n);
            if (n > 0)
                got += (size_t)n;
        }
        if (slices >= 50)
            fail("no input within 5 s (%zu bytes; canonical mode?)", got);
    }
    check_fd(0);
    chain = fnv1a(chain, in, sizeof in);
    done_line(chain);
    return 0;
}

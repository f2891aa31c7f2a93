/*
 * pty_queue.c - bytes waiting in a pseudo-terminal the process owns, both ways.
 *
 * Usage: pty_queue [STEPS] [canon|raw]
 *
 * The process opens a pseudo-terminal pair. Its slave is left in canonical mode
 * with echo (canon, the default) or made raw. The master writes two lines, a
 * third ended by the end-of-file character (^D: read as a line without its newline),
 * and half of a fourth (for the slave to read); the slave writes two lines (for the
 * master to read). Nobody reads while it steps; a checkpoint (and a restore)
 * happens meanwhile. Each step's digest takes in what FIONREAD says waits at
 * either end and the slave's modes, which the end prints. At the end the last line is finished, and everything
 * each end reads is printed, escaped: the same, read by the same calls, as in a
 * run that was never checkpointed.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>

static void put(int fd, const char *s)
{
    write_all(fd, s, strlen(s));
}

static int waiting(int fd)
{
    int n = -1;
    if (ioctl(fd, FIONREAD, &n) != 0)
        fail_errno("FIONREAD");
    return n;
}

/* One read() of fd (non-blocking), printed escaped; 0 when nothing came. */
static int show_read(int fd, const char *who)
{
    char buf[512], text[2048];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0)
        return 0;
    size_t t = 0;
    for (ssize_t i = 0; i < n && t + 5 < sizeof text; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c >= 32 && c < 127 && c != '\\')
            text[t++] = (char)c;
        else
            t += (size_t)snprintf(text + t, sizeof text - t, "\\x%02x", c);
    }
    text[t] = 0;
    emit("%s read %zd: %s\n", who, n, text);
    return 1;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int raw = argc > 2 && strcmp(argv[2], "raw") == 0;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0)
        fail_errno("posix_openpt");
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    if (slave < 0)
        fail_errno("open the slave");
    struct termios t;
    if (tcgetattr(slave, &t) != 0)
        fail_errno("tcgetattr");
    if (raw) {
        cfmakeraw(&t);
        if (tcsetattr(slave, TCSANOW, &t) != 0)
            fail_errno("tcsetattr");
    }
    /* Each written once the kernel has taken in (and echoed) the one before: the
     * counts below are then the same every run. */
    put(master, "first line\nsecond\nflushed\x04part");
    for (int i = 0; i < 400 && (raw ? waiting(slave) < 30 : waiting(master) < 31); i++)
        pace_ms(5);
    put(slave, "out one\nout two");
    for (int i = 0; i < 400 && waiting(master) < (raw ? 15 : 47); i++)
        pace_ms(5);

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        struct termios now;
        if (tcgetattr(slave, &now) != 0)
            fail_errno("tcgetattr");
        int m = waiting(master), s = waiting(slave);
        chain = fnv1a_u64(chain, (uint64_t)m * 1000 + (uint64_t)s);
        chain = fnv1a_u64(chain, (uint64_t)now.c_lflag << 32 | now.c_iflag);
        chain = fnv1a_u64(chain, (uint64_t)now.c_oflag);
        step_line(step, chain);
        pace_ms(50);
    }
    emit("waiting: master %d slave %d\n", waiting(master), waiting(slave));
    put(master, "ial\n");
    fcntl(master, F_SETFL, O_NONBLOCK);
    fcntl(slave, F_SETFL, O_NONBLOCK);
    pace_ms(50);
    while (show_read(slave, "slave"))
        ;
    while (show_read(master, "master"))
        ;
    done_line(chain);
    return 0;
}

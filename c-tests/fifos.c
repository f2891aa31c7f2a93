/*
 * fifos.c - named FIFOs across a checkpoint: one with both ends open in the process
 * and bytes queued in it, one whose name was removed (also with bytes queued), and a
 * read-only end of a third with no writer.
 *
 * usage: fifos [STEPS]      (20 steps by default; the FIFOs are used at step 10)
 *
 * Before step 1, in the cwd: `a.fifo` opened read (O_NONBLOCK) and write, 3 bytes
 * written; `b.fifo` opened the same way, 5 bytes written, then unlinked; `c.fifo`
 * opened read-only (O_NONBLOCK), nobody writing. At step 10 the program reads back
 * what each holds (it must be what was written), writes and reads a byte through each
 * of the first two, checks that reading `c.fifo` gives end of file, that every
 * descriptor's status flags are as opened, that `a.fifo` is still a FIFO at its name and
 * that `b.fifo` is still nameless, and folds what it read into the step's digest.
 */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

static int ar, aw, br, bw, cr;

static void setup(void)
{
    const char *names[] = { "a.fifo", "b.fifo", "c.fifo" };
    for (int i = 0; i < 3; i++) {
        unlink(names[i]);
        if (mkfifo(names[i], 0600) != 0)
            fail_errno("mkfifo");
    }
    ar = open("a.fifo", O_RDONLY | O_NONBLOCK);
    aw = open("a.fifo", O_WRONLY);
    br = open("b.fifo", O_RDONLY | O_NONBLOCK);
    bw = open("b.fifo", O_WRONLY);
    cr = open("c.fifo", O_RDONLY | O_NONBLOCK);
    if (ar < 0 || aw < 0 || br < 0 || bw < 0 || cr < 0)
        fail_errno("open a FIFO");
    write_all(aw, "abc", 3);
    write_all(bw, "hello", 5);
    if (unlink("b.fifo") != 0)
        fail_errno("unlink b.fifo");
}

static uint64_t use(void)
{
    char buf[16] = { 0 };
    if (read(ar, buf, sizeof buf) != 3 || memcmp(buf, "abc", 3) != 0)
        fail("a.fifo held %.16s", buf);
    memset(buf, 0, sizeof buf);
    if (read(br, buf, sizeof buf) != 5 || memcmp(buf, "hello", 5) != 0)
        fail("the nameless FIFO held %.16s", buf);
    uint64_t h = fnv1a(FNV_OFFSET, "abchello", 8);
    int pairs[2][2] = { { aw, ar }, { bw, br } };
    for (int i = 0; i < 2; i++) {
        char c = (char)('x' + i), back = 0;
        if (write(pairs[i][0], &c, 1) != 1 || read(pairs[i][1], &back, 1) != 1 || back != c)
            fail("FIFO %d does not carry a byte", i);
        h = fnv1a(h, &back, 1);
    }
    if (read(cr, buf, sizeof buf) != 0)
        fail("c.fifo, with nobody writing, does not read as its end");
    int want[5][2] = { { ar, O_RDONLY | O_NONBLOCK }, { aw, O_WRONLY }, { br, O_RDONLY | O_NONBLOCK }, { bw, O_WRONLY }, { cr, O_RDONLY | O_NONBLOCK } };
    for (int i = 0; i < 5; i++) {
        int fl = fcntl(want[i][0], F_GETFL);
        if ((fl & (O_ACCMODE | O_NONBLOCK)) != want[i][1])
            fail("descriptor %d has status flags %#x", want[i][0], fl);
        struct stat st;
        if (fstat(want[i][0], &st) != 0 || !S_ISFIFO(st.st_mode))
            fail("descriptor %d is no FIFO", want[i][0]);
    }
    struct stat st;
    if (stat("a.fifo", &st) != 0 || !S_ISFIFO(st.st_mode))
        fail("a.fifo is gone from its name");
    if (access("b.fifo", F_OK) == 0)
        fail("the nameless FIFO has a name again");
    return h;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, 20);
    setup();
    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        chain = fnv1a_u64(chain, (uint64_t)s);
        if (s == 10)
            chain = fnv1a_u64(chain, use());
        step_line(s, chain);
        pace_ms(30);
    }
    unlink("a.fifo");
    unlink("c.fifo");
    done_line(chain);
    return 0;
}

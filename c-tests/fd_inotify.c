/*
 * fd_inotify.c - an inotify instance with watches whose descriptors have a gap.
 *
 * Creates the directory w/ in the cwd (the checkpoint image is written in the
 * cwd itself, so nothing watched sees it) with a.txt, b.txt and c.txt, then
 * watches, in this order:
 *   w/a.txt  IN_MODIFY | IN_CLOSE_WRITE
 *   w/c.txt  IN_ATTRIB               (removed again: a gap in the numbers)
 *   w/b.txt  IN_MODIFY | IN_ATTRIB
 *   w/       IN_CREATE | IN_DELETE | IN_MOVED_TO
 * Each step appends to a.txt (open/write/close), chmods b.txt and writes it
 * through a descriptor kept open, creates w/t<n>, renames it to w/u<n> and
 * deletes it, then reads every event (non-blocking, until EAGAIN) and checks
 * them against the expected sequence. Re-adding the watch on a.txt with the
 * same mask must return its old descriptor; w/c.txt must not be watched
 * (changing it produces nothing). At step N/2 a watch is added on w/d.txt; it
 * must get a descriptor distinct from the others and report its events.
 *
 * The digest covers, per event, wd (the saved ones: they must not change after
 * a restore), mask, cookie != 0 for the rename pair, and name. Nothing stays
 * queued between steps.
 */
#include "common.h"
#include "fd_common.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#define MAXEV 32

struct ev {
    int wd;
    uint32_t mask;
    char name[32];
};

static int in;
static int wd_a, wd_b, wd_c, wd_dir, wd_d = -1;

static void touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        fail("create %s: %s", path, strerror(errno));
    close(fd);
}

static void append(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0)
        fail("open %s: %s", path, strerror(errno));
    write_all(fd, text, strlen(text));
    close(fd);
}

/* Reads all queued events (EAGAIN ends). */
static int read_events(struct ev *out, uint32_t *cookies)
{
    static char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int n = 0;
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return n;
        if (r <= 0)
            fail("inotify read returned %zd (%s)", r, r < 0 ? strerror(errno) : "end of file");
        for (char *p = buf; p < buf + r;) {
            struct inotify_event *e = (struct inotify_event *)p;
            if (n == MAXEV)
                fail("too many inotify events");
            out[n].wd = e->wd;
            out[n].mask = e->mask;
            cookies[n] = e->cookie;
            snprintf(out[n].name, sizeof out[n].name, "%s", e->len ? e->name : "");
            n++;
            p += sizeof *e + e->len;
        }
    }
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    fd_baseline();
    if (mkdir("w", 0755) != 0 && errno != EEXIST)
        fail_errno("mkdir w");
    touch("w/a.txt");
    touch("w/b.txt");
    touch("w/c.txt");
    touch("w/d.txt");
    int bfd = open("w/b.txt", O_WRONLY);
    if (bfd < 0)
        fail_errno("open w/b.txt");

    in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (in < 0)
        fail_errno("inotify_init1");
    wd_a = inotify_add_watch(in, "w/a.txt", IN_MODIFY | IN_CLOSE_WRITE);
    wd_c = inotify_add_watch(in, "w/c.txt", IN_ATTRIB);
    wd_b = inotify_add_watch(in, "w/b.txt", IN_MODIFY | IN_ATTRIB);
    wd_dir = inotify_add_watch(in, "w", IN_CREATE | IN_DELETE | IN_MOVED_TO);
    if (wd_a < 0 || wd_b < 0 || wd_c < 0 || wd_dir < 0)
        fail_errno("inotify_add_watch");
    if (inotify_rm_watch(in, wd_c) != 0)
        fail_errno("inotify_rm_watch");
    if (!(wd_a < wd_c && wd_c < wd_b && wd_b < wd_dir))
        fail("watch descriptors are not increasing");

    struct ev evs[MAXEV];
    uint32_t cookies[MAXEV];
    /* Removing a watch queues IN_IGNORED for it. */
    int n = read_events(evs, cookies);
    if (n != 1 || evs[0].wd != wd_c || evs[0].mask != IN_IGNORED)
        fail("expected one IN_IGNORED event after inotify_rm_watch, got %d events", n);

    uint64_t chain = FNV_OFFSET;
    char text[64], t[48], u[48], tn[16], un[16];
    for (int s = 1; s <= steps; s++) {
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);
        int mine[] = { in, bfd };
        check_open_fds(mine, 2);
        if (s == steps / 2 + 1 || (steps == 1 && s == 1)) {
            wd_d = inotify_add_watch(in, "w/d.txt", IN_MODIFY);
            if (wd_d < 0)
                fail_errno("inotify_add_watch w/d.txt");
            if (wd_d == wd_a || wd_d == wd_b || wd_d == wd_dir)
                fail("new watch got descriptor %d, which is in use", wd_d);
        }
        /* The kernel still knows which path each saved descriptor watches. */
        if (inotify_add_watch(in, "w/a.txt", IN_MODIFY | IN_CLOSE_WRITE) != wd_a)
            fail("watching w/a.txt again did not return its descriptor");

        snprintf(text, sizeof text, "line %d\n", s);
        append("w/a.txt", text);
        if (fchmod(bfd, s % 2 ? 0600 : 0644) != 0)
            fail_errno("fchmod");
        write_all(bfd, text, strlen(text));
        if (chmod("w/c.txt", s % 2 ? 0600 : 0644) != 0) /* unwatched: no event */
            fail_errno("chmod w/c.txt");
        if (wd_d >= 0)
            append("w/d.txt", text);
        snprintf(tn, sizeof tn, "t%d", s);
        snprintf(un, sizeof un, "u%d", s);
        snprintf(t, sizeof t, "w/%s", tn);
        snprintf(u, sizeof u, "w/%s", un);
        touch(t);
        if (rename(t, u) != 0 || unlink(u) != 0)
            fail_errno("rename/unlink");

        struct ev want[MAXEV];
        int k = 0;
        want[k++] = (struct ev){ wd_a, IN_MODIFY, "" };
        want[k++] = (struct ev){ wd_a, IN_CLOSE_WRITE, "" };
        want[k++] = (struct ev){ wd_b, IN_ATTRIB, "" };
        want[k++] = (struct ev){ wd_b, IN_MODIFY, "" };
        if (wd_d >= 0)
            want[k++] = (struct ev){ wd_d, IN_MODIFY, "" };
        want[k] = (struct ev){ wd_dir, IN_CREATE, "" };
        snprintf(want[k++].name, sizeof want[0].name, "%s", tn);
        want[k] = (struct ev){ wd_dir, IN_MOVED_TO, "" };
        snprintf(want[k++].name, sizeof want[0].name, "%s", un);
        want[k] = (struct ev){ wd_dir, IN_DELETE, "" };
        snprintf(want[k++].name, sizeof want[0].name, "%s", un);

        n = read_events(evs, cookies);
        if (n != k)
            fail("step %d: %d inotify events, expected %d", s, n, k);
        for (int i = 0; i < n; i++) {
            if (evs[i].wd != want[i].wd || evs[i].mask != want[i].mask || strcmp(evs[i].name, want[i].name) != 0)
                fail("step %d: event %d is (wd %d, mask %#x, '%s'), expected (wd %d, mask %#x, '%s')", s, i,
                     evs[i].wd, evs[i].mask, evs[i].name, want[i].wd, want[i].mask, want[i].name);
            if ((evs[i].mask == IN_MOVED_TO) != (cookies[i] != 0))
                fail("step %d: event %d has cookie %u", s, i, cookies[i]);
            /* The new watch's number is the kernel's choice: hashed as a role. */
            d = fnv1a_u64(d, evs[i].wd == wd_d ? 0xddd : (uint64_t)evs[i].wd);
            d = fnv1a_u64(d, evs[i].mask);
            d = fnv1a_str(d, evs[i].name);
        }
        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

/*
 * fd_pipes.c - pipes and socketpairs whose ends are all in the process, with
 * data in flight at every step.
 *
 * - self pipe: each step writes (half through the write end, half through a
 *   dup made with F_DUPFD_CLOEXEC at >= 20) and reads back less than it
 *   wrote, so a backlog of 1..1500 bytes that varies from step to step stays
 *   in the pipe; FIONREAD must equal the model. The dup toggles O_NONBLOCK
 *   (one open file description: the original end must see it) while its own
 *   FD_CLOEXEC stays per descriptor.
 * - flags pipe: read end O_NONBLOCK (write end not), write end FD_CLOEXEC
 *   (read end not). Each step drains what the previous step wrote with one
 *   read (must be exactly that much, then EAGAIN) and writes a new batch.
 * - stream socketpair: bytes queued in both directions across steps.
 * - datagram socketpair: 1..4 datagrams a->b and one b->a (every third one
 *   empty) queued across steps; each recv must return exactly one datagram
 *   of the size sent (FIONREAD: the size of the next one), then EAGAIN.
 * - seqpacket socketpair: the same with 1..3 records each way.
 * - closed pipe: 1000 bytes written at the start, write end closed; 37 bytes
 *   are read per step, then end of file (poll: POLLIN|POLLHUP, then POLLHUP).
 * - shared.dat opened in the cwd and dup'd: writes alternate between the two
 *   descriptors, whose offsets must stay equal (one open file description).
 *
 * Each step also checks that exactly these descriptors are open.
 *
 * SIGPIPE is ignored: a pipe that came back broken shows up as a FAIL line,
 * not a death. The digest covers every byte read, the backlogs, FIONREAD
 * values and poll results; none depends on time.
 */
#include "common.h"
#include "fd_common.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/* Byte k of stream `id`: every stream has its own deterministic sequence. */
static unsigned char sbyte(int id, uint64_t k)
{
    uint64_t x = (k + 1) * 0x9e3779b97f4a7c15ULL + (uint64_t)id * 0x632be59bd9b4e019ULL;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 32;
    return (unsigned char)x;
}

struct stream {
    int id;
    const char *name;
    uint64_t wpos, rpos; /* bytes written / read so far */
};

static unsigned char buf[65536];

/* Writes the next n bytes of the stream to fd (all of them, or FAIL). */
static void put(int fd, struct stream *st, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = sbyte(st->id, st->wpos + i);
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, buf + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            fail("%s: write of %zu bytes: %s", st->name, n - done, w < 0 ? strerror(errno) : "wrote 0");
        done += (size_t)w;
    }
    st->wpos += n;
}

/* Reads exactly n bytes of the stream from fd, checks them, hashes them. */
static uint64_t take(int fd, struct stream *st, size_t n, uint64_t h)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            fail("%s: read: %s", st->name, strerror(errno));
        if (r == 0)
            fail("%s: end of file with %zu of %zu bytes missing", st->name, n - got, n);
        got += (size_t)r;
    }
    for (size_t i = 0; i < n; i++)
        if (buf[i] != sbyte(st->id, st->rpos + i))
            fail("%s: byte %llu is wrong", st->name, (unsigned long long)(st->rpos + i));
    st->rpos += n;
    return fnv1a(h, buf, n);
}

static int inq(int fd, const char *what)
{
    int n = -1;
    if (ioctl(fd, FIONREAD, &n) != 0)
        fail("FIONREAD on the %s: %s", what, strerror(errno));
    return n;
}

static int getfl(int fd, int cmd, const char *what)
{
    int v = fcntl(fd, cmd);
    if (v < 0)
        fail("fcntl on the %s: %s", what, strerror(errno));
    return v;
}

/* Message i of a batch of datagrams/records: a size and a stream of bytes. */
static void send_msg(int fd, struct stream *st, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = sbyte(st->id, st->wpos + i);
    ssize_t w;
    do
        w = send(fd, buf, len, MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)len)
        fail("%s: send of %zu bytes returned %zd (%s)", st->name, len, w, w < 0 ? strerror(errno) : "short");
    st->wpos += len;
}

static uint64_t recv_msg(int fd, struct stream *st, size_t len, int seqpacket, uint64_t h)
{
    int q = inq(fd, st->name);
    /* AF_UNIX: datagram sockets report the next datagram, seqpacket the total. */
    if (!seqpacket && q != (int)len)
        fail("%s: FIONREAD %d, next datagram has %zu bytes", st->name, q, len);
    if (seqpacket && q < (int)len)
        fail("%s: FIONREAD %d, next record has %zu bytes", st->name, q, len);
    ssize_t r;
    do
        r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)len)
        fail("%s: recv returned %zd (%s), the message sent had %zu bytes", st->name, r,
             r < 0 ? strerror(errno) : "boundary lost", len);
    for (size_t i = 0; i < len; i++)
        if (buf[i] != sbyte(st->id, st->rpos + i))
            fail("%s: byte %llu is wrong", st->name, (unsigned long long)(st->rpos + i));
    st->rpos += len;
    h = fnv1a_u64(h, (uint64_t)q);
    return fnv1a(h, buf, len);
}

static void expect_empty(int fd, const char *what)
{
    ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r >= 0 || errno != EAGAIN)
        fail("%s: expected nothing queued, recv returned %zd (%s)", what, r, r < 0 ? strerror(errno) : "data");
}

/* Batches of messages: the sizes depend on the step only. */
static int dgram_count(int s) { return 1 + s % 4; }
static size_t dgram_len(int s, int i) { return 1 + (size_t)((s * 31 + i * 57) % 400); }
static size_t dgram_back_len(int s) { return s % 3 == 0 ? 0 : (size_t)(20 + s); }
static int seq_count(int s) { return 1 + s % 3; }
static size_t seq_len(int s, int i) { return 1 + (size_t)((s * 43 + i * 101) % 600); }
static size_t seq_back_len(int s, int i) { return 5 + (size_t)((s * 7 + i * 3) % 90); }

static int backlog(int s) { return s == 0 ? 0 : 1 + (s * 137) % 1500; }

#define CLOSED_TOTAL 1000
#define CLOSED_CHUNK 37

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    fd_baseline();
    signal(SIGPIPE, SIG_IGN);

    int p1[2], p2[2], p5[2], s1[2], s2[2], s3[2];
    if (pipe(p1) != 0 || pipe(p2) != 0 || pipe(p5) != 0)
        fail_errno("pipe");
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, s1) != 0 || socketpair(AF_UNIX, SOCK_DGRAM, 0, s2) != 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET, 0, s3) != 0)
        fail_errno("socketpair");
    int w1d = fcntl(p1[1], F_DUPFD_CLOEXEC, 20);
    if (w1d < 20)
        fail_errno("F_DUPFD_CLOEXEC");
    if (fcntl(p2[0], F_SETFL, O_NONBLOCK) != 0 || fcntl(p2[1], F_SETFD, FD_CLOEXEC) != 0)
        fail_errno("fcntl on the flags pipe");
    int f1 = open("shared.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (f1 < 0)
        fail_errno("open shared.dat");
    int f2 = dup(f1);
    if (f2 < 0)
        fail_errno("dup");

    struct stream self = { 1, "self pipe", 0, 0 }, flags = { 2, "flags pipe", 0, 0 };
    struct stream ab = { 3, "stream a->b", 0, 0 }, ba = { 4, "stream b->a", 0, 0 };
    struct stream dab = { 5, "dgram a->b", 0, 0 }, dba = { 6, "dgram b->a", 0, 0 };
    struct stream qab = { 7, "seqpacket a->b", 0, 0 }, qba = { 8, "seqpacket b->a", 0, 0 };
    struct stream closed = { 9, "closed pipe", 0, 0 };

    put(p5[1], &closed, CLOSED_TOTAL);
    close(p5[1]);

    int mine[] = { p1[0], p1[1], p2[0], p2[1], p5[0], s1[0], s1[1], s2[0], s2[1], s3[0], s3[1], w1d, f1, f2 };
    size_t flags_pending = 0, ab_pending = 0, ba_pending = 0;
    uint64_t file_off = 0;
    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);
        check_open_fds(mine, (int)(sizeof mine / sizeof mine[0]));

        /* Self pipe: the dup shares the status flags, not the descriptor flags. */
        int nb = s % 2 ? O_NONBLOCK : 0;
        if (fcntl(w1d, F_SETFL, nb) != 0)
            fail_errno("F_SETFL on the dup");
        if ((getfl(p1[1], F_GETFL, "self pipe write end") & O_NONBLOCK) != nb)
            fail("the dup and the self pipe's write end do not share O_NONBLOCK");
        if (getfl(w1d, F_GETFD, "dup") != FD_CLOEXEC || getfl(p1[1], F_GETFD, "self pipe write end") != 0)
            fail("descriptor flags of the self pipe's write end and its dup are wrong");
        if (inq(p1[0], "self pipe") != backlog(s - 1))
            fail("self pipe: %d bytes queued, expected %d", inq(p1[0], "self pipe"), backlog(s - 1));
        size_t b = 1600 + (size_t)(s % 7) * 50;
        size_t a = (size_t)(backlog(s) - backlog(s - 1)) + b;
        put(p1[1], &self, a / 2);
        put(w1d, &self, a - a / 2);
        d = take(p1[0], &self, b, d);
        if (inq(p1[0], "self pipe") != backlog(s))
            fail("self pipe: %d bytes left, expected %d", inq(p1[0], "self pipe"), backlog(s));
        d = fnv1a_u64(d, (uint64_t)backlog(s));

        /* Flags pipe: one read drains the previous batch, the next one is EAGAIN. */
        if (!(getfl(p2[0], F_GETFL, "flags pipe read end") & O_NONBLOCK) ||
            (getfl(p2[1], F_GETFL, "flags pipe write end") & O_NONBLOCK))
            fail("flags pipe: O_NONBLOCK must be on the read end only");
        if (getfl(p2[0], F_GETFD, "flags pipe read end") != 0 ||
            getfl(p2[1], F_GETFD, "flags pipe write end") != FD_CLOEXEC)
            fail("flags pipe: FD_CLOEXEC must be on the write end only");
        if (flags_pending) {
            ssize_t r;
            do
                r = read(p2[0], buf, sizeof buf);
            while (r < 0 && errno == EINTR);
            if (r != (ssize_t)flags_pending)
                fail("flags pipe: read %zd (%s), expected %zu", r, r < 0 ? strerror(errno) : "bytes", flags_pending);
            for (size_t i = 0; i < flags_pending; i++)
                if (buf[i] != sbyte(flags.id, flags.rpos + i))
                    fail("flags pipe: byte %zu is wrong", i);
            flags.rpos += flags_pending;
            d = fnv1a(d, buf, flags_pending);
        }
        ssize_t r = read(p2[0], buf, 1);
        if (r != -1 || errno != EAGAIN)
            fail("flags pipe: empty non-blocking read returned %zd (%s)", r, r < 0 ? strerror(errno) : "data");
        flags_pending = 100 + (size_t)((s * 71) % 3000);
        put(p2[1], &flags, flags_pending);

        /* Stream socketpair, both directions. */
        if (inq(s1[1], "stream b") != (int)ab_pending || inq(s1[0], "stream a") != (int)ba_pending)
            fail("stream socketpair: wrong amounts queued");
        d = take(s1[1], &ab, ab_pending, d);
        d = take(s1[0], &ba, ba_pending, d);
        ab_pending = 50 + (size_t)((s * 97) % 2000);
        ba_pending = 10 + (size_t)((s * 13) % 500);
        put(s1[0], &ab, ab_pending);
        put(s1[1], &ba, ba_pending);

        /* Datagrams queued by the previous step, one recv each. */
        if (s > 1) {
            for (int i = 0; i < dgram_count(s - 1); i++)
                d = recv_msg(s2[1], &dab, dgram_len(s - 1, i), 0, d);
            d = recv_msg(s2[0], &dba, dgram_back_len(s - 1), 0, d);
            for (int i = 0; i < seq_count(s - 1); i++)
                d = recv_msg(s3[1], &qab, seq_len(s - 1, i), 1, d);
            for (int i = 0; i < seq_count(s - 1); i++)
                d = recv_msg(s3[0], &qba, seq_back_len(s - 1, i), 1, d);
        }
        expect_empty(s2[1], "dgram b");
        expect_empty(s2[0], "dgram a");
        expect_empty(s3[1], "seqpacket b");
        expect_empty(s3[0], "seqpacket a");
        for (int i = 0; i < dgram_count(s); i++)
            send_msg(s2[0], &dab, dgram_len(s, i));
        send_msg(s2[1], &dba, dgram_back_len(s));
        for (int i = 0; i < seq_count(s); i++)
            send_msg(s3[0], &qab, seq_len(s, i));
        for (int i = 0; i < seq_count(s); i++)
            send_msg(s3[1], &qba, seq_back_len(s, i));

        /* Closed pipe: data, then end of file. */
        struct pollfd pf = { p5[0], POLLIN, 0 };
        if (poll(&pf, 1, 0) < 0 && errno != EINTR)
            fail_errno("poll on the closed pipe");
        size_t left = CLOSED_TOTAL - closed.rpos;
        int want = left ? (POLLIN | POLLHUP) : POLLHUP;
        if (pf.revents != want)
            fail("closed pipe: poll revents %#x, expected %#x", pf.revents, want);
        d = fnv1a_u64(d, (uint64_t)pf.revents);
        size_t n = left < CLOSED_CHUNK ? left : CLOSED_CHUNK;
        d = take(p5[0], &closed, n, d);
        if (n < CLOSED_CHUNK) {
            do
                r = read(p5[0], buf, 1);
            while (r < 0 && errno == EINTR);
            if (r != 0)
                fail("closed pipe: expected end of file, read returned %zd", r);
            d = fnv1a_str(d, "eof");
        }

        /* Dup'd regular file: one offset. */
        int fa = s % 2 ? f1 : f2, fb = s % 2 ? f2 : f1;
        char rec[40];
        memset(rec, 'a' + s % 26, sizeof rec);
        write_all(fa, rec, 16);
        write_all(fb, rec, 24);
        file_off += 40;
        off_t o1 = lseek(f1, 0, SEEK_CUR), o2 = lseek(f2, 0, SEEK_CUR);
        if (o1 != (off_t)file_off || o2 != (off_t)file_off)
            fail("shared.dat: offsets %lld and %lld, expected %llu for both", (long long)o1, (long long)o2,
                 (unsigned long long)file_off);
        if (pread(f1, rec, 1, (off_t)file_off - 1) != 1 || rec[0] != 'a' + s % 26)
            fail("shared.dat: last byte is wrong");
        d = fnv1a_u64(d, file_off);

        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

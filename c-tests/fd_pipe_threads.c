// cflags: -pthread
/*
 * fd_pipe_threads.c - threads blocked on pipes and sockets across a checkpoint.
 *
 * - `reader` waits in a blocking read() on the request pipe for a 4-byte
 *   length and then that many bytes of payload;
 * - `poller` waits in poll(-1) on one end of a stream socketpair (EINTR is
 *   retried), then reads a 4-byte length and the payload;
 * - both answer with an 8-byte hash (of the payload and of their own running
 *   state) on the answer pipe, tagged with who they are;
 * - `writer` writes a deterministic byte sequence to a third pipe in
 *   PIPE_BUF-sized (atomic) chunks, STEP_BYTES per step in total, so it is
 *   mostly blocked in write() on a full pipe; main reads STEP_BYTES from it
 *   each step and checks every byte; after the last step it closes its end and
 *   main must see end of file.
 *
 * Each step main writes a request (length and payload depend on the step) to
 * the reader, waits (poll on the answer pipe, at most 5 s) for its answer,
 * then the same for the poller, so the steps are deterministic. A checkpoint
 * (during pace_ms) finds the reader in read(), the poller in poll() and the
 * writer in write() with a full pipe.
 */
#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#define STEP_BYTES 4000
#define CHUNK 4096

static int req_pipe[2], ans_pipe[2], data_pipe[2], sp[2];
static int total_steps;

static unsigned char wbyte(uint64_t k)
{
    uint64_t x = (k + 7) * 0x9e3779b97f4a7c15ULL;
    x ^= x >> 31;
    return (unsigned char)(x ^ (x >> 17));
}

static void read_exact(int fd, void *p, size_t n, const char *who)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            fail("%s: read: %s", who, strerror(errno));
        if (r == 0)
            fail("%s: unexpected end of file", who);
        got += (size_t)r;
    }
}

struct answer {
    uint32_t who;
    uint32_t len;
    uint64_t hash;
};

static void answer(uint32_t who, uint32_t len, uint64_t hash)
{
    struct answer a = { who, len, hash };
    ssize_t w;
    do
        w = write(ans_pipe[1], &a, sizeof a);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)sizeof a)
        fail("answer %u: write returned %zd (%s)", who, w, w < 0 ? strerror(errno) : "short");
}

static void *reader(void *arg)
{
    (void)arg;
    uint64_t state = FNV_OFFSET;
    unsigned char payload[4096];
    for (;;) {
        uint32_t len;
        read_exact(req_pipe[0], &len, sizeof len, "reader");
        if (len == 0)
            return (void *)(uintptr_t)0x4ead;
        if (len > sizeof payload)
            fail("reader: length %u", len);
        read_exact(req_pipe[0], payload, len, "reader");
        state = fnv1a(state, payload, len);
        answer(1, len, state);
    }
}

static void *poller(void *arg)
{
    (void)arg;
    uint64_t state = FNV_OFFSET ^ 0x55;
    unsigned char payload[4096];
    for (;;) {
        struct pollfd pf = { sp[1], POLLIN, 0 };
        int r = poll(&pf, 1, -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != 1)
            fail("poller: poll returned %d (%s)", r, r < 0 ? strerror(errno) : "?");
        if (pf.revents != POLLIN)
            fail("poller: revents %#x", pf.revents);
        uint32_t len;
        read_exact(sp[1], &len, sizeof len, "poller");
        if (len == 0)
            return (void *)(uintptr_t)0x9011;
        if (len > sizeof payload)
            fail("poller: length %u", len);
        read_exact(sp[1], payload, len, "poller");
        state = fnv1a(state, payload, len);
        answer(2, len, state);
    }
}

static void *writer(void *arg)
{
    (void)arg;
    uint64_t total = (uint64_t)total_steps * STEP_BYTES, pos = 0;
    unsigned char chunk[CHUNK];
    while (pos < total) {
        size_t n = total - pos < CHUNK ? (size_t)(total - pos) : CHUNK;
        for (size_t i = 0; i < n; i++)
            chunk[i] = wbyte(pos + i);
        ssize_t w = write(data_pipe[1], chunk, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w != (ssize_t)n) /* n <= PIPE_BUF: all or nothing */
            fail("writer: write of %zu returned %zd (%s)", n, w, w < 0 ? strerror(errno) : "short");
        pos += n;
    }
    close(data_pipe[1]);
    return (void *)(uintptr_t)0x3417e;
}

/* Waits (at most 5 s) for the next answer; it must come from `who`. */
static struct answer wait_answer(uint32_t who, int step)
{
    struct pollfd pf = { ans_pipe[0], POLLIN, 0 };
    for (int slices = 0;; slices++) {
        int r = poll(&pf, 1, 100);
        if (r < 0 && errno != EINTR)
            fail_errno("poll on the answer pipe");
        if (r == 1)
            break;
        if (slices >= 50)
            fail("no answer from thread %u at step %d", who, step);
    }
    struct answer a;
    read_exact(ans_pipe[0], &a, sizeof a, "main (answers)");
    if (a.who != who)
        fail("answer from thread %u, expected %u", a.who, who);
    return a;
}

static size_t request(unsigned char *msg, int step, int salt)
{
    uint32_t len = 1 + (uint32_t)((step * 389 + salt * 61) % 3000);
    memcpy(msg, &len, 4);
    for (uint32_t i = 0; i < len; i++)
        msg[4 + i] = (unsigned char)(step * 7 + i * (uint32_t)salt + (i >> 3));
    return 4 + len;
}

int main(int argc, char **argv)
{
    total_steps = steps_arg(argc, argv, DEFAULT_STEPS);
    signal(SIGPIPE, SIG_IGN);
    if (pipe(req_pipe) != 0 || pipe(ans_pipe) != 0 || pipe(data_pipe) != 0)
        fail_errno("pipe");
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) != 0)
        fail_errno("socketpair");

    pthread_t rt, pt, wt;
    if (pthread_create(&rt, NULL, reader, NULL) != 0 || pthread_create(&pt, NULL, poller, NULL) != 0 ||
        pthread_create(&wt, NULL, writer, NULL) != 0)
        fail("pthread_create");

    unsigned char msg[4 + 4096], data[STEP_BYTES];
    uint64_t dpos = 0;
    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= total_steps; s++) {
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);

        size_t n = request(msg, s, 3);
        write_all(req_pipe[1], msg, n); /* n <= PIPE_BUF: one atomic write */
        struct answer a = wait_answer(1, s);
        if (a.len != n - 4)
            fail("reader read %u bytes, %zu were sent", a.len, n - 4);
        d = fnv1a_u64(d, a.hash);

        n = request(msg, s, 11);
        write_all(sp[0], msg, n);
        a = wait_answer(2, s);
        if (a.len != n - 4)
            fail("poller read %u bytes, %zu were sent", a.len, n - 4);
        d = fnv1a_u64(d, a.hash);

        read_exact(data_pipe[0], data, STEP_BYTES, "main (writer's pipe)");
        for (size_t i = 0; i < STEP_BYTES; i++)
            if (data[i] != wbyte(dpos + i))
                fail("writer's byte %llu is wrong", (unsigned long long)(dpos + i));
        dpos += STEP_BYTES;
        d = fnv1a(d, data, STEP_BYTES);

        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(50);
    }

    /* The writer has written everything and closed its end: end of file. */
    ssize_t r;
    do
        r = read(data_pipe[0], data, 1);
    while (r < 0 && errno == EINTR);
    if (r != 0)
        fail("writer's pipe: expected end of file, read returned %zd", r);
    uint32_t zero = 0;
    write_all(req_pipe[1], &zero, 4);
    write_all(sp[0], &zero, 4);
    void *ret;
    if (pthread_join(rt, &ret) != 0 || (uintptr_t)ret != 0x4ead)
        fail("pthread_join reader");
    if (pthread_join(pt, &ret) != 0 || (uintptr_t)ret != 0x9011)
        fail("pthread_join poller");
    if (pthread_join(wt, &ret) != 0 || (uintptr_t)ret != 0x3417e)
        fail("pthread_join writer");
    done_line(chain);
    return 0;
}

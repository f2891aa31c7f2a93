/*
 * fd_events.c - epoll, eventfd, signalfd and timerfd with state pending across
 * steps.
 *
 * One epoll set (EPOLL_CLOEXEC) holds, each with its own 64-bit data field:
 *   the read end of a pipe (EPOLLIN; bytes written each step, read the next),
 *   its write end (EPOLLOUT: always ready),
 *   an EFD_NONBLOCK eventfd (the sum of three writes stays pending until the
 *     next step, which reads it and must then get EAGAIN),
 *   a blocking EFD_SEMAPHORE eventfd (a varying count of 1..9 left pending;
 *     every read returns 1),
 *   an eventfd registered EPOLLIN|EPOLLET (written once per step and never
 *     read: the first epoll_wait after the write reports it, a second one
 *     must not),
 *   a CLOCK_MONOTONIC timerfd armed at 1000 s with a 777 s interval and a
 *     CLOCK_REALTIME one armed at 2000 s (never ready; their remaining time
 *     must stay > 0, never grow, and the interval must stay exact),
 *   a one-shot 1 ms timerfd armed every fifth step and read four steps later
 *     (in between it is ready with exactly one unread expiration, disarmed),
 *   a 10 ms periodic timerfd (whose readiness depends on time: it is left out
 *     of the digest; each step waits for it to tick, reads it (only checks
 *     >= 1) and waits for the next tick, which stays unread across the pause:
 *     the kernel reports no time left for such a timer, yet it is armed),
 *   a signalfd for SIGHUP and SIGWINCH (both blocked); each step raises one
 *     of them and reads it back.
 * An eventfd that was registered and then removed (EPOLL_CTL_DEL) is always
 * ready and must never be reported. The clock ids, the signalfd mask and the
 * eventfd counts are also checked in /proc/self/fdinfo.
 *
 * The registrations are also read back from the epoll set's fdinfo (target
 * descriptor, events, data), EPOLL_CTL_MOD must find the pipe's write end under
 * its number every step, and every third step the realtime timerfd is removed
 * and added again. Exactly the program's descriptors must be open.
 *
 * Each step: write the edge-triggered eventfd, raise the signal, epoll_wait
 * (timeout 0) and compare the reported (data, events) with the model, a second
 * epoll_wait, then consume and refill everything. The digest covers what was
 * reported and read, never a time.
 */
#include "common.h"
#include "fd_common.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

enum { D_PIPE_R, D_PIPE_W, D_EFD, D_SEM, D_EDGE, D_LONG, D_REAL, D_TICK, D_ONCE, D_SIG, D_GONE, ND };

static uint64_t data_of(int i)
{
    return ((uint64_t)(i + 1) << 60) | 0x00d1e5ca1ab1e000ULL | (uint64_t)(i + 1);
}

static const char *name_of[ND] = { "pipe read end", "pipe write end", "eventfd",  "semaphore eventfd",
                                   "edge eventfd",  "long timerfd",   "realtime timerfd", "ticking timerfd",
                                   "one-shot timerfd", "signalfd",    "removed eventfd" };

static int ep, fds[ND];

/* The value of `key` in /proc/self/fdinfo/<fd> (text after the colon). */
static const char *fdinfo(int fd, const char *key)
{
    static char text[4096];
    static char val[256];
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    if (!f)
        fail("open fdinfo of %d: %s", fd, strerror(errno));
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    size_t kl = strlen(key);
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            const char *v = line + kl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t l = strcspn(v, "\n");
            if (l >= sizeof val)
                l = sizeof val - 1;
            memcpy(val, v, l);
            val[l] = '\0';
            return val;
        }
    }
    fail("no %s in the fdinfo of descriptor %d", key, fd);
}

static uint64_t read_u64(int fd, const char *what)
{
    uint64_t v;
    ssize_t r;
    do
        r = read(fd, &v, sizeof v);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof v)
        fail("%s: read returned %zd (%s)", what, r, r < 0 ? strerror(errno) : "short");
    return v;
}

static void write_u64(int fd, uint64_t v, const char *what)
{
    ssize_t w;
    do
        w = write(fd, &v, sizeof v);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)sizeof v)
        fail("%s: write returned %zd (%s)", what, w, w < 0 ? strerror(errno) : "short");
}

static void expect_eagain(int fd, const char *what)
{
    char b[128];
    ssize_t r = read(fd, b, sizeof b);
    if (r >= 0 || errno != EAGAIN)
        fail("%s: expected EAGAIN, read returned %zd (%s)", what, r, r < 0 ? strerror(errno) : "data");
}

/* Waits (<= 5 s) until fd is readable. */
static void wait_readable(int fd, const char *what)
{
    struct pollfd pf = { fd, POLLIN, 0 };
    for (int slices = 0;; slices++) {
        int r = poll(&pf, 1, 100);
        if (r < 0 && errno != EINTR)
            fail_errno("poll");
        if (r == 1 && (pf.revents & POLLIN))
            return;
        if (slices >= 50)
            fail("%s never became readable", what);
    }
}

static void add(int i, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.u64 = data_of(i) };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0)
        fail("EPOLL_CTL_ADD %s: %s", name_of[i], strerror(errno));
}

/* Runs epoll_wait(0); returns a bit mask of the deterministic reports (the
 * ticking timer left out) and folds them, in data order, into *h. */
static unsigned poll_set(uint64_t *h)
{
    struct epoll_event evs[ND + 4];
    int n;
    do
        n = epoll_wait(ep, evs, ND + 4, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        fail_errno("epoll_wait");
    uint32_t got[ND] = { 0 };
    unsigned seen = 0;
    for (int k = 0; k < n; k++) {
        int i = -1;
        for (int j = 0; j < ND; j++)
            if (evs[k].data.u64 == data_of(j))
                i = j;
        if (i < 0)
            fail("epoll_wait reported unknown data %#llx", (unsigned long long)evs[k].data.u64);
        if (seen & (1u << i))
            fail("epoll_wait reported the %s twice", name_of[i]);
        uint32_t want = i == D_PIPE_W ? EPOLLOUT : EPOLLIN;
        if (evs[k].events != want)
            fail("epoll_wait reported events %#x for the %s", evs[k].events, name_of[i]);
        seen |= 1u << i;
        got[i] = evs[k].events;
    }
    seen &= ~(1u << D_TICK);
    for (int i = 0; i < ND; i++)
        if (i != D_TICK) {
            *h = fnv1a_u64(*h, data_of(i));
            *h = fnv1a_u64(*h, got[i]);
        }
    return seen;
}

static uint32_t events_of(int i)
{
    return i == D_PIPE_W ? EPOLLOUT : i == D_EDGE ? (EPOLLIN | EPOLLET) : EPOLLIN;
}

/* The epoll set's registrations as the kernel lists them: every descriptor but
 * the removed one, under its own number, with its events (plus the EPOLLERR |
 * EPOLLHUP the kernel adds) and data. */
static void check_epoll_fdinfo(void)
{
    char path[64], text[8192];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", ep);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_errno("open the epoll fdinfo");
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    unsigned found = 0;
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        int tfd;
        unsigned ev;
        unsigned long long data;
        if (strncmp(line, "tfd:", 4) != 0)
            continue;
        if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &ev, &data) != 3)
            fail("unreadable epoll fdinfo line");
        int i = -1;
        for (int j = 0; j < ND; j++)
            if (fds[j] == tfd && j != D_GONE)
                i = j;
        if (i < 0)
            fail("the epoll set has a registration for descriptor %d, which is not one of its own", tfd);
        if (ev != (events_of(i) | EPOLLERR | EPOLLHUP) || data != data_of(i))
            fail("the epoll set has the %s with events %#x data %#llx", name_of[i], ev, data);
        if (found & (1u << i))
            fail("the epoll set has the %s twice", name_of[i]);
        found |= 1u << i;
    }
    if (found != ((1u << ND) - 1) - (1u << D_GONE))
        fail("the epoll set lists %#x", found);
}

static int64_t ns_of(struct timespec t) { return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec; }

static int sem_left(int s) { return s == 0 ? 0 : 1 + (s * 5) % 9; }
static uint64_t efd_total(int s) { return (uint64_t)s * 1000 + 7; }

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    fd_baseline();
    signal(SIGPIPE, SIG_IGN);

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGWINCH);
    if (sigprocmask(SIG_BLOCK, &sigs, NULL) != 0)
        fail_errno("sigprocmask");

    int pp[2];
    if (pipe(pp) != 0)
        fail_errno("pipe");
    fds[D_PIPE_R] = pp[0];
    fds[D_PIPE_W] = pp[1];
    fds[D_EFD] = eventfd(0, EFD_NONBLOCK);
    fds[D_SEM] = eventfd(0, EFD_SEMAPHORE);
    fds[D_EDGE] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    fds[D_LONG] = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    fds[D_REAL] = timerfd_create(CLOCK_REALTIME, 0);
    fds[D_TICK] = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    fds[D_ONCE] = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    fds[D_SIG] = signalfd(-1, &sigs, SFD_NONBLOCK);
    fds[D_GONE] = eventfd(1, 0);
    for (int i = 0; i < ND; i++)
        if (fds[i] < 0)
            fail("creating the %s failed", name_of[i]);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        fail_errno("epoll_create1");

    struct itimerspec lng = { { 777, 0 }, { 1000, 0 } }, rl = { { 0, 0 }, { 2000, 0 } };
    struct itimerspec tick = { { 0, 10000000 }, { 0, 10000000 } }, once = { { 0, 0 }, { 0, 1000000 } };
    if (timerfd_settime(fds[D_LONG], 0, &lng, NULL) != 0 || timerfd_settime(fds[D_REAL], 0, &rl, NULL) != 0 ||
        timerfd_settime(fds[D_TICK], 0, &tick, NULL) != 0)
        fail_errno("timerfd_settime");

    add(D_PIPE_R, EPOLLIN);
    add(D_PIPE_W, EPOLLIN); /* modified below */
    add(D_EFD, EPOLLIN);
    add(D_SEM, EPOLLIN);
    add(D_EDGE, EPOLLIN | EPOLLET);
    add(D_LONG, EPOLLIN);
    add(D_REAL, EPOLLIN);
    add(D_TICK, EPOLLIN);
    add(D_ONCE, EPOLLIN);
    add(D_SIG, EPOLLIN);
    add(D_GONE, EPOLLIN);
    struct epoll_event mod = { .events = EPOLLOUT, .data.u64 = data_of(D_PIPE_W) };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fds[D_PIPE_W], &mod) != 0)
        fail_errno("EPOLL_CTL_MOD");
    if (epoll_ctl(ep, EPOLL_CTL_DEL, fds[D_GONE], NULL) != 0)
        fail_errno("EPOLL_CTL_DEL");

    /* fdinfo: clock ids and the signal mask (bit n-1 for signal n). */
    unsigned long long mask = (1ULL << (SIGHUP - 1)) | (1ULL << (SIGWINCH - 1));
    char want_mask[32];
    snprintf(want_mask, sizeof want_mask, "%016llx", mask);

    unsigned char pbuf[256];
    size_t pipe_pending = 0;
    int64_t long_left = 1000LL * 1000000000LL, real_left = 2000LL * 1000000000LL;
    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);

        write_u64(fds[D_EDGE], 1, "edge eventfd");
        int sig = s % 2 ? SIGHUP : SIGWINCH;
        raise(sig);

        unsigned want = (1u << D_PIPE_W) | (1u << D_EDGE) | (1u << D_SIG);
        if (s > 1)
            want |= (1u << D_PIPE_R) | (1u << D_EFD) | (1u << D_SEM);
        if (s > 1 && s % 5 != 1)
            want |= 1u << D_ONCE;
        unsigned seen = poll_set(&d);
        if (seen != want)
            fail("epoll_wait reported %#x, expected %#x", seen, want);
        seen = poll_set(&d);
        if (seen != (want & ~(1u << D_EDGE)))
            fail("second epoll_wait reported %#x, expected %#x (edge-triggered eventfd again?)", seen,
                 want & ~(1u << D_EDGE));

        /* Pipe: last step's bytes. */
        if (pipe_pending) {
            ssize_t r;
            do
                r = read(fds[D_PIPE_R], pbuf, sizeof pbuf);
            while (r < 0 && errno == EINTR);
            if (r != (ssize_t)pipe_pending)
                fail("pipe: read %zd, expected %zu", r, pipe_pending);
            for (size_t i = 0; i < pipe_pending; i++)
                if (pbuf[i] != (unsigned char)(s * 3 + i))
                    fail("pipe: byte %zu is wrong", i);
            d = fnv1a(d, pbuf, pipe_pending);
        }
        pipe_pending = 1 + (size_t)((s * 17) % 200);
        for (size_t i = 0; i < pipe_pending; i++)
            pbuf[i] = (unsigned char)((s + 1) * 3 + i);
        write_all(fds[D_PIPE_W], pbuf, pipe_pending);

        /* Counting eventfd: the whole sum at once, then EAGAIN. */
        if ((fcntl(fds[D_EFD], F_GETFL) & O_NONBLOCK) == 0 || (fcntl(fds[D_SEM], F_GETFL) & O_NONBLOCK) != 0)
            fail("eventfd O_NONBLOCK flags are wrong");
        if (s > 1) {
            unsigned long long c = strtoull(fdinfo(fds[D_EFD], "eventfd-count"), NULL, 16);
            if (c != efd_total(s - 1))
                fail("eventfd fdinfo count %llu, expected %llu", c, (unsigned long long)efd_total(s - 1));
            uint64_t v = read_u64(fds[D_EFD], "eventfd");
            if (v != efd_total(s - 1))
                fail("eventfd read %llu, expected %llu", (unsigned long long)v, (unsigned long long)efd_total(s - 1));
            d = fnv1a_u64(d, v);
        }
        expect_eagain(fds[D_EFD], "eventfd");
        write_u64(fds[D_EFD], 1000, "eventfd");
        write_u64(fds[D_EFD], (uint64_t)s * 1000 - 1000, "eventfd");
        write_u64(fds[D_EFD], 7, "eventfd");

        /* Semaphore eventfd: reads of 1 down to the next count left. */
        unsigned long long c = strtoull(fdinfo(fds[D_SEM], "eventfd-count"), NULL, 16);
        if (c != (unsigned long long)sem_left(s - 1))
            fail("semaphore fdinfo count %llu, expected %d", c, sem_left(s - 1));
        int w = 9 + s % 4;
        write_u64(fds[D_SEM], (uint64_t)w, "semaphore eventfd");
        for (int k = 0; k < sem_left(s - 1) + w - sem_left(s); k++)
            if (read_u64(fds[D_SEM], "semaphore eventfd") != 1)
                fail("semaphore eventfd read something other than 1");
        c = strtoull(fdinfo(fds[D_SEM], "eventfd-count"), NULL, 16);
        if (c != (unsigned long long)sem_left(s))
            fail("semaphore count %llu after reading, expected %d", c, sem_left(s));
        d = fnv1a_u64(d, c);

        /* Edge-triggered eventfd: never read, its count is the step number. */
        c = strtoull(fdinfo(fds[D_EDGE], "eventfd-count"), NULL, 16);
        if (c != (unsigned long long)s)
            fail("edge eventfd count %llu, expected %d", c, s);

        /* Signalfd: the signal raised this step, then nothing. */
        if (strcmp(fdinfo(fds[D_SIG], "sigmask"), want_mask) != 0)
            fail("signalfd mask %s, expected %s", fdinfo(fds[D_SIG], "sigmask"), want_mask);
        sigset_t cur;
        sigprocmask(SIG_BLOCK, NULL, &cur);
        if (!sigismember(&cur, SIGHUP) || !sigismember(&cur, SIGWINCH))
            fail("SIGHUP/SIGWINCH no longer blocked");
        struct signalfd_siginfo si;
        ssize_t r;
        do
            r = read(fds[D_SIG], &si, sizeof si);
        while (r < 0 && errno == EINTR);
        if (r != (ssize_t)sizeof si)
            fail("signalfd: read returned %zd (%s)", r, r < 0 ? strerror(errno) : "short");
        if ((int)si.ssi_signo != sig)
            fail("signalfd gave signal %u, %d was raised", si.ssi_signo, sig);
        expect_eagain(fds[D_SIG], "signalfd");
        d = fnv1a_u64(d, si.ssi_signo);

        /* Long timers: armed, counting down, intervals exact, right clocks. */
        struct itimerspec cl, cr;
        if (timerfd_gettime(fds[D_LONG], &cl) != 0 || timerfd_gettime(fds[D_REAL], &cr) != 0)
            fail_errno("timerfd_gettime");
        if (ns_of(cl.it_value) <= 0 || ns_of(cl.it_value) > long_left)
            fail("long timerfd: %lld ns left, had %lld", (long long)ns_of(cl.it_value), (long long)long_left);
        if (cl.it_interval.tv_sec != 777 || cl.it_interval.tv_nsec != 0)
            fail("long timerfd: interval changed");
        if (ns_of(cr.it_value) <= 0 || ns_of(cr.it_value) > real_left || ns_of(cr.it_interval) != 0)
            fail("realtime timerfd: %lld ns left, had %lld", (long long)ns_of(cr.it_value), (long long)real_left);
        long_left = ns_of(cl.it_value);
        real_left = ns_of(cr.it_value);
        if (atoi(fdinfo(fds[D_LONG], "clockid")) != CLOCK_MONOTONIC ||
            atoi(fdinfo(fds[D_REAL], "clockid")) != CLOCK_REALTIME)
            fail("timerfd clock ids are wrong");
        d = fnv1a_str(d, "long timers armed");

        /* One-shot timer: armed at s % 5 == 1 (and fired), read at s % 5 == 0. */
        struct itimerspec co;
        if (timerfd_gettime(fds[D_ONCE], &co) != 0)
            fail_errno("timerfd_gettime");
        if (ns_of(co.it_value) != 0 || ns_of(co.it_interval) != 0)
            fail("one-shot timerfd still armed");
        if (s % 5 == 0) {
            uint64_t v = read_u64(fds[D_ONCE], "one-shot timerfd");
            if (v != 1)
                fail("one-shot timerfd: %llu expirations", (unsigned long long)v);
            d = fnv1a_u64(d, v);
        } else if (s % 5 == 1) {
            expect_eagain(fds[D_ONCE], "one-shot timerfd");
            if (timerfd_settime(fds[D_ONCE], 0, &once, NULL) != 0)
                fail_errno("timerfd_settime");
            wait_readable(fds[D_ONCE], "one-shot timerfd");
        } else if (atoi(fdinfo(fds[D_ONCE], "ticks")) != 1) {
            fail("one-shot timerfd: %s unread expirations in fdinfo", fdinfo(fds[D_ONCE], "ticks"));
        }

        /* The registrations themselves, and changing them. */
        check_epoll_fdinfo();
        struct epoll_event ev = { .events = events_of(D_PIPE_W), .data.u64 = data_of(D_PIPE_W) };
        if (epoll_ctl(ep, EPOLL_CTL_MOD, fds[D_PIPE_W], &ev) != 0)
            fail("EPOLL_CTL_MOD of the pipe's write end: %s", strerror(errno));
        if (s % 3 == 0) {
            if (epoll_ctl(ep, EPOLL_CTL_DEL, fds[D_REAL], NULL) != 0)
                fail("EPOLL_CTL_DEL of the realtime timerfd: %s", strerror(errno));
            add(D_REAL, EPOLLIN);
        }
        int mine[ND + 1];
        memcpy(mine, fds, sizeof fds);
        mine[ND] = ep;
        check_open_fds(mine, ND + 1);

        /* Ticking timer: wait for a tick, consume however many there were. */
        wait_readable(fds[D_TICK], "ticking timerfd");
        uint64_t ticks = read_u64(fds[D_TICK], "ticking timerfd");
        if (ticks < 1)
            fail("ticking timerfd read 0");
        struct itimerspec ct;
        if (timerfd_gettime(fds[D_TICK], &ct) != 0)
            fail_errno("timerfd_gettime");
        if (ns_of(ct.it_interval) != 10000000)
            fail("ticking timerfd: interval %lld ns, expected 10 ms", (long long)ns_of(ct.it_interval));
        /* Leave it fired and unread (its kernel timer stopped until someone reads
         * it), as a checkpoint during the pause always finds it. */
        wait_readable(fds[D_TICK], "ticking timerfd");
        d = fnv1a_str(d, "ticked");

        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

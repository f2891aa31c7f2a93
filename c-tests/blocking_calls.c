// cflags: -pthread
/*
 * blocking_calls.c - one thread per blocking system call, for issue 14 ("no call
 * notices"): a call that a checkpoint or a restore interrupts must go on as if
 * nothing happened (no EINTR, no early return, sleeps sleep their remaining time).
 *
 * usage: blocking_calls [NAME...]     (no names: every call below, in this order)
 *
 * Woken calls (main wakes them once `go` exists):
 *   poll ppoll select pselect epoll_wait epoll_pwait read_pipe (a byte on a pipe),
 *   pause sigsuspend (pthread_kill of a signal with a no-op handler), sigwaitinfo
 *   (pthread_sigqueue of a blocked signal), sem_wait (sem_post), futex (raw
 *   FUTEX_WAIT, woken by setting the word and FUTEX_WAKE), accept (connect to the
 *   UNIX listener `accept.sock` in the cwd), msgrcv (msgsnd), semop (semop +1),
 *   io_getevents (io_submit of a read of /dev/zero), wait4 (SIGKILL to a child).
 * Timed calls (never woken: each runs to its 3 s timeout, measured from entry on
 * CLOCK_MONOTONIC; clock_nanosleep_abs sleeps to an absolute deadline):
 *   poll_timeout ppoll_timeout select_timeout epoll_wait_timeout nanosleep
 *   clock_nanosleep clock_nanosleep_abs sleep usleep sigtimedwait sem_timedwait
 *   cond_timedwait recv_timeout (SO_RCVTIMEO on a socket pair), and through syscall(2):
 *   futex_timeout (FUTEX_WAIT with a relative timeout), io_getevents_timeout,
 *   raw_nanosleep (SYS_nanosleep with no remainder).
 *
 * Protocol (not the step protocol of the other subjects): main starts the threads,
 * waits until each is really blocked in the kernel (/proc/self/task/TID/syscall
 * shows the call's system call number), prints `blocked`, then waits for a file
 * `go` in the cwd (the moment to checkpoint, or to restore, is in between), wakes
 * the woken calls, joins the threads in order (at most 15 s after waking) and
 * prints one line per call:
 *   NAME ret=<result, normalised> errno=<E-name or 0> ok
 *   NAME ret=... errno=... BAD <why>       (EINTR, early return, hung...)
 * then a line for main's own sleeps while it waited for `go` (`main ... ok`, or
 * BAD with the number of EINTRs), then `done`; exit status 0 if every line says
 * ok, else 1. An uninterrupted run prints the same lines as a checkpointed or restored one when mig is transparent.
 * Nothing printed depends on pids, descriptors or timing (but the figures of a BAD
 * line). With BLOCKING_CALLS_LATE_MS=N, a timed call that returns more than N ms after
 * its timeout is BAD too (late), but recv_timeout. SysV objects, the aio context, the socket file and the child are removed
 * at exit. Signals used: SIGRTMIN+1..+4 (mig's are SIGUSR1/SIGUSR2 and the
 * highest real-time signal).
 */
#include "common.h"
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#define TIMEOUT_MS 3000
#define TOLERANCE_MS 1 /* a timed call that returns earlier than this before its timeout is early */
#define SOCK_NAME "accept.sock"

struct call;
typedef void (*call_fn)(struct call *);

struct call {
    const char *name;
    long nr;    /* the system call it must be seen blocked in */
    int timed;  /* 1: runs to its timeout, never woken */
    call_fn setup, run, wake;
    /* state */
    int fd[2];
    int keep_fd; /* epoll: the pipe's read end, kept open (closing it drops the registration) */
    int id;
    pid_t child;
    sem_t sem;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int word;
    aio_context_t ctx;
    struct timespec start; /* CLOCK_MONOTONIC, just before the call */
    pid_t tid;
    int entered; /* atomic */
    pthread_t th;
    int selected;
    char line[300];
    int bad;
};

static int waking; /* atomic: main has begun to wake the calls */
static volatile sig_atomic_t handled[80];
static int zero_fd = -1;
static int sock_bound;

#define SIG_PAUSE (SIGRTMIN + 1)
#define SIG_SUSPEND (SIGRTMIN + 2)
#define SIG_WAITINFO (SIGRTMIN + 3)
#define SIG_TIMEDWAIT (SIGRTMIN + 4)

static void on_signal(int sig)
{
    if (sig >= 0 && sig < 80)
        handled[sig] = 1;
}

static const char *ename(int e)
{
    if (e == 0)
        return "0";
    const char *n = strerrorname_np(e);
    static __thread char buf[16];
    if (n)
        return n;
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double elapsed_s(struct call *c)
{
    return now_s() - ((double)c->start.tv_sec + (double)c->start.tv_nsec / 1e9);
}

static void enter(struct call *c)
{
    c->tid = gettid();
    clock_gettime(CLOCK_MONOTONIC, &c->start);
    __atomic_store_n(&c->entered, 1, __ATOMIC_SEQ_CST);
}

/* The result line. `ret` is already normalised; `err` is the errno (or 0); `why`
 * is NULL when the result is the expected one. */
__attribute__((format(printf, 4, 5)))
static void result(struct call *c, const char *ret, int err, const char *why, ...)
{
    char reason[160] = "";
    if (why) {
        va_list ap;
        va_start(ap, why);
        vsnprintf(reason, sizeof reason, why, ap);
        va_end(ap);
        c->bad = 1;
    }
    snprintf(c->line, sizeof c->line, "%s ret=%s errno=%s %s%s\n", c->name, ret, ename(err), why ? "BAD " : "ok", reason);
}

/* A woken call returned: it must have returned after main began waking, and not
 * with EINTR; `expect_ok` says whether its result is otherwise the expected one. */
static void woken_result(struct call *c, const char *ret, int err, int expect_ok)
{
    int w = __atomic_load_n(&waking, __ATOMIC_SEQ_CST);
    if (err == EINTR)
        result(c, ret, err, "EINTR%s", w ? "" : " before being woken");
    else if (!w)
        result(c, ret, err, "early: returned before being woken");
    else if (!expect_ok)
        result(c, ret, err, "unexpected result");
    else
        result(c, ret, err, NULL);
}

/* BLOCKING_CALLS_LATE_MS: a timed call that returns later than this after its
 * timeout is late (0: never). Only meaningful without a restore in between (the time
 * the process was gone counts). */
static int late_ms;

/* A timed call returned: it must have slept its whole timeout (from entry), and, with
 * `late_ms`, no more. recv_timeout is never late: SO_RCVTIMEO's time left is the
 * kernel's, a call made again waits its whole timeout (mig's known limit). */
static void timed_result(struct call *c, const char *ret, int err, int expect_ok)
{
    double e = elapsed_s(c);
    if (e < (TIMEOUT_MS - TOLERANCE_MS) / 1000.0)
        result(c, ret, err, "%searly: slept %.2f of %.1f s", err == EINTR ? "EINTR, " : "", e, TIMEOUT_MS / 1000.0);
    else if (late_ms > 0 && e > (TIMEOUT_MS + late_ms) / 1000.0 && strcmp(c->name, "recv_timeout") != 0)
        result(c, ret, err, "late: slept %.2f of %.1f s", e, TIMEOUT_MS / 1000.0);
    else if (err == EINTR)
        result(c, ret, err, "EINTR after %.2f s", e);
    else if (!expect_ok)
        result(c, ret, err, "unexpected result");
    else
        result(c, ret, err, NULL);
}

static const char *num(long v)
{
    static __thread char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    return buf;
}

static struct timespec after_ms(clockid_t clk, int ms)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ---- shared setups and wakes ---- */

static void setup_pipe(struct call *c)
{
    if (pipe(c->fd) != 0)
        fail_errno("pipe");
}

static void wake_pipe(struct call *c)
{
    write_all(c->fd[1], "w", 1);
}

static void nop(struct call *c)
{
    (void)c;
}

/* ---- poll family ---- */

static void run_poll(struct call *c)
{
    struct pollfd p = { .fd = c->fd[0], .events = POLLIN };
    enter(c);
    int r = poll(&p, 1, c->timed ? TIMEOUT_MS : -1);
    int e = r < 0 ? errno : 0;
    char ret[64];
    snprintf(ret, sizeof ret, "%d revents=%#x", r, r > 0 ? p.revents : 0);
    if (c->timed)
        timed_result(c, ret, e, r == 0);
    else
        woken_result(c, ret, e, r == 1 && p.revents == POLLIN);
}

static void run_ppoll(struct call *c)
{
    struct pollfd p = { .fd = c->fd[0], .events = POLLIN };
    struct timespec to = { TIMEOUT_MS / 1000, (long)(TIMEOUT_MS % 1000) * 1000000L };
    enter(c);
    int r = ppoll(&p, 1, c->timed ? &to : NULL, NULL);
    int e = r < 0 ? errno : 0;
    char ret[64];
    snprintf(ret, sizeof ret, "%d revents=%#x", r, r > 0 ? p.revents : 0);
    if (c->timed)
        timed_result(c, ret, e, r == 0);
    else
        woken_result(c, ret, e, r == 1 && p.revents == POLLIN);
}

static void run_select(struct call *c)
{
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(c->fd[0], &rd);
    struct timeval to = { TIMEOUT_MS / 1000, (TIMEOUT_MS % 1000) * 1000 };
    enter(c);
    int r = select(c->fd[0] + 1, &rd, NULL, NULL, c->timed ? &to : NULL);
    int e = r < 0 ? errno : 0;
    char ret[64];
    snprintf(ret, sizeof ret, "%d readable=%d", r, r > 0 && FD_ISSET(c->fd[0], &rd));
    if (c->timed)
        timed_result(c, ret, e, r == 0);
    else
        woken_result(c, ret, e, r == 1 && FD_ISSET(c->fd[0], &rd));
}

static void run_pselect(struct call *c)
{
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(c->fd[0], &rd);
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    enter(c);
    int r = pselect(c->fd[0] + 1, &rd, NULL, NULL, NULL, &mask);
    int e = r < 0 ? errno : 0;
    char ret[64];
    snprintf(ret, sizeof ret, "%d readable=%d", r, r > 0 && FD_ISSET(c->fd[0], &rd));
    woken_result(c, ret, e, r == 1 && FD_ISSET(c->fd[0], &rd));
}

static void setup_epoll(struct call *c)
{
    int p[2];
    if (pipe(p) != 0)
        fail_errno("pipe");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        fail_errno("epoll_create1");
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0x1234 };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != 0)
        fail_errno("epoll_ctl");
    c->fd[0] = ep;
    c->keep_fd = p[0];
    c->fd[1] = p[1];
}

static void run_epoll(struct call *c, int pwait)
{
    struct epoll_event ev = { 0, { 0 } };
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    int to = c->timed ? TIMEOUT_MS : -1;
    enter(c);
    int r = pwait ? epoll_pwait(c->fd[0], &ev, 1, to, &mask) : epoll_wait(c->fd[0], &ev, 1, to);
    int e = r < 0 ? errno : 0;
    char ret[64];
    snprintf(ret, sizeof ret, "%d events=%#x data=%#llx", r, r > 0 ? ev.events : 0, r > 0 ? (unsigned long long)ev.data.u64 : 0ULL);
    if (c->timed)
        timed_result(c, ret, e, r == 0);
    else
        woken_result(c, ret, e, r == 1 && ev.events == EPOLLIN && ev.data.u64 == 0x1234);
}

static void run_epoll_wait(struct call *c)
{
    run_epoll(c, 0);
}

static void run_epoll_pwait(struct call *c)
{
    run_epoll(c, 1);
}

/* ---- sleeps ---- */

static void run_nanosleep(struct call *c)
{
    struct timespec req = { TIMEOUT_MS / 1000, (long)(TIMEOUT_MS % 1000) * 1000000L }, rem = { 0, 0 };
    enter(c);
    int r = nanosleep(&req, &rem);
    int e = r < 0 ? errno : 0;
    timed_result(c, num(r), e, r == 0);
}

static void run_clock_nanosleep(struct call *c)
{
    struct timespec req = { TIMEOUT_MS / 1000, (long)(TIMEOUT_MS % 1000) * 1000000L }, rem = { 0, 0 };
    enter(c);
    int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem); /* returns the error */
    timed_result(c, num(r), r, r == 0);
}

static void run_clock_nanosleep_abs(struct call *c)
{
    enter(c);
    struct timespec dl = c->start;
    dl.tv_sec += TIMEOUT_MS / 1000;
    dl.tv_nsec += (long)(TIMEOUT_MS % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    int r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (r == 0 && (now.tv_sec < dl.tv_sec || (now.tv_sec == dl.tv_sec && now.tv_nsec < dl.tv_nsec)))
        result(c, num(r), r, "early: woke %.3f s before the deadline",
               (double)(dl.tv_sec - now.tv_sec) + (double)(dl.tv_nsec - now.tv_nsec) / 1e9);
    else
        timed_result(c, num(r), r, r == 0);
}

static void run_sleep(struct call *c)
{
    enter(c);
    unsigned r = sleep(TIMEOUT_MS / 1000);
    timed_result(c, num((long)r), 0, r == 0);
}

static void run_usleep(struct call *c)
{
    enter(c);
    int r = usleep(TIMEOUT_MS * 1000);
    int e = r < 0 ? errno : 0;
    timed_result(c, num(r), e, r == 0);
}

/* ---- signals ---- */

/* pause and sigsuspend return -1/EINTR once a handler ran: that is their result when
 * woken, but only once their own signal was handled after main began waking. */
static void interrupted_result(struct call *c, int r, int e, int sig)
{
    if (!handled[sig] || !__atomic_load_n(&waking, __ATOMIC_SEQ_CST))
        result(c, num(r), e, "early: returned before its signal was handled");
    else if (r != -1 || e != EINTR)
        result(c, num(r), e, "unexpected result");
    else
        result(c, num(r), e, NULL);
}

static void run_pause(struct call *c)
{
    enter(c);
    int r = pause();
    int e = errno;
    interrupted_result(c, r, e, SIG_PAUSE);
}

static void run_sigsuspend(struct call *c)
{
    sigset_t block, wait;
    sigemptyset(&block);
    sigaddset(&block, SIG_SUSPEND);
    pthread_sigmask(SIG_BLOCK, &block, &wait);
    sigdelset(&wait, SIG_SUSPEND);
    enter(c);
    int r = sigsuspend(&wait);
    int e = errno;
    sigset_t after;
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    if (!sigismember(&after, SIG_SUSPEND))
        result(c, num(r), e, "the mask was not restored");
    else
        interrupted_result(c, r, e, SIG_SUSPEND);
}

static void run_sigwaitinfo(struct call *c)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIG_WAITINFO);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    enter(c);
    int r = sigwaitinfo(&set, &si);
    int e = r < 0 ? errno : 0;
    char ret[80];
    if (r == SIG_WAITINFO)
        snprintf(ret, sizeof ret, "SIGRTMIN+3 code=%s value=%d", si.si_code == SI_QUEUE ? "SI_QUEUE" : num(si.si_code), si.si_value.sival_int);
    else
        snprintf(ret, sizeof ret, "%d", r);
    woken_result(c, ret, e, r == SIG_WAITINFO && si.si_code == SI_QUEUE && si.si_value.sival_int == 14);
}

static void wake_sigwaitinfo(struct call *c)
{
    union sigval v = { .sival_int = 14 };
    int r = pthread_sigqueue(c->th, SIG_WAITINFO, v);
    if (r != 0)
        fprintf(stderr, "pthread_sigqueue: %s\n", strerror(r));
}

static void run_sigtimedwait(struct call *c)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIG_TIMEDWAIT);
    struct timespec to = { TIMEOUT_MS / 1000, (long)(TIMEOUT_MS % 1000) * 1000000L };
    enter(c);
    int r = sigtimedwait(&set, NULL, &to);
    int e = r < 0 ? errno : 0;
    timed_result(c, num(r), e, r == -1 && e == EAGAIN);
}

static void wake_pause(struct call *c)
{
    pthread_kill(c->th, SIG_PAUSE);
}

static void wake_sigsuspend(struct call *c)
{
    pthread_kill(c->th, SIG_SUSPEND);
}

/* ---- semaphores, condition variables, futex ---- */

static void setup_sem(struct call *c)
{
    if (sem_init(&c->sem, 0, 0) != 0)
        fail_errno("sem_init");
}

static void run_sem_wait(struct call *c)
{
    enter(c);
    int r = sem_wait(&c->sem);
    int e = r < 0 ? errno : 0;
    woken_result(c, num(r), e, r == 0);
}

static void wake_sem(struct call *c)
{
    sem_post(&c->sem);
}

static void run_sem_timedwait(struct call *c)
{
    struct timespec dl = after_ms(CLOCK_REALTIME, TIMEOUT_MS);
    enter(c);
    int r = sem_timedwait(&c->sem, &dl);
    int e = r < 0 ? errno : 0;
    timed_result(c, num(r), e, r == -1 && e == ETIMEDOUT);
}

static void setup_cond(struct call *c)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->lock, NULL);
}

static void run_cond_timedwait(struct call *c)
{
    pthread_mutex_lock(&c->lock);
    enter(c);
    struct timespec dl = c->start;
    dl.tv_sec += TIMEOUT_MS / 1000;
    dl.tv_nsec += (long)(TIMEOUT_MS % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    int r = pthread_cond_timedwait(&c->cond, &c->lock, &dl); /* returns the error */
    pthread_mutex_unlock(&c->lock);
    timed_result(c, r ? ename(r) : "0", 0, r == ETIMEDOUT);
}

static void run_futex(struct call *c)
{
    enter(c);
    long r = syscall(SYS_futex, &c->word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    int e = r < 0 ? errno : 0;
    int w = __atomic_load_n(&c->word, __ATOMIC_SEQ_CST);
    char ret[48];
    snprintf(ret, sizeof ret, "%ld word=%d", r, w);
    woken_result(c, ret, e, r == 0 && w == 1);
}

static void run_futex_timeout(struct call *c)
{
    struct timespec t = { TIMEOUT_MS / 1000, (long)(TIMEOUT_MS % 1000) * 1000000L };
    enter(c);
    long r = syscall(SYS_futex, &c->word, FUTEX_WAIT_PRIVATE, 0, &t, NULL, 0);
    int e = r < 0 ? errno : 0;
    timed_result(c, num(r), e, r < 0 && e == ETIMEDOUT);
}

static void run_raw_nanosleep(struct call *c)
{
    struct timespec t = { TIMEOUT_MS / 1000, (long)(TIMEOUT_MS % 1000) * 1000000L };
    enter(c);
    long r = syscall(SYS_nanosleep, &t, NULL);
    int e = r < 0 ? errno : 0;
    timed_result(c, num(r), e, r == 0);
}

static void wake_futex(struct call *c)
{
    __atomic_store_n(&c->word, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &c->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* ---- descriptors ---- */

static void run_read_pipe(struct call *c)
{
    char buf[16];
    enter(c);
    ssize_t r = read(c->fd[0], buf, sizeof buf);
    int e = r < 0 ? errno : 0;
    char ret[48];
    snprintf(ret, sizeof ret, "%zd data=%s", r, r == 1 && buf[0] == 'w' ? "w" : "?");
    woken_result(c, ret, e, r == 1 && buf[0] == 'w');
}

static struct sockaddr_un sock_addr(void)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strcpy(a.sun_path, SOCK_NAME);
    return a;
}

static void setup_accept(struct call *c)
{
    struct sockaddr_un a = sock_addr();
    c->fd[0] = socket(AF_UNIX, SOCK_STREAM, 0);
    if (c->fd[0] < 0)
        fail_errno("socket");
    unlink(SOCK_NAME);
    if (bind(c->fd[0], (struct sockaddr *)&a, sizeof a) != 0)
        fail_errno("bind " SOCK_NAME);
    sock_bound = 1;
    if (listen(c->fd[0], 4) != 0)
        fail_errno("listen");
    c->fd[1] = -1;
}

static void run_accept(struct call *c)
{
    enter(c);
    int r = accept(c->fd[0], NULL, NULL);
    int e = r < 0 ? errno : 0;
    char buf[4];
    ssize_t n = r >= 0 ? read(r, buf, sizeof buf) : -1;
    char ret[48];
    snprintf(ret, sizeof ret, "%s data=%s", r >= 0 ? "fd" : num(r), n == 1 && buf[0] == 'a' ? "a" : "?");
    woken_result(c, ret, e, r >= 0 && n == 1 && buf[0] == 'a');
    if (r >= 0)
        close(r);
}

static void wake_accept(struct call *c)
{
    struct sockaddr_un a = sock_addr();
    c->fd[1] = socket(AF_UNIX, SOCK_STREAM, 0);
    if (c->fd[1] < 0 || connect(c->fd[1], (struct sockaddr *)&a, sizeof a) != 0) {
        fprintf(stderr, "connect to " SOCK_NAME ": %s\n", strerror(errno));
        return;
    }
    write_all(c->fd[1], "a", 1);
}

static void setup_recv(struct call *c)
{
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, c->fd) != 0)
        fail_errno("socketpair");
    struct timeval to = { TIMEOUT_MS / 1000, (TIMEOUT_MS % 1000) * 1000 };
    if (setsockopt(c->fd[0], SOL_SOCKET, SO_RCVTIMEO, &to, sizeof to) != 0)
        fail_errno("SO_RCVTIMEO");
}

static void run_recv_timeout(struct call *c)
{
    char buf[8];
    enter(c);
    ssize_t r = recv(c->fd[0], buf, sizeof buf, 0);
    int e = r < 0 ? errno : 0;
    timed_result(c, num(r), e, r == -1 && (e == EAGAIN || e == EWOULDBLOCK));
}

/* ---- SysV IPC ---- */

struct msg {
    long type;
    char text[8];
};

static void setup_msg(struct call *c)
{
    c->id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    if (c->id < 0)
        fail_errno("msgget");
}

static void run_msgrcv(struct call *c)
{
    struct msg m;
    memset(&m, 0, sizeof m);
    enter(c);
    ssize_t r = msgrcv(c->id, &m, sizeof m.text, 0, 0);
    int e = r < 0 ? errno : 0;
    char ret[64];
    snprintf(ret, sizeof ret, "%zd type=%ld text=%s", r, r >= 0 ? m.type : 0L, r == 5 ? m.text : "?");
    woken_result(c, ret, e, r == 5 && m.type == 7 && strcmp(m.text, "wake") == 0);
}

static void wake_msg(struct call *c)
{
    struct msg m = { 7, "wake" };
    if (msgsnd(c->id, &m, 5, IPC_NOWAIT) != 0)
        fprintf(stderr, "msgsnd: %s\n", strerror(errno));
}

static void setup_sem_sysv(struct call *c)
{
    c->id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    if (c->id < 0)
        fail_errno("semget");
}

static void run_semop(struct call *c)
{
    struct sembuf op = { 0, -1, 0 };
    enter(c);
    int r = semop(c->id, &op, 1);
    int e = r < 0 ? errno : 0;
    woken_result(c, num(r), e, r == 0);
}

static void wake_semop(struct call *c)
{
    struct sembuf op = { 0, 1, 0 };
    if (semop(c->id, &op, 1) != 0)
        fprintf(stderr, "semop +1: %s\n", strerror(errno));
}

/* ---- aio ---- */

static void setup_aio(struct call *c)
{
    c->ctx = 0;
    if (syscall(SYS_io_setup, 4, &c->ctx) != 0)
        fail_errno("io_setup");
    if (zero_fd < 0)
        zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    if (zero_fd < 0)
        fail_errno("/dev/zero");
}

static void run_io_getevents(struct call *c)
{
    struct io_event ev;
    memset(&ev, 0, sizeof ev);
    enter(c);
    long r = syscall(SYS_io_getevents, c->ctx, 1L, 1L, &ev, NULL);
    int e = r < 0 ? errno : 0;
    char ret[64];
    snprintf(ret, sizeof ret, "%ld res=%lld data=%#llx", r, r == 1 ? (long long)ev.res : 0LL, r == 1 ? (unsigned long long)ev.data : 0ULL);
    woken_result(c, ret, e, r == 1 && ev.res == 8 && ev.data == 0xa10);
}

static void run_io_getevents_timeout(struct call *c)
{
    struct io_event ev;
    struct timespec t = { TIMEOUT_MS / 1000, (long)(TIMEOUT_MS % 1000) * 1000000L };
    enter(c);
    long r = syscall(SYS_io_getevents, c->ctx, 1L, 1L, &ev, &t);
    int e = r < 0 ? errno : 0;
    timed_result(c, num(r), e, r == 0);
}

static char aio_buf[8];

static void wake_aio(struct call *c)
{
    struct iocb cb;
    memset(&cb, 0, sizeof cb);
    cb.aio_data = 0xa10;
    cb.aio_lio_opcode = IOCB_CMD_PREAD;
    cb.aio_fildes = (uint32_t)zero_fd;
    cb.aio_buf = (uint64_t)(uintptr_t)aio_buf;
    cb.aio_nbytes = sizeof aio_buf;
    struct iocb *cbs[1] = { &cb };
    if (syscall(SYS_io_submit, c->ctx, 1L, cbs) != 1)
        fprintf(stderr, "io_submit: %s\n", strerror(errno));
}

/* ---- children ---- */

static void setup_child(struct call *c)
{
    pid_t parent = getpid();
    c->child = fork();
    if (c->child < 0)
        fail_errno("fork");
    if (c->child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        for (;;)
            pause();
    }
}

static void run_wait4(struct call *c)
{
    int status = 0;
    struct rusage ru;
    enter(c);
    pid_t r = wait4(c->child, &status, 0, &ru);
    int e = r < 0 ? errno : 0;
    char ret[64];
    if (r == c->child)
        snprintf(ret, sizeof ret, "child status=%s%d", WIFSIGNALED(status) ? "signal " : "exit ", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    else
        snprintf(ret, sizeof ret, "%d", (int)r);
    if (r == c->child)
        c->child = 0;
    woken_result(c, ret, e, r > 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void wake_wait4(struct call *c)
{
    if (c->child > 0)
        kill(c->child, SIGKILL);
}

/* ---- the table ---- */

static struct call calls[] = {
    { .name = "poll", .nr = SYS_poll, .setup = setup_pipe, .run = run_poll, .wake = wake_pipe },
    { .name = "poll_timeout", .nr = SYS_poll, .timed = 1, .setup = setup_pipe, .run = run_poll, .wake = nop },
    { .name = "ppoll", .nr = SYS_ppoll, .setup = setup_pipe, .run = run_ppoll, .wake = wake_pipe },
    { .name = "ppoll_timeout", .nr = SYS_ppoll, .timed = 1, .setup = setup_pipe, .run = run_ppoll, .wake = nop },
    { .name = "select", .nr = SYS_pselect6, .setup = setup_pipe, .run = run_select, .wake = wake_pipe },
    { .name = "select_timeout", .nr = SYS_pselect6, .timed = 1, .setup = setup_pipe, .run = run_select, .wake = nop },
    { .name = "pselect", .nr = SYS_pselect6, .setup = setup_pipe, .run = run_pselect, .wake = wake_pipe },
    { .name = "epoll_wait", .nr = SYS_epoll_wait, .setup = setup_epoll, .run = run_epoll_wait, .wake = wake_pipe },
    { .name = "epoll_wait_timeout", .nr = SYS_epoll_wait, .timed = 1, .setup = setup_epoll, .run = run_epoll_wait, .wake = nop },
    { .name = "epoll_pwait", .nr = SYS_epoll_pwait, .setup = setup_epoll, .run = run_epoll_pwait, .wake = wake_pipe },
    { .name = "nanosleep", .nr = SYS_clock_nanosleep, .timed = 1, .setup = nop, .run = run_nanosleep, .wake = nop },
    { .name = "clock_nanosleep", .nr = SYS_clock_nanosleep, .timed = 1, .setup = nop, .run = run_clock_nanosleep, .wake = nop },
    { .name = "clock_nanosleep_abs", .nr = SYS_clock_nanosleep, .timed = 1, .setup = nop, .run = run_clock_nanosleep_abs, .wake = nop },
    { .name = "sleep", .nr = SYS_clock_nanosleep, .timed = 1, .setup = nop, .run = run_sleep, .wake = nop },
    { .name = "usleep", .nr = SYS_clock_nanosleep, .timed = 1, .setup = nop, .run = run_usleep, .wake = nop },
    { .name = "pause", .nr = SYS_pause, .setup = nop, .run = run_pause, .wake = wake_pause },
    { .name = "sigsuspend", .nr = SYS_rt_sigsuspend, .setup = nop, .run = run_sigsuspend, .wake = wake_sigsuspend },
    { .name = "sigwaitinfo", .nr = SYS_rt_sigtimedwait, .setup = nop, .run = run_sigwaitinfo, .wake = wake_sigwaitinfo },
    { .name = "sigtimedwait", .nr = SYS_rt_sigtimedwait, .timed = 1, .setup = nop, .run = run_sigtimedwait, .wake = nop },
    { .name = "sem_wait", .nr = SYS_futex, .setup = setup_sem, .run = run_sem_wait, .wake = wake_sem },
    { .name = "sem_timedwait", .nr = SYS_futex, .timed = 1, .setup = setup_sem, .run = run_sem_timedwait, .wake = nop },
    { .name = "cond_timedwait", .nr = SYS_futex, .timed = 1, .setup = setup_cond, .run = run_cond_timedwait, .wake = nop },
    { .name = "futex", .nr = SYS_futex, .setup = nop, .run = run_futex, .wake = wake_futex },
    { .name = "read_pipe", .nr = SYS_read, .setup = setup_pipe, .run = run_read_pipe, .wake = wake_pipe },
    { .name = "accept", .nr = SYS_accept, .setup = setup_accept, .run = run_accept, .wake = wake_accept },
    { .name = "recv_timeout", .nr = SYS_recvfrom, .timed = 1, .setup = setup_recv, .run = run_recv_timeout, .wake = nop },
    { .name = "msgrcv", .nr = SYS_msgrcv, .setup = setup_msg, .run = run_msgrcv, .wake = wake_msg },
    { .name = "semop", .nr = SYS_semtimedop, .setup = setup_sem_sysv, .run = run_semop, .wake = wake_semop },
    { .name = "io_getevents", .nr = SYS_io_getevents, .setup = setup_aio, .run = run_io_getevents, .wake = wake_aio },
    { .name = "futex_timeout", .nr = SYS_futex, .timed = 1, .setup = nop, .run = run_futex_timeout, .wake = nop },
    { .name = "io_getevents_timeout", .nr = SYS_io_getevents, .timed = 1, .setup = setup_aio, .run = run_io_getevents_timeout, .wake = nop },
    { .name = "raw_nanosleep", .nr = SYS_nanosleep, .timed = 1, .setup = nop, .run = run_raw_nanosleep, .wake = nop },
    { .name = "wait4", .nr = SYS_wait4, .setup = setup_child, .run = run_wait4, .wake = wake_wait4 },
};
#define NCALLS ((int)(sizeof calls / sizeof calls[0]))

static void *thread_main(void *arg)
{
    struct call *c = arg;
    c->run(c);
    return c;
}

/* The first field of /proc/self/task/TID/syscall: the number of the system call the
 * thread is blocked in, or -1 ("running"); `raw` gets the line. */
static long blocked_in(pid_t tid, char *raw, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    raw[0] = '\0';
    if (!f)
        return -1;
    if (!fgets(raw, (int)len, f))
        raw[0] = '\0';
    fclose(f);
    raw[strcspn(raw, "\n")] = '\0';
    char *end;
    long nr = strtol(raw, &end, 10);
    return end == raw ? -1 : nr;
}

static void cleanup(void)
{
    for (int i = 0; i < NCALLS; i++) {
        struct call *c = &calls[i];
        if (!c->selected)
            continue;
        if (c->setup == setup_msg && c->id >= 0)
            msgctl(c->id, IPC_RMID, NULL);
        if (c->setup == setup_sem_sysv && c->id >= 0)
            semctl(c->id, 0, IPC_RMID);
        if (c->setup == setup_aio && c->ctx)
            syscall(SYS_io_destroy, c->ctx);
        if (c->setup == setup_child && c->child > 0)
            kill(c->child, SIGKILL);
    }
    if (sock_bound)
        unlink(SOCK_NAME);
}

int main(int argc, char **argv)
{
    int nsel = 0;
    for (int a = 1; a < argc; a++) {
        int found = 0;
        for (int i = 0; i < NCALLS; i++)
            if (strcmp(argv[a], calls[i].name) == 0) {
                calls[i].selected = 1;
                found = 1;
            }
        if (!found) {
            fprintf(stderr, "blocking_calls: unknown call %s; known:", argv[a]);
            for (int i = 0; i < NCALLS; i++)
                fprintf(stderr, " %s", calls[i].name);
            fprintf(stderr, "\n");
            return 2;
        }
        nsel++;
    }
    for (int i = 0; i < NCALLS; i++) {
        calls[i].id = -1;
        if (nsel == 0)
            calls[i].selected = 1;
    }

    if (getenv("BLOCKING_CALLS_LATE_MS"))
        late_ms = atoi(getenv("BLOCKING_CALLS_LATE_MS"));
    signal(SIGPIPE, SIG_IGN); /* a wake-up write to a pipe that came back broken fails, not kills */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIG_PAUSE, &sa, NULL) != 0 || sigaction(SIG_SUSPEND, &sa, NULL) != 0)
        fail_errno("sigaction");
    /* Blocked in every thread: waited for with sigwaitinfo/sigtimedwait. */
    sigset_t waited;
    sigemptyset(&waited);
    sigaddset(&waited, SIG_WAITINFO);
    sigaddset(&waited, SIG_TIMEDWAIT);
    pthread_sigmask(SIG_BLOCK, &waited, NULL);

    for (int i = 0; i < NCALLS; i++)
        if (calls[i].selected)
            calls[i].setup(&calls[i]);
    atexit(cleanup);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (int i = 0; i < NCALLS; i++)
        if (calls[i].selected && pthread_create(&calls[i].th, &attr, thread_main, &calls[i]) != 0)
            fail("pthread_create %s", calls[i].name);
    pthread_attr_destroy(&attr);

    /* Wait until every thread is blocked in its call (10 s at most each). */
    for (int i = 0; i < NCALLS; i++) {
        struct call *c = &calls[i];
        if (!c->selected)
            continue;
        char raw[256] = "";
        long nr = -1;
        for (int tries = 0;; tries++) {
            if (__atomic_load_n(&c->entered, __ATOMIC_SEQ_CST)) {
                nr = blocked_in(c->tid, raw, sizeof raw);
                if (nr == c->nr)
                    break;
            }
            if (tries >= 10000)
                fail("%s is not blocked in system call %ld (syscall: %s)", c->name, c->nr, raw);
            struct timespec ts = { 0, 1000000L };
            nanosleep(&ts, NULL);
        }
        if (getenv("BLOCKING_CALLS_VERBOSE"))
            fprintf(stderr, "%s: tid %d in %s\n", c->name, (int)c->tid, raw);
    }
    emit("blocked\n");

    /* Main sleeps too (the checkpoint signal usually lands on it): its sleep must not
     * be cut short either. */
    int main_eintr = 0;
    for (int waited_ms = 0; access("go", F_OK) != 0; waited_ms += 20) {
        if (waited_ms >= 600 * 1000)
            fail("no file named go after 600 s");
        struct timespec req = { 0, 20 * 1000000L }, rem;
        while (nanosleep(&req, &rem) != 0) {
            if (errno != EINTR)
                fail_errno("nanosleep");
            main_eintr++;
            req = rem;
        }
    }

    __atomic_store_n(&waking, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < NCALLS; i++)
        if (calls[i].selected)
            calls[i].wake(&calls[i]);

    /* Join in order; a thread still blocked 15 s after waking has hung. */
    struct timespec dl = after_ms(CLOCK_REALTIME, 15000);
    int bad = 0;
    for (int i = 0; i < NCALLS; i++) {
        struct call *c = &calls[i];
        if (!c->selected)
            continue;
        void *ret;
        int r = pthread_timedjoin_np(c->th, &ret, &dl);
        if (r != 0) {
            char raw[256];
            long nr = blocked_in(c->tid, raw, sizeof raw);
            emit("%s ret=none errno=0 BAD hung: still in system call %ld 15 s after waking\n", c->name, nr);
            bad = 1;
            continue;
        }
        emit("%s", c->line);
        bad |= c->bad;
    }
    for (int i = 0; i < NCALLS; i++)
        if (calls[i].selected && calls[i].fd[1] > 0 && calls[i].setup == setup_accept)
            close(calls[i].fd[1]);
    if (main_eintr) {
        emit("main ret=-1 errno=EINTR BAD %d EINTR while waiting for go\n", main_eintr);
        bad = 1;
    } else {
        emit("main ret=0 errno=0 ok\n");
    }
    emit("done\n");
    if (bad)
        exit(1); /* threads may still be blocked: exit ends them */
    return 0;
}

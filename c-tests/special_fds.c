/*
 * special_fds.c - descriptors that name the process itself or no open file.
 *
 * - /proc/self/status, opened by that name: after a restore it must describe the
 *   restored process (its "Pid:" line is getpid());
 * - O_PATH descriptors of a file, of a directory and, with O_NOFOLLOW, of a
 *   symbolic link: still O_PATH, the link still a link (readlinkat works), the
 *   directory still usable with openat;
 * - a pidfd of the process itself: it signals the process (signal 0), and its
 *   fdinfo names the process's own pid;
 * - a pidfd of a child that ended and was reaped: readable (poll), no process to
 *   signal (ESRCH), nothing to wait for (ECHILD), its fdinfo "Pid: -1".
 * The step line folds in a bit mask of what differed (0 when nothing did).
 */
#include "common.h"
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int pid_line(int fd, const char *key)
{
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *at = strstr(buf, key);
    return at ? atoi(at + strlen(key)) : -1;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    int t = open("target.txt", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (t < 0 || write(t, "hello\n", 6) != 6)
        fail_errno("target.txt");
    close(t);
    unlink("link");
    if (symlink("target.txt", "link") != 0)
        fail_errno("symlink");
    int status = open("/proc/self/status", O_RDONLY);
    int op_file = open("target.txt", O_PATH);
    int op_dir = open(".", O_PATH | O_DIRECTORY);
    int op_link = open("link", O_PATH | O_NOFOLLOW);
    int pfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    int ended = (int)syscall(SYS_pidfd_open, child, 0);
    if (child < 0 || waitpid(child, NULL, 0) != child)
        fail_errno("fork, waitpid");
    if (status < 0 || op_file < 0 || op_dir < 0 || op_link < 0 || pfd < 0 || ended < 0)
        fail_errno("open");
    char ended_info[64];
    snprintf(ended_info, sizeof ended_info, "/proc/self/fdinfo/%d", ended);
    char info[64];
    snprintf(info, sizeof info, "/proc/self/fdinfo/%d", pfd);
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        unsigned bad = 0;
        if (pid_line(status, "\nPid:\t") != getpid())
            bad |= 1;
        if (!(fcntl(op_file, F_GETFL) & O_PATH) || !(fcntl(op_dir, F_GETFL) & O_PATH) || !(fcntl(op_link, F_GETFL) & O_PATH))
            bad |= 2;
        struct stat st;
        if (fstat(op_file, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != 6)
            bad |= 4;
        char l[64];
        ssize_t n = readlinkat(op_link, "", l, sizeof l);
        if (n != 10 || memcmp(l, "target.txt", 10) != 0)
            bad |= 8;
        int via = openat(op_dir, "target.txt", O_RDONLY);
        if (via < 0)
            bad |= 16;
        else
            close(via);
        if (syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0) != 0)
            bad |= 32;
        int fi = open(info, O_RDONLY);
        if (fi < 0 || pid_line(fi, "\nPid:\t") != getpid())
            bad |= 64;
        if (fi >= 0)
            close(fi);
        struct pollfd pl = { ended, POLLIN, 0 };
        if (poll(&pl, 1, 0) != 1 || !(pl.revents & POLLIN))
            bad |= 128;
        errno = 0;
        if (syscall(SYS_pidfd_send_signal, ended, 0, NULL, 0) != -1 || errno != ESRCH)
            bad |= 256;
        siginfo_t si;
        errno = 0;
        if (waitid(P_PIDFD, (id_t)ended, &si, WEXITED | WNOHANG) != -1 || errno != ECHILD)
            bad |= 512;
        fi = open(ended_info, O_RDONLY);
        if (fi < 0 || pid_line(fi, "\nPid:\t") != -1)
            bad |= 1024;
        if (fi >= 0)
            close(fi);
        if (bad)
            emit("step %d: descriptors not as they were: %#x\n", step, bad);
        chain = fnv1a_u64(chain, (uint64_t)step * 41 + bad);
        step_line(step, chain);
        pace_ms(50);
    }
    done_line(chain);
    return 0;
}

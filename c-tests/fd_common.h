/*
 * fd_common.h - helpers for the descriptor subjects (fd_*.c, memfd_shm.c, ...).
 * Include after common.h.
 */
#ifndef MIG_FD_COMMON_H
#define MIG_FD_COMMON_H

#include <dirent.h>
#include <fcntl.h>

/* Descriptors above 2 that were open when the program started (inherited from
 * whoever ran it; none under the tests, which close them). */
static int fd_inherited[64], fd_ninherited = -1;

/* Calls fn(fd) for every open descriptor above 2 (not the directory's own). */
static inline void each_open_fd(void (*fn)(int fd, void *ctx), void *ctx)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        fail_errno("opendir /proc/self/fd");
    int self = dirfd(d);
    int found[1024], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 1024) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd != self && fd > 2)
            found[n++] = fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        fn(found[i], ctx);
}

static inline void fd_note_inherited(int fd, void *ctx)
{
    (void)ctx;
    if (fd_ninherited < 64)
        fd_inherited[fd_ninherited++] = fd;
}

/* Call first thing in main. */
static inline void fd_baseline(void)
{
    fd_ninherited = 0;
    each_open_fd(fd_note_inherited, NULL);
}

struct fd_want {
    const int *fds;
    int n;
};

static inline void fd_check_one(int fd, void *ctx)
{
    const struct fd_want *w = ctx;
    for (int i = 0; i < w->n; i++)
        if (w->fds[i] == fd)
            return;
    for (int i = 0; i < fd_ninherited; i++)
        if (fd_inherited[i] == fd)
            return;
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t l = readlink(link, target, sizeof target - 1);
    target[l > 0 ? l : 0] = '\0';
    /* Numbers in the link (pipe:[123]) vary: cut them off. */
    char *br = strchr(target, '[');
    if (br)
        *br = '\0';
    fail("descriptor %d (%s) is open but not the program's", fd, target);
}

/* Checks that the open descriptors are exactly 0, 1, 2, the inherited ones
 * (fd_baseline) and want[0..n): a restore must neither lose one nor leave one
 * of its own behind. */
static inline void check_open_fds(const int *want, int n)
{
    if (fd_ninherited < 0)
        fail("fd_baseline() was not called");
    struct fd_want w = { want, n };
    each_open_fd(fd_check_one, &w);
    for (int i = 0; i < n; i++)
        if (fcntl(want[i], F_GETFD) < 0)
            fail("descriptor %d is not open any more", want[i]);
}

#endif /* MIG_FD_COMMON_H */

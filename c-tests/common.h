/*
 * common.h - helpers shared by the mig test subjects (header-only).
 *
 * Include this first: it sets _GNU_SOURCE before any system header.
 * Every function is `static inline` so a program that does not use one
 * of them still compiles cleanly with -Wall -Wextra -Werror.
 *
 * Output protocol (see README.md): one `step <n> <digest>` line per step,
 * then `done <digest>`, each written with a single write(2) so that a
 * pipe reader sees whole lines immediately; `FAIL <reason>` + exit 1 when
 * the program notices inconsistent state.
 */
#ifndef MIG_COMMON_H
#define MIG_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_STEPS 40

/* 64-bit FNV-1a. */
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static inline uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* Hash a 64-bit value as its 8 little-endian bytes (x86_64 byte order). */
static inline uint64_t fnv1a_u64(uint64_t h, uint64_t v)
{
    return fnv1a(h, &v, sizeof v);
}

static inline uint64_t fnv1a_str(uint64_t h, const char *s)
{
    return fnv1a(h, s, strlen(s));
}

/* Deterministic PRNG (Marsaglia xorshift64); state must never be 0. */
static inline uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* write(2) everything, retrying on EINTR (the checkpoint signal may land
 * in the middle) and on short writes. Gives up silently on other errors:
 * there is nowhere left to report them. */
static inline void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Format one line and emit it with a single write(2) to stdout. */
__attribute__((format(printf, 1, 2)))
static inline void emit(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    write_all(1, buf, (size_t)n);
}

static inline void step_line(int n, uint64_t digest)
{
    emit("step %d %016llx\n", n, (unsigned long long)digest);
}

static inline void done_line(uint64_t digest)
{
    emit("done %016llx\n", (unsigned long long)digest);
}

/* State check failed: report on stdout (the test compares stdout) and on
 * stderr (for humans), then exit 1. The reason must be deterministic. */
__attribute__((format(printf, 1, 2), noreturn))
static inline void fail(const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout); /* programs that print through stdio keep line order */
    emit("FAIL %s\n", msg);
    fprintf(stderr, "FAIL %s\n", msg);
    exit(1);
}

/* A system call failed unexpectedly. */
__attribute__((noreturn))
static inline void fail_errno(const char *what)
{
    fail("%s: %s", what, strerror(errno));
}

/* Reads one line of `fd` a byte at a time (what follows stays queued for the next
 * read), into `line` (`size` bytes, cut short there, without its newline); fails,
 * naming `step`, on an error or the end of the stream. */
static inline void read_line(int fd, char *line, size_t size, int step)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != 1)
            fail("step %d: read returned %zd (errno %d)", step, r, r < 0 ? errno : 0);
        if (c == '\n')
            break;
        if (n + 1 < size)
            line[n++] = c;
    }
    line[n] = 0;
}

/* Step count: argv[1] if given (a positive number), else `def`. */
static inline int steps_arg(int argc, char **argv, int def)
{
    if (argc < 2)
        return def;
    char *end;
    long v = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || v < 1 || v > 1000000) {
        fprintf(stderr, "usage: %s [steps]\n", argv[0]);
        exit(2);
    }
    return (int)v;
}

/* Sleep `ms` milliseconds. A signal (e.g. the checkpoint signal) interrupts
 * nanosleep with EINTR; continue with the time that was left so the total
 * pacing, and everything the program prints, stays the same. */
static inline void pace_ms(int ms)
{
    struct timespec req = { ms / 1000, (long)(ms % 1000) * 1000000L };
    struct timespec rem;
    while (nanosleep(&req, &rem) != 0) {
        if (errno != EINTR)
            fail_errno("nanosleep");
        req = rem;
    }
}

#endif /* MIG_COMMON_H */

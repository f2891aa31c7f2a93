/*
 * shm_deleted.c - /dev/shm files unlinked while still in use, as sem_open'd
 * semaphores that Python's multiprocessing unlinks at once are.
 *
 * Usage: shm_deleted STEPS NAME [fork]
 *
 * - /dev/shm/NAME-map: made, mapped shared, its descriptor closed, unlinked: only
 *   the mapping holds it.
 * - /dev/shm/NAME-fd: made, unlinked, its descriptor kept (read with pread).
 * Each step adds one to a counter in the mapping and writes the step into the file,
 * and checks that /proc/self/maps and /proc/self/fd still name each as the deleted
 * file it is ("/dev/shm/NAME-map (deleted)"). With "fork", a child made after the
 * mapping counts too (the counter is atomic); the parent prints the steps and, at
 * the end, the counter, which counts every step of both.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

static void check_map_name(const char *want)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        fail_errno("/proc/self/maps");
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, want))
            found = 1;
    fclose(f);
    if (!found)
        fail("no mapping named %s", want);
}

static void check_fd_name(int fd, const char *want)
{
    char link[64], got[256];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, got, sizeof got - 1);
    if (n < 0)
        fail_errno("readlink");
    got[n] = 0;
    if (strcmp(got, want) != 0)
        fail("descriptor %d names %s, not %s", fd, got, want);
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    if (argc < 3)
        fail("usage: shm_deleted STEPS NAME [fork]");
    int forked = argc > 3 && strcmp(argv[3], "fork") == 0;
    char map_path[200], fd_path[200], map_name[220], fd_name[220];
    snprintf(map_path, sizeof map_path, "/dev/shm/%s-map", argv[2]);
    snprintf(fd_path, sizeof fd_path, "/dev/shm/%s-fd", argv[2]);
    snprintf(map_name, sizeof map_name, "%s (deleted)", map_path);
    snprintf(fd_name, sizeof fd_name, "%s (deleted)", fd_path);

    int m = open(map_path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (m < 0 || ftruncate(m, 4096) != 0)
        fail_errno(map_path);
    uint64_t *counter = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
    if (counter == MAP_FAILED)
        fail_errno("mmap");
    close(m);
    unlink(map_path);
    int fd = open(fd_path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        fail_errno(fd_path);
    unlink(fd_path);

    pid_t child = forked ? fork() : 0;
    if (child < 0)
        fail_errno("fork");
    int printer = !forked || child > 0;
    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        __atomic_fetch_add(counter, 1, __ATOMIC_SEQ_CST);
        check_map_name(map_name);
        if (printer) {
            int back = 0;
            if (pwrite(fd, &step, sizeof step, 0) != sizeof step || pread(fd, &back, sizeof back, 0) != sizeof back || back != step)
                fail("the deleted file does not hold step %d", step);
            check_fd_name(fd, fd_name);
            chain = fnv1a_u64(chain, (uint64_t)step);
            step_line(step, chain);
        }
        pace_ms(50);
    }
    if (!printer)
        return 0;
    if (forked) {
        int st;
        if (waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("the child failed");
    }
    emit("counted %llu\n", (unsigned long long)__atomic_load_n(counter, __ATOMIC_SEQ_CST));
    done_line(chain);
    return 0;
}

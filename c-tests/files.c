/*
 * files.c - open files: offsets, O_APPEND, stdio buffers.
 *
 * Setup (once, at program start; a restored process does not repeat it):
 * write input.txt and input2.txt (200 known lines each) in the current
 * directory and remove old out.log / out2.log.
 *
 * Each step reads one line of input.txt through a raw descriptor with our
 * own small buffer (so the kernel offset runs ahead of the line being
 * consumed) and one line of input2.txt through fgets, appends one line to
 * out.log with write(2) on an O_WRONLY|O_APPEND|O_CREAT descriptor and one
 * to out2.log through fopen("a") + fflush. Step lines go through printf +
 * fflush so stdout's stdio state is exercised too.
 *
 * At the end both logs are read back. Files are not rolled back by a
 * restore, so lines written between the checkpoint and the kill appear
 * twice: the check accepts a log whose numbers start at 1, end at N and
 * never jump forward by more than one (a rollback shows as a jump back),
 * which still catches lost appends and appends to the wrong offset.
 * Only the count of distinct lines (N) enters the digest.
 */
#include "common.h"

#include <fcntl.h>

#define INPUT_LINES 200
#define RAWBUF 64 /* smaller than most lines: reads cross line boundaries */

/* Deterministic line k (1-based) of input file `which`, with varying length. */
static void input_line(char *out, size_t cap, int which, int k)
{
    int n = snprintf(out, cap, "%s line %03d:", which == 1 ? "input.txt" : "input2.txt", k);
    for (int i = 0; i < (k * 7 + which * 3) % 50 && (size_t)n + 2 < cap; i++)
        out[n++] = (char)('a' + (k + i * which) % 26);
    out[n++] = '\n';
    out[n] = '\0';
}

static void write_input(const char *path, int which)
{
    FILE *f = fopen(path, "w");
    if (!f)
        fail_errno(path);
    for (int k = 1; k <= INPUT_LINES; k++) {
        char line[128];
        input_line(line, sizeof line, which, k);
        fputs(line, f);
    }
    if (fclose(f) != 0)
        fail_errno(path);
}

/* ---- raw reader with its own buffer ---- */

struct reader {
    int fd;
    char buf[RAWBUF];
    size_t pos, len;
};

/* Read one line including '\n'; at end of file start over from the top. */
static void raw_getline(struct reader *r, char *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        if (r->pos == r->len) {
            ssize_t got = read(r->fd, r->buf, sizeof r->buf);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0)
                fail_errno("read input.txt");
            if (got == 0) {
                if (lseek(r->fd, 0, SEEK_SET) != 0)
                    fail_errno("lseek input.txt");
                continue;
            }
            r->pos = 0;
            r->len = (size_t)got;
        }
        char c = r->buf[r->pos++];
        if (n + 1 < cap)
            out[n++] = c;
        if (c == '\n')
            break;
    }
    out[n] = '\0';
}

static void stdio_getline(FILE *f, char *out, int cap)
{
    if (!fgets(out, cap, f)) {
        rewind(f);
        if (!fgets(out, cap, f))
            fail("input2.txt: fgets failed");
    }
}

/* ---- log verification ---- */

/* Returns the number of distinct line numbers; FAILs on a bad sequence. */
static int check_log(const char *path, const char *prefix, int steps)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_errno(path);
    char line[128];
    int prev = 0, lines = 0;
    while (fgets(line, sizeof line, f)) {
        int k;
        char tail;
        size_t plen = strlen(prefix);
        if (strncmp(line, prefix, plen) != 0 || sscanf(line + plen, " %d%c", &k, &tail) != 2 ||
            tail != '\n')
            fail("%s: malformed line %d", path, lines + 1);
        if (lines == 0 && k != 1)
            fail("%s: first line is %d", path, k);
        if (k > prev + 1)
            fail("%s: line %d missing", path, prev + 1);
        prev = k;
        lines++;
    }
    fclose(f);
    if (prev != steps)
        fail("%s: last line is %d, expected %d", path, prev, steps);
    /* Starts at 1, never skips, ends at N: every number 1..N is present. */
    return steps;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);

    /* setup, done once */
    write_input("input.txt", 1);
    write_input("input2.txt", 2);
    if ((unlink("out.log") != 0 && errno != ENOENT) || (unlink("out2.log") != 0 && errno != ENOENT))
        fail_errno("unlink old logs");

    static struct reader in1;
    in1.fd = open("input.txt", O_RDONLY);
    if (in1.fd < 0)
        fail_errno("open input.txt");
    FILE *in2 = fopen("input2.txt", "r");
    if (!in2)
        fail_errno("fopen input2.txt");
    int out1 = open("out.log", O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (out1 < 0)
        fail_errno("open out.log");
    FILE *out2 = fopen("out2.log", "a");
    if (!out2)
        fail_errno("fopen out2.log");

    uint64_t chain = FNV_OFFSET;
    for (int step = 1; step <= steps; step++) {
        char l1[128], l2[128], want[128];
        int k = (step - 1) % INPUT_LINES + 1;

        raw_getline(&in1, l1, sizeof l1);
        input_line(want, sizeof want, 1, k);
        if (strcmp(l1, want) != 0)
            fail("input.txt line %d reads back wrong", k);

        stdio_getline(in2, l2, sizeof l2);
        input_line(want, sizeof want, 2, k);
        if (strcmp(l2, want) != 0)
            fail("input2.txt line %d reads back wrong", k);

        char rec[32];
        int n = snprintf(rec, sizeof rec, "out %d\n", step);
        if (write(out1, rec, (size_t)n) != n) /* one write: appended atomically */
            fail_errno("write out.log");
        if (fprintf(out2, "out2 %d\n", step) < 0 || fflush(out2) != 0)
            fail_errno("write out2.log");

        uint64_t d = fnv1a_str(fnv1a_str(FNV_OFFSET, l1), l2);
        chain = fnv1a_u64(chain, d);
        printf("step %d %016llx\n", step, (unsigned long long)d);
        fflush(stdout);
        pace_ms(50);
    }

    close(out1);
    fclose(out2);
    int distinct1 = check_log("out.log", "out", steps);
    int distinct2 = check_log("out2.log", "out2", steps);
    chain = fnv1a_u64(chain, (uint64_t)distinct1);
    chain = fnv1a_u64(chain, (uint64_t)distinct2);
    printf("done %016llx\n", (unsigned long long)chain);
    fflush(stdout);
    return 0;
}

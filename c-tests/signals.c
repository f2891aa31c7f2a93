/*
 * signals.c - signal dispositions and the blocked mask.
 *
 * SIGTERM and SIGHUP get handlers (SA_RESTART, each with its own sa_mask),
 * SIGINT is blocked. Every step raises SIGTERM and/or SIGHUP at itself and
 * counts deliveries, queries sigaction()/sigprocmask() to confirm that the
 * handlers, flags, sa_masks and the blocked mask are exactly as installed,
 * and inside each handler checks that the mask in force is the handler's
 * sa_mask plus the signal itself plus the blocked SIGINT. A restore that
 * loses a handler would make raise() kill the process with SIGTERM/SIGHUP.
 */
#include "common.h"

#include <signal.h>

#define CHECKED_FLAGS (SA_RESTART | SA_SIGINFO | SA_NODEFER | SA_RESETHAND | SA_ONSTACK)

static volatile sig_atomic_t term_count, hup_count, bad_mask_in_handler;

/* Compare standard signals 1..31 (glibc reserves 32 and 33). */
static int same_set(const sigset_t *a, const sigset_t *b)
{
    for (int s = 1; s < 32; s++)
        if (sigismember(a, s) != sigismember(b, s))
            return 0;
    return 1;
}

static void set_of(sigset_t *set, int a, int b, int c)
{
    sigemptyset(set);
    if (a) sigaddset(set, a);
    if (b) sigaddset(set, b);
    if (c) sigaddset(set, c);
}

/* Signals each handler runs with: sa_mask + itself + the blocked SIGINT. */
static void handler_mask(sigset_t *set, int sig)
{
    if (sig == SIGTERM)
        set_of(set, SIGHUP, SIGUSR2, 0);
    else
        set_of(set, SIGTERM, SIGQUIT, SIGPIPE);
}

static void on_signal(int sig)
{
    sigset_t cur, want;
    sigprocmask(SIG_BLOCK, NULL, &cur); /* async-signal-safe query */
    handler_mask(&want, sig);
    sigaddset(&want, sig);
    sigaddset(&want, SIGINT);
    if (!same_set(&cur, &want))
        bad_mask_in_handler = 1;
    if (sig == SIGTERM)
        term_count++;
    else
        hup_count++;
}

static void install(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    handler_mask(&sa.sa_mask, sig);
    if (sigaction(sig, &sa, NULL) != 0)
        fail_errno("sigaction");
}

static void check_installed(int sig, const char *name)
{
    struct sigaction cur;
    sigset_t want;
    if (sigaction(sig, NULL, &cur) != 0)
        fail_errno("sigaction query");
    if (cur.sa_handler != on_signal)
        fail("%s handler changed", name);
    /* the kernel adds SA_RESTORER; only compare the flags we care about */
    if ((cur.sa_flags & CHECKED_FLAGS) != SA_RESTART)
        fail("%s sa_flags changed", name);
    handler_mask(&want, sig);
    if (!same_set(&cur.sa_mask, &want))
        fail("%s sa_mask changed", name);
}

static void check_blocked(void)
{
    sigset_t cur, want;
    if (sigprocmask(SIG_BLOCK, NULL, &cur) != 0)
        fail_errno("sigprocmask query");
    set_of(&want, SIGINT, 0, 0);
    if (!same_set(&cur, &want))
        fail("blocked mask is not exactly {SIGINT}");
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    sigset_t block;

    install(SIGTERM);
    install(SIGHUP);
    set_of(&block, SIGINT, 0, 0);
    if (sigprocmask(SIG_SETMASK, &block, NULL) != 0)
        fail_errno("sigprocmask");

    uint64_t chain = FNV_OFFSET;
    int want_term = 0, want_hup = 0;
    for (int step = 1; step <= steps; step++) {
        check_installed(SIGTERM, "SIGTERM");
        check_installed(SIGHUP, "SIGHUP");
        check_blocked();

        /* odd steps SIGTERM, even steps SIGHUP, every 5th step both */
        if (step % 2 == 1 || step % 5 == 0) {
            raise(SIGTERM); /* handler has run when raise returns */
            want_term++;
        }
        if (step % 2 == 0 || step % 5 == 0) {
            raise(SIGHUP);
            want_hup++;
        }
        if (term_count != want_term || hup_count != want_hup)
            fail("delivery count mismatch");
        if (bad_mask_in_handler)
            fail("wrong signal mask inside handler");

        uint64_t d = fnv1a_u64(fnv1a_u64(FNV_OFFSET, (uint64_t)term_count), (uint64_t)hup_count);
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(50);
    }
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}

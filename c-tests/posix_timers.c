/*
 * posix_timers.c - timer_create timers whose ids must keep working.
 *
 * Created in this order (the kernel numbers them in order; the third is
 * deleted again, so the ids have a gap):
 *   tick  CLOCK_MONOTONIC, SIGALRM,   periodic 20 ms
 *   none  CLOCK_REALTIME,  SIGEV_NONE, one-shot 1000 s
 *   gone  CLOCK_MONOTONIC, SIGEV_NONE  (deleted: timer_gettime must say EINVAL,
 *         except while the timer made at step N/2 exists: it may reuse the id)
 *   lng   CLOCK_MONOTONIC, SIGPROF,   600 s then every 3 s (never fires)
 *   shot  CLOCK_MONOTONIC, SIGVTALRM, re-armed for 5 ms every fourth step
 *   late  CLOCK_MONOTONIC, SIGPROF,   one-shot 1500 ms from the start
 *   cpu   CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, one-shot 100 s of CPU time
 * One SA_SIGINFO handler counts deliveries per timer (told apart by sival_int)
 * and checks si_code == SI_TIMER and si_timerid == the saved id (glibc's
 * timer_t of a SIGEV_SIGNAL timer is the kernel's id).
 *
 * Each step: timer_gettime on every saved id (remaining time > 0 and never
 * growing, intervals exact), timer_getoverrun >= 0, wait for a tick of `tick`,
 * on every fourth step timer_settime on `shot` and wait for its signal (so the
 * count of shots is deterministic). At step N/2 a new timer is created (its id
 * must differ from the saved ones) and deleted at the next step. After the
 * last step: `late` must have fired exactly once (waited for, at most 5 s),
 * then every timer is deleted. Times are never printed, only checked.
 */
#include "common.h"
#include "fd_common.h"

#include <signal.h>

#define V_TICK 0x7101
#define V_SHOT 0x5107
#define V_LATE 0x1a7e
#define V_LONG 0x1011

static timer_t t_tick, t_none, t_gone, t_long, t_shot, t_late, t_cpu;
static volatile sig_atomic_t ticks, shots, lates, longs, bad;

static void on_timer(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (si->si_code != SI_TIMER) {
        bad = 1;
        return;
    }
    int id = si->si_timerid;
    switch (si->si_value.sival_int) {
    case V_TICK:
        if (sig != SIGALRM || id != (int)(intptr_t)t_tick)
            bad = 2;
        ticks++;
        break;
    case V_SHOT:
        if (sig != SIGVTALRM || id != (int)(intptr_t)t_shot)
            bad = 3;
        shots++;
        break;
    case V_LATE:
        if (sig != SIGPROF || id != (int)(intptr_t)t_late)
            bad = 4;
        lates++;
        break;
    case V_LONG:
        longs++;
        break;
    default:
        bad = 5;
    }
}

static timer_t make(clockid_t clock, int notify, int sig, int value, const char *what)
{
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = notify;
    ev.sigev_signo = sig;
    ev.sigev_value.sival_int = value;
    timer_t t;
    if (timer_create(clock, &ev, &t) != 0)
        fail("timer_create %s: %s", what, strerror(errno));
    return t;
}

static void arm(timer_t t, long long value_ms, long long interval_ms, const char *what)
{
    struct itimerspec its = { { interval_ms / 1000, (interval_ms % 1000) * 1000000L },
                              { value_ms / 1000, (value_ms % 1000) * 1000000L } };
    if (timer_settime(t, 0, &its, NULL) != 0)
        fail("timer_settime %s: %s", what, strerror(errno));
}

static int64_t ns_of(struct timespec t) { return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec; }

/* timer_gettime; checks the interval and that the remaining time is in
 * (0, *left] (or 0 when may_be_done and it has fired), updates *left. */
static int64_t check(timer_t t, int64_t *left, int64_t interval_ns, int may_be_done, const char *what)
{
    struct itimerspec its;
    if (timer_gettime(t, &its) != 0)
        fail("timer_gettime %s: %s", what, strerror(errno));
    if (ns_of(its.it_interval) != interval_ns)
        fail("%s: interval %lld ns, expected %lld", what, (long long)ns_of(its.it_interval), (long long)interval_ns);
    int64_t v = ns_of(its.it_value);
    if (v < 0 || v > *left || (v == 0 && !may_be_done))
        fail("%s: %lld ns left, had %lld", what, (long long)v, (long long)*left);
    if (timer_getoverrun(t) < 0)
        fail("timer_getoverrun %s: %s", what, strerror(errno));
    *left = v;
    return v;
}

/* Waits (<= 5 s, 1 ms naps) until *counter reaches want. */
static void wait_count(volatile sig_atomic_t *counter, int want, const char *what)
{
    for (int naps = 0; *counter < want; naps++) {
        if (naps >= 5000)
            fail("%s: no signal after 5 s", what);
        pace_ms(1);
    }
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    fd_baseline();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_timer;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) != 0 || sigaction(SIGVTALRM, &sa, NULL) != 0 ||
        sigaction(SIGPROF, &sa, NULL) != 0)
        fail_errno("sigaction");

    t_tick = make(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGALRM, V_TICK, "tick");
    t_none = make(CLOCK_REALTIME, SIGEV_NONE, 0, 0, "none");
    t_gone = make(CLOCK_MONOTONIC, SIGEV_NONE, 0, 0, "gone");
    t_long = make(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGPROF, V_LONG, "lng");
    t_shot = make(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGVTALRM, V_SHOT, "shot");
    t_late = make(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGPROF, V_LATE, "late");
    t_cpu = make(CLOCK_PROCESS_CPUTIME_ID, SIGEV_NONE, 0, 0, "cpu");
    if (timer_delete(t_gone) != 0)
        fail_errno("timer_delete");
    arm(t_tick, 20, 20, "tick");
    arm(t_none, 1000000, 0, "none");
    arm(t_long, 600000, 3000, "lng");
    arm(t_late, 1500, 0, "late");
    arm(t_cpu, 100000, 0, "cpu");

    int64_t none_left = 1000LL * 1000000000LL, long_left = 600LL * 1000000000LL;
    int64_t late_left = 1500LL * 1000000LL, cpu_left = 100LL * 1000000000LL, any = INT64_MAX;
    int want_shots = 0;
    timer_t t_new = 0;
    int have_new = 0;
    uint64_t chain = FNV_OFFSET;
    for (int s = 1; s <= steps; s++) {
        uint64_t d = fnv1a_u64(FNV_OFFSET, (uint64_t)s);
        if (bad)
            fail("bad timer signal (%d)", (int)bad);
        check_open_fds(NULL, 0); /* timers are not descriptors */

        /* (While a new timer exists it may legitimately reuse the free id.) */
        struct itimerspec its;
        if (!have_new && (timer_gettime(t_gone, &its) == 0 || errno != EINVAL))
            fail("the deleted timer's id works again");
        check(t_tick, &any, 20000000, 0, "tick");
        any = INT64_MAX;
        check(t_none, &none_left, 0, 0, "none");
        check(t_long, &long_left, 3000000000LL, 0, "lng");
        check(t_cpu, &cpu_left, 0, 0, "cpu");
        int64_t v = check(t_late, &late_left, 0, 1, "late");
        if ((v == 0) != (lates == 1) || lates > 1)
            fail("late: %lld ns left and %d deliveries", (long long)v, (int)lates);
        if (longs != 0)
            fail("lng fired");
        d = fnv1a_str(d, "armed");

        int t0 = ticks;
        wait_count(&ticks, t0 + 1, "tick");
        d = fnv1a_str(d, "ticked");

        if (s % 4 == 0) {
            if (check(t_shot, &any, 0, 1, "shot") != 0)
                fail("shot: still armed");
            any = INT64_MAX;
            arm(t_shot, 5, 0, "shot");
            want_shots++;
            wait_count(&shots, want_shots, "shot");
        }
        if (shots != want_shots)
            fail("shot: %d deliveries, expected %d", (int)shots, want_shots);
        d = fnv1a_u64(d, (uint64_t)shots);

        if (have_new) {
            if (timer_delete(t_new) != 0)
                fail_errno("timer_delete new");
            have_new = 0;
        }
        if (s == steps / 2) {
            t_new = make(CLOCK_MONOTONIC, SIGEV_NONE, 0, 0, "new");
            timer_t saved[] = { t_tick, t_none, t_long, t_shot, t_late, t_cpu };
            for (size_t i = 0; i < sizeof saved / sizeof saved[0]; i++)
                if (saved[i] == t_new)
                    fail("the new timer got the id of a saved one");
            arm(t_new, 50000, 0, "new");
            int64_t nl = 50LL * 1000000000LL;
            check(t_new, &nl, 0, 0, "new");
            have_new = 1;
            d = fnv1a_str(d, "new timer");
        }

        chain = fnv1a_u64(chain, d);
        step_line(s, d);
        pace_ms(50);
    }

    wait_count(&lates, 1, "late");
    if (lates != 1 || bad)
        fail("late: %d deliveries (bad %d)", (int)lates, (int)bad);
    if (have_new && timer_delete(t_new) != 0)
        fail_errno("timer_delete new");
    timer_t all[] = { t_tick, t_none, t_long, t_shot, t_late, t_cpu };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (timer_delete(all[i]) != 0)
            fail("timer_delete of timer %zu: %s", i, strerror(errno));
    chain = fnv1a_u64(chain, (uint64_t)lates);
    done_line(chain);
    return 0;
}

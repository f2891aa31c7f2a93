/*
 * alarm.c - a pending alarm(2) must survive checkpoint/restore.
 *
 * alarm(2) is armed at start; the SIGALRM handler counts deliveries. Steps
 * 1..20 (or argv[1]) print as usual, ~50 ms apart. The program then keeps
 * pacing silently until the alarm has fired (at most 200 steps in total,
 * ~10 s), so when it fires never shows in the output. A test that
 * checkpoints around step 5 gets the alarm delivered after the restore
 * only if the restore re-arms the remaining time.
 */
#include "common.h"

#include <signal.h>

#define ALARM_SECONDS 2
#define MAX_STEPS 200

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, 20);
    int max_steps = steps > 20 ? steps + MAX_STEPS - 20 : MAX_STEPS; /* ~10 s of waiting */

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) != 0)
        fail_errno("sigaction");
    if (alarm(ALARM_SECONDS) != 0)
        fail("an alarm was already pending at start");

    uint64_t chain = FNV_OFFSET;
    uint64_t counter = 1;
    int step;
    for (step = 1; step <= max_steps; step++) {
        counter = counter * 6364136223846793005ULL + 1442695040888963407ULL;
        if (step <= steps) {
            uint64_t d = fnv1a_u64(FNV_OFFSET, counter);
            chain = fnv1a_u64(chain, d);
            step_line(step, d);
        } else if (alarms) {
            break;
        }
        pace_ms(50);
    }
    if (!alarms)
        fail("alarm never fired");
    if (alarms != 1)
        fail("alarm fired %d times", (int)alarms);
    if (alarm(0) != 0)
        fail("an alarm is still pending after it fired");

    done_line(fnv1a_u64(fnv1a_u64(chain, (uint64_t)steps), (uint64_t)alarms));
    return 0;
}

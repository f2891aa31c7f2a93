/*
 * globals.c - state held in .data, .bss and static locals.
 *
 * The restore must bring back the writable segments of the executable
 * exactly: initialised globals (.data), a 1 MiB zero-initialised array
 * (.bss, mostly never touched so its pages stay unpopulated) and static
 * locals. A pointer stored in .data checks that the image is mapped at the
 * same address after the restore.
 */
#include "common.h"

/* .data: initialised, writable */
uint32_t primes[16] = { 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53 };
char motto[64] = "checkpoint me if you can";

struct account {
    char owner[16];
    int64_t balance;
    double rate;
    uint16_t history[32];
} wallet = { "alice", 1000, 0.015, { 1, 2, 3 } };

/* .bss: zero-initialised */
static unsigned char big[1 << 20];
uint64_t small_bss[8];

/* .data pointer into .bss: only meaningful if .bss stays where it was. */
uint64_t *cursor = &small_bss[0];

/* Static locals: one in .data, one in .bss. */
static uint32_t tick(void)
{
    static uint32_t counter = 7;
    static uint32_t calls;
    calls++;
    counter = counter * 3 + calls;
    return counter;
}

static void mutate(int step)
{
    uint32_t k = (uint32_t)step;

    primes[k % 16] = primes[k % 16] * 31u + k;
    motto[k % 24] ^= 0x20; /* flips letter case in the initialised text */

    wallet.balance += (int64_t)k * 17 - 100;
    wallet.rate = wallet.rate * 1.01 + 0.0001;
    wallet.history[k % 32] = (uint16_t)wallet.balance;

    /* Touch 4 of the 256 pages of `big` per step; most stay zero. */
    for (uint32_t i = 0; i < 4; i++) {
        uint32_t page = (k * 37u + i * 97u) % 256u;
        big[page * 4096u + (k * 13u + i) % 4096u] += (unsigned char)(k + i);
    }

    *cursor ^= (uint64_t)tick() * k;
    cursor = &small_bss[(k * 5u) % 8u];
}

static uint64_t digest(void)
{
    uint64_t h = FNV_OFFSET;
    h = fnv1a(h, primes, sizeof primes);
    h = fnv1a(h, motto, sizeof motto);
    /* field by field: never hash padding */
    h = fnv1a(h, wallet.owner, sizeof wallet.owner);
    h = fnv1a(h, &wallet.balance, sizeof wallet.balance);
    h = fnv1a(h, &wallet.rate, sizeof wallet.rate);
    h = fnv1a(h, wallet.history, sizeof wallet.history);
    h = fnv1a(h, big, sizeof big);
    h = fnv1a(h, small_bss, sizeof small_bss);
    h = fnv1a_u64(h, (uint64_t)(cursor - small_bss));
    return h;
}

int main(int argc, char **argv)
{
    int steps = steps_arg(argc, argv, DEFAULT_STEPS);
    uint64_t chain = FNV_OFFSET;

    for (int step = 1; step <= steps; step++) {
        mutate(step);
        if (strcmp(wallet.owner, "alice") != 0)
            fail("wallet.owner clobbered");
        if (cursor < small_bss || cursor >= small_bss + 8)
            fail("cursor points outside small_bss");
        uint64_t d = fnv1a_u64(digest(), tick());
        chain = fnv1a_u64(chain, d);
        step_line(step, d);
        pace_ms(50);
    }
    done_line(fnv1a_u64(chain, (uint64_t)steps));
    return 0;
}

/*
 * libstep.c - a tiny shared library for uses_lib.c. The tests build it twice with
 * different STEP_FACTOR values to play "a library that changed since the checkpoint".
 * Built with: cc -O1 -shared -fPIC -DSTEP_FACTOR=<n> -o libstep.so libstep.c
 */
#include <stdint.h>

#ifndef STEP_FACTOR
#define STEP_FACTOR 3
#endif

/* Writable library data: saved and restored like the program's own globals. */
uint64_t step_total = 7;

uint64_t step_value(int step)
{
    step_total = step_total * STEP_FACTOR + (uint64_t)step;
    return step_total;
}

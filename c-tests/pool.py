#!/usr/bin/env python3
# pool.py [STEPS] - Python's multiprocessing.Pool(2) mapping in a loop (issue 16): two
# forked workers, the pool's threads in the parent, pipes and a shared semaphore
# between them. Prints `step N <digest of the results>` at a 40 ms pace, then `done`.
import multiprocessing as mp
import sys
import time


def square(x):
    return x * x % 1000003


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    h = 0xCBF29CE484222325
    with mp.get_context("fork").Pool(2) as pool:
        for s in range(1, steps + 1):
            for r in pool.map(square, range(s * 10, s * 10 + 10)):
                h = ((h ^ r) * 0x100000001B3) & (2**64 - 1)
            print(f"step {s} {h:016x}", flush=True)
            time.sleep(0.04)
    print(f"done {h:016x}", flush=True)

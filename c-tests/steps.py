#!/usr/bin/env python3
"""steps.py - the step protocol for a Python interpreter under mig.

40 steps (or argv[1]) about 50 ms apart; each prints `step <n> <digest>`,
then `done <digest>`. The digest is 64-bit FNV-1a over the program state
(a list and a dict) rendered deterministically with json.dumps(sort_keys).
time.sleep resumes after signals by itself (PEP 475), so a checkpoint
signal does not shorten the pacing. No threads.
"""
import json
import sys
import time

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1


def fnv1a(data, h=FNV_OFFSET):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    history = []
    table = {"count": 0, "squares": {}, "text": "mig"}
    chain = FNV_OFFSET
    for step in range(1, steps + 1):
        history.append(step * step % 97)
        table["count"] += step
        table["squares"][str(step % 10)] = step * step
        table["text"] = (table["text"] + chr(ord("a") + step % 26))[-32:]
        table["ratio"] = table["count"] / 7  # float repr is deterministic
        state = json.dumps([history, table], sort_keys=True).encode()
        d = fnv1a(state)
        chain = fnv1a(d.to_bytes(8, "little"), chain)
        print(f"step {step} {d:016x}", flush=True)
        time.sleep(0.05)
    chain = fnv1a(steps.to_bytes(8, "little"), chain)
    print(f"done {chain:016x}", flush=True)


if __name__ == "__main__":
    main()

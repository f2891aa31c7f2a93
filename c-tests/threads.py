# threads.py - the protocol of c-tests/README.md with Python's threading: three workers
# compute in lock step through a Barrier, a fourth waits on a Condition for the whole
# run, and a short-lived thread is started and joined every 10 steps.
import sys
import threading
import time

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
FNV_OFFSET, FNV_PRIME, MASK = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


def fnv(h, data):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


values = [0, 0, 0]
barrier = threading.Barrier(4)
cond = threading.Condition()
finished = False


def worker(i):
    local = threading.local()
    local.acc = i * 1000
    for step in range(1, STEPS + 1):
        barrier.wait()
        local.acc = (local.acc * 31 + step * (i + 1)) & MASK
        values[i] = local.acc
        barrier.wait()


def sleeper():
    with cond:
        while not finished:
            cond.wait()


workers = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
waiting = threading.Thread(target=sleeper)
for t in workers + [waiting]:
    t.start()
chain = FNV_OFFSET
for step in range(1, STEPS + 1):
    barrier.wait()
    barrier.wait()
    if step % 10 == 0:
        extra = threading.Thread(target=lambda: values.append(step))
        extra.start()
        extra.join()
        values.pop()
    d = fnv(FNV_OFFSET, repr(values).encode())
    chain = fnv(chain, d.to_bytes(8, "little"))
    print(f"step {step} {d:016x}", flush=True)
    time.sleep(0.05)
with cond:
    finished = True
    cond.notify_all()
for t in workers + [waiting]:
    t.join()
print(f"done {chain:016x}", flush=True)

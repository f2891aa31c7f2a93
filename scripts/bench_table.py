#!/usr/bin/env python3
"""Prints the table of scripts/bench.sh from its results file.

Each line of the file is `KEY VALUE`: a key such as `ckpt:1024` holds one value per
run (the table shows the median and, over several runs, the range), `note` lines are
printed under the table, `m.*` describe the machine.
"""
import statistics
import sys
from collections import defaultdict

MIB = 1 << 20


def load(path):
    vals = defaultdict(list)
    notes = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            key, _, value = line.partition(" ")
            if key == "note":
                notes.append(value)
            else:
                vals[key].append(value)
    return vals, notes


jobs_only = sys.argv[1] == "--jobs"
slurm_only = sys.argv[1] == "--slurm"
vals, notes = load(sys.argv[-1])


def nums(key):
    out = []
    for v in vals.get(key, []):
        try:
            out.append(float(v))
        except ValueError:
            pass
    return out


def med(key):
    x = nums(key)
    return statistics.median(x) if x else None


def text(key, default=""):
    v = vals.get(key)
    return v[-1] if v else default


sizes = [int(s) for s in text("m.sizes", "256 1024 4096").split()]
runs = int(text("m.runs", "1"))


def size_name(mib):
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def fmt_s(v):
    return f"{v:.2f} s" if v >= 1 else f"{v * 1000:.0f} ms"


def fmt_ms(v):
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    return f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def cell_of(x, fmt):
    """Median, with the range over several runs."""
    if not x:
        return "—"
    m = fmt(statistics.median(x))
    if len(x) > 1:
        lo, hi = fmt(min(x)), fmt(max(x))
        if lo != hi:
            m += f" ({lo}–{hi})"
    return m


def cell(key, fmt):
    return cell_of(nums(key), fmt)


def skipped(mib):
    return f"skip:{mib}" in vals


def failed(key, mib):
    return f"fail:{key}:{mib}" in vals


rows = []  # (label, [cells], target, verdict)


def verdict(ok_by_size):
    if not ok_by_size:
        return "—"
    missed = [size_name(m) for m, ok in ok_by_size.items() if not ok]
    return "met" if not missed else "missed (" + ", ".join(missed) + ")"


def row(label, key, fmt, target="", limit=None, per_gib=False, fail_key=None):
    cells, ok = [], {}
    for mib in sizes:
        if skipped(mib):
            cells.append("skipped")
            continue
        x = nums(f"{key}:{mib}")
        bound = key == "stop" and x and statistics.median(x) == 2.0
        if per_gib:
            x = [v / (mib / 1024) for v in x]
        c = cell_of(x, fmt)
        if bound:
            # No pause of 2 ms or more was seen: 2 ms is an upper bound.
            c = "≤ " + c
        if fail_key and failed(fail_key, mib):
            c += " FAILED"
        cells.append(c)
        if limit is not None and x:
            ok[mib] = statistics.median(x) <= limit
    rows.append((label, cells, target, verdict(ok) if limit is not None else ""))


def ratio_row(label, num, den, target="", limit=None, den_scale=1.0):
    """Median of per-run ratios (the two were measured side by side, run by run)."""
    cells, ok = [], {}
    for mib in sizes:
        a, b = nums(f"{num}:{mib}"), nums(f"{den}:{mib}")
        if skipped(mib) or not a or not b:
            cells.append("skipped" if skipped(mib) else "—")
            continue
        if len(a) == len(b):
            r = [x / (y * den_scale) for x, y in zip(a, b) if y > 0]
        else:
            r = [statistics.median(a) / (statistics.median(b) * den_scale)]
        cells.append(cell_of(r, lambda v: f"{v:.2f}×"))
        if limit is not None:
            ok[mib] = statistics.median(r) <= limit
    rows.append((label, cells, target, verdict(ok) if limit is not None else ""))


def section(title):
    rows.append((title, None, "", ""))


# ---- the main table --------------------------------------------------------------
section("Checkpoint (the program goes on)")
row("checkpoint, image synced: `mig checkpoint PID --to` wall clock", "ckpt", fmt_s)
row("`dd` of the same bytes, `conv=fsync`, same directory, same run", "dd", fmt_s)
ratio_row("checkpoint ÷ dd (per run)", "ckpt", "dd", "≤ 1.1×", 1.1)
row("program stopped: longest pause the program saw itself", "stop", fmt_ms)
row("  per GiB resident", "stop", lambda v: f"{v:.0f} ms/GiB", "≤ 20 ms/GiB", 20, per_gib=True)
row("program stopped, as `mig checkpoint` reports it", "stop_mig", fmt_ms)

section("Restart: from `exec` to the program running again")
row("default mode, image in the page cache", "restart_default", fmt_ms, "≤ 20 ms, flat", 20,
    fail_key="restart_default")
row("MIG_RESTORE_EAGER=1, image in the page cache", "restart_eager", fmt_ms,
    fail_key="restart_eager")
row("`mig restart IMAGE` (checks the image, then execs)", "restart_cli", fmt_ms,
    fail_key="restart_cli")
row("default mode, image evicted from the page cache", "restart_cold", fmt_ms, "≤ 20 ms, flat", 20,
    fail_key="restart_cold")
row("MIG_RESTORE_EAGER=1, image evicted", "restart_cold_eager", fmt_ms,
    fail_key="restart_cold_eager")
row("limit: reading the image (`dd` → /dev/null), page cache", "read_warm", fmt_s)
row("limit: reading the image, evicted", "read_cold", fmt_s)
ratio_row("eager restart ÷ reading the image, page cache", "restart_eager", "read_warm",
          den_scale=1000)
ratio_row("eager restart ÷ reading the image, evicted", "restart_cold_eager", "read_cold",
          den_scale=1000)
row("exec → whole heap back and checked (default mode, cached)", "checked_restart_default", fmt_ms)
row("  of which one check pass over a resident heap takes", "pass", fmt_ms)

section("Image")
row("image size", "img", lambda v: f"{v / MIB:.1f} MiB")
ratio_row("image ÷ memory touched", "img", "touched", "≤ 1.01×", 1.01)
damaged, ok = [], {}
for mib in sizes:
    n, bad = len(vals.get(f"images:{mib}", [])), len(vals.get(f"corrupt:{mib}", []))
    damaged.append("skipped" if skipped(mib) else f"{bad} of {n}" if n else "—")
    if n:
        ok[mib] = bad == 0
rows.append(("images that `mig inspect` rejects (CRC), of all taken", damaged, "0", verdict(ok)))

heads = ["", *[f"{size_name(m)} heap" for m in sizes], "target", "verdict"]
table = []
for label, cells, target, v in rows:
    if cells is None:
        table.append([f"**{label}**", *[""] * len(sizes), "", ""])
    else:
        table.append([label, *cells, target, v])


def print_table(heads, table):
    widths = [max(len(r[i]) for r in [heads, *table]) for i in range(len(heads))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(heads))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table:
        print(line(r))


def job_section():
    """A job of 4 processes of 256 MiB (issue 16): its pause next to one process's."""
    stop, said, rst, img = med("job_stop"), med("job_stop_mig"), med("job_restart"), med("job_img")
    print()
    if stop is None:
        print("A job of 4 processes of 256 MiB: not measured (see notes)")
        return
    one = med("stop:256")
    vs = f"; one process of 256 MiB: {one:.1f} ms, so {stop / one:.2f}× its pause" if one else ""
    print(f"A job of 4 processes of 256 MiB each under a bash root ({len(nums('job_stop'))} runs): "
          f"the longest pause any saw {stop:.1f} ms (mig says {said or 0:.1f} ms){vs}; "
          f"image {img / MIB:.0f} MiB")
    if rst is not None:
        print(f"  restart of the whole job, image in the page cache, until all four run: {rst:.1f} ms "
              f"(target: tens of ms: {'met' if rst < 100 else 'missed'})")


def slurm_section():
    """Slurm (issue 19): a 1 GiB job's way out of its node and back."""
    leave, resume, img = med("slurm_leave"), med("slurm_resume"), med("slurm_img")
    print()
    if leave is None:
        print("Slurm, a 1 GiB job: not measured (see notes)")
        return
    print(f"Slurm, a 1 GiB job ({len(nums('slurm_leave'))} runs; image {img / MIB:.0f} MiB on the shared file system): "
          f"warning signal to the job off its node {leave:.0f} ms; job started again to its program running {resume:.0f} ms")


if slurm_only:
    slurm_section()
    for n in notes:
        print(n)
    sys.exit(0)

if jobs_only:
    job_section()
    for n in notes:
        print(n)
    sys.exit(0)

print()
print(f"mig benchmark: medians of {runs} run{'s' if runs != 1 else ''} per heap size "
      "(range in parentheses); heaps resident, filled with incompressible data")
print()
print_table(heads, table)

sp = med("sparse_img")
print()
if sp is not None:
    r = sp / (100 * MIB)
    print(f"Image of a 4 GiB malloc with 100 MiB touched: {sp / MIB:.1f} MiB = {r:.3f}× the "
          f"memory touched (target ≤ 1.01×: {'met' if r <= 1.01 else 'missed'})")
else:
    print("Image of a 4 GiB malloc with 100 MiB touched: not measured (see notes)")

job_section()
slurm_section()

# ---- the preloaded library on a program never checkpointed ------------------------
print()
print("Cost of the preloaded library on a program never checkpointed "
      f"(runs alternate without/with, ABBA; medians of {len(nums('ovh_plain:open')) or '?'})")
print()
ohead = ["loop", "iterations", "without", "with libmig.so", "with ÷ without", "target", "verdict"]
otab = []
labels = {"open": "open(\"/dev/null\") + close", "mmap": "mmap + munmap 4 KiB",
          "compute": "pure computation (xorshift)"}
for mode in ["open", "mmap", "compute"]:
    a, b = nums(f"ovh_plain:{mode}"), nums(f"ovh_preload:{mode}")
    if not a or not b:
        continue
    n = int(med(f"ovh_iters:{mode}") or 0)
    ma, mb = statistics.median(a), statistics.median(b)
    per = lambda ms: f"{ms * 1e6 / n:.0f} ns/iter" if mode != "compute" else f"{ms:.0f} ms"
    r = mb / ma
    spread = max(a) / min(a) - 1
    if mode == "compute":
        target, ok = "not measurable", abs(r - 1) <= max(0.01, spread)
    else:
        target, ok = "≤ 1.02×", r <= 1.02
    otab.append([labels[mode], f"{n:,}", f"{ma:.0f} ms ({per(ma)})", f"{mb:.0f} ms ({per(mb)})",
                 f"{r:.3f}× (spread of the runs without: {spread * 100:.1f} %)", target,
                 "met" if ok else "missed"])
print_table(ohead, otab)

# ---- compression, CRIU ------------------------------------------------------------
print()
comp = text("compression")
if comp:
    print(f"compression: {comp}")
else:
    zm = med("z_mib")
    print("compression (mig checkpoint --compress zstd), checkpoint --exit of a "
          f"{size_name(int(zm)) if zm else '?'} heap:")
    for pattern, what in [("random", "incompressible data"), ("half", "half-zero words")]:
        for z in ["none", "zstd"]:
            k = f"{pattern}.{z}"
            c, i = med(f"z_ckpt:{k}"), med(f"z_img:{k}")
            rr = med(f"z_restart:{k}:{int(zm)}") if zm else None
            if c is None or i is None:
                print(f"  {what}, {z}: not measured")
                continue
            print(f"  {what}, {z}: checkpoint {fmt_s(c)} = {zm / c:.0f} MiB/s of heap, "
                  f"image {i / MIB:.0f} MiB ({i / (zm * MIB):.2f}× the heap), "
                  f"restart {fmt_ms(rr) if rr is not None else '—'}")
    plain, packed = med("z_img:half.none"), med("z_img:half.zstd")
    if plain and packed and packed >= 0.98 * plain:
        print("  (the zstd image of half-zero data is no smaller: --compress zstd had no effect)")

print()
criu = text("criu", "skipped: not run")
if criu.startswith("measured"):
    print(f"CRIU ({criu[len('measured: '):]}), same subject without the library:")
    print()
    crows = []
    for label, key, fmt in [("criu dump (no fsync of its own)", "criu_dump", fmt_s),
                            ("criu dump, then sync", "criu_dump_sync", fmt_s),
                            ("criu restore -d, exec → running", "criu_restart", fmt_ms),
                            ("criu images", "criu_img", lambda v: f"{v / MIB:.1f} MiB")]:
        crows.append([label, *[cell(f"{key}:{m}", fmt) for m in sizes]])
    print_table(["", *[f"{size_name(m)} heap" for m in sizes]], crows)
else:
    print(f"CRIU: {criu}")

if notes:
    print()
    for n in notes:
        print(f"note: {n}")

# ---- how it was measured, and where --------------------------------------------------
print()
print("How: `mig checkpoint` is timed from the request to its exit (the image is written "
      "aside, fsynced, renamed, its directory fsynced). The pause is the longest iteration "
      "of the program's 1 ms nanosleep loop (CLOCK_MONOTONIC), so it includes up to ~1 ms "
      "of its own sleep; pauses under 2 ms show as 2 ms. Restart: CLOCK_REALTIME taken by "
      "the shell just before exec, to the program's first loop iteration after the gap. "
      "\"Evicted\": the image's pages dropped from the page cache with "
      f"posix_fadvise(DONTNEED) (fincore then shows {text('cached_after_evict:' + str(sizes[0]), '?')} % "
      "cached); caches are not dropped machine-wide, and on a virtual disk the host may "
      "still cache the file.")
wm, ws = med("warm_mib"), med("warm_s")
if wm and ws:
    print()
    print(f"Disk: writing (and deleting) {wm / 1024:.1f} GiB with conv=fsync in the image "
          f"directory ran at {wm / ws:.0f} MiB/s. Measured here: this virtual disk takes writes "
          "into a host cache that drains at about that speed, so a write that follows another "
          "runs several times slower until it has drained, while deleting a file (ext4 is "
          "mounted with discard) empties it at once. Hence each timed write, checkpoint or dd, "
          "starts after the other's file is deleted, `sync` and a 1 s pause, and their order "
          "alternates from run to run; the spread stays wide because the host is shared.")
t1, t2 = med("touch1"), med("touch2")
if t1 and t2:
    print()
    lazy = " (the host backs guest memory lazily)" if t2 > 1.3 * t1 else ""
    print(f"Memory: touching {wm / 1024:.1f} GiB of fresh anonymous memory ran at {t1:.0f} MiB/s, "
          f"and at {t2:.0f} MiB/s right after the same amount was freed{lazy}. On this kind of "
          "virtual machine first touches ran between ~300 and ~1800 MiB/s from one moment to "
          "the next (the balloon hands freed memory back to the host); filling the page cache "
          "costs the same, so each timed write starts right after touching and freeing twice "
          "as much memory as it writes.")
print()
print(f"Machine: {text('m.cpu')}, {text('m.cores')} cores, {text('m.mem')} memory, "
      f"{text('m.virt')}; Linux {text('m.kernel')}; image directory on {text('m.fs')}; "
      f"root: {text('m.root')}")
print(f"Run: {text('m.date')}, mig at {text('m.commit')}")

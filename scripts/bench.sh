#!/usr/bin/env bash
# Benchmark (issue 6): checkpoint, stop and restart times, image size and the cost of
# the preloaded library, for heaps of 256 MiB, 1 GiB and 4 GiB, next to the physical
# limits measured in the same run (dd with conv=fsync, reading the image back).
#
#   scripts/bench.sh [--quick] [--restarts] [--runs N] [--sizes "256 1024 4096"] [--dir DIR]
#
#   --quick   256 MiB only, 1 run, short overhead loops: a sanity check
#   --jobs    only the job figures: a job of 4 processes of 256 MiB (pause, restart)
#   --slurm   only the Slurm figures (root, Slurm installed): on a cluster of two nodes
#             (c-tests/slurm_cluster.sh), a 1 GiB job: from the warning signal to the
#             job leaving its node, and from the job starting again to its program
#             running
#   --restarts  only the lazy restarts (image cached and evicted) and the time until the
#             whole heap is back: no preload cost, dd, timed checkpoint, eager restarts,
#             compression or CRIU
#   --runs N  runs per size (default 3); every figure is the median
#   --dir D   where images go (default $MIG_BENCH_DIR, else target/bench); removed after
#
# Compression (MIG_COMPRESS=zstd) is measured when `mig checkpoint --help` or the README
# mentions it, or when MIG_BENCH_COMPRESS=1. CRIU is measured next to mig when a working
# criu is on the PATH and the script runs as root.
#
# Subjects: c-tests/bench_heap.c (heap filled with incompressible data, reports every
# pause it sees and the wall-clock time it runs again) and c-tests/bench_sys.c
# (system-call and computation loops). Prints one table; nothing else is needed.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
repo=$PWD

quick=0
only_restarts=0
only_jobs=0
only_slurm=0
runs=3
sizes="256 1024 4096"
dir=${MIG_BENCH_DIR:-$repo/target/bench}
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 runs=1 sizes=256 ;;
    --restarts) only_restarts=1 ;;
    --jobs) only_jobs=1 ;;
    --slurm) only_slurm=1 ;;
    --runs) runs=$2; shift ;;
    --sizes) sizes=$2; shift ;;
    --dir) dir=$2; shift ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { echo "bench: $*" >&2; }

say "building (cargo build --release --workspace)"
cargo build --release --workspace -q
mig=$repo/target/release/mig
lib=$repo/target/release/libmig.so
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
work=$dir/run.$$
mkdir -p "$work"
heap=$work/bench_heap
sysb=$work/bench_sys
cc -O2 -Wall -Wextra -o "$heap" c-tests/bench_heap.c
cc -O2 -Wall -Wextra -o "$sysb" c-tests/bench_sys.c
res=$work/results
: >"$res"

# Every process this script starts is listed here and killed on exit.
pids=()
cleanup() {
    [ -d "$work/slurm" ] && c-tests/slurm_cluster.sh stop "$work/slurm" >/dev/null 2>&1
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rec() { echo "$1 $2" >>"$res"; }          # rec KEY VALUE
note() { echo "note $*" >>"$res"; }       # a line printed under the table
us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

# wait_for FILE FROM REGEX SECS [PID]: the first line after line FROM that matches;
# fails after SECS seconds, or at once when PID has died.
wait_for() {
    local file=$1 from=$2 re=$3 secs=$4 pid=${5:-} line i=0
    while :; do
        line=$(tail -n +"$((from + 1))" "$file" 2>/dev/null | grep -m1 -E "$re" || true)
        if [ -n "$line" ]; then echo "$line"; return 0; fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        i=$((i + 1))
        [ "$i" -gt $((secs * 100)) ] && return 1
        sleep 0.01
    done
}

lines() { wc -l <"$1"; }

stop_proc() { kill -9 "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# "process stopped for 12.3 ms" / "850 µs" / "4.56 s" → ms
stopped_ms() {
    sed -n 's/.*process\(es\)\{0,1\} stopped for \([0-9.]*\) \([^,;]*\).*/\2 \3/p' <<<"$1" |
        awk '{ v = $1; u = $2; if (u == "s") v *= 1000; else if (u != "ms") v /= 1000; print v }'
}

evict() { # drop a file's pages from the page cache (no root needed)
    python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"
}

cached_pct() { # how much of a file is in the page cache, per fincore
    command -v fincore >/dev/null || { echo "?"; return; }
    fincore -b -n -o RES,SIZE "$1" 2>/dev/null | awk '{ if ($2 > 0) printf "%.0f", 100 * $1 / $2; else print "?" }'
}

secs_of() { # secs_of START_US END_US → seconds
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b - a) / 1e6 }'
}

# Start the subject under the library: start_subject OUT HEAP_MIB [TOUCH_MIB [PATTERN]]
start_subject() {
    local out=$1
    shift
    : >"$out"
    LD_PRELOAD=$lib MIG_IMAGE=$work/own.mig "$heap" "$@" >"$out" 2>"$out.err" </dev/null &
    spid=$!
    pids+=("$spid")
    if ! wait_for "$out" 0 '^(ready|FAIL)' 600 "$spid" >/dev/null || ! grep -q '^ready' "$out"; then
        say "the subject did not start: $(cat "$out" "$out.err")"
        return 1
    fi
    pass_ns=$(awk '/^ready/ { print $3 }' "$out")
}

# Restart IMAGE in MODE (default | eager | cli), measured from exec to the first
# "gap" line; then wait until the subject has checked its whole heap.
# Records restart_MODE:MIB (ms) and checked_MODE:MIB (ms). Extra env: via EXTRA.
restart_one() {
    local mode=$1 img=$2 mib=$3 key=$4 out=$work/restart.out t0 line stamp rpid
    : >"$out"
    (
        case $mode in
        default | eager)
            export MIG_RESTORE=$img LD_PRELOAD=$lib MIG_IMAGE=$work/own.mig
            [ "$mode" = eager ] && export MIG_RESTORE_EAGER=1
            t=$EPOCHREALTIME
            echo "${t/./}" >"$work/t0"
            exec "$heap" 1
            ;;
        cli)
            export MIG_IMAGE=$work/own.mig
            t=$EPOCHREALTIME
            echo "${t/./}" >"$work/t0"
            exec "$mig" restart "$img"
            ;;
        esac
    ) >"$out" 2>"$out.err" </dev/null &
    rpid=$!
    pids+=("$rpid")
    if ! line=$(wait_for "$out" 0 '^gap' 600 "$rpid"); then
        say "restart ($mode, $mib MiB) did not resume: $(head -c 600 "$out.err")"
        rec "fail:$key:$mib" 1
        note "FAILED: restart ($mode) of the $mib MiB image did not resume: $(head -n 3 "$out.err" | tr '\n' ' ')"
        stop_proc "$rpid"
        return 1
    fi
    t0=$(cat "$work/t0")
    stamp=$(awk '{ print $3 }' <<<"$line")
    rec "$key:$mib" "$(awk -v a="$t0" -v b="$stamp" 'BEGIN { printf "%.2f", (b / 1000 - a) / 1000 }')"
    if line=$(wait_for "$out" 0 '^checked' 600 "$rpid"); then
        stamp=$(awk '{ print $2 }' <<<"$line")
        rec "checked_$key:$mib" "$(awk -v a="$t0" -v b="$stamp" 'BEGIN { printf "%.2f", (b / 1000 - a) / 1000 }')"
        if ! grep -q ' ok$' <<<"$line"; then
            rec "fail:$key:$mib" 1
            note "FAILED: after restart ($mode) of the $mib MiB image the heap is wrong: $line"
        fi
    else
        note "FAILED: after restart ($mode) of the $mib MiB image the subject never checked its heap"
    fi
    stop_proc "$rpid"
}

settle() { sync; sleep 1; } # let the disk finish what earlier steps left to it

# Touch and give back twice BYTES (+ 64 MiB) of memory right before a timed write: on
# this kind of virtual machine fresh guest memory is slow to touch the first time
# (the balloon reports free memory to the host, which drops it) while memory freed a
# moment ago is not, and the page cache that a write fills is such memory. Without
# this, whichever writer came right after a big free (dd after the image was deleted)
# got cheap pages and the other (the checkpoint, after the subject had taken them)
# expensive ones; with only as much as is written, a third to a half of the
# checkpoints still copied into the page cache 8-15x slower (perf: the time in
# copy_folio_from_iter_atomic), and none in 6 runs with twice as much.
prefault() {
    "$sysb" touch $((2 * $1 / 1048576 + 64)) >/dev/null
}

# After a pause of more than 50 ms the subject reads its heap back: wait for that (from
# line N0 of its output on), it must not overlap what follows.
settle_subject() {
    local out=$1 n0=$2 pid=$3
    sleep 0.1
    if tail -n +"$((n0 + 1))" "$out" | awk '/^gap/ && $2 > 50000000 { f = 1 } END { exit !f }'; then
        wait_for "$out" "$n0" '^checked' 600 "$pid" >/dev/null || true
    fi
}

# The timed checkpoint of a running subject (it goes on): records ckpt, stop_mig (what
# mig says), stop (the longest pause the program saw) and img.
checkpoint_timed() {
    local mib=$1 run=$2 pid=$3 img=$4 out=$5 n0 t0 t1 ck line ms
    rm -f "$img"
    settle
    n0=$(lines "$out")
    prefault $((mib << 20))
    t0=$(us)
    if ! ck=$("$mig" checkpoint "$pid" --to "$img" 2>&1); then
        say "checkpoint of $mib MiB failed: $ck"
        note "FAILED: mig checkpoint ($mib MiB, run $run): $ck"
        return 1
    fi
    t1=$(us)
    rec "ckpt:$mib" "$(secs_of "$t0" "$t1")"
    ms=$(stopped_ms "$ck")
    [ -n "$ms" ] && rec "stop_mig:$mib" "$ms"
    # The pause the program itself saw: the longest iteration since the request.
    settle_subject "$out" "$n0" "$pid"
    if line=$(tail -n +"$((n0 + 1))" "$out" | grep '^checked' | grep -v ' ok$'); then
        note "FAILED: the $mib MiB subject found its heap changed after a checkpoint: $line"
    fi
    ms=$(tail -n +"$((n0 + 1))" "$out" | awk '/^gap/ && $2 > m { m = $2 } END { printf "%.2f", m / 1e6 }')
    # No gap line: every iteration took < 2 ms.
    [ "$ms" = 0.00 ] && ms=2
    rec "stop:$mib" "$ms"
    rec "img:$mib" "$(stat -c %s "$img")"
    rec "touched:$mib" $((mib << 20))
}

# dd of BYTES from /dev/zero with conv=fsync, into the image directory, at its best:
# blocks of 256 KiB, because on this kernel (ext4 with large folios) page-cache writes
# of 1 MiB and more sometimes run 3-6x slower (dd bs=1M of 1 GiB: 0.66-3.1 s, bs=4M
# 3.2-4.1 s, bs=256K 0.73-0.76 s in one sequence); mig writes 256 KiB at a time too.
dd_timed() {
    local mib=$1 bytes=$2 t0 t1
    rm -f "$dir/dd.tmp"
    settle
    prefault "$bytes"
    t0=$(us)
    dd if=/dev/zero of="$dir/dd.tmp" bs=256K count="$bytes" iflag=count_bytes conv=fsync status=none
    t1=$(us)
    rec "dd:$mib" "$(secs_of "$t0" "$t1")"
}

# Whether an image passes `mig inspect` (every CRC); counts images and damaged ones.
image_intact() {
    local mib=$1 img=$2 msg
    rec "images:$mib" 1
    if msg=$("$mig" inspect "$img" 2>&1 >/dev/null); then
        return 0
    fi
    rec "corrupt:$mib" 1
    note "DAMAGED IMAGE: a checkpoint of the $mib MiB subject (which went on running) made an image that \`mig inspect\` rejects: $(tail -n 1 <<<"$msg")"
    return 1
}

declare -A last_bytes=()

# Removes the files a timed write left, so that the next one starts clean: this kind of
# virtual disk takes writes into a host cache that drains at the disk's speed, and a
# write that finds it still full of the previous one's data runs several times slower;
# deleting a file (ext4 here discards what it frees) empties it at once.
forget() {
    rm -f "$@"
    sync
}

# One run for one heap size: a checkpoint (the program goes on) and dd of the same
# size, in alternating order, each after the other's file is gone; the kill and
# restarts in every mode, next to reading the image back.
bench_size() {
    local mib=$1 run=$2 out=$work/subject.out img=$dir/heap.mig
    local dd_first=0
    if [ $((run % 2)) = 0 ] && [ -n "${last_bytes[$mib]:-}" ]; then dd_first=1; fi
    if [ "$dd_first" = 1 ]; then
        dd_timed "$mib" "${last_bytes[$mib]}"
        forget "$dir/dd.tmp"
    fi
    start_subject "$out" "$mib" "$mib" random "$RANDOM$RANDOM" || { note "FAILED: the $mib MiB subject did not start"; return 1; }
    local pid=$spid
    rec "pass:$mib" "$(awk -v n="$pass_ns" 'BEGIN { printf "%.1f", n / 1e6 }')"
    checkpoint_timed "$mib" "$run" "$pid" "$img" "$out" || { stop_proc "$pid"; forget "$img"; return 1; }
    last_bytes[$mib]=$(stat -c %s "$img")

    # Restarts need an intact image: take more (untimed) checkpoints if need be; every
    # damaged image is counted and reported.
    local tries=1 n0
    until image_intact "$mib" "$img"; do
        if [ "$tries" -ge 3 ]; then
            note "FAILED: no intact image of the $mib MiB subject in $tries checkpoints (run $run): its restarts are not measured"
            break
        fi
        tries=$((tries + 1))
        rm -f "$img"
        n0=$(lines "$out")
        "$mig" checkpoint "$pid" --to "$img" >/dev/null 2>&1 || true
        settle_subject "$out" "$n0" "$pid"
    done
    stop_proc "$pid"
    if [ -f "$img" ] && [ "$tries" -le 3 ] && "$mig" inspect "$img" >/dev/null 2>&1; then
        restarts "$mib" "$img"
    fi
    forget "$img"
    if [ "$dd_first" = 0 ]; then
        dd_timed "$mib" "${last_bytes[$mib]}"
        forget "$dir/dd.tmp"
    fi
}

# Restart from exec to running in every mode, image cached and evicted, next to
# reading the image.
restarts() {
    local mib=$1 img=$2 t0 t1
    restart_one default "$img" "$mib" restart_default || true
    restart_one eager "$img" "$mib" restart_eager || true
    restart_one cli "$img" "$mib" restart_cli || true
    t0=$(us)
    dd if="$img" of=/dev/null bs=1M status=none
    t1=$(us)
    rec "read_warm:$mib" "$(secs_of "$t0" "$t1")"
    evict "$img"
    rec "cached_after_evict:$mib" "$(cached_pct "$img")"
    t0=$(us)
    dd if="$img" of=/dev/null bs=1M status=none
    t1=$(us)
    rec "read_cold:$mib" "$(secs_of "$t0" "$t1")"
    evict "$img"
    restart_one default "$img" "$mib" restart_cold || true
    evict "$img"
    restart_one eager "$img" "$mib" restart_cold_eager || true
}

free_bytes() { df --output=avail -B1 "$1" | tail -n 1 | tr -d ' '; }
mem_avail_mib() { awk '/^MemAvailable/ { print int($2 / 1024) }' /proc/meminfo; }

# The disk's sustained write speed, for the record (and a first write that no timed
# one pays for): write and delete as much as the largest heap.
disk_probe() {
    local max=0 m want have t0 t1
    for m in $sizes; do [ "$m" -gt "$max" ] && max=$m; done
    want=$((max < 1024 ? 1024 : max))
    have=$(($(free_bytes "$dir") >> 20))
    [ "$want" -gt $((have - 2048)) ] && want=$((have - 2048))
    if [ "$want" -lt 512 ]; then
        note "no disk probe: too little free space in $dir"
        return 0
    fi
    say "probing memory and disk: touching $want MiB twice, writing and deleting as much in $dir"
    # Memory: touching fresh anonymous memory, twice in a row.
    rec touch1 "$("$sysb" touch "$want" | awk '{ print $2 }')"
    rec touch2 "$("$sysb" touch "$want" | awk '{ print $2 }')"
    sync
    t0=$(us)
    dd if=/dev/zero of="$dir/warm.tmp" bs=256K count="$((want * 4))" conv=fsync status=none
    t1=$(us)
    rm -f "$dir/warm.tmp"
    sync
    rec warm_mib "$want"
    rec warm_s "$(secs_of "$t0" "$t1")"
}

# Image size when far less is touched than allocated: 4 GiB malloc, 100 MiB touched.
sparse() {
    local out=$work/sparse.out img=$dir/sparse.mig ck
    say "image size of a 4 GiB malloc with 100 MiB touched"
    start_subject "$out" 4096 100 || { note "FAILED: the sparse subject did not start"; return 1; }
    if ck=$("$mig" checkpoint "$spid" --exit --to "$img" 2>&1); then
        rec "sparse_img" "$(stat -c %s "$img")"
    else
        note "FAILED: mig checkpoint of the sparse subject: $ck"
    fi
    stop_proc "$spid"
    rm -f "$img"
}

# --restarts: an untimed checkpoint, then the lazy restarts only.
restarts_only() {
    local mib=$1 out=$work/subject.out img=$dir/heap.mig ck
    start_subject "$out" "$mib" "$mib" random "$RANDOM$RANDOM" || { note "FAILED: the $mib MiB subject did not start"; return 1; }
    local pid=$spid
    rm -f "$img"
    if ! ck=$("$mig" checkpoint "$pid" --to "$img" 2>&1); then
        note "FAILED: mig checkpoint ($mib MiB): $ck"
        stop_proc "$pid"
        return 1
    fi
    stop_proc "$pid"
    rec "img:$mib" "$(stat -c %s "$img")"
    rec "touched:$mib" $((mib << 20))
    # The subject checks its heap after a pause of more than 50 ms.
    sync
    sleep 0.1
    restart_one default "$img" "$mib" restart_default || true
    evict "$img"
    rec "cached_after_evict:$mib" "$(cached_pct "$img")"
    restart_one default "$img" "$mib" restart_cold || true
    forget "$img"
}

if [ "$only_restarts" = 1 ]; then
    for mib in $sizes; do
        for run in $(seq 1 "$runs"); do
            say "$mib MiB, restarts, run $run of $runs"
            restarts_only "$mib" || true
        done
    done
    for key in restart_default restart_cold checked_restart_default checked_restart_cold; do
        for mib in $sizes; do
            grep "^$key:$mib " "$res" | awk '{ print $2 }' | sort -g | awk -v k="$key" -v m="$mib" '{ v[NR] = $1 } END { n = NR; if (n) printf "%-28s %5s MiB  median %8.2f ms  (%s runs: %s-%s)\n", k, m, (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2), n, v[1], v[n] }'
        done
    done
    grep '^note ' "$res" | sed 's/^note //' || true
    exit 0
fi

# A job of 4 processes of 256 MiB each under a bash root (issue 16): the pause of the
# whole job (what mig says, and the longest pause any of the four saw) next to one
# process's, and the restart of the whole job, image in the page cache, from exec to
# all four running again. The restored job's pids are not free here when the killed
# job's zombies are not reaped (this machine's init): the restart then gives new ones.
job_bench() {
    local mib=256 out=$work/job.out img=$dir/job.mig jpid ck n0 t0 stamp ms run
    kill_tree() { local c; for c in $(pgrep -P "$1" || true); do kill_tree "$c"; done; kill -9 "$1" 2>/dev/null || true; }
    for run in $(seq 1 "$runs"); do
        say "a job of 4 processes of $mib MiB, run $run"
        : >"$out"
        rm -f "$img"
        LD_PRELOAD=$lib MIG_IMAGE=$img bash -c "for i in 1 2 3 4; do '$heap' $mib $mib random \$RANDOM\$RANDOM\$i & done; wait" >"$out" 2>"$out.err" </dev/null &
        jpid=$!
        pids+=("$jpid")
        local tries=0
        while [ "$(grep -c '^ready' "$out")" -lt 4 ]; do
            tries=$((tries + 1))
            if [ "$tries" -gt 6000 ] || ! kill -0 "$jpid" 2>/dev/null; then
                note "FAILED: the job of 4 did not start: $(head -c 300 "$out.err")"
                kill_tree "$jpid"
                return 1
            fi
            sleep 0.1
        done
        settle
        n0=$(lines "$out")
        prefault $((4 * mib << 20))
        if ! ck=$("$mig" checkpoint "$jpid" --to "$img" 2>&1); then
            note "FAILED: mig checkpoint of the job of 4: $ck"
            kill_tree "$jpid"
            return 1
        fi
        ms=$(stopped_ms "$ck")
        [ -n "$ms" ] && rec "job_stop_mig" "$ms"
        sleep 0.3
        ms=$(tail -n +"$((n0 + 1))" "$out" | awk '/^gap/ && $2 > m { m = $2 } END { printf "%.2f", m / 1e6 }')
        rec "job_stop" "$ms"
        rec "job_img" "$(stat -c %s "$img")"
        # After a pause of more than 50 ms each of the four reads its heap back: wait.
        settle_subject "$out" "$n0" "$jpid"
        kill_tree "$jpid"
        wait "$jpid" 2>/dev/null || true
        sleep 0.2
        : >"$out"
        t0=$(us)
        MIG_IMAGE=$work/own.mig "$mig" restart "$img" >"$out" 2>"$out.err" </dev/null &
        local rpid=$!
        pids+=("$rpid")
        tries=0
        while [ "$(grep -c '^gap' "$out")" -lt 4 ]; do
            tries=$((tries + 1))
            if [ "$tries" -gt 30000 ] || ! kill -0 "$rpid" 2>/dev/null; then
                note "FAILED: the restarted job of 4 did not run again: $(head -c 300 "$out.err")"
                break
            fi
            sleep 0.002
        done
        if [ "$(grep -c '^gap' "$out")" -ge 4 ]; then
            stamp=$(grep '^gap' "$out" | awk '{ print $3 }' | sort -n | tail -n 1)
            rec "job_restart" "$(awk -v a="$t0" -v b="$stamp" 'BEGIN { printf "%.2f", (b / 1000 - a) / 1000 }')"
        fi
        kill_tree "$rpid"
        wait "$rpid" 2>/dev/null || true
        forget "$img"
    done
}

# Slurm (issue 19): a 1 GiB job (a bash script running pipe_pair over 1 GiB with a
# child) on the test cluster, its image on the shared file system. Warned with
# SIGUSR1 (`scancel --signal=USR1`, what `--signal=USR1@T` sends): the time until the
# job has left its node (mig saved it, ended it and requeued it). Then, started again
# 15 s later: the time from its batch script's start to its program printing again.
slurm_bench() {
    local c=$work/slurm d=$work/slurmjob pp=$work/pipe_pair id t0 t1 n0 start run
    if [ "$(id -u)" != 0 ] || ! command -v slurmctld >/dev/null; then
        note "Slurm figures not measured: they need root and Slurm (./scripts/setup.sh)"
        return 0
    fi
    cc -O2 -o "$pp" c-tests/pipe_pair.c
    cc -O2 -o "$work/reaper" c-tests/reaper.c
    REAPER=$work/reaper c-tests/slurm_cluster.sh start "$c" >/dev/null || { note "FAILED: the Slurm cluster did not start"; return 1; }
    export SLURM_CONF=$c/slurm.conf
    mkdir -p "$d"
    {
        echo '#!/bin/bash'
        echo "#SBATCH -o $d/slurm.out -e $d/job.err --open-mode=append --requeue -D $d"
        echo 'echo "start $(date +%s%N)" >&2'
        echo "srun $mig run --resume $d/job.mig --output $d/job.out --checkpoint-on USR1 --then requeue -- $repo/c-tests/slurm_work.sh $pp 100000 1024 20"
    } >"$d/job.sh"
    for run in $(seq 1 "$runs"); do
        rm -f "$d"/job.mig "$d"/job.out "$d"/job.err
        say "slurm: a 1 GiB job, run $run"
        id=$(MIG_LIB=$lib sbatch --parsable "$d/job.sh")
        until [ -f "$d/job.out" ] && [ "$(wc -l <"$d/job.out")" -ge 50 ]; do sleep 0.2; done
        t0=$(us)
        scancel --signal=USR1 "$id"
        while [ "$(squeue -h -j "$id" -o %T)" = RUNNING ]; do sleep 0.02; done
        t1=$(us)
        rec "slurm_leave" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }')"
        scontrol update "jobid=$id" StartTime=now+15 >/dev/null
        n0=$(wc -l <"$d/job.out")
        until [ "$(grep -c '^start' "$d/job.err")" -ge 2 ]; do sleep 0.05; done
        while [ "$(wc -l <"$d/job.out")" -le "$n0" ]; do sleep 0.005; done
        t1=$(us)
        start=$(grep '^start' "$d/job.err" | tail -n 1 | awk '{ print $2 }')
        start=$((start / 1000))
        rec "slurm_resume" "$(awk -v a="$start" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }')"
        rec "slurm_img" "$(stat -c %s "$d/job.mig")"
        # SIGTERM, which this job does not take for a checkpoint: it ends.
        scancel "$id"
        while [ -n "$(squeue -h -j "$id")" ]; do sleep 0.2; done
    done
    c-tests/slurm_cluster.sh stop "$c" >/dev/null
    unset SLURM_CONF
}

if [ "$only_slurm" = 1 ]; then
    slurm_bench || true
    python3 "$repo/scripts/bench_table.py" --slurm "$res"
    exit 0
fi

if [ "$only_jobs" = 1 ]; then
    job_bench || true
    python3 "$repo/scripts/bench_table.py" --jobs "$res"
    exit 0
fi

# The library on a program never checkpointed: alternate runs without and with it.
overhead() {
    local target_ns=$1 reps=$2 mode n t
    for mode in open mmap compute; do
        case $mode in compute) n=200000 ;; *) n=20000 ;; esac
        t=$("$sysb" "$mode" "$n" | awk '{ print $1 }')
        n=$(awk -v n="$n" -v t="$t" -v g="$target_ns" 'BEGIN { printf "%d", n * g / t }')
        rec "ovh_iters:$mode" "$n"
        say "preload overhead: $mode, $n iterations, $reps runs each"
        for i in $(seq 1 "$reps"); do
            # ABBA order: neither side always runs first.
            if [ $((i % 2)) = 1 ]; then
                rec "ovh_plain:$mode" "$("$sysb" "$mode" "$n" | awk '{ print $1 / 1e6 }')"
                rec "ovh_preload:$mode" "$(LD_PRELOAD=$lib "$sysb" "$mode" "$n" | awk '{ print $1 / 1e6 }')"
            else
                rec "ovh_preload:$mode" "$(LD_PRELOAD=$lib "$sysb" "$mode" "$n" | awk '{ print $1 / 1e6 }')"
                rec "ovh_plain:$mode" "$("$sysb" "$mode" "$n" | awk '{ print $1 / 1e6 }')"
            fi
        done
    done
}
# Many short runs: this VM has bursts of a second or so that a median of few misses.
if [ "$quick" = 1 ]; then overhead 200000000 3; else overhead 400000000 15; fi

disk_probe

for mib in $sizes; do
    need=$((2 * mib + 256))
    have=$(($(free_bytes "$dir") >> 20))
    if [ "$have" -lt "$need" ]; then
        rec "skip:$mib" 1
        note "skipped $mib MiB: $have MiB free in $dir, it needs $need MiB (image + dd of the same size)"
        continue
    fi
    mem=$(mem_avail_mib)
    if [ "$mem" -lt $((mib + mib / 4 + 256)) ]; then
        rec "skip:$mib" 1
        note "skipped $mib MiB: only $mem MiB of memory available"
        continue
    fi
    for run in $(seq 1 "$runs"); do
        say "$mib MiB, run $run of $runs"
        bench_size "$mib" "$run" || true
    done
done

sparse || true
job_bench || true
slurm_bench || true

# Compression, where the library has it.
compression() {
    # MIG_BENCH_COMPRESS=1 measures it anyway (for work on it before the docs say so).
    if [ "${MIG_BENCH_COMPRESS:-}" != 1 ] &&
        ! { "$mig" checkpoint --help; cat README.md; } 2>/dev/null | grep -ci -E 'MIG_COMPRESS|zstd' >/dev/null; then
        rec compression "not available (neither \`mig checkpoint --help\` nor the README mentions MIG_COMPRESS/zstd)"
        return 0
    fi
    local mib=1024 out=$work/compress.out img=$dir/compress.mig t0 t1 ck pattern key
    [ "$quick" = 1 ] && mib=256
    for pattern in random half; do
        for z in none zstd; do
            for run in $(seq 1 "$runs"); do
                key=$pattern.$z
                say "compression: $mib MiB, $pattern data, $z, run $run"
                start_subject "$out" "$mib" "$mib" "$pattern" "$RANDOM$RANDOM" || { note "FAILED: compression subject"; return 1; }
                rm -f "$img"
                settle
                t0=$(us)
                # Compression is the mig command's: it compresses what the process streams.
                if ! ck=$("$mig" checkpoint "$spid" --exit --to "$img" --compress "$z" 2>&1); then
                    note "FAILED: compressed checkpoint ($pattern, $z): $ck"
                    stop_proc "$spid"
                    continue
                fi
                t1=$(us)
                stop_proc "$spid"
                rec "z_ckpt:$key" "$(secs_of "$t0" "$t1")"
                rec "z_img:$key" "$(stat -c %s "$img")"
                rec "z_mib" "$mib"
                # A compressed image is restored by `mig restart` (decompressed, eager).
                restart_one cli "$img" "$mib" "z_restart:$key" || true
            done
        done
    done
    rm -f "$img"
}
compression || true

# CRIU on the same subject, where a working criu can run.
criu_bench() {
    local why=""
    if ! command -v criu >/dev/null; then
        why="criu is not installed (the distribution's CRIU 3.17 would not run here anyway: it predates the kernel's [vvar_vclock] area; a newer criu on the PATH is measured)"
    elif [ "$(id -u)" != 0 ]; then
        why="not root (criu dump/restore need root)"
    fi
    if [ -n "$why" ]; then rec criu "skipped: $why"; return 0; fi
    local d=$work/criu out=$work/criu.out mib run pid t0 t1 line stamp img
    criu_once() { # criu_once MIB → records criu_* keys; fails with the log's last error
        local mib=$1
        rm -rf "$d"
        mkdir -p "$d"
        : >"$out"
        setsid "$heap" "$mib" >"$out" 2>/dev/null </dev/null &
        pid=$!
        pids+=("$pid")
        wait_for "$out" 0 '^ready' 600 "$pid" >/dev/null || return 1
        sync
        t0=$(us)
        criu dump -t "$pid" -D "$d" -o dump.log >"$d/dump.out" 2>&1 || { kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; return 1; }
        t1=$(us)
        sync -f "$d"
        rec "criu_dump:$mib" "$(secs_of "$t0" "$t1")"
        rec "criu_dump_sync:$mib" "$(secs_of "$t0" "$(us)")"
        rec "criu_img:$mib" "$(du -sb "$d" | awk '{ print $1 }')"
        wait "$pid" 2>/dev/null || true
        local n0
        n0=$(lines "$out")
        t0=$(us)
        criu restore -D "$d" -d -o restore.log --pidfile "$d/pid" >"$d/restore.out" 2>&1 || return 1
        line=$(wait_for "$out" "$n0" '^gap' 600) || return 1
        stamp=$(awk '{ print $3 }' <<<"$line")
        rec "criu_restart:$mib" "$(awk -v a="$t0" -v b="$stamp" 'BEGIN { printf "%.2f", (b / 1000 - a) / 1000 }')"
        kill -9 "$(cat "$d/pid")" 2>/dev/null || true
    }
    if ! criu_once 16; then
        # The first error that says something (CRIU 3.17 here: "vdso: Unexpected rt vDSO
        # area bounds"), rather than "exited, status=1".
        why=$(cat "$d"/*.log "$d"/*.out 2>/dev/null | grep -i -E 'error|fail|unknown|unsupported' | grep -v 'exited, status=' || true)
        why=$(grep -m 1 -i -E 'vdso|vvar' <<<"$why" || head -n 1 <<<"$why")
        why=$(sed 's/^([ 0-9.]*) //' <<<"$why")
        kill -9 "$pid" 2>/dev/null || true
        if [ -f "$d/pid" ]; then kill -9 "$(cat "$d/pid")" 2>/dev/null || true; fi
        local version
        version=$(criu --version 2>/dev/null | head -n 1 | sed 's/^Version: //')
        why="skipped: criu ${version:-(version unknown)} fails on the 16 MiB trial: ${why:-no message}"
        case $version in
        3.*) why="$why (the distribution's CRIU 3.x predates the [vvar_vclock] area of this kernel)" ;;
        esac
        rec criu "$why"
        grep -v ':16 ' "$res" >"$res.tmp" || true
        mv "$res.tmp" "$res"
        return 0
    fi
    for mib in $sizes; do
        grep -q "^skip:$mib " "$res" && continue
        for run in $(seq 1 "$runs"); do
            say "criu: $mib MiB, run $run"
            criu_once "$mib" || note "FAILED: criu dump/restore of $mib MiB: $(grep -h -i error "$d"/*.log 2>/dev/null | tail -n 1)"
        done
    done
    rec criu "measured: criu $(criu --version 2>/dev/null | head -n 1 | sed 's/^Version: //')"
}
criu_bench || true

# The machine.
rec "m.cpu" "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
rec "m.cores" "$(nproc)"
rec "m.mem" "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
rec "m.kernel" "$(uname -r)"
rec "m.fs" "$(df --output=fstype "$dir" | tail -n 1) on $(df --output=source "$dir" | tail -n 1) ($dir)"
rec "m.date" "$(date -u '+%Y-%m-%d %H:%M UTC')"
rec "m.commit" "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src image 2>/dev/null || echo ' + uncommitted changes in src/ or image/')"
rec "m.runs" "$runs"
rec "m.sizes" "$sizes"
virt() {
    local v
    local vm ct
    vm=$(systemd-detect-virt --vm 2>/dev/null) || vm=""
    ct=$(systemd-detect-virt --container 2>/dev/null) || ct=""
    if [ -z "$vm" ] && grep -q '^flags.* hypervisor' /proc/cpuinfo; then vm="virtual machine"; fi
    case $vm in
    "") vm="bare metal" ;;
    "virtual machine") ;;
    *) vm="$vm virtual machine" ;;
    esac
    echo "$vm${ct:+, in a $ct container}"
}
rec "m.virt" "$(virt)"
rec "m.root" "$([ "$(id -u)" = 0 ] && echo yes || echo no)"

python3 "$repo/scripts/bench_table.py" "$res"

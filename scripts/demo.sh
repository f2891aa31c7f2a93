#!/usr/bin/env bash
# Demo: build mig, start a program under it, checkpoint it, kill it, restart it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
lib=$PWD/target/release/libmig.so
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O1 -o "$work/chain" c-tests/chain.c

echo "== start: LD_PRELOAD=libmig.so ./chain 40 (prints a step every 50 ms)"
MIG_IMAGE="$work/chain.mig" LD_PRELOAD="$lib" MIG_LOG=debug "$work/chain" 40 > "$work/first.out" &
pid=$!
until [ "$(wc -l < "$work/first.out")" -ge 10 ]; do sleep 0.05; done
echo "== kill -USR1 $pid: checkpoint"
kill -USR1 "$pid"
until [ -e "$work/chain.mig" ]; do sleep 0.01; done
sleep 0.2
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
echo "== killed with SIGKILL after step $(tail -n 1 "$work/first.out" | cut -d' ' -f2); image: $(du -h "$work/chain.mig" | cut -f1)"
echo "== restart: MIG_RESTORE=chain.mig LD_PRELOAD=libmig.so ./chain"
MIG_RESTORE="$work/chain.mig" LD_PRELOAD="$lib" MIG_LOG=debug "$work/chain" > "$work/second.out"
echo "== the restarted process resumed at step $(head -n 1 "$work/second.out" | cut -d' ' -f2) and finished:"
tail -n 2 "$work/second.out"
echo "== an uninterrupted run ends the same way:"
"$work/chain" 40 | tail -n 2

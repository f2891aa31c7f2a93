#!/bin/bash
# pipeline.sh [STEPS] - a 3-stage shell pipeline with a running sum (issue 16): a bash
# loop prints 1..STEPS at a 40 ms pace (an external `sleep` each time), a second stage
# squares each number, and a third prints `step N <running sum in hex>`, then `done`.
steps=${1:-40}
for ((i = 1; i <= steps; i++)); do
    echo "$i"
    sleep 0.04
done | while read -r x; do echo $((x * x)); done | {
    s=0 n=0
    while read -r x; do
        ((s += x, n += 1))
        printf 'step %d %016x\n' "$n" "$s"
    done
    printf 'done %016x\n' "$s"
}

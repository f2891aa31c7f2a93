#!/bin/bash
# job_script.sh [STEPS] - a batch job script (issue 16): every step runs external
# commands, inside a command substitution that first sleeps 30 ms (so a checkpoint
# mostly finds bash waiting on it), and folds their output into a running digest:
# `step N <digest>`, then `done <digest>`. A restored bash whose substitution lost its
# output would print another digest, or an empty one.
steps=${1:-40}
h=0
for ((i = 1; i <= steps; i++)); do
    sum=$(sleep 0.03; printf '%s %s\n' "$i" "$h" | md5sum)
    h=${sum:0:16}
    echo "step $i $h"
done
echo "done $h"

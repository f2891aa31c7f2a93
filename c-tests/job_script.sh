#!/bin/bash
# job_script.sh [STEPS] - a batch job script (issue 16): every step runs external
# commands, inside a command substitution that first sleeps 30 ms (so a checkpoint
# mostly finds bash waiting on it), and folds their output into a running digest:
# `step N <digest>`, then `done <digest>`. A restored bash whose substitution lost its
# output would print another digest, or an empty one. A child sleeps in the background
# all along, so that the script is a job whenever a checkpoint comes (between two
# substitutions too), and is ended at the end.
steps=${1:-40}
sleep 3600 &
keeper=$!
h=0
for ((i = 1; i <= steps; i++)); do
    sum=$(sleep 0.03; printf '%s %s\n' "$i" "$h" | md5sum)
    h=${sum:0:16}
    echo "step $i $h"
done
kill $keeper
wait $keeper 2>/dev/null
echo "done $h"

#!/bin/bash
# make_job.sh [STEPS] - `make -j2` with slow rules (issue 16): writes a Makefile in
# the working directory where each step builds two parts at once (a `sleep` each, run
# by the jobserver two at a time), then `stepN`, which prints `step N <hash of its
# parts>`; every step depends on the one before, so the output is the same each run.
# Ends with `done <hash>`.
steps=${1:-30}
rm -f step* part*
{
    echo "all: step$steps"
    echo "	@echo done \$\$(cat step$steps)"
    echo "step0:"
    echo "	@echo 0 > \$@"
    for ((i = 1; i <= steps; i++)); do
        echo "part$i.a part$i.b: step$((i - 1))"
        echo "	@sleep 0.05; echo \$@ \$\$(cat step$((i - 1))) > \$@"
        echo "step$i: part$i.a part$i.b"
        echo "	@h=\$\$(cat \$^ | md5sum | cut -c1-16); echo \$\$h > \$@; echo step $i \$\$h"
    done
} >Makefile
exec make -s -j2

#!/bin/bash
# slurm_work.sh BIN STEPS MIB PACE_MS - the job of the Slurm tests (issue 19): a bash
# script that runs a C program (BIN, c-tests/pipe_pair.c) computing over MIB MiB with
# a child process over two pipes, then says how it ended.
"$1" "$2" pipes "$3" "$4"
echo "finished $?"

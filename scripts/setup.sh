#!/usr/bin/env bash
# Installs what the tests need, where it is missing (Debian/Ubuntu; run as root):
#   cc and a static libc     c-tests/ subjects; the refusal of static programs
#   perl, python3            script subjects
#   sshd, ssh, ssh-keygen    mig migrate through a throwaway sshd (tests/cli.rs)
#   ip (iproute2)            migration over a veth pair into a network namespace
#   go (golang-go)           a Go subject (the Go runtime takes every signal)
#   node (nodejs)            a Node.js subject (V8's heap is MADV_DONTFORK; node owns SIGUSR1)
#   redis-server             a server whose client keeps its connection across a restart
#   slurmctld, slurmd,       a Slurm cluster of two nodes the batch tests start and stop
#   sbatch, munged           (tests/slurm.rs, c-tests/slurm_cluster.sh)
# The tests themselves never install anything: one whose prerequisite is missing fails
# and names it.
set -euo pipefail
need=()
if ! command -v cc >/dev/null; then
  need+=(gcc libc6-dev)
elif [ ! -e "$(cc -print-file-name=libc.a)" ]; then
  need+=(libc6-dev)
fi
command -v perl >/dev/null || need+=(perl)
command -v python3 >/dev/null || need+=(python3)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
command -v go >/dev/null || need+=(golang-go)
command -v node >/dev/null || need+=(nodejs)
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/sbin/slurmctld ] || need+=(slurmctld)
[ -x /usr/sbin/slurmd ] || need+=(slurmd)
command -v sbatch >/dev/null || need+=(slurm-client)
[ -x /usr/sbin/munged ] || need+=(munge)
command -v nsenter >/dev/null || need+=(util-linux)
if [ ${#need[@]} -eq 0 ]; then
  echo "setup: nothing to install"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup: installing ${need[*]} needs root" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
echo "setup: installed ${need[*]}"
# The package starts a redis service of its own, which no test uses.
if [[ " ${need[*]} " == *" redis-server "* ]] && command -v service >/dev/null; then
  service redis-server stop >/dev/null 2>&1 || true
fi

#!/bin/bash
# slurm_cluster.sh start DIR | stop DIR - a Slurm cluster on this machine, for the
# batch tests (issue 19), started and stopped by them: munged, slurmctld on the host,
# and two compute nodes, n1 and n2, each slurmd in a network namespace of its own with
# an address of its own (a veth pair to the host: 10.N.1.2 and 10.N.2.2, the host
# 10.N.1.1 and 10.N.2.1, N chosen free). They share the file system. Everything else
# lives in DIR: the munge key and socket, slurm.conf (SLURM_CONF=DIR/slurm.conf for
# the clients), state, spools and logs. Needs root and the distribution's slurmctld,
# slurmd, slurm-client and munge (./scripts/setup.sh installs them).
#
# Partitions: `low` (default; preemptible: PreemptMode=REQUEUE, GraceTime=20) and
# `high` (PriorityTier=10), both over n1 and n2, one CPU each: one job per node.
# `stop` kills every daemon and job of the cluster and removes the namespaces and
# links; DIR stays (its logs).
#
# With REAPER=<c-tests/reaper.c built>, each slurmd runs under it: a process of a job
# that ends after its parent is reaped at once (this machine's pid 1 does not reap
# orphans, whose zombies would keep the pids a restored job asks for).
set -euo pipefail
cmd=${1:?usage: slurm_cluster.sh start DIR | stop DIR}
dir=$(realpath -m "${2:?usage: slurm_cluster.sh start DIR | stop DIR}")

stop() {
    [ -f "$dir/tag" ] || return 0
    local tag
    tag=$(cat "$dir/tag")
    for f in "$dir"/slurmd.n1.pid "$dir"/slurmd.n2.pid "$dir"/slurmctld.pid "$dir"/munge/munged.pid; do
        [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
    done
    sleep 1
    # Whatever still runs in the nodes' namespaces (jobs, their steps) goes too.
    for n in 1 2; do
        for p in $(ip netns pids "$tag$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    done
    for f in "$dir"/slurmd.n1.pid "$dir"/slurmd.n2.pid "$dir"/slurmctld.pid "$dir"/munge/munged.pid; do
        [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
        rm -f "$f"
    done
    for n in 1 2; do
        ip link del "${tag}h$n" 2>/dev/null || true
        ip netns del "$tag$n" 2>/dev/null || true
    done
    rm -f "$dir/tag"
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi
[ "$cmd" = start ] || { echo "usage: slurm_cluster.sh start DIR | stop DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "slurm_cluster.sh: needs root" >&2; exit 1; }
for b in slurmctld slurmd munged sbatch scontrol ip; do
    command -v "$b" >/dev/null || { echo "slurm_cluster.sh: $b is missing (./scripts/setup.sh installs Slurm and munge)" >&2; exit 1; }
done

mkdir -p "$dir"
trap 'stop' ERR
# One start at a time on this machine: each picks a free network and free ports (the
# daemons do not keep the lock: 9>&-).
exec 9>/tmp/mig-slurm-cluster.lock
flock 9
# A tag for the namespaces and links (15 characters at most), and a free 10.N network.
tag=ms$(printf %04x $((RANDOM % 65536)))
echo "$tag" >"$dir/tag"
for _ in $(seq 1 50); do
    net=$((RANDOM % 200 + 20))
    ip route | grep -q "^10\.$net\." || break
done
# Free ports for the controller and the nodes.
port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
}
ctl_port=$(port)
node_port=$(port)

for n in 1 2; do
    ip netns add "$tag$n"
    ip link add "${tag}h$n" type veth peer name eth0 netns "$tag$n"
    ip addr add "10.$net.$n.1/24" dev "${tag}h$n"
    ip link set "${tag}h$n" up
    ip -n "$tag$n" addr add "10.$net.$n.2/24" dev eth0
    ip -n "$tag$n" link set eth0 up
    ip -n "$tag$n" link set lo up
    ip -n "$tag$n" route add default via "10.$net.$n.1"
done

# munge: a key of our own, its socket in DIR.
mkdir -p "$dir/munge"
chmod 0700 "$dir/munge"
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$dir/munge/munge.key"
munged 9>&- -f --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
    --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"

mkdir -p "$dir/state" "$dir/spool/n1" "$dir/spool/n2" "$dir/log"
cat >"$dir/slurm.conf" <<EOF
ClusterName=mig
SlurmctldHost=$(hostname -s)(10.$net.1.1)
SlurmctldPort=$ctl_port
SlurmdPort=$node_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,preempt_send_user_signal
SelectType=select/linear
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
NodeName=n1 NodeAddr=10.$net.1.2 CPUs=1 RealMemory=1024 State=UNKNOWN
NodeName=n2 NodeAddr=10.$net.2.2 CPUs=1 RealMemory=1024 State=UNKNOWN
PartitionName=low Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=20
PartitionName=high Nodes=n1,n2 MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
cat >"$dir/cgroup.conf" <<EOF
CgroupPlugin=cgroup/v1
CgroupAutomount=no
EOF
export SLURM_CONF=$dir/slurm.conf
slurmctld -i 9>&-
# nsenter, not `ip netns exec`: the nodes keep the host's /sys (its cgroups, which
# slurmd looks at) and take only a network of their own.
for n in 1 2; do
    nsenter --net="/run/netns/$tag$n" env SLURM_CONF="$dir/slurm.conf" ${REAPER:+"$REAPER"} slurmd -N "n$n" </dev/null >/dev/null 2>&1 9>&- &
done
# Ready once both nodes are idle.
for _ in $(seq 1 60); do
    if [ "$(sinfo -h -N -o '%N %t' 2>/dev/null | sort -u | grep -c ' idle')" = 2 ]; then
        echo "slurm_cluster.sh: up (n1 10.$net.1.2, n2 10.$net.2.2; controller 10.$net.1.1:$ctl_port)"
        exit 0
    fi
    sleep 0.5
done
echo "slurm_cluster.sh: the nodes did not come up:" >&2
sinfo -N >&2 || true
tail -n 20 "$dir"/log/*.log >&2 || true
stop
exit 1

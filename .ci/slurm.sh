#!/usr/bin/env bash
# A throwaway one-node Slurm cluster for tests/workflow/test_slurm.py (and for trying profiles/slurm).
#
#   bash .ci/slurm.sh install     # Debian/Ubuntu: slurmctld slurmd slurm-client munge (needs root)
#   bash .ci/slurm.sh start DIR   # config, state and logs in DIR; returns once the node is idle
#   bash .ci/slurm.sh stop DIR    # cancels left-over jobs, stops the daemons start recorded in DIR
#
# Clients find this cluster through SLURM_CONF=DIR/slurm.conf. The one node is called
# `localhost` (slurmd -N, so the host name does not matter), sits in two partitions, `cpu`
# (default) and `gpu`, and declares two fake GPUs (device files that are /dev/null) so that
# `--gpus=N` requests are really scheduled and a job step sees CUDA_VISIBLE_DEVICES. No systemd: the daemons are started directly and stopped
# by PID. Every subcommand is idempotent. start/stop need root (or passwordless sudo).
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
NODE=localhost
# The node's declared size, not the machine's: big enough for the largest request in
# profiles/slurm (train_run: 8 CPUs per GPU, 32 GB) so the real profile runs unchanged.
# Nothing enforces it (no cgroups), and the test's jobs are tiny.
NODE_CPUS=16
NODE_MEMORY_MB=65536
# Two, so the test can ask one training for `gpu: 2` (profiles/slurm asks for one).
NODE_GPUS=2
PATH=$PATH:/usr/sbin:/sbin # the daemons live in sbin, often not on a user's PATH

die() {
    echo "slurm.sh: $*" >&2
    exit 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "needs root or passwordless sudo to run: $*"
    fi
}

installed() {
    local tool
    for tool in slurmctld slurmd sinfo sbatch squeue munged; do
        command -v "$tool" >/dev/null || return 1
    done
}

install_packages() {
    installed && return 0
    command -v apt-get >/dev/null ||
        die "Slurm is not installed and there is no apt-get: install ${PACKAGES[*]} (Slurm >= 22.05) with the system's package manager"
    [[ $(id -u) -eq 0 ]] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; } ||
        die "Slurm is not installed; installing it needs root: sudo bash .ci/slurm.sh install"
    # Keep package scripts from starting the daemons with the distribution's config.
    local policy=/usr/sbin/policy-rc.d added=""
    if [[ ! -e $policy ]]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        added=$policy
    fi
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends)
    local status=0
    if ! as_root "${apt[@]}" "${PACKAGES[@]}" >/dev/null 2>&1; then
        # Stale or missing package lists on a fresh machine: refresh once and retry.
        as_root apt-get update -qq >/dev/null && as_root "${apt[@]}" "${PACKAGES[@]}" >/dev/null || status=$?
    fi
    [[ -z $added ]] || as_root rm -f "$added"
    [[ $status -eq 0 ]] || die "apt-get install ${PACKAGES[*]} failed (exit $status)"
    installed || die "installed ${PACKAGES[*]}, but slurmctld/slurmd/sinfo/munged are still missing"
}

# running PID: the process exists and is not a zombie (an orphan's parent may not reap it).
running() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# pid_alive FILE NAME: the PID recorded in FILE belongs to a live process called NAME.
pid_alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2" ]] && running "$pid"
}

write_config() {
    local dir=$1
    cat >"$dir/slurm.conf" <<EOF
# Written by .ci/slurm.sh: a throwaway one-node cluster.
ClusterName=simtrain-ci
SlurmctldHost=$NODE
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
MpiDefault=none
# No cgroups in a container: track job processes through /proc, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# No accounting database: sacct does not work, query job states with squeue.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue for 10 minutes (the plugin's squeue mode needs this).
MinJobAge=600
# A job over its time limit is killed 5 s after its SIGTERM (default 30 s): the retry test
# waits for it.
KillWait=5
# Share the node by cores and memory; without DefMemPerCPU each job claims all memory.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
# Trust the declared node size below instead of draining a node that is smaller.
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$NODE_MEMORY_MB Gres=gpu:$NODE_GPUS State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
EOF
    # Fake GPUs: character devices that behave like /dev/null, one file per GPU.
    local i
    for ((i = 0; i < NODE_GPUS; i++)); do
        [[ -e $dir/gpu$i ]] || as_root mknod -m 666 "$dir/gpu$i" c 1 3
    done
    echo "Name=gpu File=$dir/gpu[0-$((NODE_GPUS - 1))]" >"$dir/gres.conf"
}

start_munge() {
    local dir=$1
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0 # a munged is already serving; not ours to stop
    fi
    as_root sh -c '
        set -e
        install -d -o munge -g munge -m 0755 /run/munge
        install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
        if [ ! -s /etc/munge/munge.key ]; then
            if command -v mungekey >/dev/null; then
                runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
            else
                /usr/sbin/create-munge-key -f >/dev/null
            fi
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
        rm -f /run/munge/munged.pid
        runuser -u munge -- munged
    '
    local _
    for _ in $(seq 50); do
        [[ -s /run/munge/munged.pid ]] && break
        sleep 0.1
    done
    [[ -s /run/munge/munged.pid ]] || die "munged did not start (see /var/log/munge/munged.log)"
    cp /run/munge/munged.pid "$dir/munged.pid"
}

wait_idle() {
    local dir=$1 state="" i
    for i in $(seq 150); do
        if ((i > 10)) && ! { pid_alive "$dir/slurmctld.pid" slurmctld && pid_alive "$dir/slurmd.pid" slurmd; }; then
            break # a daemon died (its log says why)
        fi
        state=$(SLURM_CONF=$dir/slurm.conf sinfo --noheader --nodes="$NODE" --format=%t 2>/dev/null | sort -u | tr '\n' ' ') || true
        [[ $state == "idle " || $state == "mix " || $state == "alloc " ]] && return 0
        sleep 0.2
    done
    tail -n 5 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
    die "node $NODE not idle (state: ${state:-none}; daemons alive: $(cat "$dir"/*.pid 2>/dev/null | tr '\n' ' ')); logs above, in $dir/log"
}

# The plugin's job step (snakemake-executor-plugin-slurm-jobstep) drops SLURM_CONF before its
# nested `srun`, which then only looks in /etc/slurm. So link our config there while the
# cluster runs, never over a real one, and unlink it on stop (with a config left there and
# no controller, every Slurm client, hence every Snakemake start with the plugin, hangs ~10 s).
ETC_CONF=/etc/slurm/slurm.conf

link_etc_config() {
    local dir=$1 target
    if [[ -L $ETC_CONF ]]; then
        target=$(readlink "$ETC_CONF")
        [[ $target == "$dir/slurm.conf" ]] && return 0
        # A link left by a cluster that is gone may be replaced; a live one may not.
        ! pid_alive "$(dirname "$target")/slurmctld.pid" slurmctld ||
            die "$ETC_CONF points to the running cluster in $(dirname "$target"); stop it first"
    elif [[ -e $ETC_CONF ]]; then
        die "$ETC_CONF exists and is not ours: this machine has a real Slurm configuration"
    fi
    as_root mkdir -p "$(dirname "$ETC_CONF")"
    as_root ln -sfn "$dir/slurm.conf" "$ETC_CONF"
}

unlink_etc_config() {
    local dir=$1
    if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$dir/slurm.conf" ]]; then
        as_root rm -f "$ETC_CONF"
    fi
}

start() {
    local dir
    dir=$(mkdir -p "$1" && cd "$1" && pwd)
    if pid_alive "$dir/slurmctld.pid" slurmctld && pid_alive "$dir/slurmd.pid" slurmd; then
        wait_idle "$dir"
        echo "export SLURM_CONF=$dir/slurm.conf"
        return 0
    fi
    installed || die "Slurm not installed; run: bash .ci/slurm.sh install"
    mkdir -p "$dir/state" "$dir/spool" "$dir/log"
    write_config "$dir"
    link_etc_config "$dir"
    start_munge "$dir"
    pid_alive "$dir/slurmctld.pid" slurmctld ||
        as_root slurmctld -f "$dir/slurm.conf" ||
        die "slurmctld failed to start (is another cluster using port 6817?); see $dir/log/slurmctld.log"
    pid_alive "$dir/slurmd.pid" slurmd ||
        as_root slurmd -f "$dir/slurm.conf" -N "$NODE" ||
        die "slurmd failed to start; see $dir/log/slurmd.log"
    wait_idle "$dir"
    echo "export SLURM_CONF=$dir/slurm.conf"
}

# stop_pid FILE NAME: TERM the process recorded in FILE (if it is NAME), KILL it after 10 s.
stop_pid() {
    local pid _
    pid_alive "$1" "$2" || { rm -f "$1"; return 0; }
    pid=$(<"$1")
    as_root kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        running "$pid" || break
        sleep 0.1
    done
    ! running "$pid" || as_root kill -KILL "$pid" 2>/dev/null || true
    rm -f "$1"
}

stop() {
    local dir=$1 jobs _
    [[ -d $dir ]] || { unlink_etc_config "$dir"; return 0; }
    dir=$(cd "$dir" && pwd)
    if pid_alive "$dir/slurmctld.pid" slurmctld; then
        # Cancel what is left so that no job outlives the cluster.
        jobs=$(SLURM_CONF=$dir/slurm.conf squeue --noheader --format=%A --states=PD,R,CG 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086 # one job id per word
            as_root env SLURM_CONF="$dir/slurm.conf" scancel $jobs 2>/dev/null || true
            for _ in $(seq 50); do
                [[ -z $(SLURM_CONF=$dir/slurm.conf squeue --noheader --states=R,CG 2>/dev/null) ]] && break
                sleep 0.2
            done
        fi
    fi
    stop_pid "$dir/slurmd.pid" slurmd
    stop_pid "$dir/slurmctld.pid" slurmctld
    stop_pid "$dir/munged.pid" munged
    unlink_etc_config "$dir"
}

case "${1:-}" in
install) install_packages ;;
start) start "${2:?usage: slurm.sh start DIR}" ;;
stop) stop "${2:?usage: slurm.sh stop DIR}" ;;
*) die "usage: slurm.sh install | start DIR | stop DIR" ;;
esac

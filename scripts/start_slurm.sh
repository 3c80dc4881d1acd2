#!/usr/bin/env bash
# A real Slurm on this one machine, for the deployment tests (`pytest -m slurm`) and for trying
# `wass plan --slurm` by hand: Debian's slurm-wlm and munge, one slurmctld and one slurmd per
# fake node (Debian builds Slurm with multiple-slurmd support), all without systemd.
#
#   bash scripts/start_slurm.sh        # install if needed, configure, start; idempotent
#   bash scripts/stop_slurm.sh         # stop every daemon this script started
#
# Nodes (name:CPUs:memory MB) come from $WASS_SLURM_NODES, default
# "n1:4:8192 n2:4:8192 n3:2:4096 n4:2:4096"; they all run here (NodeAddr 127.0.0.1, one port
# each). Slurm does not know node speeds: a plan's job scripts sleep for the runtime the plan
# estimates on their node. The configuration is /etc/slurm/slurm.conf (written only when absent
# or written by this script), with the wass job_submit.lua plugin and:
#   * SchedulerParameters=bf_interval=1,sched_interval=1,sched_min_interval=0, so that a job
#     whose dependencies are met starts within about a second;
#   * MinJobAge=3600: finished jobs stay known for an hour. Slurm considers an afterok
#     dependency on a job it has purged satisfied, even when that job failed, so a workflow must
#     never outlive its finished jobs' records.
# Logs: /var/log/slurm/. Must run as root (or with sudo).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
plugin_dir="$here/../agents/deploy/plugin"
nodes_spec="${WASS_SLURM_NODES:-n1:4:8192 n2:4:8192 n3:2:4096 n4:2:4096}"
conf=/etc/slurm/slurm.conf
marker="# Written by wass scripts/start_slurm.sh"
table=/run/wass/nodes.tsv

fail() {
    echo "start_slurm.sh: $*" >&2
    exit 1
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "must run as root (or have sudo)"
    SUDO="sudo"
fi

# ---------------------------------------------------------------- install (once)
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
    || ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: install slurm-wlm and munge by hand"
    log="$(mktemp)"
    export DEBIAN_FRONTEND=noninteractive
    pkgs=(slurmctld slurmd slurm-client munge)
    if ! $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >>"$log" 2>&1; then
        $SUDO apt-get update -qq >>"$log" 2>&1 || true
        $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >>"$log" 2>&1 \
            || { tail -n 20 "$log" >&2; rm -f "$log"; fail "apt-get install ${pkgs[*]} failed"; }
    fi
    rm -f "$log"
fi
[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/job_submit_lua.so ] || ls /usr/lib/*/slurm-wlm/job_submit_lua.so >/dev/null 2>&1 \
    || fail "Slurm's job_submit/lua plugin (job_submit_lua.so) is not installed"

alive() { [ -s "$1" ] && $SUDO kill -0 "$(cat "$1")" 2>/dev/null; }

# ---------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
    $SUDO mungekey --create --keyfile=/etc/munge/munge.key
    $SUDO chown munge:munge /etc/munge/munge.key
    $SUDO chmod 400 /etc/munge/munge.key
fi
$SUDO mkdir -p /run/munge /var/log/munge /var/lib/munge
$SUDO chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! alive /run/munge/munged.pid; then
    $SUDO runuser -u munge -- /usr/sbin/munged
fi

# ---------------------------------------------------------------- configuration
host="$(hostname -s)"
if [ -e "$conf" ] && ! head -n 1 "$conf" | grep -qF "$marker"; then
    fail "$conf exists and was not written by this script; not touching a real cluster's configuration"
fi
tmp="$(mktemp)"
{
    echo "$marker: a single-host test cluster."
    cat <<CONF
ClusterName=wass
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd-%n.pid
SlurmdSpoolDir=/var/spool/slurmd/%n
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
SlurmctldPort=6817
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
MinJobAge=3600
JobSubmitPlugins=lua
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
InactiveLimit=0
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=300
CONF
    port=17001
    names=()
    for spec in $nodes_spec; do
        IFS=: read -r name cpus mem <<<"$spec"
        [ -n "$name" ] && [ -n "$cpus" ] && [ -n "$mem" ] \
            || fail "bad node spec '$spec' in WASS_SLURM_NODES (expected name:cpus:memory_mb)"
        echo "NodeName=$name NodeHostname=$host NodeAddr=127.0.0.1 Port=$port CPUs=$cpus RealMemory=$mem State=UNKNOWN"
        names+=("$name")
        port=$((port + 1))
    done
    echo "PartitionName=wass Nodes=$(IFS=,; echo "${names[*]}") Default=YES MaxTime=INFINITE State=UP"
} >"$tmp"
$SUDO mkdir -p /etc/slurm /var/spool/slurmctld /var/log/slurm /run/wass
changed=1
if [ -e "$conf" ] && cmp -s "$tmp" "$conf"; then changed=""; fi
$SUDO install -m 644 "$tmp" "$conf"
rm -f "$tmp"
$SUDO install -m 644 "$plugin_dir/job_submit.lua" /etc/slurm/job_submit.lua
read -r -a names <<<"$(for s in $nodes_spec; do printf '%s ' "${s%%:*}"; done)"

# ---------------------------------------------------------------- daemons
if alive /run/slurmctld.pid && [ -n "$changed" ]; then
    $SUDO scontrol reconfigure || true
fi
if ! alive /run/slurmctld.pid; then
    # -c: a fresh controller state (no jobs from an earlier run of this test cluster).
    $SUDO slurmctld -c
fi
for name in "${names[@]}"; do
    $SUDO mkdir -p "/var/spool/slurmd/$name"
    if ! alive "/run/slurmd-$name.pid"; then
        $SUDO slurmd -N "$name"
    fi
done
if ! alive /run/wass/node_table.pid; then
    # The node table job_submit.lua checks plan nodes against, refreshed every second.
    $SUDO setsid sh "$plugin_dir/node_table.sh" --every 1 "$table" </dev/null \
        >>/var/log/slurm/node_table.log 2>&1 &
    echo $! | $SUDO tee /run/wass/node_table.pid >/dev/null
fi

# ---------------------------------------------------------------- wait until usable
for _ in $(seq 60); do
    states="$(sinfo --noheader --Node --format='%N %T' 2>/dev/null || true)"
    n_idle="$(printf '%s\n' "$states" | awk '$2 == "idle"' | wc -l)"
    if [ "$n_idle" -eq "${#names[@]}" ] && [ -s "$table" ]; then
        echo "start_slurm.sh: Slurm is up: ${#names[@]} nodes (${names[*]}) on $host"
        exit 0
    fi
    # Nodes that were marked down by an earlier test come back on their own
    # (ReturnToService=2) only when they re-register; resume them explicitly.
    for name in $(printf '%s\n' "$states" | awk '$2 ~ /down|drain/ {print $1}'); do
        $SUDO scontrol update nodename="$name" state=resume 2>/dev/null || true
    done
    sleep 1
done
sinfo >&2 || true
fail "Slurm did not come up within 60 s; see /var/log/slurm/"

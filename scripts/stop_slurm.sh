#!/usr/bin/env bash
# Stop the single-host Slurm that scripts/start_slurm.sh started: the node-table refresher,
# every slurmd, slurmctld and munged, each by the process id in its pid file. Idempotent.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

stop() {  # stop PIDFILE: TERM the process, wait up to 10 s, then KILL it
    local pidfile="$1" pid
    [ -s "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if $SUDO kill -0 "$pid" 2>/dev/null; then
        $SUDO kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            $SUDO kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        $SUDO kill -KILL "$pid" 2>/dev/null || true
    fi
    $SUDO rm -f "$pidfile"
}

stop /run/wass/node_table.pid
for pidfile in /run/slurmd-*.pid; do
    [ -e "$pidfile" ] && stop "$pidfile"
done
stop /run/slurmctld.pid
stop /run/munge/munged.pid
echo "stop_slurm.sh: stopped"

#!/usr/bin/env bash
# Install SimGrid's Python bindings for the system interpreter, which tests/fidelity and
# scripts/bench_simgrid.py run SimGrid under (Debian/Ubuntu package python3-simgrid).
# Idempotent and quiet: does nothing when the interpreter can already import simgrid.
# The interpreter is $WASS_SIMGRID_PYTHON, default /usr/bin/python3.
set -euo pipefail

PY="${WASS_SIMGRID_PYTHON:-/usr/bin/python3}"

if "$PY" -I -c "import simgrid" >/dev/null 2>&1; then
    exit 0
fi

fail() {
    echo "install_simgrid.sh: $*" >&2
    exit 1
}

if [ "$PY" != "/usr/bin/python3" ]; then
    fail "$PY cannot import simgrid; this script only installs Debian's python3-simgrid for /usr/bin/python3"
fi
command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: install SimGrid's Python bindings (python3-simgrid) for $PY by hand"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "must run as root (or have sudo) to apt-get install python3-simgrid"
    SUDO="sudo"
fi

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
export DEBIAN_FRONTEND=noninteractive
install_pkg() {
    $SUDO apt-get install -y -qq --no-install-recommends python3-simgrid >>"$LOG" 2>&1
}
if ! install_pkg; then
    # The package lists may be missing or stale (fresh container): refresh them, and retry
    # once more after a pause in case the mirror hiccups.
    ok=""
    for attempt in 1 2; do
        if $SUDO apt-get update -qq >>"$LOG" 2>&1 && install_pkg; then
            ok=1
            break
        fi
        sleep 5
    done
    [ -n "$ok" ] || { tail -n 20 "$LOG" >&2; fail "apt-get install python3-simgrid failed"; }
fi

"$PY" -I -c "import simgrid" >/dev/null 2>&1 \
    || fail "python3-simgrid is installed but $PY still cannot import simgrid"

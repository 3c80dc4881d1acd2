#!/bin/sh
# Write the node table that job_submit.lua checks a plan's node against: a first line
# "# updated <epoch seconds>", then one line per node: name, state, CPUs, memory [MB].
#
#   node_table.sh [--every SECONDS] [TABLE]     (default TABLE: /run/wass/nodes.tsv)
#
# With --every it rewrites the table every SECONDS until killed. Each write replaces the file
# atomically (write to a temporary file in the same directory, then rename), so the plugin
# never reads half a table.
set -eu
every=""
if [ "${1:-}" = "--every" ]; then
    every="$2"
    shift 2
fi
table="${1:-/run/wass/nodes.tsv}"
mkdir -p "$(dirname "$table")"

write() {
    tmp="$(mktemp "$table.XXXXXX")"
    if { echo "# updated $(date +%s)"; sinfo --noheader --Node --format='%N %T %c %m'; } >"$tmp"; then
        chmod 644 "$tmp"
        mv -f "$tmp" "$table"
    else
        rm -f "$tmp"
        return 1
    fi
}

if [ -z "$every" ]; then
    write
    exit
fi
while :; do
    write || echo "node_table.sh: sinfo failed; keeping the previous table" >&2
    sleep "$every"
done

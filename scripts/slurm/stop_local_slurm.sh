#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by scripts/slurm/start_local_slurm.sh: slurmd, slurmctld and
# munged, each by the pid in its own pid file. `--keep-munge` leaves munged running. Queued jobs and the job
# history stay in the state folder (DENSELINK_SLURM_STATE) for the next start; delete it for a clean slate.
set -euo pipefail

state="${DENSELINK_SLURM_STATE:-/var/spool/denselink-slurm}"
keep_munge=0
[[ ${1:-} == --keep-munge ]] && keep_munge=1

log() { printf '[stop_local_slurm] %s\n' "$*"; }

stop_pid_file() {
    local name=$1 file=$2 pid
    if [[ ! -s $file ]] || ! kill -0 "$(cat "$file")" 2>/dev/null; then
        log "$name not running"
        return
    fi
    pid="$(cat "$file")"
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -9 "$pid"
    fi
    rm -f "$file"
    log "stopped $name (pid $pid)"
}

stop_pid_file slurmd "$state/slurmd.pid"
stop_pid_file slurmctld "$state/slurmctld.pid"
[[ $keep_munge -eq 1 ]] || stop_pid_file munged /run/munge/munged.pid

#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine (munge + slurmctld + slurmd, no systemd, no accounting
# database), for running the denselink workflow with `snakemake --profile profiles/slurm` and for
# tests/test_slurm.py. Idempotent: installs Debian's slurm-wlm and munge only when missing, and starts only
# the daemons that are not already running. Must run as root. Stop it with scripts/slurm/stop_local_slurm.sh.
#
# Environment (optional):
#   DENSELINK_SLURM_STATE  state/log/pid directory (default /var/spool/denselink-slurm)
#   DENSELINK_SLURM_GPUS   stand-in GPUs advertised by the node (default 4, as MAESTER pretraining asks for; plain files, no devices)
#   DENSELINK_SLURM_MEM_RESERVE_MB  memory kept back from Slurm (default 1024)
set -euo pipefail

start_s=$(date +%s)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${DENSELINK_SLURM_STATE:-/var/spool/denselink-slurm}"
gpus="${DENSELINK_SLURM_GPUS:-4}"
reserve_mb="${DENSELINK_SLURM_MEM_RESERVE_MB:-1024}"
conf_dir=/etc/slurm

log() { printf '[start_local_slurm] %s\n' "$*"; }
die() { printf '[start_local_slurm] error: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (installs packages and starts slurmctld/slurmd)"

# 1. packages ---------------------------------------------------------------------------------------------
if [[ ! -x /usr/sbin/slurmctld || ! -x /usr/sbin/slurmd || ! -x /usr/bin/sinfo || ! -x /usr/sbin/munged ]]; then
    log "installing slurm-wlm and munge with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps the packages' init scripts from starting daemons during installation.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
else
    log "slurm-wlm and munge already installed"
fi

# 2. configuration ----------------------------------------------------------------------------------------
host="$(hostname -s)"
cpus="$(nproc)"
total_mb="$(free -m | awk '/^Mem:/ {print $2}')"
mem_mb=$((total_mb - reserve_mb))
((mem_mb >= 512)) || die "only ${total_mb} MB of memory: too little for a test cluster"
((gpus >= 1)) || die "DENSELINK_SLURM_GPUS must be at least 1"
mkdir -p "$conf_dir" "$state/ctld" "$state/d" "$state/gpu"
for ((g = 0; g < gpus; g++)); do touch "$state/gpu/fake$g"; done
render() {
    sed -e "s|@HOST@|${host}|g" -e "s|@CPUS@|${cpus}|g" -e "s|@MEM_MB@|${mem_mb}|g" \
        -e "s|@GPUS@|${gpus}|g" -e "s|@LAST_GPU@|$((gpus - 1))|g" -e "s|@STATE@|${state}|g" "$1"
}
render "$here/slurm.conf.in" >"$conf_dir/slurm.conf.new"
render "$here/gres.conf.in" >"$conf_dir/gres.conf.new"
conf_changed=0
for f in slurm.conf gres.conf; do
    if ! cmp -s "$conf_dir/$f.new" "$conf_dir/$f"; then
        mv "$conf_dir/$f.new" "$conf_dir/$f"
        conf_changed=1
    else
        rm -f "$conf_dir/$f.new"
    fi
done
chmod 644 "$conf_dir/slurm.conf" "$conf_dir/gres.conf"
log "node ${host}: ${cpus} CPUs, ${mem_mb} MB, ${gpus} stand-in GPUs; config in ${conf_dir}, state in ${state}"

# 3. munge ------------------------------------------------------------------------------------------------
key=/etc/munge/munge.key
if [[ ! -s $key ]]; then
    log "creating munge key"
    mkdir -p /etc/munge
    dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge "$key"
chmod 700 /etc/munge
chmod 400 "$key"
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 755 /run/munge

running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

munge_pid=/run/munge/munged.pid
if running "$munge_pid"; then
    log "munged already running (pid $(cat "$munge_pid"))"
else
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --pid-file="$munge_pid"
fi
for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
munge -n | unmunge >/dev/null || die "munge does not answer (see /var/log/munge/munged.log)"

# 4. slurm daemons ----------------------------------------------------------------------------------------
ctld_pid="$state/slurmctld.pid"
d_pid="$state/slurmd.pid"
if [[ $conf_changed -eq 1 ]] && { running "$ctld_pid" || running "$d_pid"; }; then
    log "configuration changed: restarting the Slurm daemons"
    "$here/stop_local_slurm.sh" --keep-munge
fi
if running "$ctld_pid"; then
    log "slurmctld already running (pid $(cat "$ctld_pid"))"
else
    log "starting slurmctld"
    /usr/sbin/slurmctld
fi
if running "$d_pid"; then
    log "slurmd already running (pid $(cat "$d_pid"))"
else
    log "starting slurmd"
    /usr/sbin/slurmd
fi

# 5. wait until the node takes jobs -----------------------------------------------------------------------
node_state() { sinfo -h -n "$host" -o '%t' 2>/dev/null | head -n1; }
state_now=""
for i in $(seq 120); do
    state_now="$(node_state)"
    case "$state_now" in
    idle | mix | alloc) break ;;
    down* | drain* | drng*)
        # a restarted node comes back "down" until it is resumed
        ((i % 5 == 0)) && scontrol update nodename="$host" state=resume 2>/dev/null || true
        ;;
    esac
    sleep 0.5
done
case "$state_now" in
idle | mix | alloc) ;;
*) die "node ${host} is '${state_now:-unknown}' after 60 s; see ${state}/slurmctld.log and ${state}/slurmd.log" ;;
esac

sinfo
log "Slurm is up after $(($(date +%s) - start_s)) s (node ${host} ${state_now})"
log "stop it with: $here/stop_local_slurm.sh"

#!/bin/sh
# Move the processes of this cgroup into a leaf child cgroup, then exec the command given.
#
# Why: cgroup v2's "no internal processes" rule. A cgroup that holds processes cannot hand
# the memory, pids and cpu controllers down to child cgroups (writing its
# cgroup.subtree_control fails with EBUSY). cordon creates each run's cgroup under its
# cgroupParent and enables those controllers at every level on the way down; while the
# supervisor still sits in the cgroup it was started in (a container's cgroup namespace root,
# or a systemd unit's delegated cgroup) that write fails and runs get no memory or pids caps.
# Moving the supervisor into a leaf of its own (supervisor/) leaves the cgroup empty, so its
# children (cordon/ or runs/, per the config) can have controllers.
#
# Used by the container entrypoint (deploy/container/entrypoint.sh) and by the systemd unit
# (deploy/systemd/cordon-serve.service). On cgroup v1 or hybrid hosts there is nothing to do.
# A failure here is reported on stderr and the command still starts: cordon then reports the
# cgroup layer as unavailable, and its readiness check says whether the policy can still run.
set -eu

mount=${CORDON_CGROUP_MOUNT:-/sys/fs/cgroup}
leaf=${CORDON_SUPERVISOR_CGROUP:-supervisor}

warn() { echo "cgroup-leaf: $*" >&2; }

if [ "$#" -eq 0 ]; then
  warn "usage: cgroup-leaf.sh COMMAND [ARG...]"
  exit 2
fi

if [ -f "$mount/cgroup.controllers" ]; then
  # This process's cgroup on the unified hierarchy ("0::/path"), relative to the mount: "/"
  # inside a cgroup namespace, /system.slice/NAME.service under systemd.
  rel=$(sed -n 's/^0:://p' /proc/self/cgroup)
  here="$mount${rel%/}"
  case "$rel" in
    */"$leaf") warn "already in a leaf ($rel)" ;;
    "") warn "no cgroup v2 entry in /proc/self/cgroup" ;;
    *)
      if mkdir -p "$here/$leaf" 2>/dev/null; then
        # Every process of the cgroup, not only this one: in a container the init (tini)
        # sits there too. A process that exits meanwhile is no longer there to move.
        while read -r pid; do
          echo "$pid" >"$here/$leaf/cgroup.procs" 2>/dev/null || true
        done <"$here/cgroup.procs"
        if [ -s "$here/cgroup.procs" ]; then
          warn "$here still holds processes: per-run cgroups cannot get controllers there"
        fi
      else
        warn "cannot create $here/$leaf (read-only or not delegated): runs will have no cgroup of their own"
      fi
      ;;
  esac
fi

exec "$@"

#!/bin/sh
# Container entrypoint: make the container fit for a root cordon supervisor, then exec the
# command (the image runs: tini -> this -> cgroup-leaf.sh -> bun /app/bin/cordon.ts serve).
# Nothing here is fatal: what cannot be fixed, cordon reports, and its readiness check
# (GET /v1/readiness) says whether the configured policy can still run.
set -eu

warn() { echo "entrypoint: $*" >&2; }

# 1. The run root. cordon refuses a run root with a directory on the way that others may
#    write and that is not sticky (someone could plant run directories). Kubernetes creates
#    an emptyDir world-writable (0777), so a /run mounted from one must be narrowed; /tmp
#    gets /tmp's usual sticky mode. Both are no-ops for the image's own directories.
chmod go-w /run 2>/dev/null || warn "cannot chmod /run: cordon's run root check may refuse it"
if [ -w /tmp ]; then chmod 1777 /tmp 2>/dev/null || true; fi

# 2. The cgroup. With a cgroup namespace of its own (cgroup v2), the container's cgroup is
#    mounted at /sys/fs/cgroup, but read-only unless the container is privileged. A bind
#    remount changes only this mount's read-only flag (no superblock change), which the
#    container's root may do with CAP_SYS_ADMIN over its own mount namespace. Writing still
#    needs the cgroup's files to be the container root's: always so without a user namespace;
#    with one (Kubernetes hostUsers: false) only where the runtime delegates the cgroup (crun,
#    CRI-O's cgroup2-mount-hierarchy-rw annotation). Never a hostPath /sys/fs/cgroup: that
#    would hand the node's whole cgroup tree (every other pod's limits) to this container.
cg=/sys/fs/cgroup
if [ -f "$cg/cgroup.controllers" ] && [ ! -w "$cg" ]; then
  mount -o remount,bind,rw "$cg" 2>/dev/null || warn "cannot remount $cg read-write: runs will have no cgroup of their own"
fi

exec /app/deploy/cgroup-leaf.sh "$@"

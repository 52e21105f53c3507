import { relative } from "node:path";
import { degraded, enforced, off } from "../report.ts";
import type { FilesystemSpec, Mount, StagedFile } from "../spec.ts";
import type { LayerContext, LayerResult } from "./context.ts";
import { egressFor } from "./network.ts";

const ETC_STAGE = "stage/etc";

/** Stub /etc files: just enough for `id`, `whoami`, localhost and the pinned allowlist hosts, nothing of the host. */
function etcStubs(uid: number, gid: number, pinned: { name: string; address: string }[]): StagedFile[] {
  const hosts = ["127.0.0.1 localhost", "::1 localhost", ...pinned.map((h) => `${h.address} ${h.name}`)].join("\n");
  return [
    { path: `${ETC_STAGE}/passwd`, content: `root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nsandbox:x:${uid}:${gid}:cordon sandbox:/scratch:/bin/sh\n`, mode: 0o644 },
    { path: `${ETC_STAGE}/group`, content: `root:x:0:\nsandbox:x:${gid}:\n`, mode: 0o644 },
    { path: `${ETC_STAGE}/hosts`, content: `${hosts}\n`, mode: 0o644 },
  ];
}

/** The minimal read-only system view: /usr, the top-level links or dirs, stub /etc, fresh /proc and /dev. */
function systemView(ctx: LayerContext): Mount[] {
  const { host, workspace } = ctx;
  const mounts: Mount[] = [{ kind: "ro-bind", source: "/usr", target: "/usr" }];
  for (const p of host.systemPaths) {
    mounts.push(p.kind === "symlink" ? { kind: "symlink", linkTarget: p.target, path: p.path } : { kind: "ro-bind", source: p.path, target: p.path });
  }
  if (host.hasLdSoCache) mounts.push({ kind: "ro-bind", source: "/etc/ld.so.cache", target: "/etc/ld.so.cache" });
  for (const name of ["passwd", "group", "hosts"]) {
    mounts.push({ kind: "ro-bind", source: `${workspace.root}/${ETC_STAGE}/${name}`, target: `/etc/${name}` });
  }
  mounts.push({ kind: "proc", path: "/proc" }, devMount(ctx));
  return mounts;
}

/**
 * /dev is fresh; its one writable place, /dev/shm, gets the same size cap as /tmp. Left to
 * the launcher it is a tmpfs of the host's default size (half of RAM), and with cgroups
 * off nothing else bounds what a script parks there.
 */
function devMount(ctx: LayerContext): Mount {
  return { kind: "dev", path: "/dev", shmBytes: ctx.caps.resources.tmpfsSize ? ctx.policy.resources.scratchBytes : null };
}

function extraBinds(ctx: LayerContext): Mount[] {
  const binds = [...ctx.policy.filesystem.readOnlyBinds, ...ctx.job.readOnlyBinds];
  const seen = new Set<string>();
  return binds
    .filter((b) => !seen.has(b.target) && seen.add(b.target))
    .map((b) => ({ kind: "ro-bind", source: b.source, target: b.target }));
}

/** Scratch (rw, cwd), job files (ro) and a size-capped /tmp. */
function workMounts(ctx: LayerContext): Mount[] {
  const { workspace, layout, policy, caps } = ctx;
  return [
    { kind: "tmpfs", path: layout.tmpDir, sizeBytes: caps.resources.tmpfsSize ? policy.resources.scratchBytes : null, mode: 0o1777 },
    { kind: "bind", source: workspace.scratchDir, target: layout.scratchDir },
    { kind: "ro-bind", source: workspace.jobDir, target: layout.jobDir },
  ];
}

export function filesystemLayer(ctx: LayerContext): LayerResult<FilesystemSpec> {
  const { policy, caps, workspace, layout } = ctx;
  // Hostnames of the allowlist resolve from /etc/hosts: the sandbox needs (and gets) no DNS.
  const pinned = caps.network.allowlist && policy.network.mode === "allowlist" ? egressFor(ctx).spec.hosts : [];
  const stage = etcStubs(policy.privilege.uid, policy.privilege.gid, pinned);
  const binds = ctx.job.readOnlyBinds.length ? ` + runner binds ${ctx.job.readOnlyBinds.map((b) => b.source).join(", ")}` : "";

  if (policy.filesystem.mode === "off") {
    // No isolation asked for: the host filesystem as is, still with a private scratch as cwd.
    const mounts: Mount[] = caps.filesystem.view
      ? [{ kind: "bind", source: "/", target: "/" }, { kind: "proc", path: "/proc" }, devMount(ctx), ...workMounts(ctx)]
      : [];
    return { controls: { view: off("policy filesystem.mode is off: the host filesystem is visible and writable") }, spec: { isolated: false, mounts, cwd: layout.scratchDir, stage } };
  }

  if (!caps.filesystem.view) {
    return {
      controls: {
        view: degraded("this provider has no mount namespace: the script sees and can write the host filesystem", "use an isolating provider (bwrap)"),
      },
      spec: { isolated: false, mounts: [], cwd: layout.scratchDir, stage },
    };
  }

  // The root the sandbox builds its view on is a private tmpfs: seal it, or /etc and / stay writable.
  const mounts: Mount[] = [...systemView(ctx), ...extraBinds(ctx), ...workMounts(ctx), { kind: "remount-ro", path: "/" }];
  const scratchRel = relative(workspace.root, workspace.scratchDir);
  return {
    controls: {
      view: enforced(`mount namespace: read-only /usr, stub /etc, fresh /proc and /dev${binds}`),
      scratch: enforced(`per-run writable ${layout.scratchDir} (host ${scratchRel} of the run dir), removed after the run`),
    },
    spec: { isolated: true, mounts, cwd: layout.scratchDir, stage },
  };
}

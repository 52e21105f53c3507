import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { dirname, relative } from "node:path";
import { checkedBindSource } from "../bind-sources.ts";
import { enforced, off } from "../report.ts";
import { defaultRunRoot } from "../run-root.ts";
import type { FilesystemSpec, Mount, StagedFile } from "../spec.ts";
import { needsIsolation, type LayerContext, type LayerResult } from "./context.ts";
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

/**
 * Policy and runner binds with their sources checked and resolved to real paths: one that is,
 * lies in or holds /proc, /sys, /dev or a run root is a PolicyValidationError (nothing spawned).
 */
function checkedBinds(ctx: LayerContext): { source: string; target: string }[] {
  const runRoots = [dirname(ctx.workspace.root), defaultRunRoot()];
  return [
    ...ctx.policy.filesystem.readOnlyBinds.map((b, i) => ({ source: checkedBindSource(b.source, `filesystem.readOnlyBinds.${i}.source`, runRoots), target: b.target })),
    ...ctx.job.readOnlyBinds.map((b, i) => ({ source: checkedBindSource(b.source, `${ctx.job.runner}.readOnlyBinds.${i}.source`, runRoots, "runner binds"), target: b.target })),
  ];
}

function extraBinds(ctx: LayerContext): Mount[] {
  const binds = checkedBinds(ctx);
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

/**
 * filesystem.mode off: the host's `/` cannot be bound as the sandbox's root, because the work
 * mounts (/scratch, /cordon/job) would need mount points created on the host's own root, which
 * fails (and must not succeed). Instead the sandbox's root stays its private tmpfs, every host
 * top-level entry is bound in read-write (symlinks recreated) at its own path, and the root is
 * sealed afterwards. Left out: /proc and /dev (fresh ones) and the top-level dirs of the work
 * mounts (/tmp, /scratch, /cordon), which the sandbox's own take the place of.
 */
function hostTopLevel(layout: LayerContext["layout"]): { mounts: Mount[]; bound: string[]; hidden: string[] } {
  const own = new Set(["/proc", "/dev", ...[layout.scratchDir, layout.jobDir, layout.tmpDir].map((p) => `/${p.split("/")[1]}`)]);
  const mounts: Mount[] = [];
  const bound: string[] = [];
  const hidden: string[] = [];
  for (const name of readdirSync("/").sort()) {
    const path = `/${name}`;
    let st;
    try {
      st = lstatSync(path);
    } catch {
      continue; // gone meanwhile
    }
    if (own.has(path)) {
      if (path !== "/proc" && path !== "/dev" && path !== layout.tmpDir) hidden.push(path);
      continue;
    }
    if (st.isSymbolicLink()) mounts.push({ kind: "symlink", linkTarget: readlinkSync(path), path });
    else if (st.isDirectory() || st.isFile()) mounts.push({ kind: "bind", source: path, target: path });
    else continue; // a socket or device node at the top level: nothing a script needs
    bound.push(path);
  }
  return { mounts, bound, hidden };
}

export function filesystemLayer(ctx: LayerContext): LayerResult<FilesystemSpec> {
  const { policy, caps, workspace, layout } = ctx;
  // Hostnames of the allowlist resolve from /etc/hosts: the sandbox needs (and gets) no DNS.
  const pinned = caps.network.allowlist && policy.network.mode === "allowlist" ? egressFor(ctx).spec.hosts : [];
  const stage = etcStubs(policy.privilege.uid, policy.privilege.gid, pinned);
  const binds = ctx.job.readOnlyBinds.length ? ` + runner binds ${ctx.job.readOnlyBinds.map((b) => b.source).join(", ")}` : "";
  checkedBinds(ctx); // whatever the mode or provider: a bind that breaks a control is a wrong policy

  if (policy.filesystem.mode === "off") {
    // No isolation asked for: the host filesystem at its own paths, still with a private scratch as cwd.
    if (!caps.filesystem.view) {
      return {
        controls: { view: off(`policy filesystem.mode is off and this provider has no mount namespace: the host filesystem as is, writable wherever the sandbox uid may write; cwd ${workspace.scratchDir}`) },
        spec: { isolated: false, mounts: [], cwd: layout.scratchDir, stage },
      };
    }
    const host = hostTopLevel(layout);
    // Other runs (their launcher arguments carry secret values) stay out of reach: when the run
    // root lies in a bound host dir, an empty tmpfs covers it (the work mounts' sources are host paths).
    const runRoot = dirname(workspace.root);
    const hideRunRoot = runRoot !== "/" && host.bound.includes(`/${runRoot.split("/")[1]}`);
    const mounts: Mount[] = [
      ...host.mounts,
      ...(hideRunRoot ? [{ kind: "tmpfs", path: runRoot, sizeBytes: caps.resources.tmpfsSize ? 64 * 1024 : null, mode: 0o555 } satisfies Mount] : []),
      { kind: "proc", path: "/proc" },
      devMount(ctx),
      ...workMounts(ctx),
      { kind: "remount-ro", path: "/" },
    ];
    const reason =
      `policy filesystem.mode is off: no filesystem isolation. The host's top-level entries (${host.bound.join(", ")}) are bound read-write at their own paths, ` +
      "writable wherever the sandbox uid's own permissions allow; / itself is a read-only tmpfs (no new top-level entries); " +
      `fresh /proc and /dev; a private /tmp, ${layout.scratchDir} (cwd, per run) and ${layout.jobDir} on top` +
      `${hideRunRoot ? `; the run root ${runRoot} is hidden under an empty tmpfs` : ""}` +
      `${host.hidden.length ? `; host ${host.hidden.join(", ")} not visible` : ""}; filesystem.readOnlyBinds are not applied`;
    return { controls: { view: off(reason) }, spec: { isolated: false, mounts, cwd: layout.scratchDir, stage } };
  }

  if (!caps.filesystem.view) {
    return {
      controls: {
        view: needsIsolation("this provider has no mount namespace: the script sees and can write the host filesystem"),
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

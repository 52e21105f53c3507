import { randomHex } from "../random.ts";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { CordonError } from "../errors.ts";
import { firstUnreachableAncestor } from "../host.ts";
import { checkRunRoot, ensureRunRoot, writeExclusive } from "./run-root.ts";
import { pidAlive } from "../process.ts";
import { mountTmpfs, unmountIfMounted } from "./tmpfs-mount.ts";
import type { SetupStep } from "./setup.ts";
import type { SpawnPlan, Workspace } from "./spec.ts";

export { defaultRunRoot } from "./run-root.ts";

const RUN_DIR = /^run-(\d+)-[0-9a-f]+$/;

/** Name a run directory (nothing is created yet: a refused run leaves nothing behind). */
export function allocateWorkspace(runRoot: string): Workspace {
  const root = join(runRoot, `run-${process.pid}-${randomHex(6)}`);
  return { root, stageDir: join(root, "stage"), jobDir: join(root, "stage", "job"), scratchDir: join(root, "scratch") };
}

/** The scratch quota: a size-capped 0700 nosuid,nodev tmpfs owned by the run's host identity (mount(2), no helper). */
function mountScratchTmpfs(path: string, bytes: number, owner: { uid: number; gid: number } | null): void {
  mountTmpfs(path, "cordon-scratch", { sizeBytes: bytes, mode: 0o700, owner });
}

/** Unmount a scratch tmpfs if one is mounted there; busy: detach now, the kernel frees it when unused. */
function unmountScratch(scratchDir: string): void {
  unmountIfMounted(scratchDir);
}

/**
 * The workspace's setup steps, first in every run: the run directory (removed last,
 * whatever happened) and, with a scratch quota, the size-capped tmpfs on scratch.
 */
export function workspaceSteps(ws: Workspace, plan: Pick<SpawnPlan, "stage" | "scratch">): SetupStep[] {
  const { quotaBytes, owner } = plan.scratch;
  const runDirectory: SetupStep = {
    name: "run-directory",
    prepare: async () => createRunDirectory(ws, plan),
    cleanup: () => disposeWorkspace(ws),
  };
  if (quotaBytes === null) return [runDirectory];
  const scratchQuota: SetupStep = {
    name: "scratch-quota",
    prepare: async () => mountScratchTmpfs(ws.scratchDir, quotaBytes, owner),
    cleanup: async () => unmountScratch(ws.scratchDir),
  };
  return [runDirectory, scratchQuota];
}

/**
 * Create the run directory: 0711 root, read-only stage, 0700 scratch owned by the sandbox
 * uid (by the quota mount's options when scratch gets one, the next step).
 * The run root is checked first (no one else may own, replace or link into it); the run dir
 * is a fresh mkdir and every file in it a fresh O_EXCL|O_NOFOLLOW create, so nothing that
 * was there before is reused.
 */
function createRunDirectory(ws: Workspace, plan: Pick<SpawnPlan, "stage" | "scratch">): void {
  ensureRunRoot(dirname(ws.root));
  // dirname(root) itself must be searchable too, hence the "/." suffix.
  const blocked = plan.scratch.owner && firstUnreachableAncestor(`${dirname(ws.root)}/.`, plan.scratch.owner);
  if (blocked) {
    throw new CordonError("invalid-config", `the run directory root ${dirname(ws.root)} is not reachable by the sandbox uid ${plan.scratch.owner!.uid}: ${blocked} lacks search (x) permission for it; choose a runRoot under a world-searchable directory (e.g. /tmp) or chmod o+x ${blocked}`);
  }
  mkdirSync(ws.root, { mode: 0o711 }); // fails if anything is there already
  chmodSync(ws.root, 0o711); // the umask must not hide it from the sandbox uid
  // Below the fresh run dir only the supervisor can write: plain creation is safe from here on.
  mkdirSync(ws.jobDir, { recursive: true, mode: 0o755 });
  for (const file of plan.stage) {
    const path = join(ws.root, file.path);
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    writeExclusive(path, file.content, file.mode, file.owner); // exactly file.mode: the umask must not narrow what the sandbox uid may read
  }
  mkdirSync(ws.scratchDir, { mode: 0o700 });
  const { quotaBytes, owner } = plan.scratch;
  if (quotaBytes === null && owner) chownSync(ws.scratchDir, owner.uid, owner.gid);
}

/** Remove a run directory whatever state it is in (mounted scratch, files the script made read-only). */
export async function disposeWorkspace(ws: Pick<Workspace, "root" | "scratchDir">): Promise<void> {
  unmountScratch(ws.scratchDir);
  // Off the event loop: on a disk-backed run root (a /run that is not tmpfs) removing a run
  // directory takes milliseconds of file system work, which blocked every other run's timers
  // and pumps while it went.
  // (node:fs/promises loads on first use: the CLI's start does not pay for it.)
  if (existsSync(ws.root)) await (await import("node:fs/promises")).rm(ws.root, { recursive: true, force: true });
}

/**
 * Remove run directories left by supervisors that died mid-run. Returns how many were removed.
 * The run root is checked first (a CordonError when it is not safe): removing trees and
 * unmounting in a directory someone else controls is exactly what must not happen.
 */
export async function cleanStaleWorkspaces(runRoot: string): Promise<number> {
  if (checkRunRoot(runRoot) === null) return 0;
  let removed = 0;
  for (const name of readdirSync(runRoot)) {
    const m = RUN_DIR.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    const root = join(runRoot, name);
    await disposeWorkspace({ root, scratchDir: join(root, "scratch") });
    removed++;
  }
  return removed;
}

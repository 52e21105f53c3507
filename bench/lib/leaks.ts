/**
 * What a batch of runs may leave behind on the host, counted before and after: run
 * directories, run cgroups and scratch mounts of THIS process (names carry its pid, so other
 * supervisors on the host do not count), processes of the bench's identity range (its own:
 * lib/variants.ts), identity leases this process still holds and their host-wide claim files,
 * and this process's open fds.
 * A warm pool is drained first (its idle sandboxes hold all of these on purpose); the state
 * before a batch is taken with the pool as it was, so its sandboxes then count as leaks only
 * if they outlive the drain.
 */
import { readdirSync, readFileSync } from "node:fs";
import type { Cordon } from "../../src/api/index.ts";
import { listRunCgroups } from "../../src/cgroup/run-cgroup.ts";
import { heldIdentities, IDENTITY_CLAIM_DIR } from "../../src/identity/pool.ts";
import { inRange } from "../../src/identity/range.ts";

export interface HostState {
  runDirs: string[];
  cgroups: string[];
  mounts: string[];
  processes: string[];
  /** Identity-pool ids this process holds (every lease must be given back after its run). */
  leases: string[];
  /** Claim files of the range that name this process (identity/lock.ts: unlinked on release). */
  claims: string[];
  fds: number;
}

const mine = (name: string) => name.startsWith(`run-${process.pid}-`);

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return ""; // gone meanwhile
  }
}

/**
 * Live processes whose real uid is in the cordon's identity range, as "pid comm uid".
 * Zombies are not leftovers: bwrap's outer process exits once the sandbox's init reported,
 * so that init is reaped by the host's pid 1, seconds later on some hosts (the identity
 * pool skips zombies for the same reason: src/identity/in-use.ts).
 */
function identityProcesses(cordon: Cordon): string[] {
  const range = cordon.config.identity;
  const found: string[] = [];
  for (const pid of list("/proc").filter((n) => /^\d+$/.test(n))) {
    const status = read(`/proc/${pid}/status`);
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
    if (inRange(range, uid) && !/^State:\s+Z/m.test(status)) found.push(`${pid} ${/^Name:\s+(.*)$/m.exec(status)?.[1] ?? "?"} uid ${uid}`);
  }
  return found;
}

export function hostState(cordon: Cordon): HostState {
  const runPrefix = `${cordon.runRoot}/run-${process.pid}-`;
  const facts = cordon.host().cgroups;
  return {
    runDirs: list(cordon.runRoot).filter(mine),
    cgroups: facts.problem === null ? listRunCgroups(facts, cordon.config.cgroupParent).map((c) => c.name).filter(mine) : [],
    mounts: read("/proc/self/mountinfo").split("\n").filter((l) => l.split(" ")[4]?.startsWith(runPrefix)),
    processes: identityProcesses(cordon),
    leases: heldIdentities().map(String),
    claims: list(IDENTITY_CLAIM_DIR).filter((id) => inRange(cordon.config.identity, Number(id)) && read(`${IDENTITY_CLAIM_DIR}/${id}`) === `pid ${process.pid}\n`),
    fds: list("/proc/self/fd").length,
  };
}

/** What `after` holds that `before` did not; empty when nothing leaked. */
export function leaked(before: HostState, after: HostState): string[] {
  const extra = (a: string[], b: string[]) => b.filter((x) => !a.includes(x));
  const out: string[] = [];
  const add = (what: string, items: string[]) => items.length && out.push(`${items.length} ${what}: ${items.slice(0, 3).join(", ")}${items.length > 3 ? ", …" : ""}`);
  add("run dirs", extra(before.runDirs, after.runDirs));
  add("cgroups", extra(before.cgroups, after.cgroups));
  add("mounts", extra(before.mounts, after.mounts));
  add("identity processes", extra(before.processes, after.processes));
  add("identity leases", extra(before.leases, after.leases));
  add("identity claim files", extra(before.claims, after.claims));
  if (after.fds > before.fds) out.push(`${after.fds - before.fds} fds (${before.fds} -> ${after.fds})`);
  return out;
}

/**
 * The leaks after a batch, given a moment to settle: streams and fds Bun closes on its next
 * ticks are not leaks, so look again for up to `settleMs` before calling something left over.
 */
export async function leaksAfter(cordon: Cordon, before: HostState, settleMs = 2000): Promise<string[]> {
  // A warm pool's idle sandboxes are held on purpose: destroyed here, so what is left is a leak.
  await cordon.drainPool();
  const deadline = performance.now() + settleMs;
  for (;;) {
    Bun.gc(true);
    const found = leaked(before, hostState(cordon));
    if (found.length === 0 || performance.now() > deadline) return found;
    await Bun.sleep(100);
  }
}

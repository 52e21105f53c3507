/**
 * The identity pool: each concurrent run gets a host uid (= gid) of its own from the
 * configured range, and gives it back only after its run is cleaned up (launcher exited,
 * pid namespace gone, run directory and cgroup removed), so the next holder inherits no
 * process, file or quota charge of it.
 *
 * Three things keep an id to one run at a time:
 * - in this process, a registry shared by every Cordon (and every copy of this module:
 *   it lives on globalThis), so two Cordons with overlapping ranges never collide;
 * - across processes, a host-wide claim per id (lock.ts: an flock in a root-only dir);
 * - against the rest of the host, an id that an account (/etc/passwd, /etc/group) or a
 *   live process uses is skipped, whoever holds or does not hold a claim on it.
 * When none is free the run is refused (IdentityPoolExhaustedError), never given a shared uid.
 */
import { mkdirSync } from "node:fs";
import { CordonError, IdentityPoolExhaustedError } from "../errors.ts";
import { ensureSafeDirectory, UnsafeDirectoryError } from "../sandbox/run-root.ts";
import { accountIdsIn, processIdsIn } from "./in-use.ts";
import { tryClaim, type IdentityClaim } from "./lock.ts";
import { inRange, representativeIdentity, type IdentityRange, type RunIdentity } from "./range.ts";

/** Where supervisors on this host claim ids: root's, on a tmpfs (claims do not outlive a reboot). */
export const IDENTITY_CLAIM_DIR = "/run/cordon-identities";

/** An id held for one run: release it once the run's cleanup is done (idempotent). */
export interface IdentityLease {
  readonly identity: RunIdentity;
  release(): void;
}

interface Registry {
  held: Map<number, IdentityClaim>;
  /** Where the next search starts: ids are handed out round-robin, so a released id is reused as late as possible. */
  next: number;
}

const REGISTRY_KEY = Symbol.for("cordon.identity.registry");
function registry(): Registry {
  const g = globalThis as { [REGISTRY_KEY]?: Registry };
  g[REGISTRY_KEY] ??= { held: new Map(), next: 0 };
  return g[REGISTRY_KEY];
}

/** Ids this process holds right now (for reports and tests). */
export function heldIdentities(): number[] {
  return [...registry().held.keys()].sort((a, b) => a - b);
}

function claimDirectory(dir: string): string {
  try {
    mkdirSync(dir, { mode: 0o700 }); // 0700 when it is ours to make; an existing one is checked as it is
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST" && (e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  try {
    return ensureSafeDirectory(dir);
  } catch (e) {
    if (!(e instanceof UnsafeDirectoryError)) throw e;
    throw new CordonError(
      "invalid-config",
      `the identity claim directory ${dir} is not safe to use: ${e.message}. Another local user could release or steal the per-run host ids recorded there. Fix: remove or correct ${dir} if it was not made by root (it may have been planted)`,
    );
  }
}

/**
 * How long one scan of /proc serves further allocations. Allocations come in bursts (a warm
 * pool refilling, concurrent runs), and a scan reads every process's status file. What a
 * slightly older scan can miss is a process that started as a pool id in the last moments
 * and was not started by this process (which holds its own ids in the registry): the
 * window such a foreign process always has (see README: what the pool cannot see).
 */
const SCAN_REUSE_MS = 100;
let lastScan: { range: string; at: number; ids: Promise<Set<number>> } | null = null;

function recentProcessIds(range: IdentityRange, blocking: boolean): Promise<Set<number>> {
  const key = `${range.base}:${range.count}`;
  const now = performance.now();
  if (!lastScan || lastScan.range !== key || now - lastScan.at > SCAN_REUSE_MS) lastScan = { range: key, at: now, ids: processIdsIn(range, "/proc", { blocking }) };
  return lastScan.ids;
}

export class IdentityPool {
  constructor(
    readonly range: IdentityRange,
    /** Host-wide claims (every supervisor sharing the range must use the same directory). */
    readonly claimDir: string = IDENTITY_CLAIM_DIR,
  ) {}

  /** "per-run host uid from the pool …" for a plan that allocates nothing. */
  representative(): RunIdentity {
    return representativeIdentity(this.range);
  }

  /**
   * A free id, held until the lease is released. Rejects with IdentityPoolExhaustedError
   * when every id is taken, a CordonError when the claim directory is unsafe; nothing is
   * held then.
   */
  async allocate(): Promise<IdentityLease> {
    return (await this.allocateAll(1))[0]!;
  }

  /**
   * `n` free ids at once, or none (IdentityPoolExhaustedError): for runs that must run
   * together (readiness's two concurrent identity probes), so two such groups never each
   * hold half of what they need.
   */
  async allocateAll(n: number): Promise<IdentityLease[]> {
    // What the host uses is read first (off the event loop while this process has runs in
    // flight; with none, at once); from here on everything is synchronous, so no other
    // allocation of this process runs between a look and a claim.
    const inFlight = registry().held.size > 0;
    const used = new Set([...accountIdsIn(this.range), ...(await recentProcessIds(this.range, !inFlight))]);
    const dir = claimDirectory(this.claimDir);
    const reg = registry();
    const { base, count } = this.range;
    const start = inRange(this.range, reg.next) ? reg.next - base : 0;
    const taken = { thisProcess: 0, otherSupervisors: 0, hostUsers: 0 };
    const got: IdentityLease[] = [];
    for (let i = 0; i < count && got.length < n; i++) {
      const id = base + ((start + i) % count);
      if (reg.held.has(id)) {
        taken.thisProcess++;
        continue;
      }
      if (used.has(id)) {
        taken.hostUsers++;
        continue;
      }
      const claim = tryClaim(dir, id);
      if (!claim) {
        taken.otherSupervisors++;
        continue;
      }
      reg.held.set(id, claim);
      reg.next = id + 1;
      got.push(lease({ uid: id, gid: id, range: this.range, representative: false }, claim));
    }
    if (got.length === n) return got;
    for (const l of got) l.release();
    throw new IdentityPoolExhaustedError(this.range, taken, n);
  }
}

function lease(identity: RunIdentity, claim: IdentityClaim): IdentityLease {
  let released = false;
  return {
    identity,
    release() {
      if (released) return;
      released = true;
      try {
        claim.release();
      } finally {
        registry().held.delete(identity.uid);
      }
    },
  };
}

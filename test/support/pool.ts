/**
 * Warm-pool test helpers: a Cordon with a pool whose leftovers are attributable (its own run
 * root, cgroup parent and identity range), a cold run then the same run warm, and the live
 * processes of an identity range. Every Cordon made here is closed, and every cgroup parent
 * removed, by closePooledCordons() (a test file's afterAll).
 */
import { expect } from "bun:test";
import type { Cordon, CordonConfigInput, RunRequest, RunResult } from "../../src/api/index.ts";
import { inRange, type IdentityRange } from "../../src/identity/range.ts";
import { removeCgroupParent } from "./cgroups.ts";
import { describeResult, makeCordon } from "./cordon.ts";
import { freshIdentityRange } from "./identity.ts";
import { hostPids, readProc, uidOf } from "./processes.ts";
import { freshRunRoot } from "./temp.ts";

export interface PooledCordon {
  cordon: Cordon;
  runRoot: string;
  identities: IdentityRange;
  /** The Cordon's own cgroup parent: its run cgroups and nobody else's. */
  parent: string;
}

const made: { cordon: Cordon; parent: string }[] = [];
let count = 0;

/**
 * A Cordon with a pool of `size` per shape. Its memory budget is one no test reaches unless it
 * sets one (an idle sandbox's cgroup charge includes page cache); `config.pool` adds to it.
 */
export function pooledCordon(config: Omit<CordonConfigInput, "runRoot"> = {}, size = 1, identityCount = 16): PooledCordon {
  const runRoot = freshRunRoot("pool");
  const identities = freshIdentityRange(identityCount);
  const parent = `cordon-pool-test-${process.pid}-${++count}`;
  const cordon = makeCordon(runRoot, { cgroupParent: parent, identity: identities, ...config, pool: { size, memoryBytes: 8 * 1024 ** 3, ...(config.pool ?? {}) } });
  made.push({ cordon, parent });
  return { cordon, runRoot, identities, parent };
}

/** A test file's afterAll: close every pooled Cordon it made, then remove their cgroup parents. */
export async function closePooledCordons(label: string): Promise<void> {
  await Promise.all(made.map((m) => m.cordon.close()));
  for (const m of made.splice(0)) removeCgroupParent(m.parent, label);
}

/** The run once cold (which starts its shape's pool), then, once the pool settled, warm. */
export async function coldThenWarm(cordon: Cordon, request: RunRequest | (() => RunRequest)): Promise<{ cold: RunResult; warm: RunResult }> {
  const make = typeof request === "function" ? request : () => request;
  const cold = await cordon.run(make());
  expect(cold.sandbox?.start?.warm, describeResult(cold)).toBe(false);
  await cordon.poolSettled();
  const warm = await cordon.run(make());
  expect(warm.sandbox?.start?.warm, `${JSON.stringify(warm.sandbox?.start)} ${describeResult(warm)}`).toBe(true);
  return { cold, warm };
}

/**
 * Live processes running as one of the range's host uids. (A zombie runs nothing: bwrap's
 * outer process exits without reaping its init, which the host's pid 1 reaps when it will.)
 */
export function liveProcessesOf(range: IdentityRange): number[] {
  return hostPids().filter((pid) => {
    const uid = uidOf(pid);
    return uid !== null && inRange(range, uid) && !/^State:\s*[ZX]/m.test(readProc(pid, "status") ?? "State: X");
  });
}

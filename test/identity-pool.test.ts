/**
 * The identity pool (issue 13 item 2): each concurrent run gets a host uid of its own, an id
 * comes back only when released, and neither another supervisor's claim, an account nor a
 * live host process loses its id to a run. Real claim files, real flock holders, real
 * processes; pools of their own (a fresh range, a private claim directory) so other suites'
 * runs never share them.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigValidationError, CordonError } from "../src/api/index.ts";
import { parseConfig } from "../src/config.ts";
import { IdentityPoolExhaustedError } from "../src/errors.ts";
import { accountIdsIn, processIdsIn } from "../src/identity/in-use.ts";
import { claimPath } from "../src/identity/lock.ts";
import { heldIdentities, IdentityPool, type IdentityLease } from "../src/identity/pool.ts";
import { DEFAULT_IDENTITY_RANGE } from "../src/identity/range.ts";
import { caught, childrenOf, freshIdentityRange, IS_ROOT, privateClaimDir, removeTempDirs, runningAs, spawnAs, tempDir, waitFor } from "./support.ts";

afterAll(removeTempDirs);

/** A pool of `count` fresh ids with a claim directory of its own. */
function freshPool(count: number): IdentityPool {
  return new IdentityPool(freshIdentityRange(count), privateClaimDir());
}

const ids = (leases: IdentityLease[]) => leases.map((l) => l.identity.uid);

describe("allocation", () => {
  test("concurrent leases get distinct ids (uid = gid) of the range; a held id is never handed out again", async () => {
    const pool = freshPool(4);
    const leases = [await pool.allocate(), await pool.allocate(), await pool.allocate(), await pool.allocate()];
    const got = ids(leases);
    expect(new Set(got).size).toBe(4);
    for (const l of leases) {
      expect(l.identity.gid).toBe(l.identity.uid);
      expect(l.identity.uid - pool.range.base).toBeGreaterThanOrEqual(0);
      expect(l.identity.uid - pool.range.base).toBeLessThan(4);
      expect(l.identity.representative).toBe(false);
      expect(heldIdentities()).toContain(l.identity.uid);
    }
    expect(await caught(() => pool.allocate())).toBeInstanceOf(IdentityPoolExhaustedError);
    for (const l of leases) l.release();
  });

  test("an id comes back only after release, and then to the next run that finds none other free", async () => {
    const pool = freshPool(2);
    const a = await pool.allocate();
    const b = await pool.allocate();
    expect(await caught(() => pool.allocate())).toBeInstanceOf(IdentityPoolExhaustedError);
    a.release();
    a.release(); // idempotent: b stays held
    const c = await pool.allocate();
    expect(c.identity.uid).toBe(a.identity.uid);
    expect(await caught(() => pool.allocate())).toBeInstanceOf(IdentityPoolExhaustedError);
    b.release();
    c.release();
    expect(heldIdentities()).not.toContain(a.identity.uid);
  });

  test("round-robin: a released id is reused as late as possible", async () => {
    const pool = freshPool(3);
    const first = await pool.allocate();
    first.release();
    const second = await pool.allocate();
    expect(second.identity.uid).not.toBe(first.identity.uid);
    second.release();
  });

  test("one registry for the whole process: two pools over the same range (two Cordons) never hand out one id twice", async () => {
    const range = freshIdentityRange(2);
    const dir = privateClaimDir();
    const [p1, p2] = [new IdentityPool(range, dir), new IdentityPool(range, dir)];
    const a = await p1.allocate();
    const b = await p2.allocate();
    expect(b.identity.uid).not.toBe(a.identity.uid);
    const err = await caught(() => p1.allocate());
    expect(err).toBeInstanceOf(IdentityPoolExhaustedError);
    expect((err as IdentityPoolExhaustedError).taken).toEqual({ thisProcess: 2, otherSupervisors: 0, hostUsers: 0 });
    a.release();
    b.release();
  });

  test("exhaustion is a typed refusal naming the pool size, its range and the config keys", async () => {
    const pool = freshPool(1);
    const held = await pool.allocate();
    const err = await caught(() => pool.allocate());
    held.release();
    expect(err).toBeInstanceOf(IdentityPoolExhaustedError);
    expect(err).toBeInstanceOf(CordonError);
    expect((err as CordonError).code).toBe("sandbox-unavailable");
    const msg = (err as Error).message;
    expect(msg).toContain("all 1 ids of the pool");
    expect(msg).toContain(`${pool.range.base}–${pool.range.base}`);
    expect(msg).toContain("identity.count");
    expect(msg).toContain("nothing was run");
  });

  test("a representative identity (trial plans) holds nothing", async () => {
    const pool = freshPool(1);
    const r = pool.representative();
    expect(r).toEqual({ uid: pool.range.base, gid: pool.range.base, range: pool.range, representative: true });
    const lease = await pool.allocate(); // still free
    expect(lease.identity.uid).toBe(pool.range.base);
    lease.release();
  });
});

describe("host-wide claims (other supervisors)", () => {
  test("a claim file is created while held, names its holder, and is gone after release", async () => {
    const pool = freshPool(1);
    const lease = await pool.allocate();
    const path = claimPath(pool.claimDir, lease.identity.uid);
    expect(readFileSync(path, "utf8")).toBe(`pid ${process.pid}\n`);
    lease.release();
    expect(existsSync(path)).toBe(false);
  });

  test("an id another live process holds (flock on its claim file) is skipped", async () => {
    const pool = freshPool(2);
    const path = claimPath(pool.claimDir, pool.range.base);
    // util-linux flock(1): a real other process holding the lock, as another supervisor would
    // (--close: its sleeping child does not inherit the lock, so killing flock drops it).
    const other = Bun.spawn(["flock", "--exclusive", "--close", path, "sleep", "30"], { stdio: ["ignore", "ignore", "inherit"] });
    try {
      expect(await waitFor(() => existsSync(path), 5000)).toBe(true);
      await Bun.sleep(50); // flock(1) opens, then locks
      const lease = await pool.allocate();
      expect(lease.identity.uid).toBe(pool.range.base + 1);
      const err = await caught(() => pool.allocate());
      expect((err as IdentityPoolExhaustedError).taken).toEqual({ thisProcess: 1, otherSupervisors: 1, hostUsers: 0 });
      lease.release();
    } finally {
      for (const child of childrenOf(other.pid)) process.kill(child.pid, "SIGKILL");
      other.kill("SIGKILL");
      await other.exited;
    }
    // Its holder died: the kernel dropped the lock, the id is free again.
    const again = await pool.allocate();
    expect(again.identity.uid).toBe(pool.range.base);
    again.release();
  });

  test("a stale claim (its holder died: a file nobody locks, naming a dead pid) is reclaimed", async () => {
    const pool = freshPool(1);
    mkdirSync(pool.claimDir, { recursive: true });
    const path = claimPath(pool.claimDir, pool.range.base);
    writeFileSync(path, "pid 999999999\n", { mode: 0o600 });
    const lease = await pool.allocate();
    expect(lease.identity.uid).toBe(pool.range.base);
    expect(readFileSync(path, "utf8")).toBe(`pid ${process.pid}\n`);
    lease.release();
  });

  test("another supervisor process allocating from the same pool gets a different id", async () => {
    const pool = freshPool(2);
    const code = `
      import { IdentityPool } from ${JSON.stringify(join(import.meta.dir, "../src/identity/pool.ts"))};
      const lease = await new IdentityPool(${JSON.stringify(pool.range)}, ${JSON.stringify(pool.claimDir)}).allocate();
      console.log(lease.identity.uid);
      await Bun.sleep(30_000);
    `;
    const other = Bun.spawn([process.execPath, "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
    try {
      const reader = other.stdout.getReader();
      const { value } = await reader.read();
      const theirs = Number(new TextDecoder().decode(value).trim());
      expect(theirs - pool.range.base).toBeGreaterThanOrEqual(0);
      const mine = await pool.allocate();
      expect(mine.identity.uid).not.toBe(theirs);
      expect(await caught(() => pool.allocate())).toBeInstanceOf(IdentityPoolExhaustedError);
      mine.release();
    } finally {
      other.kill("SIGKILL");
      await other.exited;
    }
  });

  test("a claim directory others can write to is refused with the fix, and nothing is held", async () => {
    const dir = tempDir("claims-open", 0o777);
    const pool = new IdentityPool(freshIdentityRange(1), dir);
    const err = await caught(() => pool.allocate());
    expect(err).toBeInstanceOf(CordonError);
    expect((err as CordonError).code).toBe("invalid-config");
    expect((err as Error).message).toContain(`the identity claim directory ${dir} is not safe`);
    expect((err as Error).message).toContain("writable by other users");
    chmodSync(dir, 0o700);
    const lease = await pool.allocate();
    lease.release();
  });
});

describe("ids the rest of the host uses are skipped", () => {
  test.skipIf(!IS_ROOT)("an id a live host process runs as is skipped (whoever claims or does not claim it)", async () => {
    const pool = freshPool(2);
    const squatter = spawnAs(pool.range.base, ["/bin/sleep", "30"]);
    try {
      expect(await runningAs(squatter.pid, pool.range.base)).toBe(true);
      const lease = await pool.allocate();
      expect(lease.identity.uid).toBe(pool.range.base + 1);
      const err = await caught(() => pool.allocate());
      expect((err as IdentityPoolExhaustedError).taken).toEqual({ thisProcess: 1, otherSupervisors: 0, hostUsers: 1 });
      lease.release();
    } finally {
      await squatter.stop();
    }
  });

  test("ids named by /etc/passwd (uid, primary gid) or /etc/group are in use", () => {
    const dir = tempDir("accounts", 0o755);
    const range = { base: 3_000_000_000, count: 10 };
    writeFileSync(join(dir, "passwd"), "root:x:0:0::/root:/bin/sh\nsvc:x:3000000002:3000000005::/:/bin/false\nbad:x::\n");
    writeFileSync(join(dir, "group"), "svcgrp:x:3000000007:\nother:x:12:\n");
    const used = accountIdsIn(range, [
      { path: join(dir, "passwd"), fields: [2, 3] },
      { path: join(dir, "group"), fields: [2] },
      { path: join(dir, "absent"), fields: [2] },
    ]);
    expect([...used].sort()).toEqual([3_000_000_002, 3_000_000_005, 3_000_000_007]);
    // This host's own account files name nothing in the default range.
    expect(accountIdsIn(DEFAULT_IDENTITY_RANGE).size).toBe(0);
  });
});

describe("config", () => {
  test("the default range is 64 ids from 2000000000, in systemd's unused 1879048192–2147352575", () => {
    const { identity } = parseConfig({});
    expect(identity).toEqual({ base: 2_000_000_000, count: 64 });
    expect(identity.base).toBeGreaterThanOrEqual(1_879_048_192);
    expect(identity.base + identity.count - 1).toBeLessThanOrEqual(2_147_352_575);
  });

  test.each([
    [{ base: 500 }, "identity.base: ids below 1000 are system accounts"],
    [{ base: 65_000, count: 1000 }, "identity.base: the range must not hold 65534 (nobody)"],
    [{ base: 4_294_967_290, count: 10 }, "identity.count: base + count - 1 must be at most 4294967294"],
    [{ count: 0 }, "identity.count:"],
    [{ base: 2_000_000_000.5 }, "identity.base:"],
  ])("an invalid range %j is refused: %s", (identity, message) => {
    const err = (() => {
      try {
        parseConfig({ identity });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigValidationError);
    expect((err as Error).message).toContain(message);
  });
});

describe("processIdsIn", () => {
  test.skipIf(process.getuid?.() !== 0)("the blocking scan (nothing in flight) and the parallel one see the same ids: a live process's, not an exited one's", async () => {
    const range = { base: 1_999_000_000, count: 100 };
    const live = Bun.spawn(["sleep", "5"], { uid: 1_999_000_007, gid: 1_999_000_009 });
    try {
      await Bun.sleep(50);
      const blocking = await processIdsIn(range, "/proc", { blocking: true });
      const parallel = await processIdsIn(range);
      expect([...blocking].sort()).toEqual([1_999_000_007, 1_999_000_009]);
      expect([...parallel].sort()).toEqual([...blocking].sort());
    } finally {
      live.kill();
      await live.exited;
    }
    expect([...(await processIdsIn(range, "/proc", { blocking: true }))]).toEqual([]);
  });
});

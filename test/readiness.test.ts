/**
 * Readiness (issue 7): real probes on this host, no mocks. Every report below comes from
 * hostile probe scripts really run by bwrap, rootless and unsafe; the broken providers are
 * broken for real (a binary that does not exist, a "bwrap" that fails to start).
 *
 * One full readiness round (startCordon with the shipped providers) is shared by most
 * tests: it runs once in beforeAll, under a private TMPDIR, a private runRoot and a unique
 * cgroupParent, while watchers record what the probes created on the host.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { join, resolve } from "node:path";
import { Cordon, LAYER_NAMES, SandboxUnavailableError, startCordon, type ReadinessReport, type ReadinessStatus, type StartedCordon } from "../src/api/index.ts";
import { READINESS_CELLS } from "../src/readiness/types.ts";
import { cellsNeeded } from "../src/readiness/needs.ts";
import { seccompCell, type SyscallObservations } from "../src/readiness/seccomp-cell.ts";
import { DEFAULT_POLICY, mergePolicy, type RunResult } from "../src/api/index.ts";
import { readinessTable } from "../src/readiness/table.ts";
import {
  builtinProviders,
  builtinRunners,
  BwrapProvider,
  readinessClient,
  RootlessProvider,
  sandboxHealthCollector,
  UnsafeNoIsolationProvider,
} from "../plugins/index.ts";
import { caught, IS_ROOT, isSandboxHostUid, mountsUnder, removeTempDirs, runCgroupsIn, runRootEntries, sleep, tempDir } from "./support.ts";
import { hostFacts } from "../src/host.ts";

const CLI = resolve(import.meta.dir, "../bin/cordon.ts");
const CGROUP_PARENT = `cordon-readiness-test-${process.pid}`;
const MISSING_BWRAP = "/nonexistent/bwrap";
const runners = builtinRunners();

/** A directory the sandbox uid can reach (0711), removed at the end. */
const dir = tempDir("readiness", 0o711);
const runRootOf = (label: string) => join(dir, `runs-${label}`);

/** A "bwrap" that answers --version and --help like the real one but fails to start any sandbox. */
const fakeBwrapDir = join(dir, "fake-bin");
mkdirSync(fakeBwrapDir, { mode: 0o711 });
const FAKE_BWRAP = join(fakeBwrapDir, "bwrap");
writeFileSync(
  FAKE_BWRAP,
  `#!/bin/sh
case "$1" in
  --version) echo "bubblewrap 0.8.0" ;;
  --help) exec /usr/bin/bwrap --help ;;
  *) echo "bwrap: broken on purpose" >&2; exit 1 ;;
esac
`,
  { mode: 0o755 },
);

const rootlessProbe = await new RootlessProvider().probe(hostFacts());
const ROOTLESS = rootlessProbe.available;
if (!ROOTLESS) console.warn(`readiness tests: rootless provider unavailable here (${rootlessProbe.reason}); rootless checks are skipped`);

const statuses = (r: ReadinessReport) => Object.fromEntries(READINESS_CELLS.map((c) => [c, r.cells[c].status]));
const reportOf = (reports: readonly ReadinessReport[], name: string): ReadinessReport => {
  const r = reports.find((x) => x.provider === name);
  if (!r) throw new Error(`no readiness report for ${name} (have ${reports.map((x) => x.provider).join(", ")})`);
  return r;
};
const describeReport = (r: ReadinessReport) => JSON.stringify({ provider: r.provider, reason: r.reason, cells: r.cells }, null, 1);

/** Every directory of CGROUP_PARENT: one per v1 hierarchy, or the v2 one. */
function parentCgroupDirs(): string[] {
  const root = "/sys/fs/cgroup";
  const candidates = [join(root, CGROUP_PARENT), ...readdirSync(root).map((h) => join(root, h, CGROUP_PARENT))];
  return [...new Set(candidates.filter((d) => existsSync(d)))];
}

const runCgroupsLeft = () => runCgroupsIn(parentCgroupDirs());

function readOr(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

interface SeenProcess {
  pid: number;
  start: string;
  uid: number;
  cmdline: string;
}

/** Field 22 of /proc/PID/stat (start time) and the state; null when gone. */
function statOf(pid: number): { start: string; state: string } | null {
  const stat = readOr(`/proc/${pid}/stat`);
  if (stat === null) return null;
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0]!, start: fields[19]! };
}

/** The same process (pid and start time) still exists and is not a zombie. */
function stillAlive(p: SeenProcess): boolean {
  const s = statOf(p.pid);
  return s !== null && s.start === p.start && s.state !== "Z";
}

/** Records, every few ms, the processes inside the run cgroups under CGROUP_PARENT. */
function cgroupSampler(): { seen: Map<string, SeenProcess>; stop: () => void } {
  const seen = new Map<string, SeenProcess>();
  const timer = setInterval(() => {
    for (const d of parentCgroupDirs()) {
      let entries: string[];
      try {
        entries = readdirSync(d).filter((n) => n.startsWith("run-"));
      } catch {
        continue;
      }
      for (const e of entries) {
        for (const line of (readOr(join(d, e, "cgroup.procs")) ?? "").split("\n")) {
          const pid = Number(line);
          if (!pid) continue;
          const s = statOf(pid);
          const status = readOr(`/proc/${pid}/status`);
          if (!s || !status) continue;
          const key = `${pid}:${s.start}`;
          if (seen.has(key)) continue;
          const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
          seen.set(key, { pid, start: s.start, uid, cmdline: (readOr(`/proc/${pid}/cmdline`) ?? "").split("\0").join(" ").trim() });
        }
      }
    }
  }, 10);
  return { seen, stop: () => clearInterval(timer) };
}

/** Live (non-zombie) host processes whose cgroup lies under CGROUP_PARENT. */
function processesInParentCgroup(): string[] {
  const found: string[] = [];
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    const cg = readOr(`/proc/${n}/cgroup`);
    if (!cg) continue;
    const inside = cg.split("\n").some((l) => {
      const path = l.split(":").slice(2).join(":");
      return path === `/${CGROUP_PARENT}` || path.startsWith(`/${CGROUP_PARENT}/`);
    });
    if (inside && statOf(Number(n))?.state !== "Z") found.push(`${n} ${(readOr(`/proc/${n}/cmdline`) ?? "").split("\0").join(" ")}`);
  }
  return found;
}

/** Names created in `path` while watching (inotify), optionally filtered by prefix. */
function recordCreations(path: string, prefix = ""): { names: string[]; close: () => void } {
  const names: string[] = [];
  const w: FSWatcher = watch(path, (_event, name) => {
    const n = name === null ? "" : String(name);
    if (n.startsWith(prefix) && !names.includes(n)) names.push(n);
  });
  return { names, close: () => w.close() };
}

const probeFilesIn = (d: string) => readdirSync(d).filter((n) => n.startsWith(".cordon-probe-"));
const HOST_DIRS = ["/", "/etc", "/usr"];

async function cli(args: string[], env: Record<string, string>) {
  const p = Bun.spawn([process.execPath, CLI, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

function writeConfig(name: string, config: Record<string, unknown>): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(config));
  return path;
}

function script(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, body);
  return path;
}

/** A Cordon whose only provider is bwrap at a path where nothing exists. */
function missingBwrapConfig() {
  return {
    config: { providerOrder: ["bwrap"], runRoot: runRootOf("missing"), cgroupParent: CGROUP_PARENT },
    plugins: { providers: [new BwrapProvider({ binary: MISSING_BWRAP })], runners },
  };
}

// ---------------------------------------------------------------------------------------
// The shared round: startCordon with the shipped providers and a good config.

const sharedRunRoot = runRootOf("shared");
const privateTmp = tempDir("readiness-tmp", 0o711);
let started: StartedCordon;
const logged: string[] = [];
const observed = {
  canariesCreated: [] as string[],
  hostProbeFilesBefore: {} as Record<string, string[]>,
  hostProbeFilesCreated: [] as string[],
  sampled: [] as SeenProcess[],
  aliveRightAfter: [] as string[],
  inParentRightAfter: [] as string[],
};

beforeAll(async () => {
  if (!IS_ROOT) throw new Error("readiness tests expect a root supervisor (Debian 12 test host)");
  mkdirSync(sharedRunRoot, { mode: 0o711 });
  for (const d of HOST_DIRS) observed.hostProbeFilesBefore[d] = probeFilesIn(d);
  const hostWatch = HOST_DIRS.map((d) => recordCreations(d, ".cordon-probe-"));
  const tmpWatch = recordCreations(privateTmp, "cordon-canary-");
  const sampler = cgroupSampler();
  const savedTmp = process.env.TMPDIR;
  process.env.TMPDIR = privateTmp; // the probes' canary dirs go here, away from other users of /tmp
  try {
    started = await startCordon({ runRoot: sharedRunRoot, cgroupParent: CGROUP_PARENT }, { providers: builtinProviders(), runners }, { log: (l) => logged.push(l) });
  } finally {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    sampler.stop();
  }
  // Right after readiness resolved: which probe processes are still there.
  observed.sampled = [...sampler.seen.values()];
  observed.aliveRightAfter = observed.sampled.filter(stillAlive).map((p) => `${p.pid} uid ${p.uid}: ${p.cmdline}`);
  observed.inParentRightAfter = processesInParentCgroup();
  await sleep(100); // let inotify deliver the last events
  for (const w of hostWatch) {
    observed.hostProbeFilesCreated.push(...w.names);
    w.close();
  }
  observed.canariesCreated = [...tmpWatch.names];
  tmpWatch.close();
});

afterAll(() => {
  // The parent cgroups this file made (empty by now unless a test found leftovers).
  for (const d of parentCgroupDirs()) {
    try {
      rmdirSync(d);
    } catch (e) {
      console.warn(`readiness tests: could not remove ${d}: ${(e as NodeJS.ErrnoException).code}`);
    }
  }
  removeTempDirs();
});

describe("what readiness proves on this host", () => {
  test("bwrap is proven for every cell, runs the default policy, and says allowlists are refused", () => {
    const bwrap = reportOf(started.readiness, "bwrap");
    expect(bwrap.available).toBe(true);
    expect(bwrap.isolating).toBe(true);
    expect(bwrap.version).toMatch(/^0\.\d+\.\d+$/);
    expect(statuses(bwrap), describeReport(bwrap)).toEqual(Object.fromEntries(READINESS_CELLS.map((c) => [c, "proven"])));
    for (const l of LAYER_NAMES) expect(bwrap.layers[l].status).toBe("proven");
    expect(bwrap.runsDefaultPolicy).toBe(true);
    // Details say what was observed, not just "ok".
    expect(bwrap.cells.privilege.detail).toMatch(/^host uid 20000000\d\d, no capabilities/); // the probe run's own, from the pool
    expect(bwrap.cells.identity.detail).toMatch(/^two concurrent runs each held all \d+ inotify instances of fs.inotify.max_user_instances at once/);
    expect(bwrap.cells.identity.detail).toContain("from the pool 2000000000–2000000063, not the supervisor's uid 0");
    expect(bwrap.cells.memory.detail).toContain("cgroup v"); // the whole tree's cap, cgroups being usable here
    expect(bwrap.cells.pids.detail).toMatch(/fork failed after \d+ processes/);
    // /dev/shm and stdin are attacked too: a write past the /dev/shm cap stops, stdin is cut at its cap.
    expect(bwrap.cells.filesystem.detail).toMatch(/\/dev\/shm stopped at \d+ of \d+ bytes/);
    expect(bwrap.cells.output.detail).toMatch(/stdin cut at \d+ of \d+ bytes/);
    // The syscall filter: each attack named with what stopped it.
    expect(bwrap.cells.seccomp.detail).toStartWith("every syscall attack failed: io_uring_setup EPERM; userfaultfd EPERM; perf_event_open EPERM");
    expect(bwrap.cells.seccomp.detail).toContain("keyctl on a key in the supervisor's session keyring: read by serial EPERM, update EPERM, search of @s EPERM; the payload never appeared, the key is unchanged");
    expect(bwrap.cells.seccomp.detail).toContain("AF_PACKET socket EAFNOSUPPORT (the family filter)");
    expect(bwrap.cells.seccomp.detail).toContain("an x32 syscall killed its process (SIGSYS: the ABI check)");
    expect(bwrap.cells.seccomp.detail).toContain("unshare(CLONE_NEWUSER) EPERM");
    if (existsSync("/dev/vsock")) expect(bwrap.cells.seccomp.detail).toContain("AF_VSOCK socket (/dev/vsock present on the host) EAFNOSUPPORT");

    const fit = Object.fromEntries(bwrap.policies.map((p) => [p.name, p]));
    expect(Object.keys(fit)).toEqual(["default (network deny)", "allowlist egress", "unrestricted egress, metadata blocked"]);
    expect(fit["default (network deny)"]).toEqual({ name: "default (network deny)", runsUnderFail: true, reasons: [] });
    expect(fit["allowlist egress"]!.runsUnderFail).toBe(false);
    expect(fit["allowlist egress"]!.reasons.join("\n")).toContain("cannot filter egress");
    expect(fit["unrestricted egress, metadata blocked"]!.runsUnderFail).toBe(false);
  });

  test.skipIf(!ROOTLESS)("rootless is proven too and runs the allowlist policy under fail", () => {
    const rootless = reportOf(started.readiness, "rootless");
    expect(statuses(rootless), describeReport(rootless)).toEqual(Object.fromEntries(READINESS_CELLS.map((c) => [c, "proven"])));
    const fit = Object.fromEntries(rootless.policies.map((p) => [p.name, p]));
    expect(fit["default (network deny)"]!.runsUnderFail).toBe(true);
    expect(fit["allowlist egress"]).toEqual({ name: "allowlist egress", runsUnderFail: true, reasons: [] });
  });

  test("unsafe is not enforced except wall, output and env, and never runs the default policy", () => {
    const unsafe = reportOf(started.readiness, "unsafe");
    expect(unsafe.available).toBe(true);
    expect(unsafe.isolating).toBe(false);
    const expected: Record<string, ReadinessStatus> = {
      filesystem: "not-enforced",
      network: "not-enforced",
      memory: "not-enforced",
      pids: "not-enforced",
      cpu: "not-enforced",
      wall: "proven",
      fsize: "not-enforced",
      output: "proven",
      privilege: "not-enforced",
      seccomp: "not-enforced",
      env: "proven",
      identity: "not-enforced",
    };
    expect(statuses(unsafe), describeReport(unsafe)).toEqual(expected);
    for (const l of ["filesystem", "network", "resources", "privilege"] as const) expect(unsafe.layers[l].status).toBe("not-enforced");
    expect(unsafe.layers.env.status).toBe("proven");
    // The same /dev/shm attack that bwrap stops succeeds on the host's /dev/shm.
    expect(unsafe.cells.filesystem.detail).toMatch(/\/dev\/shm took \d+ bytes/);
    expect(unsafe.runsDefaultPolicy).toBe(false);
    expect(unsafe.policies.every((p) => !p.runsUnderFail)).toBe(true);
    expect(unsafe.cells.privilege.detail).toContain("host uid 0");
    expect(unsafe.cells.memory.detail).toMatch(/^held \d+ bytes/);
    // Every syscall attack got through and is named; the key was read from the inherited session keyring.
    const seccomp = unsafe.cells.seccomp.detail;
    for (const attack of ["io_uring_setup ok", "userfaultfd ok", "perf_event_open ok", "AF_PACKET socket ok", "an x32 syscall was not killed", "unshare(CLONE_NEWUSER) ok"]) expect(seccomp).toContain(attack);
    expect(seccomp).toContain("search of @s ok");
    expect(seccomp).toContain("the payload appeared in the run's output, the key was changed or removed");
  });

  test("the unsafe probe never wrote into /usr, /etc or / on the host", () => {
    expect(observed.hostProbeFilesCreated).toEqual([]);
    for (const d of HOST_DIRS) expect(probeFilesIn(d)).toEqual(observed.hostProbeFilesBefore[d]!);
    // It tried only the canary dir, and the report says so.
    expect(reportOf(started.readiness, "unsafe").cells.filesystem.detail).toContain(`wrote:${privateTmp}/cordon-canary-`);
  });

  test("every report records how long it took", () => {
    for (const r of started.readiness) {
      expect(typeof r.durationMs).toBe("number");
      expect(r.durationMs).toBeGreaterThan(0);
    }
  });
});

describe("the probes leave nothing behind", () => {
  test("no run directories or scratch mounts under the runRoot", () => {
    expect(existsSync(sharedRunRoot)).toBe(true);
    expect(runRootEntries(sharedRunRoot)).toEqual([]);
    expect(mountsUnder(sharedRunRoot)).toEqual([]);
  });

  test("no cordon-canary-* dirs left in the temp dir", () => {
    expect(observed.canariesCreated.length).toBeGreaterThan(0); // the canaries really went there
    expect(readdirSync(privateTmp).filter((n) => n.startsWith("cordon-canary-"))).toEqual([]);
  });

  test("no run-* cgroups left under the cgroupParent", () => {
    expect(existsSync(join("/sys/fs/cgroup/pids", CGROUP_PARENT))).toBe(true); // the probes used it
    expect(runCgroupsLeft()).toEqual([]);
  });

  test("no probe process (the pids probe's sleep 1 included) outlives readiness", async () => {
    expect(observed.inParentRightAfter).toEqual([]);
    expect(observed.aliveRightAfter).toEqual([]);
    // And nothing in the parent cgroup appears later either.
    await sleep(1500);
    expect(processesInParentCgroup()).toEqual([]);
    const sleeps = observed.sampled.filter((p) => p.cmdline === "sleep 1");
    for (const p of sleeps) expect(isSandboxHostUid(p.uid)).toBe(true);
    console.log(`readiness tests: saw ${observed.sampled.length} probe processes in run cgroups (${sleeps.length} of them the pids probe's sleep 1)`);
  });
});

describe("startCordon", () => {
  test("a good config: no banner, ready on bwrap, readiness for every provider", () => {
    expect(started.banner).toEqual([]);
    expect(logged).toEqual([]);
    expect(started.check).toEqual({ provider: "bwrap", ready: true, reasons: [] });
    const names = started.readiness.map((r) => r.provider);
    expect(names).toEqual(started.cordon.providerNames());
    expect(names).toEqual(builtinProviders().map((p) => p.name));
    expect(names).toEqual(expect.arrayContaining(["bwrap", "rootless", "unsafe"]));
  });

  test.skipIf(!ROOTLESS)("auto with an allowlist policy: rootless is the provider", async () => {
    const lines: string[] = [];
    const s = await startCordon(
      { provider: "auto", policy: { network: { mode: "allowlist", allow: ["192.0.2.10:443"] } }, runRoot: runRootOf("auto-allow"), cgroupParent: CGROUP_PARENT },
      { providers: builtinProviders(), runners },
      { log: (l) => lines.push(l) },
    );
    expect(s.check, JSON.stringify(s.readiness.map(statuses))).toEqual({ provider: "rootless", ready: true, reasons: [] });
    expect(s.banner).toEqual([]);
    expect(lines).toEqual([]);
  });

  test("a missing provider binary: a banner naming the reason, saying runs are refused under fail", async () => {
    const lines: string[] = [];
    const { config, plugins } = missingBwrapConfig();
    const s = await startCordon(config, plugins, { log: (l) => lines.push(l) });
    expect(lines).toEqual(s.banner);
    expect(s.banner[0]).toContain("CANNOT be enforced by provider bwrap");
    expect(s.banner.some((l) => l.includes(`bwrap not found at ${MISSING_BWRAP}`))).toBe(true);
    expect(s.banner.at(-1)).toContain("onUnavailable=fail will be refused");
    expect(s.check.ready).toBe(false);
    expect(s.check.provider).toBe("bwrap");
    expect(s.check.reasons).toEqual([expect.stringContaining(`bwrap: bwrap not found at ${MISSING_BWRAP}`)]);
    // And it is so: a run is refused, nothing runs.
    const e = await caught(() => s.cordon.run({ script: { file: script("never.sh", "echo RAN\n") }, args: [] }));
    expect(e).toBeInstanceOf(SandboxUnavailableError);
  });
});

describe("a provider that cannot run", () => {
  test("missing binary: not-enforced everywhere with the reason; check() is not ready", async () => {
    const { config, plugins } = missingBwrapConfig();
    const cordon = new Cordon(config, plugins);
    const [report] = await cordon.readiness();
    expect(report!.provider).toBe("bwrap");
    expect(report!.available).toBe(false);
    expect(report!.reason).toContain(`bwrap not found at ${MISSING_BWRAP}`);
    for (const c of READINESS_CELLS) expect(report!.cells[c]).toEqual({ status: "not-enforced", detail: report!.reason! });
    for (const l of LAYER_NAMES) expect(report!.layers[l].status).toBe("not-enforced");
    expect(report!.runsDefaultPolicy).toBe(false);
    expect(report!.policies.length).toBeGreaterThan(0);
    for (const fit of report!.policies) expect(fit).toEqual({ name: fit.name, runsUnderFail: false, reasons: [report!.reason!] });
    const check = await cordon.check();
    expect(check.ready).toBe(false);
    expect(check.reasons.join("\n")).toContain("bwrap not found");
  });

  test("`cordon readiness` with bwrap missing from PATH: not-enforced with the reason, exit non-zero", async () => {
    const config = writeConfig("cli-config.json", { runRoot: runRootOf("cli-nopath"), cgroupParent: CGROUP_PARENT });
    const r = await cli(["readiness", "--config", config, "--json"], { PATH: join(dir, "empty-path") });
    expect(r.code).not.toBe(0);
    const out = JSON.parse(r.stdout) as { ready: boolean; providers: ReadinessReport[] };
    expect(out.ready).toBe(false);
    const bwrap = reportOf(out.providers, "bwrap");
    expect(bwrap.available).toBe(false);
    for (const c of READINESS_CELLS) expect(bwrap.cells[c]).toEqual({ status: "not-enforced", detail: expect.stringContaining("bwrap not found on PATH") });
    expect(bwrap.runsDefaultPolicy).toBe(false);
  });

  test("a bwrap that fails to start: unknown with the error, never proven, no crash", async () => {
    const cordon = new Cordon(
      { providerOrder: ["bwrap"], runRoot: runRootOf("fake"), cgroupParent: CGROUP_PARENT },
      { providers: [new BwrapProvider({ binary: FAKE_BWRAP })], runners },
    );
    const [report] = await cordon.readiness();
    expect(report!.available).toBe(true); // its --version looked fine
    for (const c of READINESS_CELLS) {
      expect(report!.cells[c].status).toBe("unknown");
      expect(report!.cells[c].detail).toContain("bwrap: broken on purpose");
    }
    for (const l of LAYER_NAMES) expect(report!.layers[l].status).toBe("unknown");
    expect(report!.runsDefaultPolicy).toBe(false);
    const check = await cordon.check();
    expect(check.ready).toBe(false);
    expect(check.reasons.join("\n")).toContain("broken on purpose");
    expect(readinessTable([report!])).toMatch(/^bwrap\s+0\.8\.0\s+(\?\s+)+refused$/m);
    expect(runRootEntries(runRootOf("fake"))).toEqual([]);
  });

  test("`cordon readiness` table shows ? for a bwrap that fails to start, exit non-zero", async () => {
    const config = writeConfig("cli-fake.json", { runRoot: runRootOf("cli-fake"), cgroupParent: CGROUP_PARENT });
    const r = await cli(["readiness", "--config", config], { PATH: `${fakeBwrapDir}:${process.env.PATH ?? "/usr/bin:/bin"}` });
    expect(r.code).toBe(1);
    const row = r.stdout.split("\n").find((l) => l.startsWith("bwrap "));
    expect(row, r.stdout).toBeDefined();
    const cols = row!.split(/\s+/);
    expect(cols[1]).toBe("0.8.0");
    expect(cols.slice(2, -1), row).toEqual(READINESS_CELLS.map(() => "?"));
    expect(cols.at(-1)).toBe("refused");
    const unwrapped = r.stdout.replace(/\n +/g, " "); // the details are wrapped under their line
    expect(unwrapped).toMatch(/\? bwrap, every cell: probe did not run: the sandbox failed to start \([^)]*\): bwrap: broken on purpose/);
    expect(r.stdout).toContain("NOT ready");
  });

  test("a config with a bogus extra bind really breaks runs (bwrap fails to start)", async () => {
    const cordon = new Cordon(
      { providerOrder: ["bwrap"], runRoot: runRootOf("bogus-run"), cgroupParent: CGROUP_PARENT, policy: { filesystem: { readOnlyBinds: ["/nonexistent-cordon-bind"] } } },
      { providers: [new BwrapProvider()], runners },
    );
    const r = await cordon.run({ script: { file: script("bind.sh", "echo RAN\n") }, args: [] });
    expect(r.outcome).toBe("error");
    expect(r.error?.message).toContain("/nonexistent-cordon-bind");
    expect(r.stdout).not.toContain("RAN");
  });

  // PRODUCT BUG: readiness probes the shipped default policy, never the configured one, so
  // a configured bind that makes every run fail still reads as proven and check() says ready
  // (startCordon prints no banner). Flip to `test` once readiness exercises the config.
  test("a config with a bogus extra bind makes readiness unknown (not proven) and check() not ready", async () => {
    const cordon = new Cordon(
      { providerOrder: ["bwrap"], runRoot: runRootOf("bogus"), cgroupParent: CGROUP_PARENT, policy: { filesystem: { readOnlyBinds: ["/nonexistent-cordon-bind"] } } },
      { providers: [new BwrapProvider()], runners },
    );
    const [report] = await cordon.readiness();
    expect(report!.layers.filesystem.status).toBe("unknown");
    expect(report!.layers.filesystem.detail).toContain("/nonexistent-cordon-bind");
    expect(report!.runsDefaultPolicy).toBe(false);
    expect((await cordon.check()).ready).toBe(false);
  });
});

describe("the seccomp cell", () => {
  test("with privilege.seccomp false every attack the filter stops gets through and is named; the fresh keyring still hides @s; such a policy does not need the cell", async () => {
    const policy = { privilege: { seccomp: false }, onUnavailable: "degrade" as const };
    const cordon = new Cordon({ providerOrder: ["bwrap"], runRoot: runRootOf("seccomp-off"), cgroupParent: CGROUP_PARENT, policy }, { providers: [new BwrapProvider()], runners });
    const [report] = await cordon.readiness();
    const cell = report!.cells.seccomp;
    expect(cell.status, describeReport(report!)).toBe("not-enforced");
    expect(cell.detail).toStartWith("syscall attacks that succeeded: io_uring_setup ok; userfaultfd ok; perf_event_open ok; keyctl");
    // The canary is readable by anyone who knows its serial: only the filter stood between; @s is the run's own.
    expect(cell.detail).toContain("read by serial ok");
    expect(cell.detail).toContain("search of @s ENOKEY");
    expect(cell.detail).toContain("an x32 syscall was not killed (ENOSYS): no ABI check");
    if (existsSync("/dev/vsock")) expect(cell.detail).toMatch(/AF_VSOCK socket \(\/dev\/vsock present on the host\) ok/);
    expect(report!.layers.privilege.status).toBe("not-enforced");
    expect(cellsNeeded(mergePolicy(DEFAULT_POLICY, policy))).not.toContain("seccomp");
    expect(cellsNeeded(DEFAULT_POLICY)).toContain("seccomp");
    expect(runRootEntries(runRootOf("seccomp-off"))).toEqual([]);
  });

  describe("the judge trusts what the supervisor sees over what the probe says (pure)", () => {
    const held: Record<string, string> = {
      io_uring: "EPERM", userfaultfd: "EPERM", perf_event_open: "EPERM", vsock: "EAFNOSUPPORT", packet: "EAFNOSUPPORT", x32: "killed:SIGSYS", i386: "killed:SIGSEGV", unshare_user: "returned:EPERM",
      key_read: "EPERM", key_update: "EPERM", key_search_s: "EPERM", key_search_u: "EPERM", key_search_us: "EPERM",
    };
    const observe = (probe: Record<string, string>, stdout = "", key: SyscallObservations["key"] = { payload: "cordon-key-abc", placementError: null, intact: true }): SyscallObservations => ({
      run: { outcome: "ok", exitCode: 0, signal: null, stdout, stderr: "", error: null } as unknown as RunResult,
      probe,
      key,
      vsockDevice: true,
    });

    test("every attack held: proven, each named", () => {
      const v = seccompCell(observe(held));
      expect(v.status).toBe("proven");
      expect(v.detail).toContain("i386 int 0x80 refused by the host (SIGSEGV), not by the filter");
    });

    test("the payload in the output, or a changed key, is not-enforced whatever the probe printed", () => {
      expect(seccompCell(observe(held, "noise cordon-key-abc noise")).status).toBe("not-enforced");
      const changed = seccompCell(observe(held, "", { payload: "cordon-key-abc", placementError: null, intact: false }));
      expect(changed.status).toBe("not-enforced");
      expect(changed.detail).toContain("the key was changed or removed");
    });

    test("an x32 call that returns instead of dying, or one attack through, is named in the not-enforced detail", () => {
      const v = seccompCell(observe({ ...held, x32: "returned:ENOSYS", vsock: "ok:bound port 7" }));
      expect(v.status).toBe("not-enforced");
      expect(v.detail).toStartWith("syscall attacks that succeeded: AF_VSOCK socket (/dev/vsock present on the host) ok:bound port 7; an x32 syscall was not killed (ENOSYS)");
    });

    test("no python3 inside, a missing report or a canary not placed: unknown with the reason", () => {
      expect(seccompCell(observe({ python3: "missing" }))).toEqual({ status: "unknown", detail: expect.stringContaining("python3 not found inside the sandbox") });
      const { x32: _x32, ...partial } = held;
      expect(seccompCell(observe(partial)).detail).toContain("did not make x32 (no report)");
      expect(seccompCell(observe(held, "", { payload: "p", placementError: "errno 122", intact: true })).status).toBe("unknown");
    });
  });
});

describe("sandbox-health collector", () => {
  const collector = sandboxHealthCollector("bwrap");
  const config = collector.config.parse({ version: 1, data: {} });

  test("ready host: status ok, bwrap proven; not ready: crit with reasons and an error; the aggregate folds both", async () => {
    const ok = await collector.execute({ config, client: readinessClient(started.cordon), pluginId: "cordon" });
    expect(ok.error).toBeUndefined();
    expect(ok.result.status).toBe("ok");
    expect(ok.result.ready).toBe(true);
    expect(ok.result.provider).toBe("bwrap");
    expect(ok.result.layers.bwrap!.filesystem).toBe("proven");
    expect(ok.result.layers.unsafe!.filesystem).toBe("not-enforced");
    expect(collector.result.parse({ version: 1, data: ok.result })).toEqual(ok.result);

    const { config: missingConfig, plugins } = missingBwrapConfig();
    const crit = await collector.execute({ config, client: readinessClient(new Cordon(missingConfig, plugins)), pluginId: "cordon" });
    expect(crit.result.status).toBe("crit");
    expect(crit.result.ready).toBe(false);
    expect(crit.result.reasons).toEqual([expect.stringContaining("bwrap not found")]);
    expect(crit.error).toBeString();
    expect(crit.error).toContain("bwrap not found");
    expect(crit.result.layers.bwrap!.filesystem).toBe("not-enforced");

    let agg = collector.mergeResult(undefined, { status: "healthy", metadata: ok.result });
    agg = collector.mergeResult(agg, { status: "unhealthy", metadata: crit.result });
    agg = collector.mergeResult(agg, { status: "healthy", metadata: ok.result });
    expect(agg.readyRate).toEqual({ _type: "rate", _success: 2, _total: 3, rate: 67 });
    expect(agg.notReadyCount).toEqual({ _type: "counter", count: 1 });
  });
});

describe("auto uses what readiness proved", () => {
  test("providerOrder [unsafe, bwrap]: after readiness a default-policy run goes to bwrap; none fits: 'readiness did not prove'", async () => {
    const cordon = new Cordon(
      { provider: "auto", providerOrder: ["unsafe", "bwrap"], runRoot: runRootOf("auto"), cgroupParent: CGROUP_PARENT },
      { providers: [new UnsafeNoIsolationProvider(), new BwrapProvider()], runners },
    );
    const reports = await cordon.readiness();
    expect(reportOf(reports, "unsafe").runsDefaultPolicy).toBe(false);
    expect(reportOf(reports, "bwrap").runsDefaultPolicy, describeReport(reportOf(reports, "bwrap"))).toBe(true);
    const r = await cordon.run({ script: { file: script("who.sh", "id -u\n") }, args: [] });
    expect(r.outcome).toBe("ok");
    expect(r.sandbox?.provider.name).toBe("bwrap");
    expect(r.stdout).toBe("65534\n");
    // An allowlist: bwrap cannot filter, unsafe is not proven: refused, both reasons named.
    const e = await caught(() => cordon.run({ script: { file: script("never2.sh", "echo RAN\n") }, args: [], policy: { network: { mode: "allowlist", allow: ["192.0.2.10:443"] } } }));
    expect(e).toBeInstanceOf(SandboxUnavailableError);
    const reasons = (e as SandboxUnavailableError).reasons.join("\n");
    expect(reasons).toContain("unsafe: readiness did not prove");
    expect(reasons).toContain("bwrap: network.egress");
  });

  test("providerOrder [unsafe]: refused; once readiness ran, the reason is that readiness did not prove it", async () => {
    const cordon = new Cordon(
      { provider: "auto", providerOrder: ["unsafe"], policy: { onUnavailable: "fail" }, runRoot: runRootOf("auto-unsafe"), cgroupParent: CGROUP_PARENT },
      { providers: [new UnsafeNoIsolationProvider()], runners },
    );
    const file = script("never3.sh", "echo RAN > /dev/null\n");
    const before = await caught(() => cordon.run({ script: { file }, args: [] }));
    expect(before).toBeInstanceOf(SandboxUnavailableError);
    expect((before as SandboxUnavailableError).reasons.join("\n")).not.toContain("readiness did not prove");
    await cordon.readiness();
    const after = await caught(() => cordon.run({ script: { file }, args: [] }));
    expect(after).toBeInstanceOf(SandboxUnavailableError);
    const reasons = (after as SandboxUnavailableError).reasons;
    expect(reasons[0]).toMatch(/^unsafe: readiness did not prove .*filesystem/);
    expect(reasons[0]).toContain("privilege");
  });

  test("a provider whose dry plan passes but whose proof failed is skipped once readiness ran", async () => {
    // rootless with a bwrap that cannot start: it plans fine, so before readiness auto picks it.
    const cordon = new Cordon(
      { provider: "auto", providerOrder: ["rootless", "bwrap"], runRoot: runRootOf("auto-fake"), cgroupParent: CGROUP_PARENT },
      { providers: [new RootlessProvider({ bwrap: FAKE_BWRAP }), new BwrapProvider()], runners },
    );
    const file = script("hi.sh", "echo hi\n");
    const before = await cordon.run({ script: { file }, args: [] });
    expect(before.outcome).toBe("error");
    expect(before.error?.message).toContain("broken on purpose");
    const reports = await cordon.readiness();
    expect(reportOf(reports, "rootless").layers.filesystem.status).toBe("unknown");
    const after = await cordon.run({ script: { file }, args: [] });
    expect(after.outcome, JSON.stringify(after.error)).toBe("ok");
    expect(after.sandbox?.provider.name).toBe("bwrap");
    expect(after.stdout).toBe("hi\n");
  });
});

describe("caching", () => {
  test("a second readiness() is the same result, not a new probe", async () => {
    const cordon = started.cordon;
    const first = await cordon.readiness();
    expect(first).toBe(started.readiness);
    const created = recordCreations(sharedRunRoot, "run-");
    const again = cordon.readiness();
    expect(again).toBe(cordon.readiness()); // the same promise
    const second = await again;
    await sleep(300); // a background re-probe would create run dirs meanwhile
    created.close();
    expect(second).toBe(first);
    expect(second).toEqual(first);
    expect(second.map((r) => r.durationMs)).toEqual(first.map((r) => r.durationMs));
    expect(created.names).toEqual([]);
  });

  test("readiness({ refresh: true }) probes again, and later calls get the fresh result", async () => {
    const cordon = started.cordon;
    const first = await cordon.readiness();
    const created = recordCreations(sharedRunRoot, "run-");
    const fresh = await cordon.readiness({ refresh: true });
    await sleep(100);
    created.close();
    expect(created.names.length).toBeGreaterThan(0); // real runs were made
    expect(fresh).not.toBe(first);
    expect(fresh.map((r) => r.provider)).toEqual(first.map((r) => r.provider));
    for (let i = 0; i < fresh.length; i++) {
      expect(fresh[i]).not.toBe(first[i]);
      expect(fresh[i]!.durationMs).toBeGreaterThan(0);
    }
    expect(await cordon.readiness()).toBe(fresh);
    expect(runRootEntries(sharedRunRoot)).toEqual([]);
  });

  test("a new Cordon with a different config probes afresh, with its own config", async () => {
    const { report, created } = await cgroupsOffReadiness();
    expect(created.length).toBeGreaterThan(0); // its own probe runs, in its own runRoot
    const shared = reportOf(await started.cordon.readiness(), "bwrap");
    expect(report).not.toBe(shared);
    // Its own config (no cgroups): the process cap came from RLIMIT_NPROC, not from the pids cgroup.
    expect(report.cells.pids.status).toBe("proven");
    expect(report.cells.pids.detail).toContain("RLIMIT_NPROC");
    expect(report.cells.pids.detail).not.toContain("cgroup");
    expect(shared.cells.pids.detail).toContain("pids controller");
  });

  // PRODUCT BUG (since 2350a01's memory probe): with cgroups off the plan enforces memory by a
  // per-process RLIMIT_AS and it holds (`tail: memory exhausted`, held=0), but the probe's
  // shell still exits 0, so judge.ts reads "neither succeeded nor failed visibly" and says
  // not-enforced: check() is not ready for a policy runs do enforce. Flip to `test` once fixed.
  test("cgroups off: memory is proven by the per-process rlimit", async () => {
    const { report } = await cgroupsOffReadiness();
    expect(report.cells.memory.status).toBe("proven");
    expect(report.cells.memory.detail).toContain("RLIMIT_AS");
  });
});

let cgroupsOff: Promise<{ report: ReadinessReport; created: string[] }> | undefined;
/** One readiness round of a bwrap-only Cordon with cgroups off, shared by the tests above. */
function cgroupsOffReadiness() {
  cgroupsOff ??= (async () => {
    const runRoot = runRootOf("cgroups-off");
    mkdirSync(runRoot, { mode: 0o711 });
    const watcher = recordCreations(runRoot, "run-");
    try {
      const other = new Cordon({ cgroups: "off", providerOrder: ["bwrap"], runRoot, cgroupParent: CGROUP_PARENT }, { providers: [new BwrapProvider()], runners });
      const [report] = await other.readiness();
      await sleep(100);
      return { report: report!, created: [...watcher.names] };
    } finally {
      watcher.close();
    }
  })();
  return cgroupsOff;
}

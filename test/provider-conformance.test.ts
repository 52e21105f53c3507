/**
 * Provider conformance: ONE adversarial suite, run against every provider that is ready on
 * this host (bwrap, rootless, nsjail when it is on PATH) with the same policy, and against
 * the `unsafe` provider under `onUnavailable: "degrade"`. A provider that is not installed
 * is skipped with its probe's reason printed, never silently.
 *
 * Every test attacks real sandboxes (no mocks) and then asks the core question: does the
 * effective-sandbox report agree with what the attack achieved? A control reported
 * `enforced` must have held ("REPORT SAYS ENFORCED BUT ATTACK SUCCEEDED" otherwise); an
 * attack that got through must find its control `degraded` and listed in downgrades. On
 * isolating providers (as root) every control must be enforced and every attack stopped;
 * under `unsafe` the attacks on what it cannot enforce must get through (proof that the
 * attacks are real and the suite can fail) while the report says `degraded` for exactly
 * those controls. After every test: no run dir, mount, run cgroup, marker process, child
 * process or leaked fd is left. The last test per provider checks that every control any
 * report marked `enforced` was attacked by some test.
 *
 * nsjail is not packaged in Debian: `PATH=/path/to/nsjail-dir:$PATH bun run test test/provider-conformance.test.ts`.
 */
import { afterAll, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { chmodSync, existsSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { Cordon, KiB, MiB, SandboxUnavailableError, type PolicyOverride, type Provider, type RunRequest, type RunResult } from "../src/api/index.ts";
import { type ControlStatus } from "../src/api/plugin.ts";
import { hostFacts } from "../src/host.ts";
import { builtinProviders, builtinRunners } from "../plugins/index.ts";
import {
  BASE_POLICY,
  IS_ROOT,
  KEY_PERM_OWNER,
  attackResults,
  childrenOf,
  countingListener,
  describeResult,
  fdCount,
  freshRunRoot,
  isSandboxHostUid,
  keyAttack,
  makeCordon,
  mountsUnder,
  parseKv,
  plantKey,
  processesWithMarker,
  removeCgroupParent,
  removeTempDirs,
  runCgroupsLeft,
  runRootEntries,
  sleep,
  sleepMarker,
  syscallAttackRequest,
  tempDir,
  token,
  userNamespaceOwner,
  waitFor,
} from "./support.ts";
import {
  KNOWN_BUGS,
  canaryScript,
  controlVerdict,
  controlsWith,
  envScript,
  forgedLauncherErrorScript,
  FORGED_LAUNCHER_ERRORS,
  forkLoopScript,
  fsizeInnerScript,
  judge,
  memoryScript,
  networkScript,
  nofileScript,
  noteReport,
  persistenceScript,
  reportIntermittent,
  privilegeScript,
  quotaScript,
  receiptSabotageScript,
  runInChildSupervisor,
  seccompScript,
  shmScript,
  wallScript,
  writeScript,
  type Attack,
  type Target,
} from "./support/provider-conformance.ts";

// ---------------------------------------------------------------------------------------
// Host, cgroups, the provider table
// ---------------------------------------------------------------------------------------

const CANARY_PARENTS = ["/tmp", "/var/tmp"].filter((p) => existsSync(p));
/** Root-owned files to bind in must live outside /tmp (the sandbox's own tmpfs; the policy refuses binds there). */
const ROOT_CANARY_PARENT = existsSync("/var/tmp") ? "/var/tmp" : "/srv";
/** fds the test process may gain over one test (Bun's lazily created handles). */
const FD_SLACK = 3;

/** This file's own cgroup parent, so "no run cgroup left" does not race other supervisors. */
const CGROUP_PARENT = `cordon-conformance-${process.pid}`;

/** What the unsafe provider cannot enforce: its report must say `degraded` for exactly these. */
const UNSAFE_DEGRADED = new Set([
  "filesystem.view",
  "network.egress",
  "resources.cpu",
  "resources.fsize",
  "resources.nofile",
  "resources.processes",
  "resources.memory",
  "resources.scratch",
  "resources.tmp",
  "resources.shm",
  "resources.wall",
  "privilege.uid",
  "privilege.identity",
  "privilege.capabilities",
  "privilege.noNewPrivs",
  "privilege.seccomp",
  "privilege.keyring",
  "env.hostProcesses",
]);

const PROVIDERS = builtinProviders();
const RUNNERS = builtinRunners();
/** Probed once at load: the table decides which describe blocks run. */
const TABLE = await Promise.all(PROVIDERS.map(async (provider) => ({ provider, probe: await provider.probe(hostFacts()) })));

class ProviderUnderTest implements Target {
  readonly name: string;
  readonly isolating: boolean;
  readonly attacked = new Set<string>();
  readonly enforcedSeen = new Set<string>();
  readonly reproduced = new Set<string>();
  /** Tests whose body ran to the end (the coverage check needs all of them). */
  completed = 0;
  readonly runRoot: string;
  readonly cordon: Cordon;
  /** The policy every run of this provider starts from. */
  readonly base: PolicyOverride;

  constructor(readonly provider: Provider) {
    this.name = provider.name;
    this.isolating = provider.isolating;
    this.runRoot = freshRunRoot(`conf-${provider.name}`);
    this.cordon = makeCordon(this.runRoot, { provider: provider.name, cgroupParent: CGROUP_PARENT }, { providers: PROVIDERS, runners: RUNNERS });
    this.base = provider.isolating ? BASE_POLICY : { onUnavailable: "degrade" };
  }

  expected(control: string): ControlStatus | null {
    if (!this.isolating) return UNSAFE_DEGRADED.has(control) ? "degraded" : "enforced";
    // As root the shipped default policy is enforceable in full; as non-root some controls
    // honestly degrade (uid, scratch quota, cgroups): then only agreement is checked.
    return IS_ROOT ? "enforced" : null;
  }

  run(source: string, policy: PolicyOverride = {}, extra: Partial<RunRequest> = {}): Promise<RunResult> {
    return this.cordon.run({ runner: "shell", script: { source }, args: [], ...extra, policy: { ...this.base, ...policy } });
  }
}

/** Throw every disagreement between the report and the attack at once. */
function expectAgreement(t: Target, r: RunResult, attacks: readonly Attack[]): void {
  const problems = judge(t, r, attacks);
  if (problems.length) throw new Error(`${problems.join("\n")}\nrun: ${describeResult(r)}`);
}

const isEnforced = (r: RunResult, control: string) => controlVerdict(r.sandbox, control)?.status === "enforced";

function killOurs(markers: readonly string[]): void {
  for (const m of markers) {
    for (const p of processesWithMarker(m)) {
      try {
        process.kill(p.pid, "SIGKILL"); // started by this test's own run
      } catch {
        // gone
      }
    }
  }
}

/**
 * End the processes the test's own run left on purpose (an attack that succeeded on a provider
 * without isolation) and wait until they are gone: a SIGKILLed process is still listed until it
 * has exited, and the leftover check that follows would count it (seen once under full load).
 */
async function endOurs(markers: readonly string[]): Promise<void> {
  killOurs(markers);
  await waitFor(() => markers.every((m) => processesWithMarker(m).length === 0), 5000);
}

/** Everything a run may leave behind, seen from the host. */
async function leftovers(t: ProviderUnderTest, markers: readonly string[], fdsBefore: number): Promise<string[]> {
  const problems: string[] = [];
  const dirs = runRootEntries(t.runRoot);
  if (dirs.length) problems.push(`run directories left in ${t.runRoot}: ${dirs.join(", ")}`);
  const mounts = mountsUnder(t.runRoot);
  if (mounts.length) problems.push(`mounts left under ${t.runRoot}: ${mounts.join(", ")}`);
  const cgroups = runCgroupsLeft(CGROUP_PARENT);
  if (cgroups.length) problems.push(`run cgroups left: ${cgroups.join(", ")}`);
  for (const m of markers) {
    const alive = processesWithMarker(m);
    if (alive.length) problems.push(`processes carrying marker ${m} survived: ${alive.map((p) => `${p.pid} ${p.cmdline.join(" ")}`).join("; ")}`);
  }
  // Launchers and helpers are reaped by the time run() returns; give the kernel a moment for the last ones.
  await waitFor(() => childrenOf(process.pid).length === 0, 1000);
  const children = childrenOf(process.pid);
  if (children.length) problems.push(`child processes of the test process left: ${children.map((c) => `${c.pid} ${c.comm} (${c.state})`).join(", ")}`);
  const fds = fdCount();
  if (fds - fdsBefore > FD_SLACK) problems.push(`the test process's fd count grew from ${fdsBefore} to ${fds}: ${readdirSync("/proc/self/fd").map((fd) => { try { return `${fd}->${readlink(fd)}`; } catch { return fd; } }).join(" ")}`);
  return problems;
}

function readlink(fd: string): string {
  return readlinkSync(`/proc/self/fd/${fd}`);
}

/** A conformance test: the body, then the leftover checks (observed before any clean-up, failing the test). */
function conformanceTest(t: ProviderUnderTest, title: string, body: (markers: string[]) => Promise<void>, timeoutMs?: number): void {
  test(
    title,
    async () => {
      const fdsBefore = fdCount();
      const markers: string[] = [];
      let failure: unknown = null;
      try {
        await body(markers);
      } catch (e) {
        failure = e;
      }
      const left = await leftovers(t, markers, fdsBefore);
      killOurs(markers); // a failed test must not strand its processes for the next one
      if (failure) {
        if (left.length && failure instanceof Error) failure.message += `\nand left behind:\n${left.join("\n")}`;
        throw failure;
      }
      expect(left, "NO LEFTOVERS").toEqual([]);
      t.completed++;
    },
    timeoutMs,
  );
}

function hostIPv4(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && a.family === "IPv4" && !a.internal)
    .map((a) => a!.address);
}

/** Run independent attacks at once; report every failure, not only the first. */
async function allSettledOrThrow(cases: Record<string, () => Promise<void>>): Promise<void> {
  const names = Object.keys(cases);
  const settled = await Promise.allSettled(names.map((n) => cases[n]!()));
  const failed = settled.flatMap((s, i) => (s.status === "rejected" ? [`[${names[i]}] ${s.reason instanceof Error ? s.reason.message : String(s.reason)}`] : []));
  if (failed.length) throw new Error(failed.join("\n\n"));
}

afterAll(() => {
  removeCgroupParent(CGROUP_PARENT, "conformance");
  removeTempDirs();
});

// ---------------------------------------------------------------------------------------
// The suite, once per provider
// ---------------------------------------------------------------------------------------

const TESTS = 13;

function conformanceSuite(t: ProviderUnderTest): void {
  beforeAll(async () => {
    // Lazy allocations of the first run (probe caches, Bun's spawn machinery) are not a leak.
    const warm = await t.run("echo warm");
    if (warm.outcome !== "ok") throw new Error(`provider ${t.name}: the warm-up run failed: ${describeResult(warm)}`);
  });

  conformanceTest(t, "1. a world-readable host canary file is unreadable by every route (cat, /proc/self/root, /proc/1/root, ls, find)", async () => {
    const secret = token("canary-content-");
    const name = token("canary-file-");
    const files = CANARY_PARENTS.map((parent) => {
      const file = join(tempDir("canary", 0o755, parent), name);
      writeFileSync(file, `${secret}\n`);
      chmodSync(file, 0o644);
      return file;
    });
    // Without isolation a search of the whole host as root is slow and tells nothing more.
    const r = await t.run(canaryScript(files, name, t.isolating));
    expect(r.stdout, describeResult(r)).toContain("probe_done=1");
    const found = r.stdout.split("\n").filter((l) => l.startsWith("found="));
    const read = (r.stdout + r.stderr).includes(secret);
    expectAgreement(t, r, [{ control: "filesystem.view", succeeded: read || found.length > 0, evidence: `the canary ${read ? "was read" : "was not read"}${found.length ? `, found at ${found.join(", ")}` : ""}` }]);
  });

  conformanceTest(t, "2. writes outside scratch fail (/usr, /etc, /, the job dir, a host tmp dir); scratch and /tmp are writable; nothing persists to the next run", async () => {
    const name = token(".cordon-pwn-");
    // World-writable host dirs: only the filesystem layer, not permission bits, can stop the write.
    const hostDirs = CANARY_PARENTS.map((parent) => tempDir("writable", 0o777, parent));
    // Without isolation the script only aims at test-owned dirs (and its own job dir), never at the host's /usr.
    const targets = t.isolating ? ["/usr", "/usr/bin", "/etc", "/", "/cordon", ...hostDirs] : hostDirs;
    const r = await t.run(writeScript(targets, name, t.isolating));
    const lines = r.stdout.split("\n");
    expect(lines, describeResult(r)).toContain("probe_done=1");
    const wrote = lines.filter((l) => l.startsWith("wrote=") || l.startsWith("mkdir="));
    const onHost = targets.filter((d) => !d.startsWith("/cordon") && (existsSync(join(d, name)) || existsSync(join(d, `${name}.d`))));
    expectAgreement(t, r, [{ control: "filesystem.view", succeeded: wrote.length > 0 || onHost.length > 0, evidence: `the script wrote: ${wrote.join(", ") || "nothing"}; seen on the host: ${onHost.join(", ") || "nothing"}` }]);
    // Scratch (the cwd) and the temp dir are writable everywhere; an isolated /tmp too.
    expect(lines).toContain("scratch=scratch-data");
    expect(lines).toContain("tmpdir=tmp-data");
    if (t.isolating) {
      expect(lines).toContain("tmp=tmp-data");
      expect(lines).toContain("pwd=/scratch");
      for (const d of hostDirs) expect(readdirSync(d)).toEqual([]);
      expect(existsSync("/cordon")).toBe(false);
    }
    const next = await t.run(persistenceScript(name));
    expect(next.stdout, describeResult(next)).toContain("probe_done=1");
    const persisted = next.stdout.split("\n").filter((l) => l.startsWith("persisted="));
    expectAgreement(t, next, [{ control: "filesystem.scratch", succeeded: persisted.length > 0, evidence: `the next run saw ${persisted.join(", ")}` }]);
  });

  conformanceTest(t, "3. no network under deny: only lo; a host listener (loopback and the host's own addresses) counts 0 connections", async () => {
    const listener = countingListener("0.0.0.0");
    try {
      const targets = ["127.0.0.1", ...hostIPv4()].map((ip) => ({ ip, port: listener.port }));
      const r = await t.run(networkScript(targets));
      const kv = parseKv(r.stdout);
      expect(kv.probe_done, describeResult(r)).toBe("1");
      const connected = r.stdout.split("\n").filter((l) => l.startsWith("tcp=") && l.endsWith(":connected"));
      await waitFor(() => listener.hits() > 0, 300);
      const hits = listener.hits();
      expectAgreement(t, r, [
        {
          control: "network.egress",
          succeeded: kv.ifaces !== "lo," || connected.length > 0 || hits > 0,
          evidence: `interfaces ${kv.ifaces}; connected: ${connected.join(", ") || "none"}; the host listener counted ${hits} connection(s)`,
        },
      ]);
      if (t.isolating) expect(hits).toBe(0);
    } finally {
      listener.stop();
    }
  });

  conformanceTest(t, "4. caps hold: memory, pids, fsize, output, cpu, open files, scratch and /tmp size, seccomp, keyrings (all at once, each its own run)", async (markers) => {
    const pidsMarker = sleepMarker(30);
    markers.push(pidsMarker);
    await allSettledOrThrow({
      memory: async () => {
        const cap = 32 * MiB;
        const attempt = 3 * cap;
        const policy = { resources: { memoryBytes: cap } };
        // The hog as the script's last command, and as a child the script outlives (then exits 0).
        const [last, child] = await Promise.all([t.run(memoryScript(attempt, true), policy), t.run(memoryScript(attempt, false), policy)]);
        const held = Number(parseKv(child.stdout).held ?? 0);
        expectAgreement(t, last, [{ control: "resources.memory", succeeded: last.outcome === "ok", evidence: `holding ${attempt} bytes under a ${cap}-byte cap ended ${last.outcome} (limitHit ${last.limitHit})` }]);
        expectAgreement(t, child, [{ control: "resources.memory", succeeded: held >= attempt, evidence: `a child held ${held} of ${attempt} bytes under a ${cap}-byte cap (outcome ${child.outcome}, limitHit ${child.limitHit})` }]);
        const mechanism = controlVerdict(last.sandbox, "resources.memory")?.mechanism ?? "";
        if (isEnforced(last, "resources.memory") && mechanism.includes("cgroup")) {
          expect([last.outcome, last.limitHit], describeResult(last)).toEqual(["limit", "memory"]);
          if (child.outcome === "ok" && child.limitHit === null && child.stderr.includes("Killed")) reportIntermittent("oom-child-exit-0", `provider ${t.name}: ${describeResult(child)}`);
          else expect([child.outcome, child.limitHit], describeResult(child)).toEqual(["limit", "memory"]);
        }
      },
      pids: async () => {
        const r = await t.run(forkLoopScript(pidsMarker, 100), { resources: { maxProcesses: 16, wallMs: 5000 } });
        const started = r.stdout.split("\n").filter((l) => l === "started").length;
        const survivors = processesWithMarker(pidsMarker);
        expectAgreement(t, r, [{ control: "resources.processes", succeeded: started > 16, evidence: `${started} of 100 background processes started under maxProcesses 16` }]);
        expect(survivors, "the fork loop's processes outlived the run").toEqual([]);
        if (isEnforced(r, "resources.processes")) {
          expect(started, describeResult(r)).toBeGreaterThan(0); // the loop really ran
          expect(r.stderr).toContain("fork");
          expect(r.outcome).not.toBe("timeout"); // held at the cap, and the run ends on its own
          if (controlVerdict(r.sandbox, "resources.processes")?.mechanism?.includes("cgroup")) expect(r.limitHit).toBe("pids");
        }
      },
      fsize: async () => {
        const cap = 1 * MiB;
        const policy = { resources: { maxFileSizeBytes: cap } };
        const [inner, main] = await Promise.all([t.run(fsizeInnerScript(2 * cap), policy), t.run(`exec head -c ${2 * cap} /dev/zero > big`, policy)]);
        const kv = parseKv(inner.stdout);
        const size = Number(kv.size ?? 0);
        expect(size, describeResult(inner)).toBeGreaterThan(0);
        expectAgreement(t, inner, [{ control: "resources.fsize", succeeded: size > cap, evidence: `a ${size}-byte file under a ${cap}-byte cap (rc ${kv.rc})` }]);
        expectAgreement(t, main, [{ control: "resources.fsize", succeeded: main.outcome === "ok", evidence: `writing ${2 * cap} bytes as the main process ended ${main.outcome}` }]);
        if (isEnforced(main, "resources.fsize")) {
          expect(Number(kv.rc) === 128 + 25 || /File too large/.test(inner.stderr), describeResult(inner)).toBe(true); // SIGXFSZ, or EFBIG
          // SIGXFSZ is indistinguishable from the script's own `exit 153`: its own end, never a limit verdict.
          expect([main.outcome, main.limitHit, main.signal], describeResult(main)).toEqual(["killed", null, "SIGXFSZ"]);
        }
      },
      output: async () => {
        const cap = 64 * KiB;
        const r = await t.run("yes", { resources: { maxOutputBytes: cap, wallMs: 10_000 } });
        expectAgreement(t, r, [{ control: "resources.output", succeeded: r.stdoutBytes.length > cap || r.outcome !== "limit", evidence: `${r.stdoutBytes.length} bytes of stdout under a ${cap}-byte cap, outcome ${r.outcome}` }]);
        if (isEnforced(r, "resources.output")) {
          expect([r.outcome, r.limitHit, r.stdoutTruncated, r.stdoutBytes.length], describeResult(r)).toEqual(["limit", "output", true, cap]);
        }
        // The supervisor survived the flood: the same Cordon runs the next job.
        const after = await t.run("echo alive");
        expect(after.stdout, describeResult(after)).toBe("alive\n");
      },
      cpu: async () => {
        // Far past the 1 s of CPU: on a loaded host (other runs of this test at once) the burn gets
        // a fraction of a core, and a wall timeout must mean the cap failed, not that CPU was scarce.
        const wallMs = 15_000;
        const r = await t.run("while :; do :; done", { resources: { cpuSeconds: 1, wallMs } });
        expectAgreement(t, r, [{ control: "resources.cpu", succeeded: r.limitHit === "wall" || r.outcome === "ok", evidence: `a CPU burn under cpuSeconds 1 ran until ${r.limitHit ?? r.outcome} (${r.durationMs} ms)` }]);
        if (isEnforced(r, "resources.cpu")) {
          expect([r.outcome, r.limitHit], describeResult(r)).toEqual(["limit", "cpu"]);
          expect(r.durationMs).toBeLessThan(wallMs);
        }
      },
      nofile: async () => {
        const cap = 16;
        const r = await t.run(nofileScript(64), { resources: { maxOpenFiles: cap } });
        const opened = Number(parseKv(r.stdout).opened ?? -1);
        expect(opened, describeResult(r)).toBeGreaterThanOrEqual(0);
        expectAgreement(t, r, [{ control: "resources.nofile", succeeded: opened + 3 > cap, evidence: `${opened} files opened on top of stdin/out/err under maxOpenFiles ${cap}` }]);
      },
      quota: async () => {
        const cap = 1 * MiB;
        const r = await t.run(quotaScript(4 * cap), { resources: { scratchBytes: cap } });
        const kv = parseKv(r.stdout);
        const [scratch, tmp] = [Number(kv.scratch ?? 0), Number(kv.tmp ?? 0)];
        expect(Math.min(scratch, tmp), describeResult(r)).toBeGreaterThan(cap / 2); // both were writable and really filled
        expectAgreement(t, r, [
          { control: "resources.scratch", succeeded: scratch > cap, evidence: `a ${scratch}-byte file in scratch under scratchBytes ${cap}` },
          { control: "resources.tmp", succeeded: tmp > cap, evidence: `a ${tmp}-byte file in the temp dir under scratchBytes ${cap}` },
        ]);
      },
      stdin: async () => {
        const cap = 64 * KiB;
        const r = await t.run("echo \"read=$(wc -c)\"", { resources: { maxStdinBytes: cap } }, { stdin: new Uint8Array(4 * cap).fill(0x61) });
        const read = Number(parseKv(r.stdout).read ?? -1);
        expect(read, describeResult(r)).toBeGreaterThan(0); // the script really read its stdin
        expectAgreement(t, r, [{ control: "resources.stdin", succeeded: read > cap, evidence: `the script read ${read} bytes of a ${4 * cap}-byte stdin under maxStdinBytes ${cap}` }]);
        if (isEnforced(r, "resources.stdin")) expect([r.outcome, read, r.stdinTruncated], describeResult(r)).toEqual(["ok", cap, true]);
      },
      seccomp: async () => {
        const r = await t.run(seccompScript());
        const kv = parseKv(r.stdout);
        expect(kv.probe_done, describeResult(r)).toBe("1");
        const allowed = Object.entries(kv).filter(([k, v]) => k.startsWith("sys_") && v !== "1");
        expectAgreement(t, r, [
          {
            control: "privilege.seccomp",
            optional: true,
            succeeded: kv.seccomp_mode !== "2" || kv.unshare === "ok" || allowed.length > 0,
            evidence: `Seccomp mode ${kv.seccomp_mode}, unshare -U ${kv.unshare}, syscalls not refused with EPERM: ${allowed.map(([k, v]) => `${k.slice(4)}=${v}`).join(", ") || "none"}`,
          },
        ]);
      },
      keyring: async () => {
        // A key as a service keeps it (possessor and owner only), in the session keyring the run would inherit.
        const key = plantKey("session", KEY_PERM_OWNER);
        try {
          const r = await t.run("", {}, syscallAttackRequest([`key_serial=${key.serial}`, `key_search=${key.description}`]));
          expectAgreement(t, r, [{ control: "privilege.keyring", ...keyAttack(r, attackResults(r, describeResult), key) }]);
        } finally {
          key.remove();
        }
      },
    });
  });

  conformanceTest(t, "5. the whole tree is killed at the wall limit, a setsid double-forked daemon and a CPU spinner included", async (markers) => {
    const daemon = sleepMarker(60);
    const spin = token("spin");
    markers.push(daemon, spin);
    const wallMs = 1000;
    let seen = false;
    const watch = setInterval(() => void (seen ||= processesWithMarker(daemon).length > 0), 10);
    const r = await t.run(wallScript(daemon, spin), { resources: { wallMs } });
    clearInterval(watch);
    const atReturn = [...processesWithMarker(daemon), ...processesWithMarker(spin)];
    await sleep(300);
    const later = [...processesWithMarker(daemon), ...processesWithMarker(spin)];
    // The attack was real: the daemon existed on the host during the run.
    expect(r.stdout, describeResult(r)).toContain("daemon=started");
    expect(seen).toBe(true);
    const survivors = [...new Set([...atReturn, ...later].map((p) => `${p.pid} ${p.cmdline.join(" ")}`))];
    const late = r.durationMs > wallMs * 1.1 + 300;
    try {
      expectAgreement(t, r, [
        {
          control: "resources.wall",
          succeeded: r.outcome !== "timeout" || late || survivors.length > 0,
          evidence: `outcome ${r.outcome} after ${r.durationMs} ms (wall ${wallMs} ms); survivors: ${survivors.join("; ") || "none"}`,
        },
      ]);
    } finally {
      await endOurs(markers); // without isolation the daemon survives (the attack's success): ours to end
    }
    if (isEnforced(r, "resources.wall")) {
      expect([r.outcome, r.limitHit], describeResult(r)).toEqual(["timeout", "wall"]);
      expect(r.durationMs).toBeGreaterThanOrEqual(wallMs);
      expect(late).toBe(false);
    }
  });

  conformanceTest(t, "6. a canary in the supervisor's initial environment is invisible (env and /proc/*/environ)", async () => {
    const canary = token("envcanary");
    const r = await runInChildSupervisor(
      t.runRoot,
      CGROUP_PARENT,
      { runner: "shell", provider: t.name, script: { source: envScript(canary) }, args: [], policy: t.base },
      { CORDON_TEST_CANARY: canary, CORDON_TEST_OTHER: `${canary}-other` },
    );
    const kv = parseKv(r.stdout);
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(Number(kv.environ_readable)).toBeGreaterThan(0); // the /proc scan really read environ files
    expect(kv.own_env_seen).toBe("1");
    expectAgreement(t, r, [
      { control: "env.allowlist", succeeded: Number(kv.env_hits) > 0, evidence: `the script's own environment holds the canary (${kv.env_hits} hits)` },
      { control: "env.hostProcesses", succeeded: Number(kv.proc_hits) > 0, evidence: `/proc/*/environ shows the canary (${kv.proc_hits} hits)` },
    ]);
    const block = r.stdout.slice(r.stdout.indexOf("BEGIN_ENV\n") + 10, r.stdout.indexOf("END_ENV"));
    if (isEnforced(r, "env.allowlist")) expect(Object.keys(parseKv(block)).sort()).toEqual(["CORDON_RESULT_FD", "HOME", "LANG", "PATH", "PWD", "TMPDIR"]);
  });

  conformanceTest(t, "7. real uid drop: files the script creates are owned by the run's own host uid (65534 inside), not a concurrent run's; no capability, no_new_privs, a root-only file stays unreadable; the user namespace is that uid's where the report says so", async (markers) => {
    const dir = tempDir("rootcanary", 0o755, ROOT_CANARY_PARENT);
    const secret = token("root-secret-");
    const file = join(dir, "secret");
    writeFileSync(file, `${secret}\n`, { mode: 0o600 });
    // A concurrent sibling run: the two must not share a host uid (per-uid quotas, signals, /proc).
    const [r, sibling] = await Promise.all([t.run(privilegeScript(file), { filesystem: { readOnlyBinds: [dir] } }, { verify: true }), t.run("sleep 0.3", {}, { verify: true })]);
    const kv = parseKv(r.stdout);
    expect(kv.probe_done, describeResult(r)).toBe("1");
    const receipt = r.receipt;
    if (!receipt) throw new Error(`no receipt: ${describeResult(r)}`);
    const sets = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"].map((s) => [s, kv[s]] as const);
    const withCaps = sets.filter(([, v]) => !/^0+$/.test(v ?? ""));
    const read = (r.stdout + r.stderr).includes(secret);
    const siblingUid = sibling.receipt?.hostUid ?? null;
    expectAgreement(t, r, [
      { control: "privilege.uid", succeeded: !isSandboxHostUid(receipt.hostUid) || read, evidence: `a file the script created in scratch is owned by host uid ${receipt.hostUid}; the root-only file ${read ? "was read" : "was not read"}` },
      {
        control: "privilege.identity",
        succeeded: !isSandboxHostUid(receipt.hostUid) || receipt.hostUid === siblingUid,
        evidence: `the run's files are owned by host uid ${receipt.hostUid}, a concurrent run's by host uid ${siblingUid}`,
      },
      { control: "privilege.capabilities", succeeded: receipt.capEff !== "0000000000000000" || withCaps.length > 0, evidence: `receipt CapEff ${receipt.capEff}; non-empty sets: ${withCaps.map(([s, v]) => `${s}=${v}`).join(", ") || "none"}` },
      { control: "privilege.noNewPrivs", succeeded: !receipt.noNewPrivs || kv.NoNewPrivs !== "1", evidence: `receipt noNewPrivs ${receipt.noNewPrivs}, /proc/self/status NoNewPrivs ${kv.NoNewPrivs}` },
    ]);
    if (isEnforced(r, "privilege.uid")) {
      expect(isSandboxHostUid(receipt.hostUid), `host uid ${receipt.hostUid}`).toBe(true);
      expect(kv.cat_rc).not.toBe("0");
      expect(r.stdout + r.stderr).toContain("Permission denied");
    }
    if (isEnforced(r, "privilege.capabilities")) expect(receipt.capEff).toBe("0000000000000000");
    if (isEnforced(r, "privilege.noNewPrivs")) expect(receipt.noNewPrivs).toBe(true);
    // Who owns the run's user namespace (per-uid kernel counts are charged there), read on the
    // host while the run sleeps. Without isolation there is no namespace of the run's own.
    if (!t.isolating) return;
    const marker = sleepMarker(5);
    markers.push(marker);
    const pending = t.run(`exec sleep ${marker}`, { resources: { wallMs: 8000 } });
    let owner: number | null = null;
    try {
      await waitFor(() => processesWithMarker(marker).length > 0, 5000);
      const sleeper = processesWithMarker(marker)[0];
      owner = sleeper ? userNamespaceOwner(sleeper.pid) : null;
    } finally {
      killOurs([marker]);
    }
    const held = await pending;
    expectAgreement(t, held, [
      { control: "privilege.namespaceOwner", succeeded: owner === null || !isSandboxHostUid(owner), evidence: `the run's user namespace is owned by host uid ${owner ?? "(not seen)"}`, optional: true },
    ]);
  });

  conformanceTest(t, "8. runs ending every way at once (ok, exit, signal, wall, output cap, hostile leftovers) leave nothing behind", async (markers) => {
    const daemon = sleepMarker(30);
    markers.push(daemon);
    const cases: [string, PolicyOverride, (r: RunResult) => void][] = [
      ["echo fine > f; echo ok", {}, (r) => expect(r.outcome).toBe("ok")],
      ["echo x > f; exit 3", {}, (r) => expect([r.outcome, r.exitCode]).toEqual(["exit-nonzero", 3])],
      ["kill -KILL $$", {}, (r) => expect([r.outcome, r.signal]).toEqual(["killed", "SIGKILL"])],
      ["echo x > f; sleep 30", { resources: { wallMs: 600 } }, (r) => expect(r.outcome).toBe("timeout")],
      ["yes", { resources: { maxOutputBytes: 1000 } }, (r) => expect([r.outcome, r.limitHit]).toEqual(["limit", "output"])],
      // Unwritable dirs, read-only files; with isolation also a daemon with its cwd in scratch (without it, that daemon survives by design: test 5).
      [`mkdir -p a/b/c; echo x > a/b/c/f; chmod 444 a/b/c/f; chmod 000 a/b/c a/b a; ${t.isolating ? `setsid sh -c 'cd "$PWD"; exec sleep ${daemon}' </dev/null >/dev/null 2>&1 &` : ""} echo done`, {}, (r) => expect(r.outcome).toBe("ok")],
    ];
    const results = await Promise.all(cases.map(([source, policy]) => t.run(source, policy)));
    results.forEach((r, i) => {
      noteReport(t, r);
      try {
        cases[i]![2](r);
      } catch (e) {
        throw new Error(`case ${i} (${cases[i]![0]}): ${e instanceof Error ? e.message : String(e)}\n${describeResult(r)}`);
      }
    });
  });

  conformanceTest(t, "9. under onUnavailable: fail it runs with nothing degraded, or is refused naming every control the degrade report marks degraded; nothing spawned", async () => {
    const probe = await t.run("echo report", {});
    expect(probe.outcome, describeResult(probe)).toBe("ok");
    const report = probe.sandbox!;
    const degradedControls = controlsWith(report, "degraded");
    // One downgrade line per degraded control, and none for anything else.
    expect(report.downgrades.map((d) => d.slice(0, d.indexOf(": "))).sort()).toEqual([...degradedControls].sort());
    if (!t.isolating) {
      expect(report.provider).toMatchObject({ name: t.name, isolating: false });
      expect(new Set(degradedControls)).toEqual(UNSAFE_DEGRADED);
    } else if (IS_ROOT) {
      expect(degradedControls).toEqual([]);
    }

    const spawn = spyOn(Bun, "spawn");
    let refusal: unknown = null;
    let ran: RunResult | null = null;
    let spawned = 0;
    try {
      ran = await t.cordon.run({ runner: "shell", script: { source: "echo under-fail" }, args: [], policy: { ...t.base, onUnavailable: "fail" } });
    } catch (e) {
      refusal = e;
    } finally {
      spawned = spawn.mock.calls.length;
      spawn.mockRestore();
    }
    if (degradedControls.length === 0) {
      expect(refusal).toBeNull();
      expect(ran?.outcome, ran ? describeResult(ran) : "").toBe("ok");
      expect(ran?.stdout).toBe("under-fail\n");
      expect(ran?.sandbox?.downgrades).toEqual([]);
    } else {
      expect(refusal).toBeInstanceOf(SandboxUnavailableError);
      const reasons = (refusal as SandboxUnavailableError).reasons;
      expect(reasons.map((r) => r.slice(0, r.indexOf(": "))).sort()).toEqual([...degradedControls].sort());
      expect(spawned).toBe(0);
    }
  });

  conformanceTest(t, "10. /dev/shm is size-capped even with cgroups off: a write past resources.scratchBytes stops at the cap wherever the report says enforced", async () => {
    // With cgroups on, a memory cap would bound an unsized /dev/shm anyway; off, only its own size can.
    const cordon = makeCordon(t.runRoot, { provider: t.name, cgroupParent: CGROUP_PARENT, cgroups: "off" }, { providers: PROVIDERS, runners: RUNNERS });
    const cap = 1 * MiB;
    const name = token("cordon-shm-");
    try {
      const r = await cordon.run({ runner: "shell", script: { source: shmScript(4 * cap, name) }, args: [], policy: { ...t.base, onUnavailable: "degrade", resources: { scratchBytes: cap } } });
      const kv = parseKv(r.stdout);
      expect(kv.probe_done, describeResult(r)).toBe("1");
      const size = Number(kv.shm ?? 0);
      expect(size, describeResult(r)).toBeGreaterThan(cap / 2); // /dev/shm was writable and really filled
      expectAgreement(t, r, [{ control: "resources.shm", succeeded: size > cap, evidence: `a ${size}-byte file in /dev/shm under scratchBytes ${cap} (cgroups off; write rc ${kv.shm_rc})` }]);
      if (isEnforced(r, "resources.shm")) {
        expect(size).toBeLessThanOrEqual(cap);
        expect(kv.shm_rc).not.toBe("0"); // the write was stopped (ENOSPC), not merely short
      }
    } finally {
      if (existsSync(`/dev/shm/${name}`)) rmSync(`/dev/shm/${name}`); // without isolation it is the host's /dev/shm: ours to remove
    }
  });

  conformanceTest(t, "11. a script printing launcher errors (bwrap:, [E][, cordon-cgroup:) to its stderr and exiting non-zero is exit-nonzero with its output, never a sandbox failure", async () => {
    const marker = token("forged-");
    // 1: bwrap's own failure status; 125: the cgroup join's; 255: nsjail's.
    const codes = [1, 125, 255];
    const results = await Promise.all(codes.map((code) => t.run(forgedLauncherErrorScript(marker, code))));
    results.forEach((r, i) => {
      noteReport(t, r);
      expect([r.outcome, r.exitCode, r.error], describeResult(r)).toEqual(["exit-nonzero", codes[i]!, null]);
      expect(r.stdout).toBe(`${marker}\n`);
      for (const line of FORGED_LAUNCHER_ERRORS) expect(r.stderr).toContain(line); // the script's stderr is the script's, kept
      expect(r.sandbox?.provider.name).toBe(t.name);
    });
  });

  conformanceTest(t, "12. verify: true with the receipt marker replaced (directory, symlink, FIFO) is still an ok run with its output; the swap proves nothing", async () => {
    const marker = token("kept-");
    const kinds = ["dir", "symlink", "fifo"] as const;
    const results = await Promise.all(kinds.map((kind) => t.run(receiptSabotageScript(kind, marker), {}, { verify: true })));
    results.forEach((r, i) => {
      noteReport(t, r);
      const kv = parseKv(r.stdout);
      expect([r.outcome, r.exitCode, r.error], describeResult(r)).toEqual(["ok", 0, null]);
      expect(kv.replaced, describeResult(r)).toBe(kinds[i]); // the attack really happened
      expect(r.stdout).toContain(`${marker}\n`);
      if (t.isolating) expect(kv.pwd).toBe("/scratch");
      // The receipt still says what the process saw; the marker it could not vouch for gives no host uid.
      expect(r.receipt, describeResult(r)).toBeTruthy();
      expect(r.receipt?.hostUid ?? null).toBeNull();
    });
  });

  conformanceTest(t, "13. coverage: every control a report marked enforced was attacked; known product bugs still reproduce", async () => {
    if (t.completed < TESTS - 1) {
      console.warn(`conformance ${t.name}: coverage not checked, only ${t.completed} of ${TESTS - 1} tests ran to the end`);
      return;
    }
    const unattacked = [...t.enforcedSeen].filter((c) => !t.attacked.has(c)).sort();
    expect(unattacked, `controls reported enforced that no test attacked on ${t.name}`).toEqual([]);
    for (const key of Object.keys(KNOWN_BUGS).filter((k) => k.startsWith(`${t.name}:`))) {
      expect(t.reproduced.has(key), `known bug ${key} no longer reproduces: remove it from KNOWN_BUGS in test/support/provider-conformance.ts`).toBe(true);
    }
  });
}

describe("conformance: the report/reality judge itself (pure)", () => {
  const fake = (status: ControlStatus, downgrades: string[] = []): RunResult =>
    ({
      outcome: "ok",
      limitHit: null,
      exitCode: 0,
      signal: null,
      durationMs: 1,
      stdout: "",
      stderr: "",
      error: null,
      sandbox: {
        layers: {
          filesystem: { status, controls: { view: status === "enforced" ? { status, mechanism: "mount namespace" } : { status, reason: "no mount namespace" } } },
          network: { status: "off", controls: {} },
          resources: { status: "off", controls: {} },
          privilege: { status: "off", controls: {} },
          env: { status: "off", controls: {} },
        },
        downgrades,
      },
    }) as unknown as RunResult;
  const target = (expected: ControlStatus | null, isolating = true): Target => ({
    name: "fake",
    isolating,
    expected: () => expected,
    attacked: new Set(),
    enforcedSeen: new Set(),
    reproduced: new Set(),
  });
  const attack = (succeeded: boolean): Attack[] => [{ control: "filesystem.view", succeeded, evidence: "the canary was read" }];

  test("enforced + the attack got through: REPORT SAYS ENFORCED BUT ATTACK SUCCEEDED", () => {
    const problems = judge(target("enforced"), fake("enforced"), attack(true));
    expect(problems.join("\n")).toContain("REPORT SAYS ENFORCED BUT ATTACK SUCCEEDED: provider fake, filesystem.view is reported enforced (mount namespace) but the canary was read");
    expect(() => expectAgreement(target(null), fake("enforced"), attack(true))).toThrow("REPORT SAYS ENFORCED BUT ATTACK SUCCEEDED");
  });

  test("agreement passes: enforced and held; degraded, listed and exposed", () => {
    expect(judge(target("enforced"), fake("enforced"), attack(false))).toEqual([]);
    expect(judge(target("degraded", false), fake("degraded", ["filesystem.view: no mount namespace"]), attack(true))).toEqual([]);
  });

  test("degraded but missing from downgrades, the wrong status, or an attack that cannot get through where nothing stops it: each is a failure", () => {
    expect(judge(target("degraded", false), fake("degraded"), attack(true)).join("\n")).toContain("not listed in downgrades");
    expect(judge(target("enforced"), fake("degraded", ["filesystem.view: x"]), attack(false)).join("\n")).toContain("expected enforced");
    expect(judge(target("degraded", false), fake("degraded", ["filesystem.view: x"]), attack(false)).join("\n")).toContain("the attack is not real");
  });
});

for (const { provider, probe } of TABLE) {
  const title = provider.isolating ? `conformance: ${provider.name}` : `conformance: ${provider.name} (no isolation, onUnavailable: degrade)`;
  if (!probe.available) {
    console.warn(`conformance: provider ${provider.name} SKIPPED on this host: ${probe.reason ?? "unavailable"}`);
    describe.skip(`${title} — skipped: ${probe.reason ?? "unavailable"}`, () => conformanceSuite(new ProviderUnderTest(provider)));
    continue;
  }
  const t = new ProviderUnderTest(provider);
  describe(title, () => conformanceSuite(t));
  afterAll(() => {
    const enforcedList = [...t.enforcedSeen].sort();
    const attacked = [...t.attacked].sort();
    const bugs = [...t.reproduced];
    console.log(
      `conformance ${t.name}${probe.version ? ` ${probe.version}` : ""}: ${t.completed}/${TESTS} tests passed; controls attacked: ${attacked.length} (${attacked.join(", ")}); reported enforced: ${enforcedList.length}${bugs.length ? `; KNOWN BUGS reproduced: ${bugs.join(", ")}` : ""}`,
    );
  });
}

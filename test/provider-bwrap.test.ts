/**
 * Adversarial security tests: every test writes a hostile script, runs it in a REAL
 * sandbox (bwrap, no mocks) and checks from inside AND from the host that it was
 * contained. The "unsafe provider" section runs the same attacks with no isolation and
 * checks they succeed there: proof that these tests fail when a layer is broken.
 */
import { afterAll, describe, expect, spyOn, test } from "bun:test";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { PolicyValidationError, SandboxUnavailableError, type Cordon, type PolicyOverride, type RunResult } from "../src/api/index.ts";
import {
  BASE_POLICY,
  IS_ROOT,
  caught,
  childrenOf,
  countingListener,
  describeResult,
  expectClean,
  fdCount,
  freshRunRoot,
  hostFileRoutes,
  makeCordon,
  mountsUnder,
  parseKv,
  processesWithMarker,
  removeTempDirs,
  runScript,
  sleep,
  sleepMarker,
  tempDir,
  token,
  waitFor,
  type ScriptRunOptions,
} from "./support.ts";

afterAll(() => removeTempDirs());

const FIXTURE = resolve(import.meta.dir, "fixtures/run-json.ts");
const CANARY_PARENTS = ["/tmp", "/var/tmp"].filter((p) => existsSync(p));

function withBase(policy: PolicyOverride = {}): PolicyOverride {
  return { ...BASE_POLICY, ...policy };
}

const run = (cordon: Cordon, source: string, opts: Pick<ScriptRunOptions, "policy" | "provider" | "args"> = {}): Promise<RunResult> => runScript(cordon, "shell", source, opts);

/** Run a job in a separate supervisor process whose INITIAL environment holds `env`. */
async function runInChildSupervisor(runRoot: string, request: Record<string, unknown>, env: Record<string, string>): Promise<Record<string, unknown>> {
  const p = Bun.spawn([process.execPath, FIXTURE], {
    stdin: new TextEncoder().encode(JSON.stringify({ runRoot, request })),
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...env },
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`fixture failed (${code}): ${stdout} ${stderr}`);
  return JSON.parse(stdout) as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------
// Attack scripts, shared by the bwrap tests and the unsafe-provider counter-tests.
// ---------------------------------------------------------------------------------------

/** Tries every route to a host file; prints its content if any route works. */
function canaryReadScript(files: string[]): string {
  const lines = files.map(
    (f) => `
${hostFileRoutes(f)}
find / \\( -path /proc -o -path /usr \\) -prune -o -name '${basename(f)}' -print 2>/dev/null | while read -r p; do echo "found=$p"; cat "$p"; done`,
  );
  return `${lines.join("\n")}\necho probe_done=1\n`;
}

function writeAttackScript(targets: string[], name: string): string {
  return `
for d in ${targets.map((t) => `'${t}'`).join(" ")}; do
  if (echo pwned > "$d/${name}") 2>/dev/null; then echo "wrote=$d"; else echo "denied=$d"; fi
  if mkdir "$d/${name}.d" 2>/dev/null; then echo "mkdir=$d"; fi
done
if (echo pwned >> /cordon/job/script.sh) 2>/dev/null; then echo "wrote=jobscript"; else echo "denied=jobscript"; fi
echo scratch-data > /scratch/s.txt && echo "scratch=$(cat /scratch/s.txt)"
echo tmp-data > /tmp/t.txt && echo "tmp=$(cat /tmp/t.txt)"
echo "pwd=$(pwd)"
`;
}

function networkAttackScript(targets: { ip: string; port: number }[]): string {
  return `
echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ',')"
${targets
  .map((t) => `if timeout 3 bash -c 'exec 3<>/dev/tcp/${t.ip}/${t.port}' 2>/dev/null; then echo "tcp_${t.ip.replace(/\W/g, "_")}=connected"; else echo "tcp_${t.ip.replace(/\W/g, "_")}=failed"; fi`)
  .join("\n")}
echo probe_done=1
`;
}

function envAttackScript(canary: string): string {
  return `
echo BEGIN_ENV; env; echo END_ENV
echo "env_hits=$(env | grep -c '${canary}')"
echo "proc_hits=$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c '${canary}')"
echo "environ_readable=$(for f in /proc/[0-9]*/environ; do cat "$f" >/dev/null 2>&1 && echo x; done | wc -l)"
echo "own_env_seen=$(cat /proc/self/environ | tr '\\0' '\\n' | grep -c '^PATH=')"
`;
}

/** A setsid + double-forked daemon that ignores the polite signals and outlives its parent. */
function daemonScript(marker: string, tail: string): string {
  return `
setsid sh -c 'trap "" HUP TERM INT; sh -c "trap \\"\\" HUP TERM INT; touch \\"$TMPDIR/ready\\"; exec sleep ${marker}" </dev/null >/dev/null 2>&1 & exit 0' &
i=0; while [ ! -e "$TMPDIR/ready" ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done
[ -e "$TMPDIR/ready" ] && echo daemon=started
${tail}
`;
}

/** 100 background sleeps; with `hold`, the script then blocks on a fifo so the run stays at its cap. */
function forkBombScript(marker: string, hold = true): string {
  return `
mkfifo "$TMPDIR/hold"
( i=0; while [ $i -lt 100 ]; do sleep ${marker} & echo started; i=$((i+1)); done )
echo loop_exited
${hold ? 'read x < "$TMPDIR/hold"' : "exit 0"}
`;
}

/** Watch the host while a run is under way: did a process carrying `marker` appear? */
function watchForMarker(marker: string): { seen: () => boolean; stop: () => void } {
  let seen = false;
  const timer = setInterval(() => {
    if (!seen && processesWithMarker(marker).length > 0) seen = true;
  }, 10);
  return { seen: () => seen, stop: () => clearInterval(timer) };
}

// ---------------------------------------------------------------------------------------

describe("bwrap sandbox under attack", () => {
  test("1. hello world runs under the default policy", async () => {
    const runRoot = freshRunRoot();
    const r = await run(makeCordon(runRoot), 'echo "hello, world"');
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("hello, world\n");
    expect(r.stderr).toBe("");
    expect(r.sandbox?.provider).toMatchObject({ name: "bwrap", isolating: true });
    if (IS_ROOT) expect(r.sandbox?.downgrades).toEqual([]);
    expectClean(runRoot);
  });

  test("2. a world-readable host canary file is unreadable by every route", async () => {
    const secret = token("canary-content-");
    const files = CANARY_PARENTS.map((parent) => {
      const dir = tempDir("canary", 0o755, parent);
      const file = join(dir, token("canary-file-"));
      writeFileSync(file, `${secret}\n`, { mode: 0o644 });
      return file;
    });
    const runRoot = freshRunRoot();
    const r = await run(makeCordon(runRoot), canaryReadScript(files));
    expect(r.stdout, describeResult(r)).toContain("probe_done=1");
    expect(r.stdout + r.stderr).not.toContain(secret);
    expect(r.stdout).not.toContain("found=");
    expectClean(runRoot);
  });

  test("3. writes outside scratch fail (/usr, /etc, /, /cordon/job, a host dir); /scratch and /tmp work", async () => {
    const name = token(".cordon-pwn-");
    // World-writable host dirs: only the filesystem layer (not permission bits) can stop the write.
    const hostDirs = CANARY_PARENTS.map((parent) => tempDir("writable", 0o777, parent));
    const targets = ["/usr", "/usr/bin", "/etc", "/", "/cordon/job", "/cordon", ...hostDirs];
    const runRoot = freshRunRoot();
    const r = await run(makeCordon(runRoot), writeAttackScript(targets, name));
    const out = r.stdout.split("\n");
    expect(r.outcome, describeResult(r)).toBe("ok");
    for (const t of targets) expect(out).toContain(`denied=${t}`);
    expect(out).toContain("denied=jobscript");
    expect(out.filter((l) => l.startsWith("wrote=") || l.startsWith("mkdir="))).toEqual([]);
    expect(out).toContain("scratch=scratch-data");
    expect(out).toContain("tmp=tmp-data");
    expect(out).toContain("pwd=/scratch");
    // From the host: nothing appeared anywhere the script aimed at.
    for (const t of targets.filter((t) => !t.startsWith("/cordon"))) {
      expect(existsSync(join(t, name))).toBe(false);
      expect(existsSync(join(t, `${name}.d`))).toBe(false);
    }
    for (const d of hostDirs) expect(readdirSync(d)).toEqual([]);
    expect(existsSync("/cordon")).toBe(false);
    expectClean(runRoot);
  });

  test.skipIf(!IS_ROOT)("4. a root-owned 0600 file bound into the sandbox is visible but unreadable (real uid drop)", async () => {
    const dir = tempDir("rootcanary", 0o755, "/var/tmp"); // not under /tmp: the sandbox owns that path
    const secret = token("root-secret-");
    const file = join(dir, "secret");
    writeFileSync(file, `${secret}\n`, { mode: 0o600 });
    const runRoot = freshRunRoot();
    const r = await run(makeCordon(runRoot), `
[ -e '${file}' ] && echo visible=yes || echo visible=no
echo "whoami=$(id -u)"
cat '${file}'
echo "cat_rc=$?"
dd if='${file}' bs=1 count=64 2>&1
`, { policy: { filesystem: { readOnlyBinds: [dir] } } });
    const kv = parseKv(r.stdout);
    expect(kv.visible, describeResult(r)).toBe("yes");
    expect(kv.cat_rc).not.toBe("0");
    expect(r.stderr + r.stdout).toContain("Permission denied");
    expect(r.stdout + r.stderr).not.toContain(secret);
    expect(r.sandbox?.layers.privilege.controls.uid?.status).toBe("enforced");
    expectClean(runRoot);
  });
  if (!IS_ROOT) console.warn("test 4 skipped: it proves the root supervisor's uid drop and needs to run as root");

  // Network tests stay on this machine: only a loopback listener the test itself opens.
  test("5. network: only lo, and the host's loopback listener is unreachable", async () => {
    const loop = countingListener("127.0.0.1");
    try {
      const targets = [{ ip: "127.0.0.1", port: loop.port }];
      const runRoot = freshRunRoot();
      const r = await run(makeCordon(runRoot), networkAttackScript(targets));
      const kv = parseKv(r.stdout);
      expect(kv.probe_done, describeResult(r)).toBe("1");
      expect(kv.ifaces).toBe("lo,");
      for (const t of targets) expect(kv[`tcp_${t.ip.replace(/\W/g, "_")}`]).toBe("failed");
      await sleep(100);
      expect(loop.hits()).toBe(0);
      expectClean(runRoot);
    } finally {
      loop.stop();
    }
  });

  test("6. a canary in the supervisor's initial environment is invisible; the allowlist passes exactly the named variable", async () => {
    const canary = token("envcanary");
    const pass = token("passed");
    const runRoot = freshRunRoot();
    const result = await runInChildSupervisor(
      runRoot,
      {
        runner: "shell",
        script: { source: envAttackScript(canary) },
        args: [],
        policy: withBase({ env: { allow: ["CORDON_TEST_PASSME", "CORDON_TEST_ABSENT"], set: { CORDON_TEST_FIXED: "fixed" } } }),
      },
      { CORDON_TEST_CANARY: canary, CORDON_TEST_PASSME: pass, CORDON_TEST_NOTME: `${canary}-not-allowed` },
    );
    const stdout = String(result.stdout);
    expect(result.outcome, JSON.stringify(result)).toBe("ok");
    const kv = parseKv(stdout);
    expect(kv.env_hits).toBe("0");
    expect(kv.proc_hits).toBe("0");
    expect(Number(kv.environ_readable)).toBeGreaterThan(0); // the /proc scan really read environ files
    expect(kv.own_env_seen).toBe("1");
    const envBlock = stdout.slice(stdout.indexOf("BEGIN_ENV\n") + 10, stdout.indexOf("END_ENV"));
    const names = parseKv(envBlock);
    expect(Object.keys(names).sort()).toEqual(["CORDON_RESULT_FD", "CORDON_TEST_FIXED", "CORDON_TEST_PASSME", "HOME", "LANG", "PATH", "PWD", "TMPDIR"]);
    expect(names.CORDON_TEST_PASSME).toBe(pass);
    expect(names.CORDON_TEST_FIXED).toBe("fixed");
    expect(stdout).not.toContain(canary);
    expectClean(runRoot);
  });

  test("7. an infinite loop is killed at the wall limit, within 10% + 200 ms", async () => {
    const marker = token("spin");
    const wallMs = 1000;
    const runRoot = freshRunRoot();
    const started = performance.now();
    const r = await run(makeCordon(runRoot), `sh -c 'while :; do :; done' ${marker} & while :; do :; done`, { policy: { resources: { wallMs } } });
    const hostElapsed = performance.now() - started;
    expect(r.outcome, describeResult(r)).toBe("timeout");
    expect(r.limitHit).toBe("wall");
    expect(r.durationMs).toBeGreaterThanOrEqual(wallMs);
    expect(r.durationMs).toBeLessThanOrEqual(wallMs * 1.1 + 200);
    expect(hostElapsed).toBeLessThanOrEqual(wallMs * 1.1 + 200 + 300); // + setup and teardown of the run dir
    expect(processesWithMarker(marker)).toEqual([]);
    expectClean(runRoot);
  });

  describe("8. a setsid + double-forked daemon does not survive the run", () => {
    for (const ending of ["normal exit", "timeout"] as const) {
      test(ending, async () => {
        const marker = sleepMarker(60);
        const runRoot = freshRunRoot();
        const watch = watchForMarker(marker);
        const tail = ending === "normal exit" ? "sleep 0.3; exit 0" : "exec sleep 30";
        const r = await run(makeCordon(runRoot), daemonScript(marker, tail), { policy: { resources: { wallMs: ending === "timeout" ? 800 : 5000 } } });
        watch.stop();
        expect(r.stdout, describeResult(r)).toContain("daemon=started");
        expect(watch.seen()).toBe(true); // the host saw the daemon alive during the run
        expect(r.outcome).toBe(ending === "normal exit" ? "ok" : "timeout");
        expect(processesWithMarker(marker)).toEqual([]);
        await sleep(300);
        expect(processesWithMarker(marker)).toEqual([]);
        expectClean(runRoot);
      });
    }
  });

  test("9. a `yes` flood is cut at the output cap with bounded supervisor memory", async () => {
    const cap = 1024 * 1024;
    const runRoot = freshRunRoot();
    const cordon = makeCordon(runRoot);
    const flood = () => run(cordon, "yes", { policy: { resources: { maxOutputBytes: cap, wallMs: 10_000 } } });
    await flood(); // warm-up: first-run allocations are not growth
    Bun.gc(true);
    const rssBefore = process.memoryUsage().rss;
    for (let i = 0; i < 3; i++) {
      const r = await flood();
      expect(r.outcome, describeResult(r)).toBe("limit");
      expect(r.limitHit).toBe("output");
      expect(r.stdoutTruncated).toBe(true);
      expect(r.stdoutBytes.length).toBe(cap);
      expect(r.stdout.length).toBe(cap);
      expect(r.stdout.startsWith("y\ny\n")).toBe(true);
      expect(r.durationMs).toBeLessThan(5000);
    }
    Bun.gc(true);
    const growth = process.memoryUsage().rss - rssBefore;
    expect(growth).toBeLessThan(50 * 1024 * 1024);
    expectClean(runRoot);
  }, 30_000);

  test("10. a fork loop is stopped by the process cap; the run ends; a concurrent run still works", async () => {
    const marker = sleepMarker(30);
    const runRoot = freshRunRoot();
    const cordon = makeCordon(runRoot);
    const bomb = run(cordon, forkBombScript(marker), { policy: { resources: { maxProcesses: 16, wallMs: 1500 } } });
    // Wait until the bomb holds its processes and the count has stopped growing (the cap is reached).
    let last = -1;
    const saturated = await waitFor(() => {
      const n = processesWithMarker(marker).length;
      const stable = n > 0 && n === last;
      last = n;
      return stable;
    }, 1200, 100);
    expect(saturated).toBe(true);
    const atPeak = last;
    const other = await run(cordon, "echo concurrent-ok; sleep 0.05 & wait");
    expect(other.outcome, describeResult(other)).toBe("ok");
    expect(other.stdout).toBe("concurrent-ok\n");
    const r = await bomb;
    const started = r.stdout.split("\n").filter((l) => l === "started").length;
    expect(r.stderr, describeResult(r)).toContain("Cannot fork");
    expect(r.stdout).toContain("loop_exited");
    expect(started).toBeGreaterThan(0);
    expect(started).toBeLessThan(100);
    expect(started).toBeLessThanOrEqual(16);
    expect(atPeak).toBe(started);
    expect(r.outcome).toBe("timeout"); // held open on a fifo: the wall clock ends it
    expect(processesWithMarker(marker)).toEqual([]);
    expectClean(runRoot);
  }, 10_000);

  describe("11. the run directory and its mounts are gone after every outcome", () => {
    const cases: { name: string; source: string; policy?: PolicyOverride; expect: (r: RunResult) => void; duringRun?: boolean }[] = [
      { name: "ok", source: "echo fine > /scratch/f; echo ok", expect: (r) => expect(r.outcome).toBe("ok") },
      { name: "exit-nonzero", source: "echo x > /scratch/f; exit 3", expect: (r) => expect([r.outcome, r.exitCode]).toEqual(["exit-nonzero", 3]) },
      { name: "killed by a signal", source: "kill -KILL $$", expect: (r) => expect([r.outcome, r.signal]).toEqual(["killed", "SIGKILL"]) },
      {
        name: "timeout",
        source: "echo x > /scratch/f; sleep 30",
        policy: { resources: { wallMs: 600 } },
        expect: (r) => expect(r.outcome).toBe("timeout"),
        duringRun: true,
      },
      { name: "output limit", source: "yes", policy: { resources: { maxOutputBytes: 1000 } }, expect: (r) => expect([r.outcome, r.limitHit]).toEqual(["limit", "output"]) },
      {
        name: "hostile leftovers (unwritable dirs, read-only files, a daemon with cwd in scratch)",
        source: "mkdir -p a/b/c; echo x > a/b/c/f; chmod 444 a/b/c/f; chmod 000 a/b/c a/b a; setsid sh -c 'cd /scratch; exec sleep 30' </dev/null >/dev/null 2>&1 & echo done",
        expect: (r) => expect(r.outcome).toBe("ok"),
      },
      {
        name: "sandbox setup failure (bind source missing)",
        source: "echo never",
        policy: { filesystem: { readOnlyBinds: ["/nonexistent/cordon-sec-bogus"] } },
        expect: (r) => expect([r.outcome, r.error?.code]).toEqual(["error", "sandbox-failed"]),
      },
    ];
    for (const c of cases) {
      test(c.name, async () => {
        const runRoot = freshRunRoot();
        let sawMount = false;
        const watcher = c.duringRun && IS_ROOT ? setInterval(() => void (sawMount ||= mountsUnder(runRoot).length > 0), 5) : null;
        const r = await run(makeCordon(runRoot), c.source, c.policy ? { policy: c.policy } : {});
        if (watcher) clearInterval(watcher);
        c.expect(r);
        if (watcher) expect(sawMount).toBe(true); // the check below is not vacuous: a scratch mount existed
        expectClean(runRoot);
      });
    }

    test("refusal (network allowlist under onUnavailable: fail)", async () => {
      const runRoot = freshRunRoot();
      const err = await caught(() =>
        run(makeCordon(runRoot), "echo never", { policy: { onUnavailable: "fail", network: { mode: "allowlist", allow: ["example.com:443"] } } }),
      );
      expect(err).toBeInstanceOf(SandboxUnavailableError);
      expect((err as SandboxUnavailableError).reasons.some((r) => r.startsWith("network."))).toBe(true);
      expectClean(runRoot);
    });

    test("invalid policy", async () => {
      const runRoot = freshRunRoot();
      const err = await caught(() => run(makeCordon(runRoot), "echo never", { policy: { resources: { wallMs: 0 } } }));
      expect(err).toBeInstanceOf(PolicyValidationError);
      expectClean(runRoot);
    });
  });

  test("12. an invalid policy throws PolicyValidationError naming the fields; nothing is spawned", async () => {
    const runRoot = freshRunRoot();
    const cordon = makeCordon(runRoot);
    const spawn = spyOn(Bun, "spawn");
    try {
      const bad: [PolicyOverride, string[]][] = [
        [{ resources: { wallMs: 0 } }, ["resources.wallMs"]],
        [{ resources: { wallMs: -5, maxProcesses: 1.5 } }, ["resources.wallMs", "resources.maxProcesses"]],
        [{ privilege: { uid: 0 } }, ["privilege.uid"]],
        [{ filesystem: { readOnlyBinds: ["relative/path"] } }, ["filesystem.readOnlyBinds.0"]],
        [{ filesystem: { readOnlyBinds: ["/tmp/shadow"] } }, ["filesystem.readOnlyBinds.0"]],
        [{ env: { allow: ["BAD-NAME"] } }, ["env.allow.0"]],
        [{ resources: { wallMs: "1000" } } as unknown as PolicyOverride, ["resources.wallMs"]],
      ];
      for (const [policy, paths] of bad) {
        const err = await caught(() => cordon.run({ runner: "shell", script: { source: "echo SHOULD-NOT-RUN > /scratch/x" }, args: [], policy }));
        expect(err).toBeInstanceOf(PolicyValidationError);
        const issues = (err as PolicyValidationError).issues.map((i) => i.path);
        for (const p of paths) expect(issues, JSON.stringify(policy)).toContain(p);
        for (const p of paths) expect((err as PolicyValidationError).message).toContain(p);
      }
      const unknownKey = await caught(() => cordon.run({ runner: "shell", script: { source: "echo x" }, args: [], policy: { resources: { wallMS: 5 } } as unknown as PolicyOverride }));
      expect(unknownKey).toBeInstanceOf(PolicyValidationError);
      expect((unknownKey as PolicyValidationError).message).toContain("wallMS");
      expect(spawn).not.toHaveBeenCalled();
    } finally {
      spawn.mockRestore();
    }
    expectClean(runRoot);
    expect(existsSync(runRoot)).toBe(false); // not even the run root was created
  });
});

// ---------------------------------------------------------------------------------------

describe("the unsafe provider (no isolation)", () => {
  test("13. refused under the default fail policy; under degrade it runs and reports every missing layer", async () => {
    const runRoot = freshRunRoot();
    const cordon = makeCordon(runRoot);
    const spawn = spyOn(Bun, "spawn");
    let err: unknown;
    try {
      err = await caught(() => cordon.run({ runner: "shell", provider: "unsafe", script: { source: "echo SHOULD-NOT-RUN" }, args: [] }));
      expect(spawn).not.toHaveBeenCalled();
    } finally {
      spawn.mockRestore();
    }
    expect(err).toBeInstanceOf(SandboxUnavailableError);
    const reasons = (err as SandboxUnavailableError).reasons;
    for (const layer of ["filesystem", "network", "privilege", "resources", "env"]) {
      expect(reasons.some((r) => r.startsWith(`${layer}.`)), `${layer} in ${reasons.join("; ")}`).toBe(true);
    }
    expectClean(runRoot);

    const r = await run(cordon, "echo degraded-run", { provider: "unsafe" });
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.stdout).toBe("degraded-run\n");
    const report = r.sandbox!;
    expect(report.provider).toMatchObject({ name: "unsafe", isolating: false });
    expect(report.downgrades.length).toBeGreaterThan(0);
    for (const layer of ["filesystem", "network", "privilege"] as const) expect(report.layers[layer].status).toBe("degraded");
    // Every degraded control is listed, and only those.
    const degradedControls = Object.entries(report.layers).flatMap(([layer, l]) =>
      Object.entries(l.controls)
        .filter(([, c]) => c.status === "degraded")
        .map(([name]) => `${layer}.${name}`),
    );
    expect(degradedControls.length).toBe(report.downgrades.length);
    for (const c of degradedControls) expect(report.downgrades.some((d) => d.startsWith(`${c}: `)), c).toBe(true);
    expectClean(runRoot);
  });

  describe("14. the attacks succeed without isolation (the tests above can fail)", () => {
    test("the host canary is readable", async () => {
      const secret = token("canary-content-");
      const dir = tempDir("canary", 0o755);
      const file = join(dir, token("canary-file-"));
      writeFileSync(file, `${secret}\n`, { mode: 0o644 });
      const runRoot = freshRunRoot();
      const r = await run(makeCordon(runRoot), `cat '${file}'`, { provider: "unsafe" });
      expect(r.stdout, describeResult(r)).toContain(secret);
      expectClean(runRoot);
    });

    test("a host dir is writable", async () => {
      const name = token(".cordon-pwn-");
      const hostDir = tempDir("writable", 0o777);
      const runRoot = freshRunRoot();
      const r = await run(makeCordon(runRoot), writeAttackScript([hostDir], name), { provider: "unsafe" });
      expect(r.stdout, describeResult(r)).toContain(`wrote=${hostDir}`);
      expect(existsSync(join(hostDir, name))).toBe(true);
      expectClean(runRoot);
    });

    test("the host's loopback listener is reachable", async () => {
      const loop = countingListener("127.0.0.1");
      try {
        const runRoot = freshRunRoot();
        const r = await run(makeCordon(runRoot), networkAttackScript([{ ip: "127.0.0.1", port: loop.port }]), { provider: "unsafe" });
        const kv = parseKv(r.stdout);
        expect(kv.tcp_127_0_0_1, describeResult(r)).toBe("connected");
        expect(kv.ifaces).not.toBe("lo,");
        expect(await waitFor(() => loop.hits() > 0, 1000)).toBe(true);
        expectClean(runRoot);
      } finally {
        loop.stop();
      }
    });

    test("the supervisor's environment canary is readable through /proc", async () => {
      const canary = token("envcanary");
      const runRoot = freshRunRoot();
      const result = await runInChildSupervisor(
        runRoot,
        { runner: "shell", provider: "unsafe", script: { source: envAttackScript(canary) }, args: [], policy: { onUnavailable: "degrade" } },
        { CORDON_TEST_CANARY: canary },
      );
      const kv = parseKv(String(result.stdout));
      expect(Number(kv.proc_hits), JSON.stringify(result)).toBeGreaterThan(0);
      expectClean(runRoot);
    });

    test("a setsid daemon survives the run", async () => {
      const marker = sleepMarker(20);
      const runRoot = freshRunRoot();
      try {
        const r = await run(makeCordon(runRoot), daemonScript(marker, "exit 0"), { provider: "unsafe" });
        expect(r.stdout, describeResult(r)).toContain("daemon=started");
        await sleep(100);
        expect(processesWithMarker(marker).length).toBe(1);
      } finally {
        for (const p of processesWithMarker(marker)) process.kill(p.pid, "SIGKILL"); // ours: started by this test
      }
      expect(await waitFor(() => processesWithMarker(marker).length === 0, 1000)).toBe(true);
      expectClean(runRoot);
    });

    test("the fork loop is not capped", async () => {
      const marker = sleepMarker(30);
      const runRoot = freshRunRoot();
      try {
        const r = await run(makeCordon(runRoot), forkBombScript(marker, false), { provider: "unsafe", policy: { resources: { wallMs: 8000 } } });
        expect(r.stdout.split("\n").filter((l) => l === "started").length, describeResult(r)).toBe(100);
        expect(r.stderr).not.toContain("Cannot fork");
      } finally {
        for (const p of processesWithMarker(marker)) process.kill(p.pid, "SIGKILL"); // ours, should the group kill miss any
      }
      expectClean(runRoot);
    }, 12_000);
  });
});

// ---------------------------------------------------------------------------------------

describe("15. no leftovers", () => {
  test("no file descriptor leak over 20 runs", async () => {
    const runRoot = freshRunRoot();
    const cordon = makeCordon(runRoot);
    await run(cordon, "echo warm"); // probes and lazy allocations happen once
    const before = fdCount();
    for (let i = 0; i < 20; i++) {
      const r = await run(cordon, i % 4 === 3 ? "yes" : `echo run-${i}; echo err >&2; exit ${i % 3}`, { policy: { resources: { maxOutputBytes: 4096 } } });
      expect(["ok", "exit-nonzero", "limit"]).toContain(r.outcome);
    }
    await sleep(50);
    expect(fdCount() - before).toBeLessThanOrEqual(2);
    expectClean(runRoot);
  }, 20_000);

  test("no sandbox process is left as a child of this test process", async () => {
    expect(await waitFor(() => childrenOf(process.pid).every((p) => !["bwrap", "setpriv"].includes(p.comm)), 1000)).toBe(true);
    const children = childrenOf(process.pid);
    expect(children.filter((p) => ["bwrap", "setpriv", "sh", "sleep", "setsid", "mount", "umount"].includes(p.comm))).toEqual([]);
    expect(children.filter((p) => p.state === "Z")).toEqual([]); // no unreaped zombies either
  });
});

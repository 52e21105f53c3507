/**
 * The resource controls the report calls `enforced` must hold against programs that
 * push past them: CPU burn, oversized files, address-space hogs, scratch and /tmp
 * fillers, fd hogs, and a supervisor that dies mid-run.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { KiB, MiB, type PolicyOverride, type RunResult } from "../src/api/index.ts";
import {
  BASE_POLICY,
  IS_ROOT,
  describeResult,
  freshRunRoot,
  makeCordon,
  mountsUnder,
  parseKv,
  processesWithMarker,
  removeTempDirs,
  runRootEntries,
  sleepMarker,
  waitFor,
} from "./support.ts";

afterAll(() => removeTempDirs());

const PYTHON = "/usr/bin/python3"; // Debian's, under the bound /usr (scripts/setup installs it)
const FIXTURE = resolve(import.meta.dir, "fixtures/run-json.ts");

async function run(source: string, policy: PolicyOverride): Promise<{ r: RunResult; runRoot: string }> {
  const runRoot = freshRunRoot();
  const r = await makeCordon(runRoot).run({ runner: "shell", script: { source }, args: [], policy: { ...BASE_POLICY, ...policy } });
  return { r, runRoot };
}

function expectNoLeftovers(runRoot: string): void {
  expect(runRootEntries(runRoot)).toEqual([]);
  expect(mountsUnder(runRoot)).toEqual([]);
}

describe("rlimits inside the sandbox", () => {
  test("a CPU burn dies of SIGXCPU at cpuSeconds: limitHit cpu, long before the wall limit", async () => {
    const { r, runRoot } = await run("while :; do :; done", { resources: { cpuSeconds: 1, wallMs: 8000 } });
    expect(r.outcome, describeResult(r)).toBe("limit");
    expect(r.limitHit).toBe("cpu");
    expect(r.signal).toBe("SIGXCPU");
    expect((r.stats?.cpuUserMs ?? 0) + (r.stats?.cpuSystemMs ?? 0)).toBeGreaterThanOrEqual(950); // the verdict's evidence
    expect(r.durationMs).toBeLessThan(4000);
    expectNoLeftovers(runRoot);
  });

  test("a file past maxFileSizeBytes stops at the cap (EFBIG/SIGXFSZ); as the main process: killed by SIGXFSZ, the script's own end (no fsize verdict)", async () => {
    const inner = await run(`head -c ${2 * MiB} /dev/zero > big; echo "rc=$? size=$(stat -c %s big)"`, { resources: { maxFileSizeBytes: 1 * MiB } });
    expect(parseKv(inner.r.stdout.replace(" ", "\n")), describeResult(inner.r)).toEqual({ rc: String(128 + 25), size: String(1 * MiB) });
    const main = await run(`exec head -c ${2 * MiB} /dev/zero > big`, { resources: { maxFileSizeBytes: 1 * MiB } });
    // The kernel's SIGXFSZ looks exactly like the script's own `exit 153`: not a limit verdict.
    expect([main.r.outcome, main.r.limitHit, main.r.signal, main.r.exitCode], describeResult(main.r)).toEqual(["killed", null, "SIGXFSZ", 153]);
    expectNoLeftovers(inner.runRoot);
    expectNoLeftovers(main.runRoot);
  });

  test("open files are capped at maxOpenFiles", async () => {
    if (!existsSync(PYTHON)) return console.warn(`skipped: ${PYTHON} missing (run scripts/setup)`);
    const hog = `exec ${PYTHON} -c '
import os
fds = []
try:
    while len(fds) < 1000:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    print("opened", len(fds), e.strerror)
'`;
    const { r } = await run(hog, { resources: { maxOpenFiles: 16 } });
    const [, opened, why] = /^opened (\d+) (.*)$/m.exec(r.stdout) ?? [];
    expect(why, describeResult(r)).toBe("Too many open files");
    expect(Number(opened)).toBeLessThanOrEqual(16 - 3);
    expect(Number(opened)).toBeGreaterThan(0);
  });

  test("memory: an allocation past memoryBytes is stopped (cgroup OOM kill, or MemoryError under RLIMIT_AS), the same allocation under a larger cap succeeds", async () => {
    if (!existsSync(PYTHON)) return console.warn(`skipped: ${PYTHON} missing (run scripts/setup)`);
    const hog = `exec ${PYTHON} -c '
try:
    b = bytearray(512 * 1024 * 1024)
    b[-1] = 1
    print("allocated")
except MemoryError:
    print("MemoryError")
'`;
    const capped = await run(hog, { resources: { memoryBytes: 256 * MiB } });
    const mechanism = capped.r.sandbox?.layers.resources.controls.memory?.mechanism ?? "";
    if (mechanism.includes("cgroup")) {
      // A tree cap: the kernel's OOM killer ends it and the supervisor reports the memory limit.
      expect(capped.r.outcome, describeResult(capped.r)).toBe("limit");
      expect(capped.r.limitHit).toBe("memory");
      expect(capped.r.stdout).not.toContain("allocated");
    } else {
      expect(capped.r.stdout.trim(), describeResult(capped.r)).toBe("MemoryError");
      expect(mechanism).toContain("per-process");
    }
    const roomy = await run(hog, { resources: { memoryBytes: 1024 * MiB } });
    expect(roomy.r.stdout.trim(), describeResult(roomy.r)).toBe("allocated");
  });
});

describe("size-capped writable space", () => {
  test("/tmp fills up at scratchBytes with ENOSPC", async () => {
    const { r, runRoot } = await run(`head -c ${4 * MiB} /dev/zero > /tmp/fill 2>/dev/null; echo "size=$(stat -c %s /tmp/fill)"; echo done=1`, {
      resources: { scratchBytes: 1 * MiB, maxFileSizeBytes: 64 * MiB },
    });
    const kv = parseKv(r.stdout);
    expect(kv.done, describeResult(r)).toBe("1");
    expect(Number(kv.size)).toBeLessThanOrEqual(1 * MiB);
    expect(Number(kv.size)).toBeGreaterThan(512 * KiB);
    expectNoLeftovers(runRoot);
  });

  test("scratch fills up at scratchBytes with ENOSPC (root supervisor: a tmpfs mounted per run)", async () => {
    if (!IS_ROOT) return console.warn("skipped: the scratch quota is a tmpfs the supervisor mounts, which needs root");
    const { r, runRoot } = await run(`head -c ${4 * MiB} /dev/zero > fill 2>/tmp/err; echo "size=$(stat -c %s fill)"; grep -c "No space left" /tmp/err`, {
      resources: { scratchBytes: 1 * MiB, maxFileSizeBytes: 64 * MiB },
    });
    expect(Number(parseKv(r.stdout).size), describeResult(r)).toBeLessThanOrEqual(1 * MiB);
    expect(r.stdout.trim().split("\n").at(-1)).toBe("1");
    expect(r.sandbox?.layers.resources.controls.scratch?.status).toBe("enforced");
    expectNoLeftovers(runRoot);
  });
});

describe("a supervisor that dies mid-run", () => {
  test("takes its sandbox with it, and the next start removes the run directory it left", async () => {
    const runRoot = freshRunRoot();
    const marker = sleepMarker(60);
    const supervisor = Bun.spawn([process.execPath, FIXTURE], {
      stdin: new TextEncoder().encode(JSON.stringify({ runRoot, request: { runner: "shell", script: { source: `sleep ${marker}` }, args: [], policy: { ...BASE_POLICY, resources: { wallMs: 60_000 } } } })),
      stdout: "ignore",
      stderr: "ignore",
    });
    expect(await waitFor(() => processesWithMarker(marker).length > 0, 10_000)).toBe(true);
    expect(runRootEntries(runRoot)).toHaveLength(1);
    supervisor.kill("SIGKILL");
    await supervisor.exited;
    // --die-with-parent: the sandbox dies with the supervisor that started it.
    expect(await waitFor(() => processesWithMarker(marker).length === 0, 3000)).toBe(true);
    expect(runRootEntries(runRoot)).toHaveLength(1); // nobody was left to clean up…

    const next = makeCordon(runRoot);
    const r = await next.run({ runner: "shell", script: { source: "echo fresh" }, args: [], policy: BASE_POLICY });
    expect(r.stdout).toBe("fresh\n");
    expectNoLeftovers(runRoot); // …until the next supervisor started
  });
});

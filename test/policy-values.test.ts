/**
 * No policy that validates may fail at every run.
 *
 * `resources.maxOpenFiles` used to accept 8–11, under which every shell script failed
 * (dash moves the script's fd to 10 and saves redirected fds above it) while the report
 * said `RLIMIT_NOFILE … enforced`. The schema's floor is now the measured minimum of every
 * runner (MIN_OPEN_FILES): at the floor each runner starts, prints and reports, with and
 * without `--verify`'s receipt prologue; below it the policy is refused.
 *
 * `filesystem.mode: "off"` used to bind the host's `/` read-write and then mount /scratch
 * and /cordon/job on it: those targets do not exist on the host, so bwrap failed with
 * `Can't mkdir /scratch` at every run. `off` now builds the view on a sealed tmpfs root
 * with every host top-level entry bound in read-write at its own path, and the report says so.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parsePolicyOverride, PolicyValidationError, type PolicyOverride, type RunRequest, type RunResult } from "../src/api/index.ts";
import { MIN_OPEN_FILES } from "../src/policy/schema.ts";
import { BASE_POLICY, IS_ROOT, describeResult, freshRunRoot, makeCordon, mountsUnder, removeTempDirs, runRootEntries, tempDir, token } from "./support.ts";

afterAll(() => removeTempDirs());

const runRoot = freshRunRoot("values");
const cordon = makeCordon(runRoot);

type RunnerName = "shell" | "python" | "esm";

function run(runner: RunnerName, source: string, policy: PolicyOverride, extra: Partial<RunRequest> = {}): Promise<RunResult> {
  return cordon.run({
    runner,
    script: { source },
    args: [],
    ...extra,
    // Bun's memory is a cgroup cap only: degrade keeps the ESM runs about the value under test.
    policy: { ...BASE_POLICY, ...(runner === "esm" ? { onUnavailable: "degrade" } : {}), ...policy },
  });
}

/** Each runner prints a line and reports a structured result through its documented helper. */
const PRINT_AND_REPORT: Record<RunnerName, string> = {
  shell: 'echo hello; cordon-result warn "reported" n=1\n',
  python: 'import cordon\nprint("hello")\ncordon.result("warn", "reported", metrics={"n": 1})\n',
  esm: 'console.log("hello");\nexport default () => ({ status: "warn", message: "reported", metrics: { n: 1 } });\n',
};

function expectPrintedAndReported(r: RunResult): void {
  expect(r.outcome, describeResult(r)).toBe("ok");
  expect(r.stdout).toBe("hello\n");
  expect(r.resultSource).toBe("channel");
  expect(r.result).toMatchObject({ status: "warn", message: "reported", metrics: { n: 1 } });
}

describe("resources.maxOpenFiles: the schema's floor is what every runner needs", () => {
  test("below the floor is refused with a clear error; the floor itself validates", () => {
    expect(MIN_OPEN_FILES).toBe(12);
    for (const n of [8, 10, MIN_OPEN_FILES - 1]) {
      let err: unknown;
      try {
        parsePolicyOverride({ resources: { maxOpenFiles: n } });
      } catch (e) {
        err = e;
      }
      expect(err, `maxOpenFiles ${n}`).toBeInstanceOf(PolicyValidationError);
      expect(String((err as Error).message)).toContain(`resources.maxOpenFiles: must be at least ${MIN_OPEN_FILES}`);
    }
    expect(parsePolicyOverride({ resources: { maxOpenFiles: MIN_OPEN_FILES } }).resources?.maxOpenFiles).toBe(MIN_OPEN_FILES);
  });

  test("a run refuses below the floor before anything is spawned", async () => {
    const before = runRootEntries(runRoot).length;
    await expect(run("shell", "echo should-not-run", { resources: { maxOpenFiles: 10 } })).rejects.toBeInstanceOf(PolicyValidationError);
    expect(runRootEntries(runRoot).length).toBe(before);
  });

  for (const runner of ["shell", "python", "esm"] as const) {
    for (const verify of [false, true]) {
      test(`${runner}${verify ? " with --verify" : ""} starts, prints and reports at maxOpenFiles ${MIN_OPEN_FILES}`, async () => {
        const r = await run(runner, PRINT_AND_REPORT[runner], { resources: { maxOpenFiles: MIN_OPEN_FILES } }, verify ? { verify: true } : {});
        expectPrintedAndReported(r);
        if (verify) expect(r.receipt, describeResult(r)).toBeTruthy();
        const nofile = r.sandbox!.layers.resources.controls.nofile!;
        expect(nofile.status).toBe("enforced");
        expect(nofile.mechanism).toStartWith(`RLIMIT_NOFILE ${MIN_OPEN_FILES} (per process)`);
      });
    }
  }

  test("the floor is tight: dash running a script with a redirection needs 12 descriptors, 11 fail", async () => {
    // Measured inside the sandbox, one level down: the run's own limit is the default, the
    // inner /bin/sh gets 11 or 12 with `ulimit -n`.
    const r = await run(
      "shell",
      [
        "printf 'echo out >&2\\n' > probe.sh",
        "for n in 11 12; do",
        '  if (ulimit -n "$n"; exec /bin/sh ./probe.sh) 2>/dev/null; then echo "n$n=ok"; else echo "n$n=fail"; fi',
        "done",
      ].join("\n"),
      {},
    );
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.stdout).toBe("n11=fail\nn12=ok\n");
  });
});

describe.skipIf(!IS_ROOT)("filesystem.mode off runs under bwrap (root supervisor)", () => {
  test("a shell run works: the host's files at their paths, scratch as cwd, / sealed, private /tmp", async () => {
    // Not under the host's /tmp: the sandbox has a private one there.
    const shared = tempDir("fsoff", 0o777, "/var/tmp");
    const canary = join(shared, "canary.txt");
    const content = token("canary");
    writeFileSync(canary, content);
    chmodSync(canary, 0o644);
    const written = join(shared, "from-sandbox.txt");
    const marker = token("written");
    const r = await run(
      "shell",
      [
        "set -u",
        'echo "cwd=$(pwd)"',
        `echo "canary=$(cat ${canary})"`,
        `printf '%s' ${marker} > ${written} && echo host_write=ok`,
        "echo x > in-scratch && echo scratch_write=ok",
        "mkdir /cordon-new-top 2>/dev/null && echo root_write=ok || echo root_write=denied",
        "echo x > /etc/cordon-probe 2>/dev/null && echo etc_write=ok || echo etc_write=denied",
        "test -e /usr/bin/env && echo usr=visible",
        'echo "tmp=$(ls -A /tmp | wc -l)"',
        "test -r /cordon/job/script.sh && echo job=visible",
      ].join("\n"),
      { filesystem: { mode: "off" } },
    );
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.stdout.trim().split("\n")).toEqual([
      "cwd=/scratch",
      `canary=${content}`,
      "host_write=ok",
      "scratch_write=ok",
      "root_write=denied",
      "etc_write=denied",
      "usr=visible",
      "tmp=0",
      "job=visible",
    ]);
    // Written through to the host, as the sandbox uid.
    expect(readFileSync(written, "utf8")).toBe(marker);
    expect(existsSync("/cordon-new-top")).toBe(false);
    expect(existsSync("/etc/cordon-probe")).toBe(false);
    const view = r.sandbox!.layers.filesystem.controls.view!;
    expect(view.status).toBe("off");
    expect(view.reason).toContain("read-write at their own paths");
    expect(view.reason).toContain("/ itself is a read-only tmpfs");
    expect(view.reason).toContain("private /tmp");
    expect(runRootEntries(runRoot)).toEqual([]);
    expect(mountsUnder(runRoot)).toEqual([]);
  });

  test("the run root, in a host dir the view binds, is covered by an empty tmpfs (other runs stay out of reach)", async () => {
    const hostRunRoot = join(tempDir("fsoff-root", 0o711, "/var/tmp"), "runs");
    const own = makeCordon(hostRunRoot);
    const r = await own.run({
      runner: "shell",
      script: { source: `stat -f -c 'fs=%T' ${hostRunRoot}; echo "entries=$(ls -A ${hostRunRoot} | wc -l)"` },
      args: [],
      policy: { ...BASE_POLICY, filesystem: { mode: "off" } },
    });
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.stdout).toBe("fs=tmpfs\nentries=0\n");
    expect(r.sandbox!.layers.filesystem.controls.view!.reason).toContain(`the run root ${hostRunRoot} is hidden under an empty tmpfs`);
    expect(runRootEntries(hostRunRoot)).toEqual([]);
  });

  test.each(["python", "esm"] as const)("a %s run works and reports", async (runner) => {
    const r = await run(runner, PRINT_AND_REPORT[runner], { filesystem: { mode: "off" } });
    expectPrintedAndReported(r);
  });
});

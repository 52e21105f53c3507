/**
 * The run's rlimits (cpu, fsize, nofile, core) on the bwrap-based providers: set with
 * prlimit(2) by the supervisor on bwrap's init while it holds the command at --block-fd,
 * and inherited by the command it forks. The script reads what is in force on itself
 * and tries to raise every hard limit; without the limits (the `unsafe` provider, or a
 * step that never ran) these tests fail.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { Cordon, type PolicyOverride, type RunResult } from "../src/api/index.ts";
import type { Provider, RenderContext, Rendering, SandboxSpec } from "../src/api/plugin.ts";
import { BwrapProvider, builtinProviders, builtinRunners } from "../plugins/index.ts";
import { setRlimits } from "../src/sandbox/rlimit-syscall.ts";
import { withRealIds } from "../src/sandbox/thread-real-ids.ts";
import { BASE_POLICY, IS_ROOT, describeResult, freshRunRoot, makeCordon, parseKv, removeTempDirs } from "./support.ts";

afterAll(() => removeTempDirs());

const ROOTLESS_TOOLS = ["bwrap", "slirp4netns", "nft", "nsenter"];

/** Every thread's real, effective, saved and fs uid and gid, from the kernel (credentials are per thread). */
function supervisorIds(): string[] {
  const tasks = readdirSync("/proc/self/task");
  return [...new Set(tasks.map((t) => readFileSync(`/proc/self/task/${t}/status`, "utf8").split("\n").filter((l) => /^(Uid|Gid):/.test(l)).join(" ")))];
}
const SUPERVISOR_IDS = supervisorIds();

const LIMITS = { cpuSeconds: 7, maxFileSizeBytes: 3 * 1024 * 1024, maxOpenFiles: 100 } as const;

/**
 * Soft and hard values from /proc/self/limits (the kernel's own account), then an attempt
 * to raise each hard limit (dash's ulimit: -t seconds, -f 512-byte blocks, -n, -c blocks).
 */
const HOSTILE = `
lim() { sed -n "s/^$1  *\\([^ ]*\\)  *\\([^ ]*\\).*/\\1:\\2/p" /proc/self/limits; }
echo "cpu=$(lim 'Max cpu time')"
echo "fsize=$(lim 'Max file size')"
echo "nofile=$(lim 'Max open files')"
echo "core=$(lim 'Max core file size')"
(ulimit -H -t unlimited) 2>/dev/null && echo raise_cpu=ok || echo raise_cpu=refused
(ulimit -H -f unlimited) 2>/dev/null && echo raise_fsize=ok || echo raise_fsize=refused
(ulimit -H -n 100000) 2>/dev/null && echo raise_nofile=ok || echo raise_nofile=refused
(ulimit -H -c unlimited) 2>/dev/null && echo raise_core=ok || echo raise_core=refused
(ulimit -S -n 101) 2>/dev/null && echo soft_past_hard=ok || echo soft_past_hard=refused
`;

const EXPECTED = {
  cpu: `${LIMITS.cpuSeconds}:${LIMITS.cpuSeconds + 1}`,
  fsize: `${LIMITS.maxFileSizeBytes}:${LIMITS.maxFileSizeBytes}`,
  nofile: `${LIMITS.maxOpenFiles}:${LIMITS.maxOpenFiles}`,
  core: "0:0",
  raise_cpu: "refused",
  raise_fsize: "refused",
  raise_nofile: "refused",
  raise_core: "refused",
  soft_past_hard: "refused",
};

async function hostileRun(cordon: Cordon, provider: string, extra: PolicyOverride = {}): Promise<RunResult> {
  return cordon.run({ runner: "shell", script: { source: HOSTILE }, args: [], provider, policy: { ...BASE_POLICY, ...extra, resources: { ...LIMITS } } });
}

describe("rlimits set with prlimit(2) while bwrap holds the command", () => {
  test("bwrap: the plan holds the command at --block-fd and spawns no prlimit binary; the report says how the limits are set", async () => {
    const plan = await makeCordon().plan({ runner: "shell", script: { source: "true" }, args: [], policy: { ...BASE_POLICY, resources: { ...LIMITS } } });
    expect(plan.argv.some((a) => a.includes("prlimit") && a.startsWith("/"))).toBe(false);
    expect(plan.argv).toContain("--block-fd");
    const controls = plan.layers.resources.controls;
    for (const name of ["cpu", "fsize", "nofile"]) expect(controls[name]?.mechanism, name).toContain("prlimit(2)");
    expect(plan.argv.join(" ")).toContain(`cpu=${LIMITS.cpuSeconds}:${LIMITS.cpuSeconds + 1}`);
    expect(plan.argv.join(" ")).toContain("core=0:0");
  });

  for (const provider of ["bwrap", "rootless"]) {
    const rootlessMissing = ROOTLESS_TOOLS.filter((t) => !Bun.which(t, { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }));
    const skip = provider === "rootless" && (!IS_ROOT || rootlessMissing.length > 0);
    test.skipIf(skip)(`${provider}: the command has every limit, soft and hard, and cannot raise any; the supervisor keeps its own ids`, async () => {
      const r = await hostileRun(makeCordon(), provider, provider === "rootless" ? { network: { mode: "unrestricted" } } : {});
      expect(r.outcome, describeResult(r)).toBe("ok");
      expect(parseKv(r.stdout)).toEqual(EXPECTED);
      // A root supervisor borrowed the run's uid for prlimit(2) on its thread: every id is its own again.
      expect(supervisorIds()).toEqual(SUPERVISOR_IDS);
    });
  }

  test("cgroups off: the same limits hold (bwrap spawned as the run's uid, no join shell in front)", async () => {
    const r = await hostileRun(makeCordon(freshRunRoot(), { cgroups: "off" }), "bwrap");
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(parseKv(r.stdout)).toEqual(EXPECTED);
    expect(supervisorIds()).toEqual(SUPERVISOR_IDS);
  });

  test("a bwrap without --block-fd keeps util-linux prlimit in front of the command: the same limits, reported as such", async () => {
    const bwrap = new BwrapProvider();
    const noBlockFd: Provider = {
      name: "bwrap-no-block-fd",
      description: "bwrap, probed as if it had no --block-fd",
      isolating: true,
      probe: () => {
        const p = bwrap.probe();
        return { ...p, features: { ...p.features, blockFd: false } };
      },
      capabilities: (probe, host) => bwrap.capabilities(probe, host),
      render: (spec: SandboxSpec, ctx: RenderContext): Rendering => bwrap.render(spec, ctx),
    };
    const cordon = new Cordon({ runRoot: freshRunRoot() }, { providers: [...builtinProviders(), noBlockFd], runners: builtinRunners() });
    const r = await hostileRun(cordon, "bwrap-no-block-fd");
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(parseKv(r.stdout)).toEqual(EXPECTED);
    expect(r.sandbox?.argv.join(" ")).toContain("/usr/bin/prlimit --cpu=7:8");
    expect(r.sandbox?.argv).not.toContain("--block-fd");
    expect(r.sandbox?.layers.resources.controls.nofile?.mechanism).toContain("set by prlimit(1) inside the sandbox");
  });

  test("fail closed: when prlimit(2) is refused the script never starts: the run is refused (held back, killed before release)", async () => {
    // RLIMIT_NOFILE above fs.nr_open is refused by the kernel (EPERM), even for root.
    const bwrap = new BwrapProvider();
    const impossible: Provider = {
      name: "bwrap-impossible-nofile",
      description: "bwrap, asked for an RLIMIT_NOFILE the kernel refuses",
      isolating: true,
      probe: () => bwrap.probe(),
      capabilities: (probe, host) => bwrap.capabilities(probe, host),
      render: (spec: SandboxSpec, ctx: RenderContext): Rendering => bwrap.render({ ...spec, resources: { ...spec.resources, rlimits: { ...spec.resources.rlimits, nofile: 2 ** 40 } } }, ctx),
    };
    const cordon = new Cordon({ runRoot: freshRunRoot() }, { providers: [...builtinProviders(), impossible], runners: builtinRunners() });
    const r = await cordon.run({ runner: "shell", script: { source: "echo started; sleep 5" }, args: [], provider: "bwrap-impossible-nofile", policy: BASE_POLICY });
    // Held back and killed before the release: refused, the script never started.
    expect(r.outcome, describeResult(r)).toBe("refused");
    expect(r.error?.code).toBe("sandbox-unavailable");
    expect(r.error?.message).toContain("prlimit(2) of RLIMIT_NOFILE");
    expect(r.stdout).toBe("");
    expect(r.durationMs).toBeLessThan(4000);
  });
});

describe("the syscall modules", () => {
  test.skipIf(!IS_ROOT)("withRealIds: the thread's real uid and gid are borrowed for the call only; effective ids stay 0", () => {
    const inside = withRealIds({ uid: 12345, gid: 23456 }, () => ({ uid: process.getuid!(), gid: process.getgid!(), euid: process.geteuid!() }));
    expect(inside).toEqual({ uid: 12345, gid: 23456, euid: 0 });
    expect([process.getuid!(), process.getgid!()]).toEqual([0, 0]);
    expect(() => withRealIds({ uid: 12345, gid: 23456 }, () => { throw new Error("inner"); })).toThrow("inner");
    expect(supervisorIds()).toEqual(SUPERVISOR_IDS);
  });

  test("setRlimits names the limit and the errno the kernel refused with", () => {
    // Above pid_max (4194304 at most): no such process.
    expect(() => setRlimits(2 ** 22 + 7, { nofile: { soft: 10, hard: 10 } })).toThrow(/RLIMIT_NOFILE on pid \d+ failed: ESRCH/);
  });
});

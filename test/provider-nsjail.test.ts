/**
 * The nsjail provider. Pure render tests always run; real runs need nsjail on PATH
 * (not packaged in Debian: build it from https://github.com/google/nsjail) and skip
 * with a printed reason otherwise.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Cordon, DEFAULT_POLICY, mergePolicy, SandboxUnavailableError, type PolicyOverride, type RunResult } from "../src/api/index.ts";
import { type HostFacts, type Job, type Workspace, type ProviderProbe } from "../src/api/plugin.ts";
import { detectHostFacts, hostFacts } from "../src/host.ts";
import { composePlan } from "../src/sandbox/plan.ts";
import { LauncherInputError } from "../src/sandbox/launcher-input.ts";
import { LAUNCHER_PROCESSES } from "../src/protocol/index.ts";
import { planRun, runInSandbox } from "../src/sandbox/run.ts";
import { allocateWorkspace } from "../src/sandbox/workspace.ts";
import { builtinProviders, builtinRunners } from "../plugins/index.ts";
import { parseLaunchStatus } from "../src/protocol/launch-status.ts";
import { CONFIG_FILE, NsjailProvider } from "../plugins/provider-nsjail/index.ts";
import { quote, timeLimitSeconds } from "../plugins/provider-nsjail/render.ts";
import { kafelPolicy, renderKafel, X32_KILL_SPAN, X32_SYSCALL_BIT } from "../plugins/mechanism/seccomp/kafel.ts";
import { cachedBpf, syscallNumber } from "../plugins/mechanism/seccomp/libseccomp.ts";
import { actionText, AUDIT_ARCH, compareFilters, parseProgram } from "./support/bpf.ts";
import { dlopen, FFIType } from "bun:ffi";
import { SYSCALL_RULES, type SyscallRule } from "../src/api/plugin.ts";
import {
  BASE_POLICY,
  COMPARISON_ATTACKS,
  IS_ROOT,
  attackNumbers,
  attackResults,
  countingListener,
  describeResult,
  expectClean,
  freshRunRoot,
  makeCordon,
  parseKv,
  processesWithMarker,
  userNamespaceOwner,
  hostPids,
  readProc,
  uidOf,
  removeTempDirs,
  sleep,
  sleepMarker,
  syscallAttackRequest,
  tempDir,
  token,
  waitFor,
  CGROUP_HOST,
  NO_CGROUPS,
  PLAN_JOB,
  ROOT_HOST,
  USER_HOST,
  PLAN_IDENTITY,
  isSandboxHostUid,
} from "./support.ts";

afterAll(() => removeTempDirs());

const MiB = 1024 * 1024;
const workspace = allocateWorkspace("/tmp/cordon-nsjail-plan-test");
const job = PLAN_JOB;
const probe: ProviderProbe = { available: true, binary: "/opt/nsjail/nsjail", version: "build 0123456789ab", features: { seccomp: true }, tools: { timeout: "/usr/bin/timeout", setpriv: "/usr/bin/setpriv" } };
const SETPRIV_OWN = ["/usr/bin/setpriv", `--reuid=${PLAN_IDENTITY.uid}`, `--regid=${PLAN_IDENTITY.gid}`, "--clear-groups", "--no-new-privs"];

function planFor(override: PolicyOverride = {}, host: HostFacts = CGROUP_HOST, j: Job = job, secrets: string[] = []) {
  const plan = composePlan({ policy: mergePolicy(DEFAULT_POLICY, override), job: j, host, workspace, secrets, identity: PLAN_IDENTITY }, new NsjailProvider(), probe);
  const staged = plan.stage.find((f) => f.path === CONFIG_FILE);
  if (!staged) throw new Error("no config staged");
  return { plan, config: String(staged.content), mode: staged.mode, owner: staged.owner };
}

/** `name: value` lines of the config (the first of each name). */
function settings(config: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of config.split("\n")) {
    const m = /^([a-z_0-9]+): (.*)$/.exec(line);
    if (m && !(m[1]! in out)) out[m[1]!] = m[2]!;
  }
  return out;
}

const mountLines = (config: string) => config.split("\n").filter((l) => l.startsWith("mount {"));

describe("nsjail plan (pure)", () => {
  test("argv: setpriv to the run's host uid, nsjail --config <run dir>/nsjail.cfg -- timeout 0 <command>; the config is 0400 and that uid's", () => {
    const { plan, mode, owner } = planFor();
    expect(plan.argv).toEqual([...SETPRIV_OWN, "/opt/nsjail/nsjail", "--config", join(workspace.root, CONFIG_FILE), "--", "/usr/bin/timeout", "0", "/bin/sh", "/cordon/job/script.sh"]);
    expect(mode).toBe(0o400);
    expect(owner).toEqual({ uid: PLAN_IDENTITY.uid, gid: PLAN_IDENTITY.gid });
    // a non-root supervisor: nsjail runs as the supervisor, the config is its own 0600 file
    const user = composePlan({ policy: mergePolicy(DEFAULT_POLICY, { onUnavailable: "degrade" }), job, host: USER_HOST, workspace }, new NsjailProvider(), probe);
    expect(user.argv[0]).toBe("/opt/nsjail/nsjail");
    expect(user.stage.find((f) => f.path === CONFIG_FILE)).toMatchObject({ mode: 0o600 });
    expect(user.stage.find((f) => f.path === CONFIG_FILE)?.owner).toBeUndefined();
    // without setpriv a root supervisor cannot drop: the uid is degraded, never silently root
    const noSetpriv = composePlan({ policy: mergePolicy(DEFAULT_POLICY, { onUnavailable: "degrade" }), job, host: CGROUP_HOST, workspace }, new NsjailProvider(), { ...probe, tools: { timeout: "/usr/bin/timeout" } });
    expect(noSetpriv.report.layers.privilege.controls.uid?.status).toBe("degraded");
    expect(plan.env).toEqual({});
    expect(plan).toMatchObject({ treeKill: "process-group", exitEncoding: "shell-128", statusFd: "nsjail-log" });
    expect(plan.launcherArgs).toBeUndefined();
  });

  test("every rlimit nsjail would otherwise default is set, in nsjail's units (MiB for as/fsize/core)", () => {
    const s = settings(planFor({}, ROOT_HOST).config); // no cgroups: memory falls back to RLIMIT_AS
    expect(s.rlimit_as).toBe("256");
    expect(s.rlimit_as_type).toBe("VALUE");
    expect(s.rlimit_fsize).toBe("64");
    expect(s.rlimit_fsize_type).toBe("VALUE");
    expect(s.rlimit_nofile).toBe("256");
    expect(s.rlimit_cpu).toBe("10");
    expect(s.rlimit_core).toBe("0");
    expect(s.rlimit_nproc).toBe("64");
    expect(s.rlimit_nproc_type).toBe("VALUE");
    expect(s.rlimit_stack_type).toBe("SOFT");
    expect(s.time_limit).toBe("12"); // ceil(10000 ms) + 2 s: a backstop behind the supervisor's ms timer
    expect(s.nice_level).toBe("0");
    expect(s.hostname).toBe('"cordon"');
    expect(s.cwd).toBe('"/scratch"');
    expect(s.mode).toBe("ONCE");
    expect(s.log_level).toBe("ERROR");
  });

  test("256 MiB of memory is rlimit_as: 256 or the cgroup cap, never 268435456 in nsjail's MiB field", () => {
    const noCgroup = planFor({ resources: { memoryBytes: 256 * MiB } }, ROOT_HOST);
    expect(settings(noCgroup.config).rlimit_as).toBe("256");
    expect(noCgroup.config).not.toContain("268435456");
    const withCgroup = planFor({ resources: { memoryBytes: 256 * MiB } }, CGROUP_HOST);
    expect(withCgroup.plan.cgroup).toMatchObject({ memoryBytes: 256 * MiB, pidsMax: 64 + LAUNCHER_PROCESSES });
    expect(settings(withCgroup.config).rlimit_as).toBeUndefined();
    expect(settings(withCgroup.config).rlimit_as_type).toBe("HARD"); // the supervisor's own limit, not nsjail's 4096 MiB
    expect(withCgroup.config).not.toContain("268435456");
    expect(settings(withCgroup.config).rlimit_nproc_type).toBe("SOFT"); // pids.max holds the tree
  });

  test("a byte count that is not whole MiB rounds DOWN, and the report says so", () => {
    const { plan, config } = planFor({ resources: { maxFileSizeBytes: 1.5 * MiB, memoryBytes: 100 * MiB + 1 } }, ROOT_HOST);
    expect(settings(config).rlimit_fsize).toBe("1");
    expect(settings(config).rlimit_as).toBe("100");
    expect(plan.report.layers.resources.controls.fsize?.mechanism).toContain("rounded down");
    expect(plan.report.layers.resources.controls.memory?.mechanism).toContain(`RLIMIT_AS 100 MiB each (the policy's ${100 * MiB + 1} bytes rounded down to the launcher's MiB)`);
    expect(plan.report.layers.resources.controls.cpu?.mechanism).toContain("SIGKILL at 10 s");
  });

  test("uid map: root maps sandbox 65534 to the run's own host uid (never host root, never 65534), nsjail runs as that uid and owns the user namespace; a non-root supervisor maps its own uid and says so", () => {
    const root = planFor();
    const own = PLAN_IDENTITY.uid;
    expect(root.config).toContain(`uidmap { inside_id: "65534" outside_id: "${own}" count: 1 }`);
    expect(root.config).toContain(`gidmap { inside_id: "65534" outside_id: "${own}" count: 1 }`);
    expect(root.config).not.toMatch(/outside_id: "0"/);
    expect(root.plan.scratch.owner).toEqual({ uid: own, gid: own });
    expect(root.plan.report.layers.privilege.controls.uid?.mechanism).toContain(`to host uid ${own} gid ${own}`);
    expect(root.plan.report.layers.privilege.controls.identity?.mechanism).toContain(`per-run host uid ${own} gid ${own}`);
    expect(root.plan.report.layers.privilege.controls.namespaceOwner).toEqual({
      status: "enforced",
      mechanism: expect.stringContaining(`nsjail runs as host uid ${own} gid ${own} (setpriv, no capabilities), so the run's user namespace is owned by that uid, not root`),
    });
    const user = composePlan({ policy: mergePolicy(DEFAULT_POLICY, { onUnavailable: "degrade" }), job, host: USER_HOST, workspace }, new NsjailProvider(), probe);
    const cfg = String(user.stage.find((f) => f.path === CONFIG_FILE)?.content);
    expect(cfg).toContain('uidmap { inside_id: "65534" outside_id: "1000" count: 1 }');
    expect(user.report.layers.privilege.controls.uid?.status).toBe("degraded");
    expect(user.report.layers.privilege.controls.namespaceOwner).toBeUndefined();
  });

  test("uid map honours policy.privilege.uid/gid inside (like bwrap): root maps sandbox 4242/4343 to the run's own host uid", () => {
    const root = planFor({ privilege: { uid: 4242, gid: 4343 } });
    const own = PLAN_IDENTITY.uid;
    expect(root.config).toContain(`uidmap { inside_id: "4242" outside_id: "${own}" count: 1 }`);
    expect(root.config).toContain(`gidmap { inside_id: "4343" outside_id: "${own}" count: 1 }`);
    expect(root.config).not.toContain("65534");
    expect(root.plan.scratch.owner).toEqual({ uid: own, gid: own });
    expect(root.plan.report.layers.privilege.controls.uid?.mechanism).toContain(`drops to host uid ${own} gid ${own}`);
    expect(root.plan.argv.slice(0, 4)).toEqual(["/usr/bin/setpriv", `--reuid=${own}`, `--regid=${own}`, "--clear-groups"]);
    expect(root.owner).toEqual({ uid: own, gid: own });
    // a non-root supervisor can only map its own uid, to the policy's uid inside
    const user = composePlan({ policy: mergePolicy(DEFAULT_POLICY, { onUnavailable: "degrade", privilege: { uid: 4242, gid: 4343 } }), job, host: USER_HOST, workspace }, new NsjailProvider(), probe);
    const cfg = String(user.stage.find((f) => f.path === CONFIG_FILE)?.content);
    expect(cfg).toContain('uidmap { inside_id: "4242" outside_id: "1000" count: 1 }');
    expect(cfg).toContain('gidmap { inside_id: "4343" outside_id: "1000" count: 1 }');
  });

  test("mounts: read-only binds, rw scratch, sized tmpfs, proc, a minimal /dev, symlinks; root read-only (no --rw)", () => {
    const { plan, config } = planFor();
    const mounts = mountLines(config);
    expect(mounts).toContain('mount { src: "/usr" dst: "/usr" is_bind: true rw: false nosuid: true nodev: true }');
    expect(mounts).toContain(`mount { src: ${quote(workspace.scratchDir)} dst: "/scratch" is_bind: true rw: true nosuid: true nodev: true }`);
    expect(mounts).toContain(`mount { src: ${quote(workspace.jobDir)} dst: "/cordon/job" is_bind: true rw: false nosuid: true nodev: true }`);
    expect(mounts).toContain(`mount { src: ${quote(`${workspace.root}/stage/etc/passwd`)} dst: "/etc/passwd" is_bind: true rw: false nosuid: true nodev: true }`);
    expect(mounts).toContain(`mount { dst: "/tmp" fstype: "tmpfs" options: "size=${64 * MiB},mode=1777" rw: true nosuid: true nodev: true }`);
    expect(mounts).toContain('mount { dst: "/proc" fstype: "proc" rw: false nosuid: true nodev: true noexec: true }');
    expect(mounts).toContain('mount { dst: "/dev" fstype: "tmpfs" options: "size=65536,mode=0755" rw: false nosuid: true nodev: true noexec: true }');
    for (const n of ["null", "zero", "full", "random", "urandom"]) {
      expect(mounts).toContain(`mount { src: "/dev/${n}" dst: "/dev/${n}" is_bind: true rw: true nosuid: true noexec: true }`);
    }
    expect(mounts).toContain('mount { src: "/proc/self/fd" dst: "/dev/fd" is_symlink: true }');
    expect(mounts.some((m) => m.includes('dst: "/dev/shm"') && m.includes(`size=${64 * MiB},mode=1777`))).toBe(true);
    for (const p of ROOT_HOST.systemPaths.filter((p) => p.kind === "symlink")) {
      expect(mounts).toContain(`mount { src: ${quote(p.kind === "symlink" ? p.target : "")} dst: ${quote(p.path)} is_symlink: true }`);
    }
    expect(plan.argv).not.toContain("--rw");
    // mount order is the spec's: scratch after /tmp, /dev nodes after the /dev tmpfs
    expect(mounts.findIndex((m) => m.includes('dst: "/dev/null"'))).toBeGreaterThan(mounts.findIndex((m) => m.includes('dst: "/dev" ')));
  });

  test("filesystem.mode off binds the host's top-level dirs read-write on the sealed tmpfs root (never / itself: /scratch could not be created)", () => {
    const { plan, config } = planFor({ filesystem: { mode: "off" } });
    const mounts = mountLines(config);
    expect(mounts.some((m) => m.startsWith('mount { src: "/" dst: "/" '))).toBe(false);
    expect(mounts).toContain('mount { src: "/usr" dst: "/usr" is_bind: true rw: true nosuid: true nodev: true }');
    expect(mounts.some((m) => m.includes('dst: "/scratch"') && m.includes("rw: true"))).toBe(true);
    expect(plan.argv).not.toContain("--rw");
  });

  test("namespaces: user, mount, pid, ipc, uts, cgroup; net fresh with lo up under deny, shared under unrestricted", () => {
    const s = settings(planFor().config);
    for (const ns of ["user", "ns", "pid", "ipc", "uts", "cgroup", "net"]) expect(s[`clone_new${ns}`]).toBe("true");
    expect(s.iface_no_lo).toBe("false");
    expect(settings(planFor({ network: { mode: "unrestricted", blockMetadata: false } }).config).clone_newnet).toBe("false");
    expect(() => planFor({ network: { mode: "allowlist", allow: ["192.0.2.1:443"] } })).toThrow(SandboxUnavailableError);
  });

  test("environment: exactly the spec's variables as envar lines, escaped; secrets only in the run's config file (0400, the run uid's), masked in the report", () => {
    const weird = 'a "quoted" value\\with backslash é';
    const { plan, config } = planFor({ env: { set: { WEIRD: weird, API_KEY: "hunter2-secret" } } }, CGROUP_HOST, job, ["hunter2-secret", weird]);
    const envars = config.split("\n").filter((l) => l.startsWith("envar: "));
    expect(envars).toContain('envar: "PATH=/usr/local/bin:/usr/bin:/bin"');
    expect(envars).toContain('envar: "HOME=/scratch"');
    expect(envars).toContain('envar: "API_KEY=hunter2-secret"');
    expect(envars).toContain('envar: "WEIRD=a \\"quoted\\" value\\\\with backslash \\303\\251"');
    expect(settings(config).keep_env).toBe("false");
    expect(plan.argv.join(" ")).not.toContain("hunter2-secret");
    const reported = plan.report.argv.join("\n");
    expect(reported).toContain("API_KEY=****");
    expect(reported).not.toContain("hunter2-secret");
    expect(reported).toContain("WEIRD=****");
    // nsjail reads text: a control character in any config value is refused before anything is created.
    expect(() => planFor({ env: { set: { WEIRD: "a\nexec_bin: \"/bin/sh\"" } } })).toThrow(LauncherInputError);
    expect(() => planFor({ env: { set: { WEIRD: "a\nb" } } })).toThrow("env WEIRD contains the control character U+000a");
    expect(() => planFor({ filesystem: { readOnlyBinds: ["/opt/a\nb"] } })).toThrow(LauncherInputError);
  });

  test("the command is argv after `--`, not config text: a multi-line argument (the verify wrapper's sh -c) is allowed, NUL is not", () => {
    const multi: Job = { ...job, argv: ["/bin/sh", "-c", "echo one\necho two", "x"] };
    const { plan, config } = planFor({}, CGROUP_HOST, multi);
    expect(plan.argv.slice(-4)).toEqual(["/bin/sh", "-c", "echo one\necho two", "x"]);
    expect(config).not.toContain("echo one");
    expect(() => planFor({}, CGROUP_HOST, { ...job, argv: ["/bin/sh", "-c", "true", "x\0--rw"] })).toThrow("NUL");
  });

  test("fd 4 (the result channel) is passed; nsjail closes every other fd", () => {
    const { config } = planFor();
    expect(config.split("\n").filter((l) => l.startsWith("pass_fd:"))).toEqual(["pass_fd: 4"]);
  });

  test("seccomp: the whole policy as kafel seccomp_string lines, calls by libseccomp's numbers; the report says what kafel does with other ABIs", () => {
    const { plan, config } = planFor();
    const lines = config.split("\n").filter((l) => l.startsWith("seccomp_string: "));
    expect(lines).toEqual(kafelPolicy(SYSCALL_RULES).map((l) => `seccomp_string: ${quote(l)}`));
    expect(settings(config).seccomp_log).toBe("false");
    const kafel = kafelPolicy(SYSCALL_RULES);
    if (process.arch === "x64") {
      // kafel's own table calls 166 `umount` and has no name for some calls: the numbers come from libseccomp
      for (const d of ["#define umount2 166", "#define mount_setattr 442", "#define clone3 435", "#define keyctl 250", "#define socket 41"]) expect(kafel).toContain(d);
      const x32 = kafel.find((l) => l.startsWith("KILL_PROCESS"))!;
      expect(x32.match(/SYSCALL\[/g)?.length).toBe(X32_KILL_SPAN);
      expect(x32).toStartWith("KILL_PROCESS { SYSCALL[0x40000000], SYSCALL[0x40000001],");
      expect(x32).toEndWith(`SYSCALL[0x${(0x40000000 + X32_KILL_SPAN - 1).toString(16)}] }`);
    }
    expect(kafel.at(-1)).toBe("DEFAULT ALLOW");
    expect(kafel.join("\n")).toContain("socket(a0) { a0 == 0 || a0 == 3 ||");
    expect(kafel.join("\n")).toContain("a0 >= 17 } }");
    const seccomp = plan.report.layers.privilege.controls.seccomp;
    expect(seccomp?.status).toBe("enforced");
    expect(seccomp?.mechanism).toContain("nsjail seccomp_string: kafel text rendered from the same policy");
    expect(seccomp?.mechanism).toContain("an i386 call kills the calling thread");
    if (process.arch === "x64") expect(seccomp?.mechanism).toContain("x32 calls (nr 0x40000000–0x400003ff) kill the process");
    expect(plan.report.downgrades).toEqual([]);
    // the report shows the x32 block in one line; the file nsjail reads has every number
    const reported = plan.report.argv.at(-2)!;
    expect(reported).not.toContain("SYSCALL[0x40000001]");
    if (process.arch === "x64") expect(reported).toContain(`seccomp_string: "KILL_PROCESS { SYSCALL[0x40000000], ..., SYSCALL[0x400003ff] }"  # shortened in this report: the file names all ${X32_KILL_SPAN} numbers`);
    expect(reported).toContain(quote("#define umount2 166").slice(1, -1));
  });

  test("seccomp off by policy: no filter at all, reported degraded, with what nsjail then leaves open that bwrap does not", () => {
    const { plan, config } = planFor({ onUnavailable: "degrade", privilege: { seccomp: false } });
    expect(config).not.toContain("seccomp_string");
    expect(config).toContain("# no syscall filter: policy privilege.seccomp is false");
    const seccomp = plan.report.layers.privilege.controls.seccomp;
    expect(seccomp?.status).toBe("degraded");
    expect(seccomp?.status === "degraded" && seccomp.reason).toContain("under nsjail, which has no other guard (bwrap's --disable-userns), the script can create nested user namespaces");
    // policy noNewPrivs false and no filter: nothing makes nsjail set no_new_privs, the layer's "off" stands as it is
    const nnp = planFor({ onUnavailable: "degrade", privilege: { seccomp: false, noNewPrivs: false } });
    expect(nnp.plan.report.layers.privilege.controls.noNewPrivs).toEqual({ status: "off", reason: "policy privilege.noNewPrivs is false" });
    expect(settings(nnp.config).disable_no_new_privs).toBe("true");
    const withFilter = planFor({ privilege: { noNewPrivs: false } });
    expect(withFilter.plan.report.layers.privilege.controls.noNewPrivs?.status === "off" && withFilter.plan.report.layers.privilege.controls.noNewPrivs.reason).toContain("nsjail sets no_new_privs anyway");
  });

  test("kafel rendering (pure): #defines, one block per errno in the policy's order, own 64-bit arguments, masked tests, the x32 block; absent calls skipped, bad names refused", () => {
    const rules: SyscallRule[] = [
      { syscall: "a_call", errno: "EPERM" },
      { syscall: "b_call", errno: "EPERM", when: [{ arg: 0, op: "masked-eq", mask: 0x10, value: 0x10 }] },
      { syscall: "absent", errno: "EPERM" },
      { syscall: "b_call", errno: "EPERM", when: [{ arg: 0, op: "masked-eq", mask: 0x20000, value: 0x20000 }] },
      { syscall: "c_call", errno: "EAFNOSUPPORT", when: [{ arg: 0, op: "ge", value: 17 }] },
      { syscall: "c_call", errno: "EPROTONOSUPPORT", when: [{ arg: 0, op: "eq", value: 16 }, { arg: 2, op: "ne", value: 0 }] },
      { syscall: "d_call", errno: "ENOSYS" },
      { syscall: "e_call", errno: "ENOSYS" },
    ];
    const numbers: Record<string, number | null> = { a_call: 1, b_call: 2, c_call: 41, d_call: 435, e_call: 7, absent: null };
    const numberOf = (n: string) => {
      if (!(n in numbers)) throw new Error(`unknown ${n}`);
      return numbers[n]!;
    };
    expect(renderKafel(rules, numberOf, { killX32: false })).toEqual([
      "#define a_call 1",
      "#define b_call 2",
      "#define c_call 41",
      "#define d_call 435",
      "#define e_call 7",
      "ERRNO(1) { a_call, b_call(a0) { (a0 & 16) == 16 || (a0 & 0x20000) == 0x20000 } }",
      "ERRNO(97) { c_call(a0) { a0 >= 17 } }",
      "ERRNO(93) { c_call(a0, a1, a2) { (a0 == 16 && a2 != 0) } }",
      "ERRNO(38) { d_call, e_call }",
      "DEFAULT ALLOW",
    ]);
    const withX32 = renderKafel(rules, numberOf, { killX32: true });
    expect(withX32.at(-2)).toStartWith("KILL_PROCESS { SYSCALL[0x40000000], ");
    expect(withX32.at(-2)!.split(", ").length).toBe(X32_KILL_SPAN);
    expect(() => renderKafel([{ syscall: "x } DEFAULT KILL {", errno: "EPERM" }], () => 1, { killX32: false })).toThrow("not a syscall name");
    expect(() => renderKafel([{ syscall: "nope", errno: "EPERM" }], numberOf, { killX32: false })).toThrow("unknown nope");
    expect(() => renderKafel([{ syscall: "a_call", errno: "EPERM", when: [{ arg: 0, op: "eq", value: -1 }] }], numberOf, { killX32: false })).toThrow("not a non-negative integer");
    expect(() => renderKafel([{ syscall: "a_call", errno: "EPERM", when: [{ arg: 6, op: "eq", value: 1 }] }], numberOf, { killX32: false })).toThrow("is not 0-5");
  });

  test("helpers: text-format quoting and the time-limit backstop", () => {
    expect(quote('x"y\\z\n\t\u0001')).toBe('"x\\"y\\\\z\\n\\t\\001"');
    expect(timeLimitSeconds(10_000)).toBe(12);
    expect(timeLimitSeconds(300)).toBe(3);
    expect(timeLimitSeconds(10_001)).toBe(13);
  });

  test("an unavailable nsjail is a refusal, and the probe says plainly why", async () => {
    const absent: ProviderProbe = { available: false, binary: null, version: null, features: {}, reason: "nsjail not found on PATH" };
    expect(() => composePlan({ policy: DEFAULT_POLICY, job, host: CGROUP_HOST, workspace }, new NsjailProvider(), absent)).toThrow(SandboxUnavailableError);
    const saved = process.env.PATH;
    process.env.PATH = tempDir("empty-path");
    try {
      const p = await new NsjailProvider().probe(hostFacts());
      expect(p.available).toBe(false);
      expect(p.reason).toBe("nsjail not found on PATH: not packaged in Debian; build from https://github.com/google/nsjail");
    } finally {
      process.env.PATH = saved;
    }
    const missing = await new NsjailProvider({ binary: "/nonexistent/nsjail" }).probe(hostFacts());
    expect(missing.reason).toBe("nsjail not found at /nonexistent/nsjail");
  });
});

// ---------------------------------------------------------------------------------------
// Real runs
// ---------------------------------------------------------------------------------------

const NSJAIL = Bun.which("nsjail");
const SKIP = NSJAIL === null;
if (SKIP) console.warn("provider-nsjail tests: nsjail not found on PATH (not packaged in Debian; build from https://github.com/google/nsjail): real nsjail runs skipped, pure render tests run");

function run(source: string, policy: PolicyOverride = {}, runRoot = freshRunRoot(), extra: { verify?: boolean; provider?: string } = {}): Promise<RunResult> {
  return makeCordon(runRoot).run({ runner: "shell", provider: extra.provider ?? "nsjail", script: { source }, args: [], policy: { ...BASE_POLICY, ...policy }, ...(extra.verify ? { verify: true } : {}) });
}

const FIXTURE = resolve(import.meta.dir, "fixtures/run-json.ts");

/** The comparison's attacks (src/readiness/syscall-attacks.py, COMPARISON_ATTACKS) with this host's call numbers, from libseccomp. */
async function attack(provider: string, policy: PolicyOverride = {}): Promise<{ r: RunResult; kv: Record<string, string> }> {
  const attacks = [...COMPARISON_ATTACKS, `x32_past_span=${X32_SYSCALL_BIT + X32_KILL_SPAN}`];
  const r = await makeCordon().run({ ...syscallAttackRequest(attacks, attackNumbers()), provider, policy: { ...BASE_POLICY, ...policy } });
  return { r, kv: attackResults(r, describeResult) };
}

/** What the policy answers for each attack line (x86_64), and what it lets through; `returned:`/`killed:` are calls made in a child. */
const POLICY_ANSWERS: Record<string, string> = {
  ptrace: "returned:EPERM", process_vm_readv: "EPERM", keyctl: "EPERM", key_add: "EPERM", io_uring: "EPERM", userfaultfd: "EPERM", perf_event_open: "EPERM", bpf: "EPERM",
  unshare_user: "returned:EPERM", setns: "EPERM", clone_newuser: "EPERM", clone_newns: "EPERM", clone_plain: "ok", clone3: "ENOSYS",
  mount: "EPERM", fsopen: "EPERM", umount2: "EPERM", open_tree: "EPERM", mount_setattr: "EPERM", chroot: "EPERM",
  personality_set: "returned:EPERM", personality_query: "EPERM", personality_zero: "returned:ok", acct: "EPERM", syslog: "EPERM",
  ioctl_tiocsti: "EPERM", ioctl_tiocsti_high: "EPERM",
  vsock: "EAFNOSUPPORT", socket_vsock_high: "EAFNOSUPPORT", packet: "EAFNOSUPPORT", netlink_uevent: "EPROTONOSUPPORT", netlink_route: "ok", netlink_interfaces: "ok:lo",
  socket_netlink_audit: "EPROTONOSUPPORT", socket_inet: "ok", socket_unix: "ok", socket_inet_high: "EAFNOSUPPORT",
  x32: "killed:SIGSYS", fork: "ok:exit 7", threads: "ok:4", seccomp_mode: "2", attacks_done: "1",
};

/** inotify_init1 as this (host) process: whether host root can still open an instance, closed at once. */
function rootOpensInotify(): boolean {
  const libc = dlopen("libc.so.6", { inotify_init1: { args: [FFIType.i32], returns: FFIType.i32 }, close: { args: [FFIType.i32], returns: FFIType.i32 } });
  try {
    const fd = libc.symbols.inotify_init1(0);
    if (fd < 0) return false;
    libc.symbols.close(fd);
    return true;
  } finally {
    libc.close();
  }
}

/** Open inotify instances up to `want` (or EMFILE), say how many, and hold them (inherited by sleep) while the host looks. */
const inotifyHolder = (want: number, marker: string) => `
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while len(fds) < ${want}:
    fd = libc.inotify_init1(0)
    if fd < 0:
        print("stopped_errno=%d" % ctypes.get_errno())
        break
    fds.append(fd)
print("opened=%d" % len(fds), flush=True)
os.execv("/bin/sleep", ["sleep", "${marker}"])
`;

describe.skipIf(SKIP)("nsjail runs (real)", () => {
  test("hello: runs, ok, exit 0, clean stderr, provider nsjail with its build id; nothing left behind", async () => {
    const runRoot = freshRunRoot();
    const r = await run('echo "hello, world"; echo "cwd=$(pwd) host=$(hostname)"', {}, runRoot);
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("hello, world\ncwd=/scratch host=cordon\n");
    expect(r.stderr).toBe("");
    expect(r.sandbox?.provider).toMatchObject({ name: "nsjail", isolating: true });
    expect(r.sandbox?.provider.version).toMatch(/^build [0-9a-f]{12}$/);
    if (IS_ROOT) expect(r.sandbox?.downgrades).toEqual([]);
    expectClean(runRoot);
  });

  test("exit statuses: the script's own, and 128+N decoded as signal N (the script is not pid 1)", async () => {
    const seven = await run("exit 7");
    expect(seven).toMatchObject({ outcome: "exit-nonzero", exitCode: 7, signal: null });
    const usr1 = await run('echo "pid=$$"; kill -USR1 $$; echo survived');
    expect(usr1.stdout, describeResult(usr1)).toBe("pid=2\n");
    expect(usr1).toMatchObject({ outcome: "killed", signal: "SIGUSR1" });
  });

  test("a world-readable host canary is unreadable; writes outside scratch fail; scratch and /tmp work", async () => {
    const secret = token("canary-content-");
    const dir = tempDir("canary", 0o777, "/var/tmp");
    const file = join(dir, "canary");
    writeFileSync(file, `${secret}\n`, { mode: 0o644 });
    const name = token(".cordon-pwn-");
    const targets = ["/usr", "/etc", "/", "/dev", "/proc", "/cordon/job", dir];
    const r = await run(`
cat '${file}' 2>&1; cat /proc/1/root'${file}' 2>&1
for d in ${targets.map((t) => `'${t}'`).join(" ")}; do if (echo pwned > "$d/${name}") 2>/dev/null; then echo "wrote=$d"; else echo "denied=$d"; fi; done
echo s > /scratch/s && echo scratch=ok; echo t > /tmp/t && echo tmp=ok; echo m > /dev/shm/m && echo shm=ok
echo x > /dev/null && echo devnull=ok
echo done=1
`);
    expect(r.stdout, describeResult(r)).toContain("done=1");
    expect(r.stdout + r.stderr).not.toContain(secret);
    for (const t of targets) expect(r.stdout).toContain(`denied=${t}`);
    expect(r.stdout).not.toContain("wrote=");
    for (const k of ["scratch", "tmp", "shm", "devnull"]) expect(r.stdout).toContain(`${k}=ok`);
    expect(readdirSync(dir)).toEqual(["canary"]);
  });

  test("no network under deny: only lo (up), the host's loopback listener unreachable", async () => {
    const loop = countingListener("127.0.0.1");
    try {
      const r = await run(`
echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ',')"
if timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/${loop.port}' 2>/dev/null; then echo host=connected; else echo host=failed; fi
python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); socket.create_connection(s.getsockname()); print("lo=up")'
`);
      const kv = parseKv(r.stdout);
      expect(kv.ifaces, describeResult(r)).toBe("lo,");
      expect(kv.host).toBe("failed");
      expect(kv.lo).toBe("up");
      await sleep(100);
      expect(loop.hits()).toBe(0);
    } finally {
      loop.stop();
    }
  });

  test("a canary in the supervisor's initial environment is invisible (env and every /proc/*/environ)", async () => {
    const canary = token("envcanary");
    const p = Bun.spawn([process.execPath, FIXTURE], {
      stdin: new TextEncoder().encode(JSON.stringify({
        runRoot: freshRunRoot(),
        request: {
          runner: "shell",
          provider: "nsjail",
          args: [],
          policy: BASE_POLICY,
          script: { source: `echo "env_hits=$(env | grep -c '${canary}')"; echo "proc_hits=$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c '${canary}')"; echo "environ_files=$(ls /proc/[0-9]*/environ | wc -l)"; env | cut -d= -f1 | sort | tr '\\n' ,` },
        },
      })),
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, CORDON_TEST_CANARY: canary },
    });
    const [stdout, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    expect(code, stdout).toBe(0);
    const result = JSON.parse(stdout) as { outcome: string; stdout: string };
    const kv = parseKv(result.stdout);
    expect(result.outcome, stdout).toBe("ok");
    expect(kv.env_hits).toBe("0");
    expect(kv.proc_hits).toBe("0");
    expect(Number(kv.environ_files)).toBeGreaterThan(0);
    expect(result.stdout).toContain("CORDON_RESULT_FD,HOME,LANG,PATH,PWD,TMPDIR,");
    expect(result.stdout).not.toContain(canary);
  });

  test.skipIf(!IS_ROOT)("real uid drop: the sandboxed process runs as its own host uid from the pool (65534 inside), not mapped root", async () => {
    const marker = sleepMarker(2);
    const runRoot = freshRunRoot();
    const pending = run(`sleep ${marker} & echo "inside=$(id -u):$(id -g):$(id -G)"; wait`, { resources: { wallMs: 8000 } }, runRoot, { verify: true });
    let hostUids: string[] = [];
    await waitFor(() => processesWithMarker(marker).length > 0, 2500);
    for (const p of processesWithMarker(marker)) {
      const status = readFileSync(`/proc/${p.pid}/status`, "utf8");
      hostUids = [/^Uid:\s+(.*)$/m.exec(status)![1]!, /^Gid:\s+(.*)$/m.exec(status)![1]!, /^Groups:[ \t]*(.*)$/m.exec(status)![1]!.trim()];
    }
    const r = await pending;
    expect(r.outcome, describeResult(r)).toBe("ok");
    const own = r.receipt?.hostUid ?? -1;
    expect(isSandboxHostUid(own), describeResult(r)).toBe(true);
    expect(hostUids, describeResult(r)).toEqual([`${own}\t${own}\t${own}\t${own}`, `${own}\t${own}\t${own}\t${own}`, ""]);
    expect(r.stdout).toContain("inside=65534:65534:65534");
    expect(r.receipt).toMatchObject({ uidInside: 65534, capEff: "0000000000000000", noNewPrivs: true, seccomp: 2, interfaces: ["lo"] });
    expect(r.sandbox?.layers.privilege.controls.identity?.mechanism).toContain(`per-run host uid ${own} gid ${own}`);
  });
  if (!IS_ROOT) console.warn("provider-nsjail: the host uid drop test needs a root supervisor; skipped");

  test("seccomp: the same attack list gets the same answers under nsjail as under bwrap (the policy's errnos, x32 killed); fork and threads work", async () => {
    const [b, n] = await Promise.all([attack("bwrap"), attack("nsjail")]);
    expect(n.r.outcome, describeResult(n.r)).toBe("ok");
    expect(b.r.outcome, describeResult(b.r)).toBe("ok");
    // the one documented difference: an x32 number past the KILL_PROCESS block has no kernel handler under nsjail (ENOSYS); libseccomp kills it
    expect(n.kv.x32_past_span).toBe("returned:ENOSYS");
    expect(b.kv.x32_past_span).toBe("killed:SIGSYS");
    const { x32_past_span: _n, ...nsjail } = n.kv;
    const { x32_past_span: _b, ...bwrap } = b.kv;
    expect(nsjail).toEqual(bwrap);
    expect(nsjail).toMatchObject(POLICY_ANSWERS);
    // every line is one the policy has an answer for, but stdin's FIONREAD (allowed; its answer depends on what stdin is)
    expect(Object.keys(nsjail).sort()).toEqual([...Object.keys(POLICY_ANSWERS), "ioctl_fionread"].sort());
    expect(n.r.sandbox?.layers.privilege.controls.seccomp?.status).toBe("enforced");
  });

  test("seccomp off by policy: nsjail installs no filter; the attack list then reaches the kernel (so it tells a filter from none) and nested user namespaces work, as the report says", async () => {
    const [filtered, off] = await Promise.all([attack("nsjail"), attack("nsjail", { onUnavailable: "degrade", privilege: { seccomp: false } })]);
    expect(off.r.outcome, describeResult(off.r)).toBe("ok");
    expect(off.kv.seccomp_mode).toBe("0");
    for (const k of ["ptrace", "process_vm_readv", "keyctl", "personality_set", "open_tree", "x32", "socket_inet_high", "clone3", "setns", "clone_newns", "umount2", "chroot"]) {
      expect([k, off.kv[k]]).not.toEqual([k, filtered.kv[k]]);
    }
    // nsjail has no --disable-userns: what the degraded verdict names is really open
    expect(off.kv.unshare_user).toBe("returned:ok");
    expect(off.kv.clone_newuser).toBe("ok");
    const seccomp = off.r.sandbox?.layers.privilege.controls.seccomp;
    expect(seccomp?.status === "degraded" && seccomp.reason).toContain("nested user namespaces");
  });

  test("kafel on its own has no name umount2 (so the text binds libseccomp's number with #define) and lets x32 calls through (so the text kills them)", async () => {
    // one call in a throwaway child: its errno, or the signal it died of
    const probe = (nr: string, args: string) =>
      `import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\npid = os.fork()\nif pid == 0:\n    r = libc.syscall(ctypes.c_long(${nr})${args})\n    os._exit(100 + ctypes.get_errno() if r < 0 else 0)\n_, st = os.waitpid(pid, 0)\nprint('signal%d' % os.WTERMSIG(st) if os.WIFSIGNALED(st) else 'errno%d' % (os.WEXITSTATUS(st) - 100))`;
    const direct = (policy: string, py: string) => {
      const drop = IS_ROOT ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
      const p = Bun.spawnSync([...drop, NSJAIL!, "-Mo", "--chroot", "/", "-q", "--seccomp_string", policy, "--", "/usr/bin/python3", "-c", py], { env: { PATH: "/usr/bin:/bin" } });
      return p.success ? p.stdout.toString().trim() : `nsjail failed: ${p.stderr.toString().trim()}`;
    };
    const umount2 = probe(String(syscallNumber("umount2")), ", b'/tmp', 0");
    expect(direct("ERRNO(1) { umount2 } DEFAULT ALLOW", umount2)).toContain("Undefined identifier `umount2'");
    expect(direct(`#define umount2 ${syscallNumber("umount2")} ERRNO(77) { umount2 } DEFAULT ALLOW`, umount2)).toBe("errno77");
    if (process.arch !== "x64") return;
    const x32 = probe(`0x40000000 | ${syscallNumber("getpid")}`, "");
    expect(direct("ERRNO(1) { ptrace } DEFAULT ALLOW", x32)).toBe("errno38"); // passed by kafel: ENOSYS only because this kernel has no x32 ABI
    const x32Line = kafelPolicy(SYSCALL_RULES).find((l) => l.startsWith("KILL_PROCESS"));
    expect(direct(`ERRNO(1) { ptrace } ${x32Line} DEFAULT ALLOW`, x32)).toBe("signal31");
  });

  test.skipIf(!IS_ROOT)("the BPF program nsjail installs (read back with ptrace) answers every policy call, argument boundary and ABI as bwrap's libseccomp program does, but for two documented differences", async () => {
    const marker = sleepMarker(20);
    const runRoot = freshRunRoot();
    const pending = run(`exec sleep ${marker}`, { resources: { wallMs: 15_000 } }, runRoot);
    try {
      await waitFor(() => processesWithMarker(marker).length > 0, 5000);
      const pid = processesWithMarker(marker)[0]!.pid;
      const dump = Bun.spawnSync(["python3", resolve(import.meta.dir, "fixtures/dump-seccomp.py"), String(pid)]);
      expect(dump.success, dump.stderr.toString()).toBe(true);
      const nsjail = parseProgram(Buffer.from(dump.stdout.toString().trim(), "hex"));
      const bwrap = parseProgram(cachedBpf(SYSCALL_RULES));
      const calls = new Map<number, SyscallRule["when"] & object>();
      for (const rule of SYSCALL_RULES) {
        const nr = syscallNumber(rule.syscall);
        if (nr !== null) calls.set(nr, [...(calls.get(nr) ?? []), ...(rule.when ?? [])]);
      }
      const policyCalls = [...calls].map(([nr, tests]) => ({ nr, tests }));
      const { inputs, differences } = compareFilters(bwrap, nsjail, policyCalls, X32_KILL_SPAN);
      expect(inputs).toBeGreaterThan(1000);
      const undocumented = differences.filter(({ input, a, b }) => {
        // kafel answers a foreign architecture with KILL_THREAD, libseccomp with KILL_PROCESS
        if (input.arch === AUDIT_ARCH.I386) return !(a.action === "kill-process" && b.action === "kill-thread");
        // x32 numbers past the block: libseccomp kills, kafel allows (the kernel has no handler: ENOSYS)
        if (input.nr >= X32_SYSCALL_BIT + X32_KILL_SPAN && input.nr !== 0xffffffff) return !(a.action === "kill-process" && b.action === "allow");
        return true;
      });
      expect(undocumented.map((d) => `${d.input.arch.toString(16)}/${d.input.nr}/${d.input.args.join(",")}: bwrap ${actionText(d.a)}, nsjail ${actionText(d.b)}`)).toEqual([]);
      expect(differences.some((d) => d.input.arch === AUDIT_ARCH.I386)).toBe(true);
      // the comparison can fail: a program without the socket rules differs from bwrap's
      const noSockets = parseProgram(cachedBpf(SYSCALL_RULES.filter((r) => r.syscall !== "socket")));
      expect(compareFilters(bwrap, noSockets, policyCalls, X32_KILL_SPAN).differences.some((d) => d.input.nr === syscallNumber("socket"))).toBe(true);
    } finally {
      for (const p of processesWithMarker(marker)) process.kill(p.pid, "SIGKILL");
      await pending;
    }
  });

  test.skipIf(!IS_ROOT)("per-uid kernel counts land on the run's host uid, never root: the user namespace is owned by it, and a sandbox that opens every inotify instance it may leaves host root's own", async () => {
    // The run's own uid from the pool: the test exhausts that uid's inotify quota, which no other run on the host feels.
    const marker = sleepMarker(3);
    const pending = run(`exec python3 -c '${inotifyHolder(200, marker)}'`, { resources: { wallMs: 10_000 } });
    let owner = -1;
    let rootCould = false;
    try {
      // the sleep the script execs once it holds its instances (python's own command line carries the marker too)
      const holder = () => processesWithMarker(marker).find((p) => p.comm === "sleep");
      await waitFor(() => holder() !== undefined, 5000);
      owner = userNamespaceOwner(holder()!.pid);
      rootCould = rootOpensInotify();
    } finally {
      const r = await pending;
      expect(r.outcome, describeResult(r)).toBe("ok");
      const kv = parseKv(r.stdout);
      // fs.inotify.max_user_instances (128 here) is the sandbox uid's own, whole
      expect(Number(kv.opened), r.stdout).toBeGreaterThanOrEqual(Math.min(100, Number(readFileSync("/proc/sys/fs/inotify/max_user_instances", "utf8")) - 1));
      expect(kv.stopped_errno).toBe("24");
    }
    expect(isSandboxHostUid(owner), `the user namespace's owner is host uid ${owner}`).toBe(true);
    expect(rootCould).toBe(true);
  });

  test.skipIf(!IS_ROOT)("two concurrent runs under different host uids (as a per-run uid gives them) each open 100 inotify instances: nothing is shared through root", async () => {
    const markers = [sleepMarker(2), sleepMarker(2)];
    let together = false;
    const watch = setInterval(() => void (together ||= markers.every((m) => processesWithMarker(m).some((p) => p.comm === "sleep"))), 20);
    const results = await Promise.all(
      markers.map((m, i) => run(`exec python3 -c '${inotifyHolder(100, m)}'`, { privilege: { uid: 4242 + i, gid: 4242 + i }, resources: { wallMs: 10_000 } })),
    );
    clearInterval(watch);
    for (const r of results) {
      expect(r.outcome, describeResult(r)).toBe("ok");
      expect(parseKv(r.stdout).opened, r.stdout).toBe("100");
    }
    expect(together).toBe(true);
  });
  if (!IS_ROOT) console.warn("provider-nsjail: the filter read-back and the per-uid charge tests need a root supervisor; skipped");

  describe("the wall clock kills the whole tree, a setsid daemon included", () => {
    // With cgroups off, only nsjail's own teardown holds: SIGKILL to nsjail, PDEATHSIG to the namespace's init.
    const cases = [
      { ending: "normal exit", cgroups: "auto" },
      { ending: "timeout", cgroups: "auto" },
      { ending: "normal exit", cgroups: "off" },
      { ending: "timeout", cgroups: "off" },
    ] as const;
    for (const { ending, cgroups } of cases) {
      test(`${ending}, cgroups ${cgroups}`, async () => {
        const marker = sleepMarker(60);
        const runRoot = freshRunRoot();
        const cordon = new Cordon({ runRoot, cgroups }, { providers: builtinProviders(), runners: builtinRunners() });
        let seen = false;
        const watch = setInterval(() => void (seen ||= processesWithMarker(marker).length > 0), 10);
        const tail = ending === "normal exit" ? "sleep 0.3; exit 0" : "exec sleep 30";
        const wallMs = ending === "timeout" ? 1000 : 5000;
        const r = await cordon.run({
          runner: "shell",
          provider: "nsjail",
          args: [],
          policy: { ...BASE_POLICY, onUnavailable: "degrade", resources: { wallMs } },
          script: {
            source: `
setsid sh -c 'trap "" HUP TERM INT; sh -c "trap \\"\\" HUP TERM INT; touch \\"$TMPDIR/ready\\"; exec sleep ${marker}" </dev/null >/dev/null 2>&1 & exit 0' &
i=0; while [ ! -e "$TMPDIR/ready" ] && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done
[ -e "$TMPDIR/ready" ] && echo daemon=started
${tail}
`,
          },
        });
        clearInterval(watch);
        expect(r.stdout, describeResult(r)).toContain("daemon=started");
        expect(seen).toBe(true); // the host saw the daemon alive during the run
        expect(r.outcome).toBe(ending === "normal exit" ? "ok" : "timeout");
        if (ending === "timeout") {
          expect(r.limitHit).toBe("wall");
          expect(r.durationMs).toBeLessThanOrEqual(wallMs * 1.1 + 200);
        }
        expect((r.stats?.peakMemoryBytes ?? null) === null).toBe(cgroups === "off" || !IS_ROOT);
        expect(processesWithMarker(marker)).toEqual([]);
        await sleep(300);
        expect(processesWithMarker(marker)).toEqual([]);
        expectClean(runRoot);
      });
    }
  });

  test("the result channel (fd 4) works with the shell runner's cordon-result", async () => {
    const r = await run('echo on-stdout; cordon-result warn "disk almost full" used=91.5 free=8');
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.stdout).toBe("on-stdout\n");
    expect(r.result).toEqual({ status: "warn", message: "disk almost full", metrics: { used: 91.5, free: 8 } });
    expect(r.resultSource).toBe("channel");
  });

  test("rlimits and caps inside match the plan: RLIMIT_FSIZE stops a big file, nofile and cpu in force", async () => {
    const r = await run(`
sed -n 's/^Max cpu time *\\([^ ]*\\).*/cpu=\\1/p; s/^Max file size *\\([^ ]*\\).*/fsize=\\1/p; s/^Max open files *\\([^ ]*\\).*/nofile=\\1/p; s/^Max core file size *\\([^ ]*\\).*/core=\\1/p' /proc/self/limits
(head -c 3000000 /dev/zero > big) 2>/dev/null; echo "big_rc=$?"; echo "big=$(stat -c %s big)"
`, { resources: { maxFileSizeBytes: 2 * MiB, cpuSeconds: 7, maxOpenFiles: 100 } });
    const kv = parseKv(r.stdout);
    expect(kv, describeResult(r)).toMatchObject({ cpu: "7", fsize: String(2 * MiB), nofile: "100", core: "0", big: String(2 * MiB) });
    expect(kv.big_rc).not.toBe("0");
  });

  test("a launcher setup failure (a read-only bind whose source does not exist) is a sandbox error, not a script failure", async () => {
    const r = await run("echo never", { filesystem: { readOnlyBinds: [`/nonexistent-${token()}`] } });
    expect(r.outcome, describeResult(r)).toBe("error");
    expect(r.error?.code).toBe("sandbox-failed");
    expect(r.error?.message).toContain("Failed to mount mandatory point");
    expect(r.stdout).toBe("");
  });

  test("nsjail's log (fd 3, log_level ERROR) has no [E]/[F] line for a normal run, a non-zero exit, a signal death, a timeout or an OOM kill; a setup failure has", async () => {
    const provider = new NsjailProvider();
    const probed = await provider.probe(hostFacts());
    expect(probed.available, probed.reason).toBe(true);
    const host = detectHostFacts();
    const cgroups = host.cgroups.problem === null && host.cgroups.controllers.memory !== undefined;
    /** One run through the real executor; the status file (nsjail's fd 3) is read before the run dir goes. */
    const logged = async (source: string, override: PolicyOverride, runHost: HostFacts = host) => {
      let log: string | null = null;
      const shJob = (): Job => ({ runner: "shell", argv: ["/bin/sh", "-c", source], files: [], readOnlyBinds: [], env: { PATH: "/usr/bin:/bin" }, result: { exitCodeFallback: true }, addressSpaceLimitSafe: true });
      const policy = mergePolicy(DEFAULT_POLICY, { ...BASE_POLICY, onUnavailable: "degrade", ...override });
      const r = await runInSandbox(planRun({ provider, probe: probed, policy, host: runHost, runRoot: freshRunRoot(), makeJob: shJob }), {
        inspect: (ws: Workspace) => {
          const f = join(ws.root, "launcher-status");
          log = existsSync(f) ? readFileSync(f, "utf8") : null;
        },
      });
      return { r, log: log as string | null };
    };
    const big = `python3 -c 'b = bytearray(b"x") * (${256 * MiB}); print(len(b))'`;
    const cases: { name: string; source: string; override: PolicyOverride; outcome: RunResult["outcome"]; limitHit?: RunResult["limitHit"]; host?: HostFacts }[] = [
      { name: "ok", source: "echo hi", override: {}, outcome: "ok" },
      // fd 3 is nsjail's, never the script's: it cannot append a forged [E] line to the log
      { name: "exit 3, fd 3 forged", source: "echo '[E][2024-01-01T00:00:00+0000][1] forged' >&3; echo '[F][x] forged' > /proc/self/fd/3; exit 3", override: {}, outcome: "exit-nonzero" },
      { name: "SIGUSR1", source: "kill -USR1 $$", override: {}, outcome: "killed" },
      { name: "SIGKILL", source: "kill -KILL $$", override: {}, outcome: "killed" },
      { name: "timeout", source: "exec sleep 30", override: { resources: { wallMs: 800 } }, outcome: "timeout", limitHit: "wall" },
      // cgroups off: the memory cap is RLIMIT_AS, an allocation fails (MemoryError, exit 1)
      { name: "rlimit_as", source: big, override: { resources: { memoryBytes: 64 * MiB } }, outcome: "exit-nonzero", host: { ...host, cgroups: NO_CGROUPS } },
      ...(cgroups && IS_ROOT ? [{ name: "oom", source: big, override: { resources: { memoryBytes: 64 * MiB } }, outcome: "limit" as const, limitHit: "memory" as const }] : []),
    ];
    for (const c of cases) {
      const { r, log } = await logged(c.source, c.override, c.host);
      expect([c.name, r.outcome, r.error], describeResult(r)).toEqual([c.name, c.outcome, null]);
      if (c.limitHit) expect(r.limitHit, describeResult(r)).toBe(c.limitHit);
      expect(log, `${c.name}: no status file`).not.toBeNull();
      expect(parseLaunchStatus("nsjail-log", log ?? "").launcherErrors, `${c.name}: ${log}`).toEqual([]);
      expect(log ?? "", c.name).not.toMatch(/^\[[EF]\]/m);
    }
    // a setup failure: nsjail's own [E][…] lines on fd 3, as parseLaunchStatus reads them
    const { r, log } = await logged("echo never", { filesystem: { readOnlyBinds: [`/nonexistent-${token()}`] } });
    const errors = parseLaunchStatus("nsjail-log", log ?? "").launcherErrors;
    expect(errors.length, log ?? "").toBeGreaterThan(0);
    for (const line of errors) expect(line).toMatch(/^\[[EF]\]\[\d{4}-\d\d-\d\dT[^\]]+\]\[\d+\] \w+\(\):\d+ /);
    expect(errors.join("\n")).toContain("Failed to mount mandatory point");
    expect(r.outcome, describeResult(r)).toBe("error");
    expect(r.error?.code).toBe("sandbox-failed");
    expect(r.error?.message).toContain(errors[0]!);
    expect(r.stdout).toBe("");
  });

  test("a non-default policy uid/gid (4242/4343) is the sandbox uid inside; on the host, under a root supervisor, the run's own from the pool", async () => {
    const marker = sleepMarker(2);
    const pending = run(`sleep ${marker} & echo "inside=$(id -u):$(id -g)"; wait`, { privilege: { uid: 4242, gid: 4343 }, resources: { wallMs: 8000 } });
    let hostIds: string[] = [];
    await waitFor(() => processesWithMarker(marker).length > 0, 2500);
    for (const p of processesWithMarker(marker)) {
      const status = readFileSync(`/proc/${p.pid}/status`, "utf8");
      hostIds = [/^Uid:\s+(\d+)/m.exec(status)![1]!, /^Gid:\s+(\d+)/m.exec(status)![1]!];
    }
    const r = await pending;
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.stdout).toContain("inside=4242:4343");
    if (IS_ROOT) {
      expect(hostIds[0]).toBe(hostIds[1]); // uid = gid, the run's own
      expect(isSandboxHostUid(Number(hostIds[0])), hostIds.join(":")).toBe(true);
    }
  });

  test("the probe's trial run compiles the kafel text of the whole policy; one nsjail cannot compile is caught there, with kafel's message, not at run time", async () => {
    const ok = await new NsjailProvider().probe(hostFacts());
    expect(ok.available, ok.reason).toBe(true);
    expect(ok.tools?.timeout).toBeDefined();
    // An nsjail that is handed one more statement, naming a call kafel does not know.
    const dir = tempDir("nsjail-wrapper");
    const wrapper = join(dir, "nsjail");
    writeFileSync(wrapper, `#!/bin/sh\nfor a; do shift; if [ "$a" = "--" ]; then set -- "$@" --seccomp_string "ERRNO(1) { cordon_no_such_call }" --; else set -- "$@" "$a"; fi; done\nexec ${NSJAIL} "$@"\n`, { mode: 0o755 });
    const bad = await new NsjailProvider({ binary: wrapper }).probe(hostFacts());
    expect(bad.available).toBe(false);
    expect(bad.reason).toContain("Undefined identifier `cordon_no_such_call'");
    expect(bad.reason).toMatch(/Could not compile policy: \d+:\d+/);
  });

  test("the run dir is gone after the run (config file included)", async () => {
    const runRoot = freshRunRoot();
    await run("cat /proc/self/mountinfo >/dev/null", {}, runRoot);
    expectClean(runRoot);
    expect(existsSync(runRoot) ? readdirSync(runRoot) : []).toEqual([]);
  });
});

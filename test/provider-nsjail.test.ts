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
import { CONFIG_FILE, DEFAULT_SECCOMP_DENY, NsjailProvider, quote, seccompPolicy, timeLimitSeconds } from "../plugins/provider-nsjail/index.ts";
import {
  BASE_POLICY,
  IS_ROOT,
  countingListener,
  describeResult,
  expectClean,
  freshRunRoot,
  makeCordon,
  parseKv,
  processesWithMarker,
  removeTempDirs,
  sleep,
  sleepMarker,
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
const probe: ProviderProbe = { available: true, binary: "/opt/nsjail/nsjail", version: "build 0123456789ab", features: { seccomp: true }, tools: { timeout: "/usr/bin/timeout" } };

function planFor(override: PolicyOverride = {}, host: HostFacts = CGROUP_HOST, j: Job = job, secrets: string[] = []) {
  const plan = composePlan({ policy: mergePolicy(DEFAULT_POLICY, override), job: j, host, workspace, secrets, identity: PLAN_IDENTITY }, new NsjailProvider(), probe);
  const staged = plan.stage.find((f) => f.path === CONFIG_FILE);
  if (!staged) throw new Error("no config staged");
  return { plan, config: String(staged.content), mode: staged.mode };
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
  test("argv: nsjail --config <run dir>/nsjail.cfg -- timeout 0 <command>; the config is a 0600 staged file", () => {
    const { plan, mode } = planFor();
    expect(plan.argv).toEqual(["/opt/nsjail/nsjail", "--config", join(workspace.root, CONFIG_FILE), "--", "/usr/bin/timeout", "0", "/bin/sh", "/cordon/job/script.sh"]);
    expect(mode).toBe(0o600);
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

  test("uid map: root maps sandbox 65534 to the run's own host uid (never host root, never 65534); a non-root supervisor maps its own uid and says so", () => {
    const root = planFor();
    const own = PLAN_IDENTITY.uid;
    expect(root.config).toContain(`uidmap { inside_id: "65534" outside_id: "${own}" count: 1 }`);
    expect(root.config).toContain(`gidmap { inside_id: "65534" outside_id: "${own}" count: 1 }`);
    expect(root.config).not.toMatch(/outside_id: "0"/);
    expect(root.plan.scratch.owner).toEqual({ uid: own, gid: own });
    expect(root.plan.report.layers.privilege.controls.uid?.mechanism).toContain(`to host uid ${own} gid ${own}`);
    expect(root.plan.report.layers.privilege.controls.identity?.mechanism).toContain(`per-run host uid ${own} gid ${own}`);
    const user = composePlan({ policy: mergePolicy(DEFAULT_POLICY, { onUnavailable: "degrade" }), job, host: USER_HOST, workspace }, new NsjailProvider(), probe);
    const cfg = String(user.stage.find((f) => f.path === CONFIG_FILE)?.content);
    expect(cfg).toContain('uidmap { inside_id: "65534" outside_id: "1000" count: 1 }');
    expect(user.report.layers.privilege.controls.uid?.status).toBe("degraded");
  });

  test("uid map honours policy.privilege.uid/gid inside (like bwrap): root maps sandbox 4242/4343 to the run's own host uid", () => {
    const root = planFor({ privilege: { uid: 4242, gid: 4343 } });
    const own = PLAN_IDENTITY.uid;
    expect(root.config).toContain(`uidmap { inside_id: "4242" outside_id: "${own}" count: 1 }`);
    expect(root.config).toContain(`gidmap { inside_id: "4343" outside_id: "${own}" count: 1 }`);
    expect(root.config).not.toContain("65534");
    expect(root.plan.scratch.owner).toEqual({ uid: own, gid: own });
    expect(root.plan.report.layers.privilege.controls.uid?.mechanism).toContain(`sandbox uid 4242 gid 4343 to host uid ${own} gid ${own}`);
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

  test("environment: exactly the spec's variables as envar lines, escaped; secrets only in the 0600 file, masked in the report", () => {
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

  test("seccomp: the kafel policy is in the config and in the report as privilege.seccomp", () => {
    const { plan, config } = planFor();
    const policy = seccompPolicy();
    expect(settings(config).seccomp_string).toBe(quote(policy));
    expect(policy).toStartWith("ERRNO(1) { ptrace, process_vm_readv, process_vm_writev,");
    expect(policy).toContain("clone { (clone_flags & 0x7e020000) != 0 }");
    expect(policy).toEndWith("ERRNO(38) { clone3 } DEFAULT ALLOW");
    expect(DEFAULT_SECCOMP_DENY).toContain("umount"); // kafel's name for umount2
    expect(DEFAULT_SECCOMP_DENY).not.toContain("umount2");
    expect(plan.report.layers.privilege.controls.seccomp).toEqual({ status: "enforced", mechanism: `kafel seccomp filter: ${policy}` });
    expect(plan.report.downgrades).toEqual([]);
    expect(() => seccompPolicy(["ptrace } DEFAULT KILL {"])).toThrow("not a syscall name");
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

/** The seccomp probe: what each denied call returns (errno, or 0 when it worked), and that fork and threads work. */
const SECCOMP_PROBE = `
import ctypes, errno, os, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def err(r):
    return ctypes.get_errno() if r == -1 else 0
def in_child(fn):
    # ptrace(TRACEME) would make this process traced: try it in a throwaway child
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(wr, str(fn()).encode()); os._exit(0)
    os.close(wr); os.waitpid(pid, 0)
    return int(os.read(rd, 16) or b"-1")
print("ptrace=%d" % in_child(lambda: err(libc.ptrace(0, 0, None, None))))
print("unshare=%d" % in_child(lambda: err(libc.unshare(0x10000000))))
print("mount=%d" % err(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)))
print("clone_newuser=%d" % err(libc.syscall(56, 0x10000000 | 17, None, None, None, None)))
print("clone3=%d" % err(libc.syscall(435, None, 0)))
buf = ctypes.create_string_buffer(8)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
local = iovec(ctypes.cast(buf, ctypes.c_void_p), 8)
remote = iovec(ctypes.cast(buf, ctypes.c_void_p), 8)
libc.process_vm_readv.restype = ctypes.c_ssize_t
print("process_vm_readv=%d" % err(libc.process_vm_readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)))
pid = os.fork()
if pid == 0:
    os._exit(7)
print("fork=%d" % (os.waitpid(pid, 0)[1] >> 8))
seen = []
ts = [threading.Thread(target=lambda: seen.append(1)) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print("threads=%d" % len(seen))
print("seccomp=" + [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0])
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

  test("seccomp: ptrace, unshare, mount, process_vm_readv and clone(CLONE_NEWUSER) get EPERM, clone3 ENOSYS; fork and threads work", async () => {
    const r = await makeCordon().run({ runner: "python", provider: "nsjail", script: { source: SECCOMP_PROBE }, args: [], policy: BASE_POLICY });
    const kv = parseKv(r.stdout);
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(kv).toMatchObject({ ptrace: "1", unshare: "1", mount: "1", process_vm_readv: "1", clone_newuser: "1", clone3: "38", fork: "7", threads: "4", seccomp: "2" });
    expect(r.sandbox?.layers.privilege.controls.seccomp?.status).toBe("enforced");
  });

  test("the seccomp probe discriminates: under bwrap (no seccomp filter) ptrace and process_vm_readv work", async () => {
    const r = await makeCordon().run({ runner: "python", provider: "bwrap", script: { source: SECCOMP_PROBE }, args: [], policy: BASE_POLICY });
    const kv = parseKv(r.stdout);
    expect(kv.ptrace, describeResult(r)).toBe("0");
    expect(kv.process_vm_readv).toBe("0");
    expect(kv.clone3).not.toBe("38");
    expect(kv.seccomp).toBe("0");
  });

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

  test("a kafel policy nsjail cannot compile is caught by the probe, with kafel's message, not at run time", async () => {
    const p = await new NsjailProvider({ seccompDeny: ["ptrace", "umount2"] }).probe(hostFacts());
    expect(p.available).toBe(false);
    expect(p.reason).toContain("Undefined identifier `umount2'");
    const ok = await new NsjailProvider().probe(hostFacts());
    expect(ok.available, ok.reason).toBe(true);
    expect(ok.tools?.timeout).toBeDefined();
  });

  test("the run dir is gone after the run (config file included)", async () => {
    const runRoot = freshRunRoot();
    await run("cat /proc/self/mountinfo >/dev/null", {}, runRoot);
    expectClean(runRoot);
    expect(existsSync(runRoot) ? readdirSync(runRoot) : []).toEqual([]);
  });
});

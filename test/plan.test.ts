import { describe, expect, test } from "bun:test";
import { DEFAULT_POLICY, mergePolicy, SandboxUnavailableError, type PolicyOverride } from "../src/api/index.ts";
import { composePlan, degraded, enforced, off, type Capabilities, type Job, type Provider, type ProviderProbe, type ReportAmendments } from "../src/api/plugin.ts";
import { allocateWorkspace } from "../src/sandbox/workspace.ts";
import { BwrapProvider, RootlessProvider, UnsafeNoIsolationProvider } from "../plugins/index.ts";
import { trialPlanRefusal } from "../src/readiness/index.ts";
import { CGROUP_HOST, PLAN_IDENTITY, PLAN_JOB, ROOT_HOST, USER_HOST } from "./support.ts";

const workspace = allocateWorkspace("/tmp/cordon-plan-test");
const job = PLAN_JOB;
const bwrapProbe = { available: true, binary: "/usr/bin/bwrap", version: "0.8.0", features: { disableUserns: true, tmpfsSize: true, seccomp: true }, tools: { prlimit: "/usr/bin/prlimit", setpriv: "/usr/bin/setpriv" } };

const planBwrapRaw = (override: PolicyOverride = {}, host = ROOT_HOST, j: Job = job) =>
  composePlan({ policy: mergePolicy(DEFAULT_POLICY, override), job: j, host, workspace, identity: PLAN_IDENTITY }, new BwrapProvider(), bwrapProbe);

/** bwrap's effective command line: the `--args 5` file spliced in where bwrap reads it. */
const planBwrap = (override: PolicyOverride = {}, host = ROOT_HOST, j: Job = job) => {
  const plan = planBwrapRaw(override, host, j);
  const at = plan.argv.indexOf("--args");
  return { ...plan, argv: [...plan.argv.slice(0, at), ...(plan.launcherArgs ?? []), ...plan.argv.slice(at + 2)] };
};

/** Pairs of consecutive argv words, to check option + value. */
const pairs = (argv: string[]) => argv.slice(0, -1).map((a, i) => `${a} ${argv[i + 1]}`);

describe("bwrap plan (pure)", () => {
  test("mounts and env values go through --args 5, never into the process table", () => {
    const plan = planBwrapRaw({ env: { set: { TOKEN: "s3cret-value" } } });
    expect(plan.argv.slice(5, 8)).toEqual(["/usr/bin/bwrap", "--args", "5"]);
    expect(plan.argv.join(" ")).not.toContain("s3cret-value");
    expect(plan.argv).not.toContain("--setenv");
    expect(plan.launcherArgs).toContain("s3cret-value");
  });

  test("secret values are masked in the report's argv", () => {
    const plan = composePlan(
      { policy: DEFAULT_POLICY, job: { ...job, env: { API_KEY: "hunter2-secret" } }, host: ROOT_HOST, workspace, identity: PLAN_IDENTITY, secrets: ["hunter2-secret"] }, new BwrapProvider(), bwrapProbe);
    expect(plan.launcherArgs).toContain("hunter2-secret");
    expect(plan.report.argv.join(" ")).not.toContain("hunter2-secret");
    expect(plan.report.argv).toContain("API_KEY");
    expect(plan.report.argv).toContain("****");
  });

  test("root supervisor: setpriv drops to the run's own host uid BEFORE bwrap (65534 inside); bwrap gets an empty environment", () => {
    const plan = planBwrap();
    const own = PLAN_IDENTITY.uid;
    expect(plan.argv.slice(0, 5)).toEqual(["/usr/bin/setpriv", `--reuid=${own}`, `--regid=${own}`, "--clear-groups", "--no-new-privs"]);
    expect(pairs(plan.argv)).toContain("--uid 65534");
    expect(plan.scratch.owner).toEqual({ uid: own, gid: own });
    expect(plan.argv[5]).toBe("/usr/bin/bwrap");
    expect(plan.env).toEqual({});
    expect(plan.report.downgrades).toEqual([]);
    expect(plan.report.layers.privilege.controls.uid!.status).toBe("enforced");
  });

  test("every namespace, no ro-bind of /, a sealed root, scratch as cwd", () => {
    const { argv } = planBwrap();
    for (const flag of ["--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--disable-userns", "--clearenv"]) {
      expect(argv).toContain(flag);
    }
    const p = pairs(argv);
    expect(p).toContain("--cap-drop ALL");
    expect(p).toContain("--chdir /scratch");
    expect(p).toContain("--remount-ro /");
    expect(p).not.toContain("--ro-bind /");
    expect(p).not.toContain("--bind /");
    expect(argv.join(" ")).toContain("--ro-bind /usr /usr");
    expect(argv.join(" ")).toContain(`--bind ${workspace.scratchDir} /scratch`);
  });

  test("with --block-fd: rlimits are a setup step at release (prlimit(2) on bwrap's init), no prlimit process; the report says so", () => {
    const probe = { ...bwrapProbe, features: { ...bwrapProbe.features, blockFd: true } };
    const plan = composePlan({ policy: mergePolicy(DEFAULT_POLICY, { resources: { cpuSeconds: 3 } }), job, host: ROOT_HOST, workspace, identity: PLAN_IDENTITY }, new BwrapProvider(), probe);
    expect(plan.argv.slice(plan.argv.indexOf("--") + 1)).toEqual(["/bin/sh", "/cordon/job/script.sh"]);
    expect(plan.blockFd).toBe(true);
    expect(plan.launcherArgs).toContain("--block-fd");
    expect(plan.steps?.map((s) => s.name)).toEqual(["rlimits"]);
    expect(plan.report.argv.join(" ")).toContain("<rlimits cpu=3:4 fsize=");
    expect(plan.report.argv.join(" ")).toMatch(/ core=0:0 .*: set by the supervisor with prlimit\(2\) on bwrap's init/);
    for (const name of ["cpu", "fsize", "nofile"]) expect(plan.report.layers.resources.controls[name]?.mechanism).toContain("prlimit(2) on bwrap's init while it holds the command");
  });

  test("without --block-fd: rlimits run inside the sandbox through prlimit, before the command", () => {
    const { argv } = planBwrap({ resources: { cpuSeconds: 3, maxProcesses: 7 } });
    const inner = argv.slice(argv.indexOf("--") + 1);
    expect(inner[0]).toBe("/usr/bin/prlimit");
    expect(inner).toContain("--cpu=3:4");
    expect(inner).toContain("--nproc=7");
    expect(inner).toContain("--core=0");
    expect(inner.slice(-2)).toEqual(["/bin/sh", "/cordon/job/script.sh"]);
  });

  test("the child's env is the base plus what the policy and runner set, nothing else of the host", () => {
    const plan = composePlan(
      { policy: mergePolicy(DEFAULT_POLICY, { env: { allow: ["HOME_OF_HOST", "ABSENT"], set: { A: "1" } } }), job: { ...job, env: { B: "2" } }, host: ROOT_HOST, workspace, identity: PLAN_IDENTITY }, new BwrapProvider(), bwrapProbe);
    const args = plan.launcherArgs ?? [];
    const setenv = args.flatMap((a, i) => (a === "--setenv" ? [args[i + 1]] : []));
    expect(setenv.sort()).toEqual(["A", "B", "HOME", "LANG", "PATH", "TMPDIR"]);
  });

  test("network allowlist is refused under fail and falls back to deny under degrade — never open", () => {
    expect(() => planBwrap({ network: { mode: "allowlist", allow: ["192.0.2.1:80"] } })).toThrow(SandboxUnavailableError);
    const plan = planBwrap({ onUnavailable: "degrade", network: { mode: "allowlist", allow: ["192.0.2.1:80"] } });
    expect(plan.argv).toContain("--unshare-net");
    expect(plan.report.layers.network.status).toBe("degraded");
    expect(plan.report.downgrades[0]).toContain("network.egress");
  });

  test("unrestricted without metadata blocking shares the host network and says so", () => {
    const plan = planBwrap({ network: { mode: "unrestricted", blockMetadata: false } });
    expect(plan.argv).not.toContain("--unshare-net");
    expect(plan.report.layers.network.controls.egress!.status).toBe("off");
  });

  test("non-root supervisor: no setpriv, uid reported degraded with the fix, refused under fail", () => {
    let err: unknown;
    try {
      planBwrap({}, USER_HOST);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SandboxUnavailableError);
    const reasons = (err as SandboxUnavailableError).reasons.join("\n");
    expect(reasons).toContain("privilege.uid");
    expect(reasons).toContain("resources.scratch");
    const plan = planBwrap({ onUnavailable: "degrade" }, USER_HOST);
    expect(plan.argv[0]).toBe("/usr/bin/bwrap");
    expect(plan.scratch.quotaBytes).toBeNull();
  });

  test("a runner whose interpreter does not tolerate RLIMIT_AS gets no memory rlimit and a degraded memory control", () => {
    const plan = planBwrap({ onUnavailable: "degrade" }, ROOT_HOST, { ...job, addressSpaceLimitSafe: false });
    expect(plan.argv.some((a) => a.startsWith("--as="))).toBe(false);
    expect(plan.report.layers.resources.controls.memory!.status).toBe("degraded");
  });

  test("without setpriv and prlimit on the host, the uid drop and every rlimit are degraded, not silently skipped", () => {
    const bare = { ...bwrapProbe, tools: {} };
    let err: unknown;
    try {
      composePlan({ policy: DEFAULT_POLICY, job, host: ROOT_HOST, workspace, identity: PLAN_IDENTITY }, new BwrapProvider(), bare);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SandboxUnavailableError);
    const controls = (err as SandboxUnavailableError).reasons.map((r) => r.split(":")[0]);
    expect(controls).toEqual(["resources.cpu", "resources.fsize", "resources.nofile", "resources.processes", "resources.memory", "privilege.uid", "privilege.identity"]);
  });

  test("with cgroups: memory and pids are tree-wide cgroup caps, no RLIMIT_AS or RLIMIT_NPROC; Bun runs under fail", () => {
    const plan = planBwrap({ resources: { memoryBytes: 128 << 20, maxProcesses: 9 } }, CGROUP_HOST, { ...job, addressSpaceLimitSafe: false });
    expect(plan.cgroup).toEqual({ memoryBytes: 128 << 20, pidsMax: 9 + 2, cpuPercent: null }); // + bwrap and its pid-1 init
    expect(plan.argv.some((a) => a.startsWith("--as=") || a.startsWith("--nproc="))).toBe(false);
    const controls = plan.report.layers.resources.controls;
    expect(controls.memory).toMatchObject({ status: "enforced" });
    expect(controls.memory!.mechanism).toContain("cgroup v1 memory controller");
    expect(controls.memory!.mechanism).toContain("whole tree");
    expect(controls.processes!.mechanism).toContain("cgroup v1 pids controller");
  });

  test("without cgroups there is no cgroup in the plan, and the degraded reason says why and how to fix it", () => {
    const plan = planBwrap({ onUnavailable: "degrade" }, ROOT_HOST, { ...job, addressSpaceLimitSafe: false });
    expect(plan.cgroup).toBeNull();
    const memory = plan.report.layers.resources.controls.memory!;
    expect(memory.reason).toContain("no cgroup filesystem is mounted");
    expect(memory.fix).toContain("Delegate=yes");
  });

  test("memory by RLIMIT_AS is labelled per-process, never as a tree cap", () => {
    expect(planBwrap().report.layers.resources.controls.memory!.mechanism).toContain("per-process");
  });
});

describe("unsafe plan", () => {
  test("refused under fail with every missing layer listed; under degrade it runs bare", () => {
    const unsafe = new UnsafeNoIsolationProvider();
    const input = { policy: DEFAULT_POLICY, job, host: ROOT_HOST, workspace, identity: PLAN_IDENTITY };
    let err: unknown;
    try {
      composePlan(input, unsafe, unsafe.probe());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SandboxUnavailableError);
    const reasons = (err as SandboxUnavailableError).reasons.join("\n");
    for (const control of ["filesystem.view", "network.egress", "privilege.uid", "resources.processes", "resources.memory", "env.hostProcesses"]) expect(reasons).toContain(control);
    const plan = composePlan({ ...input, policy: mergePolicy(DEFAULT_POLICY, { onUnavailable: "degrade" }) }, unsafe, unsafe.probe());
    expect(plan.argv).toEqual(["/usr/bin/setsid", ...job.argv]);
    expect(plan.report.provider.isolating).toBe(false);
    expect(plan.report.layers.resources.controls.wall!.status).toBe("degraded"); // setsid daemons outlive a process-group kill
    expect(plan.report.layers.resources.controls.output!.status).toBe("enforced");
    expect(plan.report.layers.env.controls.allowlist!.status).toBe("enforced");
  });
});

describe("composePlan", () => {
  const caps: Capabilities = {
    isolating: true,
    filesystem: { view: true },
    network: { deny: true, allowlist: false, unrestricted: true, metadataBlock: false },
    resources: { treeKill: "t", rlimits: true, processCap: "p", memoryTreeCap: null, tmpfsSize: true, scratchQuota: true, cgroups: false },
    privilege: { hostUidDrop: true, capabilityDrop: true, noNewPrivs: true, syscallFilter: { mechanism: "m" }, freshKeyring: { mechanism: "k" } },
    env: { cleanEnvironment: true },
  };
  const FAKE_PROBE: ProviderProbe = { available: true, binary: "/x", version: "1", features: {} };
  const planner = (c: Capabilities): Provider => ({
    name: "fake",
    description: "a provider that renders a fixed argv",
    isolating: true,
    probe: () => FAKE_PROBE,
    capabilities: () => c,
    layout: () => ({ jobDir: "/j", scratchDir: "/s", tmpDir: "/t" }),
    render: () => ({ launch: { argv: ["x"], env: {}, cwd: "/", treeKill: "process-group", exitEncoding: "native", statusFd: null } }),
  });

  test("under fail, ONE error lists every degraded control and nothing is rendered", () => {
    let rendered = false;
    const p = { ...planner({ ...caps, resources: { ...caps.resources, rlimits: false, processCap: null } }), render: () => ((rendered = true), planner(caps).render({} as never, {} as never)) };
    let err: unknown;
    try {
      composePlan({ policy: DEFAULT_POLICY, job, host: ROOT_HOST, workspace, identity: PLAN_IDENTITY }, p, FAKE_PROBE);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SandboxUnavailableError);
    expect((err as SandboxUnavailableError).reasons.map((r) => r.split(":")[0])).toEqual(["resources.cpu", "resources.fsize", "resources.nofile", "resources.processes", "resources.memory"]);
    expect(rendered).toBe(false);
  });

  test("policy switches a control off rather than degrading it", () => {
    const plan = composePlan({ policy: mergePolicy(DEFAULT_POLICY, { privilege: { dropCapabilities: false } }), job, host: ROOT_HOST, workspace, identity: PLAN_IDENTITY }, planner(caps), FAKE_PROBE);
    expect(plan.report.layers.privilege.controls.capabilities!.status).toBe("off");
    expect(plan.report.downgrades).toEqual([]);
  });

  describe("a provider's report amendments", () => {
    const amending = (amendments: ReportAmendments): Provider => ({ ...planner(caps), render: (spec, ctx) => ({ ...planner(caps).render(spec, ctx), amendments }) });
    const degrade = mergePolicy(DEFAULT_POLICY, { onUnavailable: "degrade", network: { mode: "allowlist", allow: ["192.0.2.1:443"] } });
    const plan = (amendments: ReportAmendments, policy = degrade) => composePlan({ policy, job, host: ROOT_HOST, workspace, identity: PLAN_IDENTITY }, amending(amendments), FAKE_PROBE);

    test("may reword an enforced or off control and add an enforced one", () => {
      const p = plan({
        resources: { cpu: enforced("RLIMIT_CPU, said the provider's way") },
        privilege: { seccomp: enforced("a filter"), capabilities: off("switched off, said the provider's way") },
      }, mergePolicy(degrade, { privilege: { dropCapabilities: false } }));
      expect(p.report.layers.resources.controls.cpu!.mechanism).toBe("RLIMIT_CPU, said the provider's way");
      expect(p.report.layers.privilege.controls.seccomp!.status).toBe("enforced");
      expect(p.report.layers.privilege.controls.capabilities!.reason).toBe("switched off, said the provider's way");
    });

    test("may never touch a degraded control, change a status, or add one that is not enforced", () => {
      const before = plan({});
      expect(before.report.layers.network.controls.egress!.status).toBe("degraded"); // the fake cannot filter egress
      for (const amendments of [
        { network: { egress: degraded("all good actually") } }, // a degraded control reworded: its fallback would be lost
        { network: { egress: enforced("filtered") } }, // degraded made enforced
        { resources: { cpu: degraded("not really") } }, // enforced made degraded
        { privilege: { extra: off("nothing") } }, // added, not enforced
      ] satisfies ReportAmendments[]) {
        expect(() => plan(amendments)).toThrow(/report amendment .* is refused/);
      }
    });
  });

  test("a trial plan judges a hostname allowlist without looking it up; a run plan needs its addresses", () => {
    const rootless = new RootlessProvider();
    const probe: ProviderProbe = { ...bwrapProbe, features: { ...bwrapProbe.features, blockFd: true }, tools: { ...bwrapProbe.tools, slirp4netns: "/usr/bin/slirp4netns", nft: "/usr/sbin/nft", nsenter: "/usr/bin/nsenter" } };
    const policy = mergePolicy(DEFAULT_POLICY, { network: { mode: "allowlist", allow: ["checks.example:443"] } });
    expect(trialPlanRefusal(rootless, probe, policy, CGROUP_HOST, "/tmp/cordon-plan-test")).toEqual([]);
    const unresolved = () => composePlan({ policy, job, host: CGROUP_HOST, workspace, identity: PLAN_IDENTITY, resolved: {} }, rootless, probe);
    expect(unresolved).toThrow(/checks.example was not resolved before planning/);
    const resolved = composePlan({ policy, job, host: CGROUP_HOST, workspace, identity: PLAN_IDENTITY, resolved: { "checks.example": ["192.0.2.7"] } }, rootless, probe);
    expect(resolved.report.layers.network.controls.egress!.status).toBe("enforced");
  });
});

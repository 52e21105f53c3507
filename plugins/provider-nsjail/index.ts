import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  composePlan,
  enforced,
  findExecutable,
  hostFacts,
  layerReport,
  maskDeep,
  proveProvider,
  SandboxUnavailableError,
  type ControlVerdict,
  type EffectiveSandboxReport,
  type HostFacts,
  type LayerName,
  type Layout,
  type Mount,
  type PlanInput,
  type Provider,
  type ProveOptions,
  type ProviderProbe,
  type SandboxSpec,
  type SpawnPlan,
  type Workspace,
} from "../../src/index.ts";
import { DEFAULT_SECCOMP_DENY, nsjailCapabilities, quote, renderNsjailConfig, renderNsjailLaunch, seccompPolicy, toMiB } from "./render.ts";

export { DEFAULT_SECCOMP_DENY, nsjailCapabilities, quote, renderNsjailConfig, renderNsjailLaunch, seccompPolicy, timeLimitSeconds, toMiB } from "./render.ts";

export interface NsjailOptions {
  /** nsjail binary; found on PATH when absent. */
  binary?: string;
  /** Syscalls answered with EPERM (kafel names); default DEFAULT_SECCOMP_DENY. */
  seccompDeny?: readonly string[];
}

const LAYOUT = { jobDir: "/cordon/job", scratchDir: "/scratch", tmpDir: "/tmp" } as const;
/** The config file, in the run dir (0711, root's): 0600, so only the supervisor and nsjail read it. */
export const CONFIG_FILE = "nsjail.cfg";
const SYSTEM_PATH = "/usr/bin:/bin";
const NOT_FOUND = "not packaged in Debian; build from https://github.com/google/nsjail";

/** nsjail has no --version: identify the build by its binary's digest. */
function binaryDigest(binary: string): string | null {
  try {
    return createHash("sha256").update(readFileSync(binary)).digest("hex").slice(0, 12);
  } catch {
    return null;
  }
}

/** A spec as small as a real one: the same namespaces, uid map, rlimits and seccomp policy, running `timeout 0 /bin/true`. */
function trialSpec(host: HostFacts): SandboxSpec {
  const mounts: Mount[] = [{ kind: "ro-bind", source: "/usr", target: "/usr" }];
  for (const p of host.systemPaths) mounts.push(p.kind === "symlink" ? { kind: "symlink", linkTarget: p.target, path: p.path } : { kind: "ro-bind", source: p.path, target: p.path });
  mounts.push({ kind: "proc", path: "/proc" }, { kind: "dev", path: "/dev", shmBytes: 1024 * 1024 }, { kind: "tmpfs", path: "/tmp", sizeBytes: 1024 * 1024, mode: 0o1777 }, { kind: "remount-ro", path: "/" });
  return {
    filesystem: { isolated: true, mounts, cwd: "/tmp", stage: [] },
    network: { namespace: "fresh", egress: null },
    resources: { wallMs: 5000, maxOutputBytes: 4096, maxStdinBytes: 0, rlimits: { cpu: 5, fsize: 1024 * 1024, nofile: 64, core: 0, as: 256 * 1024 * 1024 }, scratchQuotaBytes: null, cgroup: null },
    privilege: { hostDrop: host.isRoot ? { uid: 65534, gid: 65534 } : null, sandboxUid: 65534, sandboxGid: 65534, dropCapabilities: true, noNewPrivs: true },
    env: { vars: { PATH: "/usr/bin:/bin" } },
    command: ["/bin/true"],
    hostname: "cordon",
  };
}

/**
 * One real nsjail run of the trial spec: proves that user namespaces, the uid map, the
 * mounts and the kafel policy work here. A kafel compile error (an nsjail whose kafel
 * lacks a syscall name) lands here, in the probe, not in a run.
 */
async function trialRun(binary: string, timeout: string, host: HostFacts, seccompDeny: readonly string[] | undefined): Promise<string | null> {
  const dir = mkdtempSync(join(tmpdir(), "cordon-nsjail-probe-"));
  try {
    const spec = trialSpec(host);
    const config = renderNsjailConfig(spec, host, { logLevel: "WARNING", logFd: 2, ...(seccompDeny ? { seccompDeny } : {}) });
    const path = join(dir, CONFIG_FILE);
    writeFileSync(path, config.text, { mode: 0o600 });
    const p = Bun.spawn([binary, "--config", path, "--", timeout, "0", ...spec.command], { env: {}, cwd: "/", stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const killer = setTimeout(() => p.kill("SIGKILL"), 10_000);
    const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    clearTimeout(killer);
    if (code === 0) return null;
    const lines = stderr.trim().split("\n").filter(Boolean).slice(0, 6).join(" | ");
    return `a trial nsjail run failed (exit ${code ?? p.signalCode}): ${lines || "no message"}`;
  } catch (e) {
    return `a trial nsjail run could not start: ${e instanceof Error ? e.message : String(e)}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Secrets as they appear in the config too: inside text-format string literals, escaped. Longest first. */
function configSecrets(secrets: readonly string[]): string[] {
  const forms = secrets.flatMap((s) => [s, quote(s).slice(1, -1)]);
  return [...new Set(forms)].sort((a, b) => b.length - a.length);
}

/** Replace some controls of one layer of a report (the layer's status is recomputed). */
function amend(report: EffectiveSandboxReport, layer: LayerName, controls: Record<string, ControlVerdict>): EffectiveSandboxReport {
  return { ...report, layers: { ...report.layers, [layer]: layerReport({ ...report.layers[layer].controls, ...controls }) } };
}

/** What nsjail actually applies where the layers' provider-neutral wording would say more or less. */
function nsjailReport(report: EffectiveSandboxReport, spec: SandboxSpec, seccomp: string): EffectiveSandboxReport {
  const privilege: Record<string, ControlVerdict> = {
    seccomp: enforced(`kafel seccomp filter: ${seccomp}`),
  };
  const p = spec.privilege;
  if (p.hostDrop && report.layers.privilege.controls.uid?.status === "enforced") {
    privilege.uid = enforced(`nsjail maps sandbox uid ${p.sandboxUid} gid ${p.sandboxGid} to host uid ${p.hostDrop.uid} gid ${p.hostDrop.gid} (uidmap/gidmap, no supplementary groups); nsjail itself stays root outside the namespaces`);
  }
  const nnp = report.layers.privilege.controls.noNewPrivs;
  if (nnp?.status === "off") privilege.noNewPrivs = { ...nnp, reason: `${nnp.reason} (nsjail sets no_new_privs anyway: installing the seccomp filter requires it)` };
  let out = amend(report, "privilege", privilege);

  const r = spec.resources.rlimits;
  const resources: Record<string, ControlVerdict> = {};
  const c = report.layers.resources.controls;
  if (r.cpu !== undefined && c.cpu?.status === "enforced") resources.cpu = enforced(`RLIMIT_CPU ${r.cpu} s per process (nsjail sets soft = hard: SIGKILL at ${r.cpu} s, no SIGXCPU first)`);
  if (r.fsize !== undefined && c.fsize?.status === "enforced") {
    const { mib, exact } = toMiB(r.fsize);
    resources.fsize = enforced(`RLIMIT_FSIZE ${mib} MiB per file${exact ? "" : ` (the policy's ${r.fsize} bytes rounded down to nsjail's MiB unit)`}`);
  }
  if (r.as !== undefined && c.memory?.status === "enforced") {
    const { mib, exact } = toMiB(r.as);
    const said = c.memory.mechanism ?? "";
    resources.memory = enforced(said.replace(/RLIMIT_AS \d+ bytes each/, `RLIMIT_AS ${mib} MiB each${exact ? "" : `, the policy's ${r.as} bytes rounded down to nsjail's MiB unit`}`));
  }
  if (Object.keys(resources).length) out = amend(out, "resources", resources);
  return out;
}

/**
 * nsjail (google/nsjail): user, mount, pid, net, ipc, uts and cgroup namespaces, a kafel
 * seccomp filter, rlimits; memory and pids through cordon's own run cgroup.
 */
export class NsjailProvider implements Provider {
  readonly name = "nsjail";
  readonly description = "nsjail: namespaces, read-only minimal filesystem, no network, kafel seccomp filter";
  readonly isolating = true;
  private probed?: Promise<ProviderProbe>;

  constructor(private readonly options: NsjailOptions = {}) {}

  probe(): Promise<ProviderProbe> {
    this.probed ??= this.detect();
    return this.probed;
  }

  private async detect(): Promise<ProviderProbe> {
    const binary = findExecutable(this.options.binary ?? "nsjail");
    const none = (reason: string, version: string | null = null): ProviderProbe => ({ available: false, binary, version, features: {}, reason });
    if (!binary) return none(this.options.binary ? `nsjail not found at ${this.options.binary}` : `nsjail not found on PATH: ${NOT_FOUND}`);
    const help = Bun.spawnSync([binary, "--help"], { env: {} });
    const helpText = `${help.stdout.toString()}${help.stderr.toString()}`;
    if (!/--config/.test(helpText)) return none(`${binary} --help does not look like nsjail's: ${helpText.trim().split("\n")[0] ?? ""}`);
    const digest = binaryDigest(binary);
    const version = digest ? `build ${digest}` : null;
    // The pid-1 shim runs inside the sandbox, so only one under the bound /usr (or /bin) will do.
    const timeout = findExecutable("timeout", SYSTEM_PATH);
    if (!timeout) return none("coreutils timeout not found under /usr/bin or /bin (the sandbox's pid 1)", version);
    const failed = await trialRun(binary, timeout, hostFacts(), this.options.seccompDeny);
    if (failed) return none(failed, version);
    return { available: true, binary, version, features: { seccomp: true, timeLimit: true }, tools: { timeout } };
  }

  layout(_workspace: Workspace): Layout {
    return { ...LAYOUT };
  }

  plan(input: PlanInput, probe: ProviderProbe): SpawnPlan {
    if (!probe.available) throw new SandboxUnavailableError(this.name, [probe.reason ?? "nsjail is unavailable"]);
    const configPath = join(input.workspace.root, CONFIG_FILE);
    const seccomp = seccompPolicy(this.options.seccompDeny ?? DEFAULT_SECCOMP_DENY);
    const rendered: { spec?: SandboxSpec; text?: string } = {};
    const plan = composePlan(input, {
      name: this.name,
      version: probe.version,
      capabilities: nsjailCapabilities(input.host),
      layout: this.layout(input.workspace),
      textConfig: true,
      render: (spec: SandboxSpec) => {
        const config = renderNsjailConfig(spec, input.host, this.options.seccompDeny ? { seccompDeny: this.options.seccompDeny } : {});
        Object.assign(rendered, { spec, text: config.text });
        return renderNsjailLaunch(spec, probe, configPath, config.rootWritable);
      },
    });
    const { spec, text } = rendered;
    if (!spec || text === undefined) throw new Error("nsjail provider: the plan was not rendered");
    const report = nsjailReport(plan.report, spec, seccomp);
    return {
      ...plan,
      // The config (mounts, env values) goes in a 0600 file of the run dir, out of the process table.
      stage: [...plan.stage, { path: CONFIG_FILE, content: text, mode: 0o600 }],
      report: { ...report, argv: [...report.argv, `<${CONFIG_FILE}:`, maskDeep(text, configSecrets(input.secrets ?? [])), ">"] },
    };
  }

  readiness(options?: string | ProveOptions) {
    return proveProvider(this, options);
  }
}

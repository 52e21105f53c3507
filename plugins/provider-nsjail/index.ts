import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  composeSpec,
  DEFAULT_POLICY,
  enforced,
  findExecutable,
  maskDeep,
  mergePolicy,
  SANDBOX_LAYOUT,
  type Capabilities,
  type ControlVerdict,
  type HostFacts,
  type Job,
  type Policy,
  type Provider,
  type ProviderProbe,
  type RenderContext,
  type Rendering,
  type ReportAmendments,
  type SandboxSpec,
  type Workspace,
} from "../../src/api/plugin.ts";
import { isX32Block, X32_KILL_SPAN, X32_SYSCALL_BIT } from "../mechanism/seccomp/kafel.ts";
import { privilegeDropArgs } from "../mechanism/setpriv.ts";
import type * as Renderer from "./render.ts";

/** The config renderer loads on the first nsjail probe or render: a run on another provider never needs it. */
let renderer: typeof Renderer | undefined;
const render = (): typeof Renderer => (renderer ??= require("./render.ts") as typeof Renderer);

export interface NsjailOptions {
  /** nsjail binary; found on PATH when absent. */
  binary?: string;
}

/**
 * The config file, in the run dir (0711, root's). nsjail reads it by path, as the run's host
 * uid when the supervisor is root: then it is 0400 and that uid's (the values in it reach
 * the sandbox anyway), else 0600 and the supervisor's. No one else reads it.
 */
export const CONFIG_FILE = "nsjail.cfg";
/** Where the pid-1 shim (coreutils timeout) and setpriv may live: only /usr is bound in, and /bin links to it. */
const SHIM_SEARCH_PATH = "/usr/bin:/bin";
const NOT_FOUND = "not packaged in Debian; build from https://github.com/google/nsjail";

/** nsjail has no --version: identify the build by its binary's digest. */
function binaryDigest(binary: string): string | null {
  try {
    return new Bun.CryptoHasher("sha256").update(readFileSync(binary)).digest("hex").slice(0, 12);
  } catch {
    return null;
  }
}

/** The trial's job: `/bin/true`, under the real layers with small limits. */
const TRIAL_JOB: Job = { runner: "nsjail-trial", argv: ["/bin/true"], files: [], readOnlyBinds: [], env: {}, result: { exitCodeFallback: false }, addressSpaceLimitSafe: true };
/** Built on the first probe (a zod parse): importing the provider costs nothing. */
let trialPolicy: Policy | undefined;
const TRIAL_POLICY = (): Policy => (trialPolicy ??= mergePolicy(DEFAULT_POLICY, {
  onUnavailable: "degrade",
  resources: { wallMs: 5000, maxFileSizeBytes: 1024 * 1024, scratchBytes: 1024 * 1024, maxOutputBytes: 4096, maxStdinBytes: 0 },
}));

/**
 * A run directory as a real run has one (0711, stage files, a scratch the sandbox uid
 * owns) for the spec the layers make: the trial proves the mounts, uid map, rlimits and
 * kafel policy real runs get, not a hand-made copy of them. Planned as if the host had no
 * usable cgroups (the trial creates none): the probe depends only on the machine, never on
 * a Cordon's config, because the core probes a provider once for every Cordon that uses it.
 */
function trialSpec(dir: string, machine: HostFacts, tools: { setpriv?: string }): SandboxSpec {
  const host: HostFacts = { ...machine, cgroups: { ...machine.cgroups, problem: "the nsjail trial run makes no cgroup" } };
  const workspace: Workspace = { root: dir, stageDir: join(dir, "stage"), jobDir: join(dir, "stage", "job"), scratchDir: join(dir, "scratch") };
  const { spec } = composeSpec({ policy: TRIAL_POLICY(), job: TRIAL_JOB, host, workspace }, render().nsjailCapabilities(host, tools), SANDBOX_LAYOUT, {});
  chmodSync(dir, 0o711);
  mkdirSync(workspace.jobDir, { recursive: true, mode: 0o755 });
  for (const f of spec.filesystem.stage) {
    mkdirSync(dirname(join(dir, f.path)), { recursive: true, mode: 0o755 });
    writeFileSync(join(dir, f.path), f.content, { mode: f.mode });
  }
  mkdirSync(workspace.scratchDir, { mode: 0o700 });
  const owner = spec.privilege.hostDrop;
  if (owner) chownSync(workspace.scratchDir, owner.uid, owner.gid);
  return spec;
}

/**
 * One real nsjail run of the trial spec, launched as real runs are (through setpriv as the
 * run's host uid when the supervisor is root): proves that user namespaces, the uid map,
 * the mounts and the kafel text of the whole syscall policy work here. A kafel compile
 * error lands here, in the probe, not in a run.
 */
async function trialRun(binary: string, tools: { timeout: string; setpriv?: string }, host: HostFacts): Promise<string | null> {
  // Under /tmp, not $TMPDIR: the sandbox uid must be able to reach the binds, and /tmp is
  // world-searchable on every Linux host ($TMPDIR may be a private directory).
  const dir = mkdtempSync("/tmp/cordon-nsjail-probe-");
  try {
    const spec = trialSpec(dir, host, tools);
    const config = render().renderNsjailConfig(spec, host, { logLevel: "WARNING", logFd: 2 });
    const path = join(dir, CONFIG_FILE);
    const owner = spec.privilege.hostDrop;
    writeFileSync(path, config.text, { mode: owner ? 0o400 : 0o600 });
    if (owner) chownSync(path, owner.uid, owner.gid);
    const drop = privilegeDropArgs(spec.privilege, tools.setpriv ?? "setpriv");
    const p = Bun.spawn([...drop, binary, "--config", path, "--", tools.timeout, "0", ...spec.command], { env: {}, cwd: "/", stdin: "ignore", stdout: "pipe", stderr: "pipe" });
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

/** Secrets masked in the config text as they appear there too: inside text-format string literals, escaped. Longest first. */
function maskConfig(text: string, secrets: readonly string[]): string {
  const forms = [...new Set(secrets.flatMap((s) => [s, render().quote(s).slice(1, -1)]))].sort((a, b) => b.length - a.length);
  return maskDeep(text, forms);
}

/**
 * The config as the report shows it: secrets masked, and the x32 block of the filter (a
 * thousand numbered entries) in one phrase; the file nsjail reads has it whole.
 */
function reportedConfig(text: string, secrets: readonly string[]): string {
  const lines = text.split("\n").map((l) => {
    const m = /^seccomp_string: "(.*)"$/.exec(l);
    if (!m || !isX32Block(m[1]!)) return l;
    const last = `0x${(X32_SYSCALL_BIT + X32_KILL_SPAN - 1).toString(16)}`;
    return `seccomp_string: "KILL_PROCESS { SYSCALL[0x${X32_SYSCALL_BIT.toString(16)}], ..., SYSCALL[${last}] }"  # shortened in this report: the file names all ${X32_KILL_SPAN} numbers`;
  });
  return maskConfig(lines.join("\n"), secrets);
}

/** What nsjail applies where the layers' provider-neutral wording would say more or less. */
function nsjailAmendments(spec: SandboxSpec): ReportAmendments {
  const privilege: Record<string, ControlVerdict> = {};
  const p = spec.privilege;
  if (p.hostDrop) {
    privilege.namespaceOwner = enforced(
      `nsjail runs as host uid ${p.hostDrop.uid} gid ${p.hostDrop.gid} (setpriv, no capabilities), so the run's user namespace is owned by that uid, not root: per-uid kernel counts of the sandbox (inotify instances, user namespaces) are charged to uid ${p.hostDrop.uid} and never reduce what host root may open`,
    );
  }
  if (!p.noNewPrivs && p.syscallFilter) privilege.noNewPrivs = { status: "off", reason: "policy privilege.noNewPrivs is false (nsjail sets no_new_privs anyway: installing the seccomp filter requires it)" };
  const cpu = spec.resources.rlimits.cpu;
  const resources: Record<string, ControlVerdict> = cpu === undefined ? {} : { cpu: enforced(`RLIMIT_CPU ${cpu} s per process (nsjail sets soft = hard: SIGKILL at ${cpu} s, no SIGXCPU first)`) };
  return { privilege, resources };
}

/**
 * nsjail (google/nsjail): user, mount, pid, net, ipc, uts and cgroup namespaces, a kafel
 * seccomp filter, rlimits; memory and pids through cordon's own run cgroup.
 */
export class NsjailProvider implements Provider {
  readonly name = "nsjail";
  readonly description = "nsjail: namespaces, read-only minimal filesystem, no network, kafel seccomp filter";
  readonly isolating = true;
  readonly textConfig = true;

  constructor(private readonly options: NsjailOptions = {}) {}

  async probe(host: HostFacts): Promise<ProviderProbe> {
    const binary = findExecutable(this.options.binary ?? "nsjail");
    const none = (reason: string, version: string | null = null): ProviderProbe => ({ available: false, binary, version, features: {}, reason });
    if (!binary) return none(this.options.binary ? `nsjail not found at ${this.options.binary}` : `nsjail not found on PATH: ${NOT_FOUND}`);
    const help = Bun.spawnSync([binary, "--help"], { env: {} });
    const helpText = `${help.stdout.toString()}${help.stderr.toString()}`;
    if (!/--config/.test(helpText)) return none(`${binary} --help does not look like nsjail's: ${helpText.trim().split("\n")[0] ?? ""}`);
    const digest = binaryDigest(binary);
    const version = digest ? `build ${digest}` : null;
    const timeout = findExecutable("timeout", SHIM_SEARCH_PATH);
    if (!timeout) return none("coreutils timeout not found under /usr/bin or /bin (the sandbox's pid 1)", version);
    // setpriv: how a root supervisor starts nsjail as the run's host uid (util-linux, on every Debian host).
    const setpriv = findExecutable("setpriv", SHIM_SEARCH_PATH) ?? undefined;
    const tools = { timeout, ...(setpriv ? { setpriv } : {}) };
    const failed = await trialRun(binary, tools, host);
    if (failed) return none(failed, version);
    return { available: true, binary, version, features: { seccomp: true, timeLimit: true }, tools };
  }

  capabilities(probe: ProviderProbe, host: HostFacts): Capabilities {
    return render().nsjailCapabilities(host, probe.tools ?? {});
  }

  /** The launch, the config file it reads (staged in the run dir, readable by nsjail alone) and what nsjail applies beyond the layers' wording. */
  render(spec: SandboxSpec, { probe, host, workspace, secrets }: RenderContext): Rendering {
    const config = render().renderNsjailConfig(spec, host);
    const owner = spec.privilege.hostDrop;
    return {
      launch: render().renderNsjailLaunch(spec, probe, join(workspace.root, CONFIG_FILE), config.rootWritable),
      stage: [owner ? { path: CONFIG_FILE, content: config.text, mode: 0o400, owner } : { path: CONFIG_FILE, content: config.text, mode: 0o600 }],
      amendments: nsjailAmendments(spec),
      reportAppendix: [`<${CONFIG_FILE}:`, reportedConfig(config.text, secrets), ">"],
    };
  }
}

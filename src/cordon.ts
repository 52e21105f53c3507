import { extname } from "node:path";
import { parseConfig, type CordonConfig, type CordonConfigInput } from "./config.ts";
import { CordonError, SandboxUnavailableError, UnknownProviderError, UnknownRunnerError } from "./errors.ts";
import { detectCgroups } from "./cgroup/detect.ts";
import { hostFacts, sandboxUidUsers, type HostFacts } from "./host.ts";
import { DEFAULT_POLICY, mergePolicy, type Policy, type PolicyOverride } from "./policy/index.ts";
import type { Provider, ProviderProbe } from "./provider.ts";
import { probeJob } from "./readiness/probes.ts";
import type { ReadinessCell, ReadinessReport } from "./readiness/index.ts";
import type { RunResult } from "./result.ts";
import type { Runner, RunnerOptions, ScriptRequest } from "./runner.ts";
import { runInSandbox } from "./sandbox/run.ts";
import { resolveAllowlist } from "./network/resolve.ts";
import type { SpawnPlan } from "./sandbox/spec.ts";
import { cleanStaleCgroups } from "./sandbox/cgroup-run.ts";
import { validateInputFiles, type InputFile } from "./files/input.ts";
import { maskRunResult, maskText, refuseWeakSecrets, secretValues } from "./secrets.ts";
import { checkRunRequest } from "./run-request.ts";
import { allocateWorkspace, cleanStaleWorkspaces, defaultRunRoot } from "./sandbox/workspace.ts";

export interface RunRequest extends ScriptRequest {
  /**
   * Variables whose values are masked as **** in the script's data the run returns (see
   * secrets.ts). Each value must be at least MIN_SECRET_BYTES (8) bytes: JobInputError.
   */
  secretEnv?: Record<string, string>;
  /** Carry a receipt of what the sandboxed process itself saw: host uid, CapEff, NoNewPrivs, seccomp, interfaces, cgroup. */
  verify?: boolean;
  /**
   * Whose permissions a script FILE is read with. "sandbox" (default): only a file the
   * sandbox uid could read itself, so a stored check config cannot get the (root)
   * supervisor to stage a root-only file. "caller": the supervisor's own; for a caller
   * that named the file itself with those permissions (the CLI's operator).
   */
  scriptFileAccess?: "sandbox" | "caller";
  /** Files staged into scratch (the working directory) before the run. */
  files?: readonly InputFile[];
  /** Runner name; inferred from the script file's extension when absent. */
  runner?: string;
  /** Provider name or "auto"; the config's when absent. */
  provider?: string;
  /** Applied on top of the configured policy. */
  policy?: PolicyOverride;
}

/** What the runner is given, plus how its script file may be read. */
type PlannedRequest = ScriptRequest & Pick<RunRequest, "scriptFileAccess">;

export interface Plugins {
  providers: readonly Provider[];
  runners: readonly Runner[];
}

/** The library entry point: a validated config, registered plugins, and run(). */
export class Cordon {
  readonly config: CordonConfig;
  readonly policy: Policy;
  readonly runRoot: string;
  private readonly providers = new Map<string, Provider>();
  private readonly runners = new Map<string, Runner>();
  private staleCleaned = false;
  private hostForParent?: HostFacts;
  /** providerOrder as it applies: the default one narrowed to the registered providers. */
  readonly providerOrder: readonly string[];
  private readinessCache?: Promise<ReadinessReport[]>;

  constructor(config: CordonConfigInput | undefined, plugins: Plugins) {
    this.config = parseConfig(config);
    this.policy = mergePolicy(DEFAULT_POLICY, this.config.policy);
    this.runRoot = this.config.runRoot ?? defaultRunRoot();
    for (const p of plugins.providers) this.providers.set(p.name, p);
    for (const r of plugins.runners) this.runners.set(r.name, r);
    // The shipped default order names every built-in provider; one the caller did not
    // register is simply not a candidate. An order the caller wrote must be exact.
    const explicitOrder = typeof config === "object" && config !== null && "providerOrder" in config;
    this.providerOrder = explicitOrder ? this.config.providerOrder : this.config.providerOrder.filter((n) => this.providers.has(n));
    const names = [this.config.provider, ...this.providerOrder].filter((n) => n !== "auto");
    for (const n of names) this.provider(n); // unknown names fail at construction, not at the first run
  }

  providerNames(): string[] {
    return [...this.providers.keys()];
  }

  provider(name: string): Provider {
    const p = this.providers.get(name);
    if (!p) throw new UnknownProviderError(name, this.providerNames());
    return p;
  }

  runnerFor(request: Pick<RunRequest, "runner" | "script">): Runner {
    const known = [...this.runners.keys()];
    if (request.runner) {
      const r = this.runners.get(request.runner);
      if (!r) throw new UnknownRunnerError(request.runner, known);
      return r;
    }
    const ext = "file" in request.script ? extname(request.script.file) : "";
    const byExt = [...this.runners.values()].find((r) => r.extensions.includes(ext));
    if (!byExt) throw new UnknownRunnerError(ext ? `(for extension ${ext})` : "(none named, no file extension)", known);
    return byExt;
  }

  /**
   * Run a script in the sandbox. Throws a CordonError, having spawned nothing, for bad
   * input (policy, provider, runner, script) and for refusals under `onUnavailable: fail`.
   */
  async run(request: RunRequest): Promise<RunResult> {
    // A secret too short to mask is refused before anything exists (names, never values).
    refuseWeakSecrets(request.secretEnv);
    const secrets = secretValues(request.secretEnv);
    try {
      // The script's data only: cordon's keys, outcomes and report statuses stay as they are.
      return maskRunResult(await this.runUnmasked(request, secrets), secrets);
    } catch (e) {
      // Thrown errors leave too (a path or value in a message): mask them like results.
      if (e instanceof Error) e.message = maskText(e.message, secrets);
      if (e instanceof SandboxUnavailableError) (e as { reasons: readonly string[] }).reasons = e.reasons.map((r) => maskText(r, secrets));
      throw e;
    }
  }

  private async runUnmasked(request: RunRequest, secrets: readonly string[]): Promise<RunResult> {
    checkRunRequest(request);
    const policy = mergePolicy(this.policy, request.policy);
    const runner = this.runnerFor(request);
    const inputFiles = validateInputFiles(request.files ?? [], this.config.inputFiles);
    // Secret variables reach the script like any other; only what comes back is masked.
    const scriptRequest: PlannedRequest = { ...request, env: { ...request.env, ...request.secretEnv } };
    const { provider, probe, dryPlan } = await this.choose(request.provider ?? this.config.provider, policy, runner, scriptRequest);
    // Hostnames are looked up only for a run that will really filter egress with them.
    const filters = policy.network.mode === "allowlist" && dryPlan.report.layers.network.controls.egress?.status === "enforced";
    const resolved = filters ? await resolveAllowlist(policy, this.config.staticHosts) : {};
    if (!this.staleCleaned) {
      await cleanStaleWorkspaces(this.runRoot);
      await cleanStaleCgroups(this.host().cgroups, this.config.cgroupParent);
      this.staleCleaned = true;
    }
    const options = this.runnerOptions(policy, request.scriptFileAccess);
    const { outputFiles } = this.config;
    return runInSandbox(provider, probe, policy, (layout) => runner.prepare(scriptRequest, layout, options), this.runRoot, {
      inputFiles,
      outputFiles: outputFiles.collect ? outputFiles : null,
      maxResultBytes: this.config.maxResultBytes,
      cgroupParent: this.config.cgroupParent,
      host: this.host(policy),
      resolved,
      secrets,
      ...(request.verify ? { verify: true } : {}),
    });
  }

  /** Named provider (must be available), or "auto": the first in providerOrder that can run this policy. */
  /** Pure and creates nothing; hostnames not resolved yet. Throws SandboxUnavailableError when refused. */
  private dryPlan(provider: Provider, probe: ProviderProbe, policy: Policy, runner: Runner, request: PlannedRequest): SpawnPlan {
    const workspace = allocateWorkspace(this.runRoot);
    const job = runner.prepare(request, provider.layout(workspace), this.runnerOptions(policy, request.scriptFileAccess));
    return provider.plan({ policy, job, host: this.host(policy), workspace }, probe);
  }

  private async choose(name: string, policy: Policy, runner: Runner, request: PlannedRequest): Promise<{ provider: Provider; probe: ProviderProbe; dryPlan: SpawnPlan }> {
    if (name !== "auto") {
      const provider = this.provider(name);
      const probe = await provider.probe();
      if (!probe.available) throw new SandboxUnavailableError(name, [probe.reason ?? "provider unavailable"]);
      return { provider, probe, dryPlan: this.dryPlan(provider, probe, policy, runner, request) };
    }
    // First choice: a provider that enforces everything asked (even under degrade, a full
    // one beats a degraded one: an allowlist goes to rootless, not to bwrap's deny fallback).
    const strict = { ...policy, onUnavailable: "fail" as const };
    const reasons: string[] = [];
    for (const attempt of policy.onUnavailable === "fail" ? [strict] : [strict, policy]) {
      for (const candidate of this.providerOrder) {
        const provider = this.provider(candidate);
        const probe = await provider.probe();
        if (!probe.available) {
          if (attempt === strict) reasons.push(`${candidate}: ${probe.reason}`);
          continue;
        }
        // Where readiness has run, its proof counts, not the provider's claims.
        const unproven = attempt === strict ? unprovenCells(policy, await this.provenReport(candidate)) : [];
        if (unproven.length) {
          reasons.push(`${candidate}: readiness did not prove ${unproven.join(", ")}`);
          continue;
        }
        try {
          // Refusal of a dry plan means this provider cannot run the policy.
          return { provider, probe, dryPlan: this.dryPlan(provider, probe, attempt, runner, request) };
        } catch (e) {
          if (!(e instanceof SandboxUnavailableError)) throw e;
          if (attempt === strict) reasons.push(...e.reasons.map((r) => `${candidate}: ${r}`));
        }
      }
    }
    throw new SandboxUnavailableError("auto", reasons);
  }

  /**
   * The host as runs see it: with `cgroups: "off"` the layers plan as if none were usable.
   * With a policy, and a root supervisor (it drops to policy.privilege.uid), also who else on
   * the host runs as that uid (looked up at most ~1 s earlier).
   */
  host(policy?: Policy): HostFacts {
    const detected = hostFacts();
    // Writability depends on the parent: a delegated subtree is checked where runs will go.
    this.hostForParent ??= this.config.cgroupParent === "cordon" ? detected : { ...detected, cgroups: detectCgroups(this.config.cgroupParent) };
    const host = this.hostForParent;
    const facts = this.config.cgroups === "auto" ? host : { ...host, cgroups: { ...host.cgroups, problem: "cgroups are switched off in cordon's config (cgroups: off)" } };
    return policy && facts.isRoot ? { ...facts, sandboxUidUsers: sandboxUidUsers(policy.privilege.uid) } : facts;
  }

  private runnerOptions(policy: Policy, scriptFileAccess: RunRequest["scriptFileAccess"] = "sandbox"): RunnerOptions {
    const sandboxUser = hostFacts().isRoot ? { uid: policy.privilege.uid, gid: policy.privilege.gid } : null;
    return { maxScriptBytes: this.config.maxScriptBytes, sandboxUser, scriptReader: scriptFileAccess === "caller" ? null : sandboxUser };
  }

  /**
   * Real readiness probes for every registered provider, in parallel. Cached for this
   * Cordon (its config cannot change); `refresh` probes again.
   */
  readiness(options: { refresh?: boolean } = {}): Promise<ReadinessReport[]> {
    if (options.refresh || !this.readinessCache) {
      const prove = { runRoot: this.runRoot, host: this.host(this.policy), cgroupParent: this.config.cgroupParent, policy: this.policy };
      this.readinessCache = Promise.all([...this.providers.values()].map((p) => p.readiness(prove)));
    }
    return this.readinessCache;
  }

  /**
   * Can the configured provider (or, for auto, any in providerOrder) run this policy under
   * `fail` on this host? Decided from the readiness proof and a dry plan; probes if needed.
   */
  async check(override?: PolicyOverride): Promise<PolicyCheck> {
    const policy = { ...mergePolicy(this.policy, override), onUnavailable: "fail" as const };
    const reports = await this.readiness();
    const names = this.config.provider === "auto" ? this.providerOrder : [this.config.provider];
    const reasons: string[] = [];
    for (const name of names) {
      const report = reports.find((r) => r.provider === name);
      const mine = !report?.available ? [report?.reason ?? "not probed"] : unprovenCells(policy, report).map((c) => `${c}: ${report.cells[c as ReadinessCell].detail}`);
      if (report?.available && mine.length === 0) {
        try {
          const provider = this.provider(name);
          const workspace = allocateWorkspace(this.runRoot);
          provider.plan({ policy, job: probeJob("true")(provider.layout(workspace)), host: this.host(policy), workspace }, await provider.probe());
          return { provider: name, ready: true, reasons: [] };
        } catch (e) {
          if (!(e instanceof SandboxUnavailableError)) throw e;
          mine.push(...e.reasons);
        }
      }
      reasons.push(...mine.map((r) => `${name}: ${r}`));
    }
    return { provider: names.length === 1 ? names[0]! : null, ready: false, reasons };
  }

  /** The cached readiness of one provider, if probed. */
  private async provenReport(name: string): Promise<ReadinessReport | undefined> {
    return this.readinessCache ? (await this.readinessCache).find((r) => r.provider === name) : undefined;
  }
}

export interface PolicyCheck {
  /** The provider that will run it (null: none under auto). */
  provider: string | null;
  ready: boolean;
  /** Per provider: what is not proven or would be refused, with the fix where known. */
  reasons: string[];
}

/** Cells a policy relies on that a provider's readiness report did not prove (none without a report). */
function unprovenCells(policy: Policy, report: ReadinessReport | undefined): string[] {
  if (!report) return [];
  const needed: ReadinessCell[] = ["memory", "pids", "cpu", "wall", "fsize", "output", "privilege", "env"];
  if (policy.filesystem.mode === "scratch") needed.push("filesystem");
  if (policy.network.mode === "deny") needed.push("network");
  return needed.filter((c) => report.cells[c].status !== "proven");
}

export { CordonError };

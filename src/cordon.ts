import { extname } from "node:path";
import { parseConfig, type CordonConfig, type CordonConfigInput } from "./config.ts";
import { CordonError, SandboxUnavailableError, UnknownProviderError, UnknownRunnerError } from "./errors.ts";
import { detectCgroups } from "./cgroup/detect.ts";
import { hostFacts, type HostFacts } from "./host.ts";
import { IdentityPool, type IdentityLease } from "./identity/pool.ts";
import type { RunIdentity } from "./identity/range.ts";
import { DEFAULT_POLICY, mergePolicy, type Policy, type PolicyOverride } from "./policy/index.ts";
import { probeOf, type Provider, type ProviderProbe } from "./provider.ts";
// The probes and the trial plan load on first use: a run never needs them (only their verdicts, cached here).
import { unprovenCells } from "./readiness/needs.ts";
import type { ReadinessReport } from "./readiness/types.ts";
import type { RunResult } from "./result.ts";
import type { EffectiveSandboxReport } from "./sandbox/report.ts";
import type { Runner, RunnerOptions, ScriptRequest } from "./runner.ts";
import { planRun, runInSandbox, type PlannedRun, type RunPlanInput } from "./sandbox/run.ts";
import { resolveAllowlist, type Resolved } from "./network/resolve.ts";
import { resolvesHostnames } from "./sandbox/layers/network.ts";
import { cleanStaleCgroups } from "./sandbox/cgroup-run.ts";
import { validateInputFiles, type InputFile, type StagedInput } from "./files/input.ts";
import { maskRunResult, maskText, refuseWeakSecrets, secretValues } from "./secrets.ts";
import { checkRunRequest } from "./run-request.ts";
import { DEFAULT_CGROUP_PARENT } from "./protocol/index.ts";
import { cleanStaleWorkspaces, defaultRunRoot } from "./sandbox/workspace.ts";
import { WarmPool, type PoolStats } from "./pool/pool.ts";
import type { WarmSandbox, WarmShape } from "./pool/warm-sandbox.ts";
import { runTaken } from "./pool/run-warm.ts";

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
  /**
   * Cancels the run (a client that went away): before the spawn nothing is started (CordonError
   * `cancelled`); after it the whole tree is killed and the run ends `killed` with `cancelled: true`.
   */
  signal?: AbortSignal;
}

/** A request validated: what both a pooled and a cold start of it are planned from. */
interface CheckedRequest {
  policy: Policy;
  runner: Runner;
  inputFiles: StagedInput[];
  providerName: string;
  /** The script request the runner prepares: the caller's variables with the secret ones. */
  scriptRequest: ScriptRequest;
}

/** What a run is planned from besides the provider, the policy and the host. */
type RunPlanParts = Pick<RunPlanInput, "makeJob" | "secrets" | "verify" | "identity">;

/** A request validated and planned once, with the host identity it holds until it is released. */
interface Prepared {
  planned: PlannedRun;
  inputFiles: StagedInput[];
  /** The run's own host uid; null when the run drops to none (non-root supervisor, no isolating provider). */
  lease: IdentityLease | null;
}

export interface Plugins {
  providers: readonly Provider[];
  runners: readonly Runner[];
}

/** The library entry point: a validated config, registered plugins, and run(). */
export class Cordon {
  readonly config: CordonConfig;
  readonly policy: Policy;
  readonly runRoot: string;
  /** Per-run host uids (config identity); the ids held are shared with every Cordon of this process. */
  private readonly identities: IdentityPool;
  private readonly providers = new Map<string, Provider>();
  private readonly runners = new Map<string, Runner>();
  private staleCleaned = false;
  private hostForParent?: HostFacts;
  /** providerOrder as it applies: the default one narrowed to the registered providers. */
  readonly providerOrder: readonly string[];
  private readinessCache?: Promise<ReadinessReport[]>;
  /** Sandboxes started ahead (config pool); null when pool.size is 0. */
  private readonly pool: WarmPool | null;

  constructor(config: CordonConfigInput | undefined, plugins: Plugins) {
    this.config = parseConfig(config);
    this.policy = mergePolicy(DEFAULT_POLICY, this.config.policy);
    this.runRoot = this.config.runRoot ?? defaultRunRoot();
    this.identities = new IdentityPool(this.config.identity);
    for (const p of plugins.providers) this.providers.set(p.name, p);
    for (const r of plugins.runners) this.runners.set(r.name, r);
    // The shipped default order names every built-in provider; one the caller did not
    // register is simply not a candidate. An order the caller wrote must be exact.
    const explicitOrder = typeof config === "object" && config !== null && "providerOrder" in config;
    this.providerOrder = explicitOrder ? this.config.providerOrder : this.config.providerOrder.filter((n) => this.providers.has(n));
    const names = [this.config.provider, ...this.providerOrder].filter((n) => n !== "auto");
    for (const n of names) this.provider(n); // unknown names fail at construction, not at the first run
    // Pooled sandboxes hold host identities while idle: at most half, so cold runs always find one.
    this.pool = this.config.pool.size > 0 ? new WarmPool(this.config.pool, Math.max(1, Math.floor(this.config.identity.count / 2))) : null;
  }

  /**
   * Destroy every pooled sandbox (and stop starting new ones); resolves once none is left:
   * no process, run directory, mount, cgroup or held identity. Runs still under way finish.
   */
  async close(): Promise<void> {
    await this.pool?.close();
  }

  /**
   * Destroy the idle pooled sandboxes and keep no shape warm until a run uses it again (the
   * pool stays open: memory pressure, a policy change); resolves once none is left.
   */
  async drainPool(): Promise<void> {
    await this.pool?.drain();
  }

  /** The warm pool's counters, or null without a pool. */
  poolStats(): PoolStats | null {
    return this.pool?.stats() ?? null;
  }

  /** Wait until the pool has no sandbox start under way (tests and benchmarks measure a settled pool). */
  async poolSettled(): Promise<void> {
    await this.pool?.settled();
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
    const secrets = this.secretsOf(request);
    return maskRunResult(await this.masked(secrets, () => this.runUnmasked(request, secrets)), secrets);
  }

  /**
   * Plan a run without running it: everything `run` decides before the run directory is
   * created (validation, the provider, every verdict), as the effective-sandbox report the
   * run would carry, the launcher's command line and arguments included, secrets masked.
   * Nothing is created or spawned (an allowlist's hostnames are looked up, as for a run; a
   * host identity is taken from the pool and given back at once, so the report names a real
   * one); throws as `run` would.
   */
  async plan(request: RunRequest): Promise<EffectiveSandboxReport> {
    const secrets = this.secretsOf(request);
    return this.masked(secrets, async () => {
      const { planned, lease } = await this.prepare(request, secrets);
      lease?.release();
      return planned.plan.report;
    });
  }

  /** A secret too short to mask is refused before anything exists (names, never values). */
  private secretsOf(request: RunRequest): readonly string[] {
    refuseWeakSecrets(request.secretEnv);
    return secretValues(request.secretEnv);
  }

  /** Thrown errors leave too (a path or value in a message): mask them like results. */
  private async masked<T>(secrets: readonly string[], work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      if (e instanceof Error) e.message = maskText(e.message, secrets);
      if (e instanceof SandboxUnavailableError) (e as { reasons: readonly string[] }).reasons = e.reasons.map((r) => maskText(r, secrets));
      throw e;
    }
  }

  /**
   * Validate the request, take the run's host identity and plan it once: the plan the run
   * then executes. The lease is the caller's to release; on a throw nothing is held.
   */
  /** The request validated, once per run (a pooled and a cold attempt share it); throws, having created nothing. */
  private checked(request: RunRequest): CheckedRequest {
    checkRunRequest(request);
    return {
      policy: mergePolicy(this.policy, request.policy),
      runner: this.runnerFor(request),
      inputFiles: validateInputFiles(request.files ?? [], this.config.inputFiles),
      providerName: request.provider ?? this.config.provider,
      // Secret variables reach the script like any other; only what comes back is masked.
      scriptRequest: { ...request, env: { ...request.env, ...request.secretEnv } },
    };
  }

  private async prepare(request: RunRequest, secrets: readonly string[], checked: CheckedRequest = this.checked(request)): Promise<Prepared> {
    const { policy, runner, inputFiles, providerName, scriptRequest } = checked;
    const lease = await this.leaseIdentity(providerName);
    try {
      const options = this.runnerOptions(policy, request.scriptFileAccess, lease?.identity ?? null);
      const planned = await this.choose(providerName, policy, {
        makeJob: (layout) => runner.prepare(scriptRequest, layout, options),
        secrets,
        ...(request.verify ? { verify: true } : {}),
        ...(lease ? { identity: lease.identity } : {}),
      });
      return { planned, inputFiles, lease };
    } catch (e) {
      lease?.release();
      throw e;
    }
  }

  /**
   * The run's own host uid from the pool, when a run here can drop to one: a root supervisor
   * and an isolating provider (for auto, any candidate). Throws IdentityPoolExhaustedError,
   * never falls back to a shared uid.
   */
  private async leaseIdentity(providerName: string): Promise<IdentityLease | null> {
    if (!this.host().isRoot) return null;
    const candidates = providerName === "auto" ? this.providerOrder : [providerName];
    if (!candidates.some((n) => this.provider(n).isolating)) return null;
    return this.identities.allocate();
  }

  private async runUnmasked(request: RunRequest, secrets: readonly string[]): Promise<RunResult> {
    const requestedMs = performance.now();
    await this.cleanStaleOnce();
    const checked = this.checked(request);
    refuseCancelled(request.signal);
    const warm = await this.runWarm(request, checked, secrets, requestedMs);
    if ("result" in warm) return warm.result;
    const { planned, inputFiles, lease } = await this.prepare(request, secrets, checked);
    try {
      refuseCancelled(request.signal);
      if (this.pool) planned.plan.report.start = { warm: false, why: warm.why };
      const { outputFiles } = this.config;
      return await runInSandbox(planned, {
        inputFiles,
        outputFiles: outputFiles.collect ? outputFiles : null,
        maxResultBytes: this.config.maxResultBytes,
        cgroupParent: this.config.cgroupParent,
        ...(request.signal ? { stop: request.signal } : {}),
      });
    } finally {
      // runInSandbox returns (or throws) only after its cleanup: launcher gone, pid namespace
      // killed, run directory and cgroup removed. Only then may another run have this uid.
      lease?.release();
    }
  }

  /** Run directories and cgroups of supervisors that died mid-run are removed before this one's first run. */
  private async cleanStaleOnce(): Promise<void> {
    if (this.staleCleaned) return;
    await cleanStaleWorkspaces(this.runRoot);
    await cleanStaleCgroups(this.host().cgroups, this.config.cgroupParent);
    this.staleCleaned = true;
  }

  /**
   * The run in a pooled sandbox of its shape, or why it starts cold. The run is planned for
   * that sandbox's workspace and identity and must be the same sandbox as its waiter's plan
   * (src/pool/match.ts); a sandbox taken and not used is destroyed, never returned to the pool.
   */
  private async runWarm(request: RunRequest, checked: CheckedRequest, secrets: readonly string[], requestedMs: number): Promise<{ result: RunResult } | { why: string }> {
    if (!this.pool) return { why: "no pool" };
    if (request.verify) return { why: "a run with a receipt starts cold" };
    const { policy, runner, inputFiles, providerName, scriptRequest } = checked;
    if (providerName === "auto") return { why: "provider auto: the pool holds sandboxes of a named provider" };
    const provider = this.provider(providerName);
    const host = this.host();
    const probe = await probeOf(provider, host);
    if (!probe.available) return { why: `provider ${provider.name} is not available` };
    if (resolvesHostnames(policy, provider.capabilities(probe, host))) return { why: "an egress allowlist: its hostnames are looked up for each run" };
    const sandbox = this.pool.take(this.shapeOf(provider, probe, runner, policy));
    if (!sandbox) return { why: this.pool.whyNotPooled(this.shapeKey(provider, runner, policy)) ?? "no idle pooled sandbox of this shape (one is being started)" };
    const planFor = (taken: WarmSandbox) => {
      const options = this.runnerOptions(policy, request.scriptFileAccess, taken.identity);
      return planRun({
        provider,
        probe,
        policy,
        host,
        runRoot: this.runRoot,
        makeJob: (layout) => runner.prepare(scriptRequest, layout, options),
        secrets,
        resolved: {},
        workspace: taken.workspace,
        ...(taken.identity ? { identity: taken.identity } : {}),
      });
    };
    const { outputFiles } = this.config;
    return runTaken(sandbox, planFor, requestedMs, {
      inputFiles,
      outputFiles: outputFiles.collect ? outputFiles : null,
      maxResultBytes: this.config.maxResultBytes,
      disposeLater: (removal) => this.pool?.disposeLater(removal),
      counted: (hit) => this.pool?.counted(hit),
      ...(request.signal ? { stop: request.signal } : {}),
    });
  }

  private shapeKey(provider: Provider, runner: Runner, policy: Policy): string {
    return JSON.stringify([provider.name, runner.name, policy]);
  }

  /** What the pool builds a sandbox of this provider, runner and policy from. */
  private shapeOf(provider: Provider, probe: ProviderProbe, runner: Runner, policy: Policy): WarmShape {
    return {
      key: this.shapeKey(provider, runner, policy),
      provider,
      probe,
      policy,
      host: this.host(),
      runner,
      runRoot: this.runRoot,
      cgroupParent: this.config.cgroupParent,
      lease: () => this.leaseIdentity(provider.name),
      runnerOptions: (identity) => this.runnerOptions(policy, "sandbox", identity),
    };
  }

  /**
   * Plan the run once, on the named provider (it must be available), or for "auto" on the
   * first in providerOrder that can run this policy. Creates nothing; throws
   * SandboxUnavailableError when refused. Hostnames are looked up only for a provider that
   * will really filter egress with them.
   */
  private async choose(name: string, policy: Policy, run: RunPlanParts): Promise<PlannedRun> {
    const host = this.host();
    let resolved: Promise<Resolved> | undefined;
    const plan = async (provider: Provider, probe: ProviderProbe, attempt: Policy): Promise<PlannedRun> => {
      const filters = probe.available && resolvesHostnames(attempt, provider.capabilities(probe, host));
      if (filters) resolved ??= resolveAllowlist(attempt, this.config.staticHosts);
      return planRun({ ...run, provider, probe, policy: attempt, host, runRoot: this.runRoot, resolved: filters ? await resolved! : {} });
    };
    if (name !== "auto") {
      const provider = this.provider(name);
      return plan(provider, await probeOf(provider, host), policy);
    }
    // First choice: a provider that enforces everything asked (even under degrade, a full
    // one beats a degraded one: an allowlist goes to rootless, not to bwrap's deny fallback).
    const strict = { ...policy, onUnavailable: "fail" as const };
    const reasons: string[] = [];
    for (const attempt of policy.onUnavailable === "fail" ? [strict] : [strict, policy]) {
      for (const candidate of this.providerOrder) {
        const provider = this.provider(candidate);
        const probe = await probeOf(provider, host);
        if (!probe.available) {
          if (attempt === strict) reasons.push(`${candidate}: ${probe.reason}`);
          continue;
        }
        // Where readiness has run, its proof counts, not the provider's claims.
        const unproven = attempt === strict ? unprovenCells(policy, (await this.provenReport(candidate))?.cells) : [];
        if (unproven.length) {
          reasons.push(`${candidate}: readiness did not prove ${unproven.join(", ")}`);
          continue;
        }
        try {
          return await plan(provider, probe, attempt);
        } catch (e) {
          if (!(e instanceof SandboxUnavailableError)) throw e;
          if (attempt === strict) reasons.push(...e.reasons.map((r) => `${candidate}: ${r}`));
        }
      }
    }
    throw new SandboxUnavailableError("auto", reasons);
  }

  /** The host as runs see it: with `cgroups: "off"` the layers plan as if none were usable. */
  host(): HostFacts {
    const detected = hostFacts();
    // Writability depends on the parent: a delegated subtree is checked where runs will go.
    this.hostForParent ??= this.config.cgroupParent === DEFAULT_CGROUP_PARENT ? detected : { ...detected, cgroups: detectCgroups(this.config.cgroupParent) };
    const host = this.hostForParent;
    return this.config.cgroups === "auto" ? host : { ...host, cgroups: { ...host.cgroups, problem: "cgroups are switched off in cordon's config (cgroups: off)" } };
  }

  /**
   * Whose permissions the runner checks with. A script file: the host uid this run will have.
   * Interpreters and their directories: the pool's first id. Every id of the pool reaches
   * exactly what "others" may (no account, no group, owns nothing of the system), and one
   * stable uid lets runners keep what they resolved instead of asking again for each id.
   */
  private runnerOptions(policy: Policy, scriptFileAccess: RunRequest["scriptFileAccess"] = "sandbox", identity: RunIdentity | null = null): RunnerOptions {
    const root = this.host().isRoot;
    const runUser = !root ? null : identity ? { uid: identity.uid, gid: identity.gid } : { uid: policy.privilege.uid, gid: policy.privilege.gid };
    const reach = root && identity ? { uid: identity.range.base, gid: identity.range.base } : runUser;
    return { maxScriptBytes: this.config.maxScriptBytes, sandboxUser: reach, scriptReader: scriptFileAccess === "caller" ? null : runUser };
  }

  /**
   * Real readiness probes for every registered provider, in parallel. Cached for this
   * Cordon (its config cannot change); `refresh` probes again.
   */
  readiness(options: { refresh?: boolean } = {}): Promise<ReadinessReport[]> {
    if (options.refresh || !this.readinessCache) {
      const prove = { runRoot: this.runRoot, host: this.host(), cgroupParent: this.config.cgroupParent, policy: this.policy, identities: this.identities };
      this.readinessCache = import("./readiness/prove.ts").then(({ proveProvider }) => Promise.all([...this.providers.values()].map((p) => proveProvider(p, prove))));
    }
    return this.readinessCache;
  }

  /**
   * Can the configured provider (or, for auto, any in providerOrder) run this policy under
   * `fail` on this host? Decided from the readiness proof and a trial plan; probes if needed.
   */
  async check(override?: PolicyOverride): Promise<PolicyCheck> {
    const policy = { ...mergePolicy(this.policy, override), onUnavailable: "fail" as const };
    const reports = await this.readiness();
    const names = this.config.provider === "auto" ? this.providerOrder : [this.config.provider];
    const reasons: string[] = [];
    for (const name of names) {
      const report = reports.find((r) => r.provider === name);
      const provider = this.provider(name);
      const unproven = report?.available ? unprovenCells(policy, report.cells).map((c) => `${c}: ${report.cells[c].detail}`) : [report?.reason ?? "not probed"];
      // Proven cells are not enough: the policy must also plan on this provider.
      const host = this.host();
      const { trialPlanRefusal } = await import("./readiness/prove.ts");
      const mine = unproven.length ? unproven : trialPlanRefusal(provider, await probeOf(provider, host), policy, host, this.runRoot, this.config.identity);
      if (mine.length === 0) return { provider: name, ready: true, reasons: [] };
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

export { CordonError };

/** A run cancelled before its spawn starts nothing. */
function refuseCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CordonError("cancelled", "the run was cancelled before it started; nothing ran");
}

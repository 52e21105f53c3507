/**
 * Prove, with real runs on this host, which layers a provider enforces: hostile probes
 * under a strict test policy (with `degrade`, so a missing layer is observed rather than
 * refused), all in parallel.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IdentityPoolExhaustedError, SandboxUnavailableError } from "../errors.ts";
import { hostFacts, type HostFacts } from "../host.ts";
import { IdentityPool, type IdentityLease } from "../identity/pool.ts";
import { DEFAULT_IDENTITY_RANGE, representativeIdentity, type IdentityRange } from "../identity/range.ts";
import { DEFAULT_POLICY, mergePolicy, type Policy, type PolicyOverride } from "../policy/index.ts";
import { probeOf, type Provider, type ProviderProbe } from "../provider.ts";
import { LAYER_NAMES, type LayerName } from "../sandbox/report.ts";
import { planRun, runInSandbox, type SandboxRunOptions } from "../sandbox/run.ts";
import type { RunResult } from "../result.ts";
import type { Job, Layout, SpawnPlan } from "../sandbox/spec.ts";
import { defaultRunRoot } from "../sandbox/workspace.ts";
import { attackIdentity, hostMaxUserInstances, identityProbe, MAX_ATTACKED_INSTANCES, type IdentityObservation, type StartedProbe } from "./identity-probe.ts";
import { fillCells, judgeCells, summarizeLayers, type IdentityEvidence } from "./judge.ts";
import { plantKeyCanary } from "./key-canary.ts";
import { unprovenCells } from "./needs.ts";
import { mainProbe, memoryProbe, parseProbe, PROBE_LIMITS, PROBE_OUTPUT_CAP, pidsProbe, probeJob, STDIN_OFFERED_BYTES, SYSCALL_ATTACKS, SYSCALL_ATTACKS_FILE, syscallProbe, wallProbe } from "./probes.ts";
import type { PolicyFit, ReadinessCell, ReadinessReport, ReadinessVerdict } from "./types.ts";

export interface ProveOptions {
  /** The caller's policy: its filesystem binds, privilege and env are probed as runs will use them. */
  policy?: Policy;
  runRoot?: string;
  /** The host as the caller's runs see it (e.g. cgroups switched off by config). */
  host?: HostFacts;
  cgroupParent?: string;
  /** Where probe runs take their host identities (a root supervisor): the caller's pool, else the default range. */
  identities?: IdentityPool;
}

/** Sample policies the report says this provider can or cannot run under `fail`. */
const SAMPLE_POLICIES: { name: string; override: PolicyOverride }[] = [
  { name: "default (network deny)", override: {} },
  { name: "allowlist egress", override: { network: { mode: "allowlist", allow: ["192.0.2.10:443"] } } },
  { name: "unrestricted egress, metadata blocked", override: { network: { mode: "unrestricted", blockMetadata: true } } },
];

/** Would this provider plan the sample policy under fail (a trial plan), and were the cells it relies on proven? */
function policyFits(provider: Provider, probe: ProviderProbe, host: HostFacts, runRoot: string, cells: ReadinessReport["cells"], range: IdentityRange): PolicyFit[] {
  return SAMPLE_POLICIES.map(({ name, override }) => {
    if (!probe.available) return { name, runsUnderFail: false, reasons: [probe.reason ?? "provider unavailable"] };
    const policy = mergePolicy(DEFAULT_POLICY, override);
    const reasons = [...trialPlanRefusal(provider, probe, policy, host, runRoot, range), ...unprovenCells(policy, cells).map((c) => `${c} not proven`)];
    return { name, runsUnderFail: reasons.length === 0, reasons };
  });
}

/**
 * A plan of `/bin/true` under this policy: what a run would get. Creates nothing and takes
 * no host identity (it plans with a representative one of `range`: "per-run"); throws
 * SandboxUnavailableError when refused.
 */
export function trialPlan(provider: Provider, probe: ProviderProbe, policy: Policy, host: HostFacts, runRoot: string, range: IdentityRange = DEFAULT_IDENTITY_RANGE): SpawnPlan {
  return planRun({ provider, probe, policy, host, runRoot, makeJob: probeJob("true"), identity: representativeIdentity(range) }).plan;
}

/** Why a trial plan under this policy would be refused under `fail` (none: it plans). */
export function trialPlanRefusal(provider: Provider, probe: ProviderProbe, policy: Policy, host: HostFacts, runRoot: string, range: IdentityRange = DEFAULT_IDENTITY_RANGE): string[] {
  try {
    trialPlan(provider, probe, { ...policy, onUnavailable: "fail" }, host, runRoot, range);
    return [];
  } catch (e) {
    if (!(e instanceof SandboxUnavailableError)) throw e;
    return [...e.reasons];
  }
}

function report(provider: Provider, probe: ProviderProbe, cells: Record<ReadinessCell, ReadinessVerdict>, policies: PolicyFit[], started: number): ReadinessReport {
  const layers: Record<LayerName, ReadinessVerdict> = summarizeLayers(cells);
  return {
    provider: provider.name,
    isolating: provider.isolating,
    available: probe.available,
    binary: probe.binary,
    version: probe.version,
    reason: probe.reason ?? null,
    cells,
    layers,
    runsDefaultPolicy: probe.available && LAYER_NAMES.every((l) => layers[l].status === "proven"),
    policies,
    durationMs: Math.round(performance.now() - started),
  };
}

export async function proveProvider(provider: Provider, runRootOrOptions: string | ProveOptions = {}): Promise<ReadinessReport> {
  const options = typeof runRootOrOptions === "string" ? { runRoot: runRootOrOptions } : runRootOrOptions;
  const runRoot = options.runRoot ?? defaultRunRoot();
  const host = options.host ?? hostFacts();
  const identities = options.identities ?? new IdentityPool(DEFAULT_IDENTITY_RANGE);
  const range = identities.range;
  const started = performance.now();
  const probe: ProviderProbe = await probeOf(provider, host);
  if (!probe.available) {
    const cells = fillCells("not-enforced", probe.reason ?? "provider unavailable");
    return report(provider, probe, cells, policyFits(provider, probe, host, runRoot, cells, range), started);
  }

  // World-writable and world-readable: only the mount namespace, not the uid drop, can hide it.
  const canaryDir = mkdtempSync(join(tmpdir(), "cordon-canary-"));
  chmodSync(canaryDir, 0o1777);
  const canaryFile = join(canaryDir, "canary");
  const envName = `CORDON_PROBE_${randomBytes(4).toString("hex").toUpperCase()}`;
  const envToken = randomBytes(12).toString("hex");
  let listenerHits = 0;
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: () => void listenerHits++, data: () => {} } });
  process.env[envName] = envToken;
  const keyCanary = plantKeyCanary();
  try {
    writeFileSync(canaryFile, "cordon canary\n", { mode: 0o644 });
    const base = options.policy ? mergePolicy(DEFAULT_POLICY, { filesystem: options.policy.filesystem, privilege: options.policy.privilege, env: options.policy.env }) : DEFAULT_POLICY;
    const strict: Policy = mergePolicy(base, {
      onUnavailable: "degrade",
      // A generous wall: on a loaded host a probe cut short would read as a missing layer.
      resources: { maxOutputBytes: PROBE_OUTPUT_CAP, maxFileSizeBytes: PROBE_LIMITS.maxFileSizeBytes, wallMs: 30_000, scratchBytes: PROBE_LIMITS.scratchBytes, maxStdinBytes: PROBE_LIMITS.maxStdinBytes },
    });
    // Each small cap only where it is attacked: the main probe itself needs a few processes.
    const memoryPolicy = mergePolicy(strict, { resources: { memoryBytes: PROBE_LIMITS.memoryBytes } });
    const pidsPolicy = mergePolicy(strict, { resources: { maxProcesses: PROBE_LIMITS.maxProcesses } });
    const runOptions: SandboxRunOptions = options.cgroupParent ? { cgroupParent: options.cgroupParent } : {};
    // Probe runs take real host identities, as runs do (a root supervisor, an isolating provider).
    const ownIdentity = host.isRoot && provider.isolating;
    const leases = async (n: number): Promise<(IdentityLease | null)[]> => (ownIdentity ? leaseWaiting(identities, n) : Array.from({ length: n }, () => null));
    const startProbe = (policy: Policy, makeJob: (layout: Layout) => Job, lease: IdentityLease | null, extra: SandboxRunOptions = {}): StartedProbe & { plan: SpawnPlan } => {
      try {
        const planned = planRun({ provider, probe, policy, host, runRoot, makeJob, ...(lease ? { identity: lease.identity } : {}) });
        const result: Promise<RunResult> = runInSandbox(planned, { ...runOptions, ...extra }).finally(() => lease?.release());
        return { workspace: planned.workspace, identity: lease?.identity ?? null, result, plan: planned.plan };
      } catch (e) {
        lease?.release();
        throw e;
      }
    };
    const probeRun = async (policy: Policy, makeJob: (layout: Layout) => Job, extra: SandboxRunOptions = {}) => startProbe(policy, makeJob, (await leases(1))[0] ?? null, extra).result;
    let scratchOwner: number | null = null;
    const mainRun = startProbe(strict, probeJob(mainProbe({ canaryFile, canaryDir, port: listener.port, envToken, isolating: provider.isolating }), "/bin/bash", new Uint8Array(STDIN_OFFERED_BYTES)), (await leases(1))[0] ?? null, {
      inspect: (ws) => {
        const f = join(ws.scratchDir, "owner-probe");
        if (existsSync(f)) scratchOwner = statSync(f).uid;
      },
    });
    const wallRun = probeRun(mergePolicy(strict, { resources: { wallMs: PROBE_LIMITS.wallMs } }), probeJob(wallProbe));
    const keyTarget = "problem" in keyCanary ? null : keyCanary;
    const [main, wall, memory, pids, identity, syscalls] = await Promise.all([
      mainRun.result,
      wallRun,
      probeRun(memoryPolicy, probeJob(memoryProbe)),
      probeRun(pidsPolicy, probeJob(pidsProbe, "/bin/sh")),
      identityEvidence(mainRun.plan, range, async (max) => {
        // After the wall probe: its verdict is a duration, kept clear of two more sandboxes' load.
        await wallRun;
        const policy = mergePolicy(strict, { resources: { maxOpenFiles: Math.max(strict.resources.maxOpenFiles, max + 64) } });
        const [a, b] = await leases(2); // both at once: two probes never each hold half of a pair
        return [startProbe(policy, probeJob(identityProbe(max)), a ?? null), startProbe(policy, probeJob(identityProbe(max)), b ?? null)];
      }),
      // The key goes into the session keyring the spawning thread has at this run's spawn: the one a leaking launcher would pass on.
      probeRun(strict, probeJob(syscallProbe(keyTarget), "/bin/sh", undefined, [{ path: SYSCALL_ATTACKS_FILE, content: SYSCALL_ATTACKS }]), keyTarget ? { beforeSpawn: () => keyTarget.placeInSessionKeyring() } : {}),
    ]);
    if (main.outcome === "error" || main.outcome === "refused" || main.outcome === "timeout" || main.stderr === "") {
      const cells = fillCells("unknown", `probe did not run: ${main.error?.message ?? `outcome ${main.outcome}, exit ${main.exitCode}`}`);
      return report(provider, probe, cells, policyFits(provider, probe, host, runRoot, cells, range), started);
    }
    const cells = judgeCells(
      {
        probe: parseProbe(main.stderr),
        main,
        wall,
        memory: { run: memory, probe: parseProbe(memory.stderr) },
        pids: { run: pids, probe: parseProbe(pids.stderr) },
        syscalls: {
          run: syscalls,
          probe: parseProbe(syscalls.stdout),
          key: keyTarget ? { payload: keyTarget.payload, placementError: keyTarget.placementError(), intact: keyTarget.intact() } : { problem: (keyCanary as { problem: string }).problem },
          vsockDevice: existsSync("/dev/vsock"),
        },
        scratchOwner,
        expectedHostUid: mainRun.plan.scratch.owner?.uid ?? strict.privilege.uid,
        identity,
        listenerHits,
        canaryDirEntries: readdirSync(canaryDir),
      },
      strict,
    );
    return report(provider, probe, cells, policyFits(provider, probe, host, runRoot, cells, range), started);
  } catch (e) {
    const cells = fillCells("unknown", `probe failed: ${e instanceof Error ? e.message : String(e)}`);
    return report(provider, probe, cells, [], started);
  } finally {
    if (!("problem" in keyCanary)) keyCanary.remove();
    delete process.env[envName];
    listener.stop(true);
    rmSync(canaryDir, { recursive: true, force: true });
  }
}

/**
 * What the identity cell is judged from: the attack of identity-probe.ts on two concurrent
 * runs, made only when the plan claims each run a host uid of its own (else the plan's own
 * reason: attacking would exhaust the supervisor's quota on the host).
 */
async function identityEvidence(mainPlan: SpawnPlan, range: IdentityRange, start: (max: number) => Promise<readonly [StartedProbe, StartedProbe]>): Promise<IdentityEvidence> {
  const control = mainPlan.report.layers.privilege.controls.identity;
  if (control?.status !== "enforced") {
    return { status: "not-enforced", detail: `runs get no host identity of their own: ${control?.status === "degraded" ? control.reason : "the plan has no identity control"}` };
  }
  const max = hostMaxUserInstances();
  if (max === null) return { status: "unknown", detail: "fs.inotify.max_user_instances cannot be read on this host: the per-uid quota attack did not run" };
  if (max > MAX_ATTACKED_INSTANCES) return { status: "unknown", detail: `fs.inotify.max_user_instances is ${max}: too many to exhaust in a probe (at most ${MAX_ATTACKED_INSTANCES})` };
  if (range.count < 2) return { status: "unknown", detail: `the identity pool has ${range.count} id (config identity.count): the attack needs two concurrent runs` };
  return attackIdentity(max, await start(max)) satisfies Promise<IdentityObservation>;
}

/** How long a probe run waits for ids the other probes hold (never for a shared uid). */
const PROBE_IDENTITY_WAIT_MS = 30_000;

/**
 * Probe runs are the supervisor's own: where a small pool is busy they wait for ids other
 * probe runs (or runs) give back, instead of failing readiness at once as a run would.
 */
async function leaseWaiting(pool: IdentityPool, n: number): Promise<IdentityLease[]> {
  const deadline = performance.now() + PROBE_IDENTITY_WAIT_MS;
  for (;;) {
    try {
      return await pool.allocateAll(n);
    } catch (e) {
      if (!(e instanceof IdentityPoolExhaustedError) || performance.now() > deadline) throw e;
    }
    await Bun.sleep(50);
  }
}

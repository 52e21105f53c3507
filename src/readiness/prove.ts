/**
 * Prove, with real runs on this host, which layers a provider enforces: hostile probes
 * under a strict test policy (with `degrade`, so a missing layer is observed rather than
 * refused), all in parallel.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SandboxUnavailableError } from "../errors.ts";
import { hostFacts, type HostFacts } from "../host.ts";
import { DEFAULT_POLICY, mergePolicy, type Policy, type PolicyOverride } from "../policy/index.ts";
import { probeOf, type Provider, type ProviderProbe } from "../provider.ts";
import { LAYER_NAMES, type LayerName } from "../sandbox/report.ts";
import { planRun, runInSandbox, type SandboxRunOptions } from "../sandbox/run.ts";
import type { Job, Layout, SpawnPlan } from "../sandbox/spec.ts";
import { defaultRunRoot } from "../sandbox/workspace.ts";
import { fillCells, judgeCells, summarizeLayers } from "./judge.ts";
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
}

/** Sample policies the report says this provider can or cannot run under `fail`. */
const SAMPLE_POLICIES: { name: string; override: PolicyOverride }[] = [
  { name: "default (network deny)", override: {} },
  { name: "allowlist egress", override: { network: { mode: "allowlist", allow: ["192.0.2.10:443"] } } },
  { name: "unrestricted egress, metadata blocked", override: { network: { mode: "unrestricted", blockMetadata: true } } },
];

/** Would this provider plan the sample policy under fail (a trial plan), and were the cells it relies on proven? */
function policyFits(provider: Provider, probe: ProviderProbe, host: HostFacts, runRoot: string, cells: ReadinessReport["cells"]): PolicyFit[] {
  return SAMPLE_POLICIES.map(({ name, override }) => {
    if (!probe.available) return { name, runsUnderFail: false, reasons: [probe.reason ?? "provider unavailable"] };
    const policy = mergePolicy(DEFAULT_POLICY, override);
    const reasons = [...trialPlanRefusal(provider, probe, policy, host, runRoot), ...unprovenCells(policy, cells).map((c) => `${c} not proven`)];
    return { name, runsUnderFail: reasons.length === 0, reasons };
  });
}

/** A plan of `/bin/true` under this policy: what a run would get. Creates nothing; throws SandboxUnavailableError when refused. */
export function trialPlan(provider: Provider, probe: ProviderProbe, policy: Policy, host: HostFacts, runRoot: string): SpawnPlan {
  return planRun({ provider, probe, policy, host, runRoot, makeJob: probeJob("true") }).plan;
}

/** Why a trial plan under this policy would be refused under `fail` (none: it plans). */
export function trialPlanRefusal(provider: Provider, probe: ProviderProbe, policy: Policy, host: HostFacts, runRoot: string): string[] {
  try {
    trialPlan(provider, probe, { ...policy, onUnavailable: "fail" }, host, runRoot);
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
  const started = performance.now();
  const probe: ProviderProbe = await probeOf(provider, host);
  if (!probe.available) {
    const cells = fillCells("not-enforced", probe.reason ?? "provider unavailable");
    return report(provider, probe, cells, policyFits(provider, probe, host, runRoot, cells), started);
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
    const probeRun = (policy: Policy, makeJob: (layout: Layout) => Job, extra: SandboxRunOptions = {}) =>
      runInSandbox(planRun({ provider, probe, policy, host, runRoot, makeJob }), { ...runOptions, ...extra });
    let scratchOwner: number | null = null;
    const keyTarget = "problem" in keyCanary ? null : keyCanary;
    const [main, wall, memory, pids, syscalls] = await Promise.all([
      probeRun(strict, probeJob(mainProbe({ canaryFile, canaryDir, port: listener.port, envToken, isolating: provider.isolating }), "/bin/bash", new Uint8Array(STDIN_OFFERED_BYTES)), {
        inspect: (ws) => {
          const f = join(ws.scratchDir, "owner-probe");
          if (existsSync(f)) scratchOwner = statSync(f).uid;
        },
      }),
      probeRun(mergePolicy(strict, { resources: { wallMs: PROBE_LIMITS.wallMs } }), probeJob(wallProbe)),
      probeRun(memoryPolicy, probeJob(memoryProbe)),
      probeRun(pidsPolicy, probeJob(pidsProbe, "/bin/sh")),
      // The key goes into the session keyring the spawning thread has at this run's spawn: the one a leaking launcher would pass on.
      probeRun(strict, probeJob(syscallProbe(keyTarget), "/bin/sh", undefined, [{ path: SYSCALL_ATTACKS_FILE, content: SYSCALL_ATTACKS }]), keyTarget ? { beforeSpawn: () => keyTarget.placeInSessionKeyring() } : {}),
    ]);
    if (main.outcome === "error" || main.outcome === "refused" || main.outcome === "timeout" || main.stderr === "") {
      const cells = fillCells("unknown", `probe did not run: ${main.error?.message ?? `outcome ${main.outcome}, exit ${main.exitCode}`}`);
      return report(provider, probe, cells, policyFits(provider, probe, host, runRoot, cells), started);
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
        listenerHits,
        canaryDirEntries: readdirSync(canaryDir),
      },
      strict,
    );
    return report(provider, probe, cells, policyFits(provider, probe, host, runRoot, cells), started);
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

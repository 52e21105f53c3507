import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { quote } from "shell-quote";
import { DEFAULT_POLICY, mergePolicy, type Policy } from "./policy/index.ts";
import type { Provider, ProviderProbe } from "./provider.ts";
import type { RunResult } from "./result.ts";
import { LAYER_NAMES, type LayerName } from "./sandbox/report.ts";
import { runInSandbox } from "./sandbox/run.ts";
import type { Job, Layout } from "./sandbox/spec.ts";
import { defaultRunRoot } from "./sandbox/workspace.ts";

/** proven: the probe's attack failed; not-enforced: it succeeded or the provider cannot apply it; unknown: the probe could not run. */
export type ReadinessStatus = "proven" | "not-enforced" | "unknown";

export interface ReadinessVerdict {
  status: ReadinessStatus;
  detail: string;
}

export interface ReadinessReport {
  provider: string;
  isolating: boolean;
  available: boolean;
  binary: string | null;
  version: string | null;
  reason: string | null;
  layers: Record<LayerName, ReadinessVerdict>;
  /** Every layer of the default policy is proven: runs under `onUnavailable: fail` will go ahead. */
  runsDefaultPolicy: boolean;
  durationMs: number;
}

const PROBE_OUTPUT_CAP = 4096;

/** The hostile probe: tries what each layer must stop and prints what happened as key=value lines on stderr. */
function probeScript(canaryFile: string, canaryDir: string, port: number, envToken: string, isolating: boolean): string {
  const [file, dir, tokenArg] = [quote([canaryFile]), quote([canaryDir]), quote([envToken])];
  // Without isolation the probe runs on the host itself: it may only try the canary dir, never /usr, /etc or /.
  const writeTargets = isolating ? `/usr /etc / ${dir}` : dir;
  return `
say() { printf '%s=%s\\n' "$1" "$2" >&2; }
if cat ${file} >/dev/null 2>&1; then say fs_canary visible; else say fs_canary hidden; fi
w=blocked; for d in ${writeTargets}; do f="$d/.cordon-probe-"${tokenArg}; (: > "$f") 2>/dev/null && { rm -f "$f"; w="wrote:$d"; }; done; say fs_write "$w"
(: > ./owner-probe) 2>/dev/null && say scratch_write ok || say scratch_write failed
say net_ifaces "$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | grep -vx lo | tr '\\n' ',')"
if (exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null; then say net_loopback connected; else say net_loopback failed; fi
say cap_eff "$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)"
say no_new_privs "$(sed -n 's/^NoNewPrivs:[[:space:]]*//p' /proc/self/status)"
n=0; env | grep -q ${tokenArg} && n=1; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -q ${tokenArg} && n=1; say env_leak "$n"
say lim_cpu "$(sed -n 's/^Max cpu time *\\([^ ]*\\).*/\\1/p' /proc/self/limits)"
say lim_fsize "$(sed -n 's/^Max file size *\\([^ ]*\\).*/\\1/p' /proc/self/limits)"
say lim_nproc "$(sed -n 's/^Max processes *\\([^ ]*\\).*/\\1/p' /proc/self/limits)"
say lim_nofile "$(sed -n 's/^Max open files *\\([^ ]*\\).*/\\1/p' /proc/self/limits)"
head -c ${PROBE_OUTPUT_CAP * 4} /dev/zero
`;
}

function parseProbe(output: string): Record<string, string> {
  return Object.fromEntries(
    output
      .split("\n")
      .map((l) => /^([a-z_]+)=(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
}

const probeJob = (script: string) => (layout: Layout): Job => ({
  runner: "readiness-probe",
  argv: ["/bin/bash", `${layout.jobDir}/probe.sh`],
  files: [{ path: "probe.sh", content: script }],
  readOnlyBinds: [],
  env: {},
  result: { exitCodeFallback: false },
  addressSpaceLimitSafe: true,
});

function fillLayers(status: ReadinessStatus, detail: string): Record<LayerName, ReadinessVerdict> {
  return Object.fromEntries(LAYER_NAMES.map((l) => [l, { status, detail }])) as Record<LayerName, ReadinessVerdict>;
}

interface Observations {
  probe: Record<string, string>;
  run: RunResult;
  wall: RunResult;
  scratchOwner: number | null;
  listenerHits: number;
  canaryDirEntries: string[];
}

function judge(obs: Observations, policy: Policy): Record<LayerName, ReadinessVerdict> {
  const p = obs.probe;
  const verdict = (ok: boolean, good: string, bad: string): ReadinessVerdict => (ok ? { status: "proven", detail: good } : { status: "not-enforced", detail: bad });
  const r = policy.resources;
  const limits: [string, string | undefined, string][] = [
    ["cpu", p.lim_cpu, String(r.cpuSeconds)],
    ["fsize", p.lim_fsize, String(r.maxFileSizeBytes)],
    ["nproc", p.lim_nproc, String(r.maxProcesses)],
    ["nofile", p.lim_nofile, String(r.maxOpenFiles)],
  ];
  // With a run cgroup, the process cap is pids.max, not RLIMIT_NPROC: the run must have really been in one.
  const inCgroup = obs.run.stats?.peakProcesses != null && (obs.run.sandbox?.layers.resources.controls.processes?.mechanism ?? "").includes("cgroup");
  const wrongLimits = limits.filter(([n, got, want]) => got !== want && !(n === "nproc" && inCgroup)).map(([n, got]) => `${n}=${got ?? "?"}`);
  const wallOk = obs.wall.outcome === "timeout" && obs.wall.durationMs < 300 + 1000;
  const outputOk = obs.run.stdoutTruncated || obs.run.stderrTruncated;
  const ifaces = (p.net_ifaces ?? "").replace(/,$/, "");
  return {
    filesystem: verdict(
      p.fs_canary === "hidden" && p.fs_write === "blocked" && obs.canaryDirEntries.length === 1 /* only the canary */ && p.scratch_write === "ok",
      "host canary unreadable, /usr /etc / read-only, scratch writable",
      `canary ${p.fs_canary}, write ${p.fs_write}, scratch ${p.scratch_write}`,
    ),
    network: verdict(
      ifaces === "" && obs.listenerHits === 0 && p.net_loopback === "failed",
      "only loopback; the host's loopback listener unreachable",
      `interfaces [${ifaces}], host listener reached ${obs.listenerHits} time(s)`,
    ),
    resources: verdict(
      wrongLimits.length === 0 && wallOk && outputOk,
      inCgroup
        ? "rlimits applied (cpu, fsize, nofile), run inside its own cgroup (memory and pids caps), wall clock kills the tree, output capped"
        : "rlimits applied (cpu, fsize, nproc, nofile), wall clock kills the tree, output capped",
      [wrongLimits.length ? `rlimits not applied: ${wrongLimits.join(", ")}` : "", wallOk ? "" : `wall run ended ${obs.wall.outcome} in ${obs.wall.durationMs} ms`, outputOk ? "" : "output not capped"].filter(Boolean).join("; "),
    ),
    privilege: verdict(
      obs.scratchOwner === policy.privilege.uid && p.cap_eff === "0000000000000000" && p.no_new_privs === "1",
      `host uid ${obs.scratchOwner}, no capabilities, no_new_privs`,
      `host uid ${obs.scratchOwner ?? "?"}, CapEff ${p.cap_eff ?? "?"}, NoNewPrivs ${p.no_new_privs ?? "?"}`,
    ),
    env: verdict(p.env_leak === "0", "host environment canary invisible (env and /proc/*/environ)", "host environment canary visible inside"),
  };
}

/**
 * Prove, with real runs on this host, which layers a provider enforces: a hostile probe
 * under the default policy (with `degrade` so the attack can be observed) plus a wall-clock run.
 */
export async function proveProvider(provider: Provider, runRoot = defaultRunRoot()): Promise<ReadinessReport> {
  const started = performance.now();
  const probe: ProviderProbe = await provider.probe();
  const base = { provider: provider.name, isolating: provider.isolating, available: probe.available, binary: probe.binary, version: probe.version, reason: probe.reason ?? null };
  const finish = (layers: Record<LayerName, ReadinessVerdict>) => ({
    ...base,
    layers,
    runsDefaultPolicy: LAYER_NAMES.every((l) => layers[l].status === "proven"),
    durationMs: Math.round(performance.now() - started),
  });
  if (!probe.available) return finish(fillLayers("not-enforced", probe.reason ?? "provider unavailable"));

  const canaryDir = mkdtempSync(join(tmpdir(), "cordon-canary-"));
  const canaryFile = join(canaryDir, "canary");
  const envName = `CORDON_PROBE_${randomBytes(4).toString("hex").toUpperCase()}`;
  const envToken = randomBytes(12).toString("hex");
  let listenerHits = 0;
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: () => void listenerHits++, data: () => {} } });
  process.env[envName] = envToken;
  try {
    writeFileSync(canaryFile, "cordon canary\n", { mode: 0o644 });
    const policy = mergePolicy(DEFAULT_POLICY, { onUnavailable: "degrade", resources: { maxOutputBytes: PROBE_OUTPUT_CAP } });
    let scratchOwner: number | null = null;
    const [run, wall] = await Promise.all([
      runInSandbox(provider, probe, policy, probeJob(probeScript(canaryFile, canaryDir, listener.port, envToken, provider.isolating)), runRoot, {
        inspect: (ws) => {
          const f = join(ws.scratchDir, "owner-probe");
          if (existsSync(f)) scratchOwner = statSync(f).uid;
        },
      }),
      runInSandbox(provider, probe, mergePolicy(policy, { resources: { wallMs: 300 } }), probeJob("sleep 10"), runRoot),
    ]);
    if (run.outcome === "error" || run.stderr === "") return finish(fillLayers("unknown", `probe did not run: ${run.error?.message ?? `outcome ${run.outcome}, exit ${run.exitCode}`}`));
    return finish(judge({ probe: parseProbe(run.stderr), run, wall, scratchOwner, listenerHits, canaryDirEntries: readdirSync(canaryDir) }, policy));
  } catch (e) {
    return finish(fillLayers("unknown", `probe failed: ${e instanceof Error ? e.message : String(e)}`));
  } finally {
    delete process.env[envName];
    listener.stop(true);
    rmSync(canaryDir, { recursive: true, force: true });
  }
}

/** A Cordon with the shipped plugins, and compact views of what its runs return. */
import { Cordon, type CordonConfigInput, type Plugins, type RunResult } from "../../src/api/index.ts";
import { builtinProviders, builtinRunners } from "../../plugins/index.ts";
import { freshRunRoot } from "./temp.ts";

/**
 * A Cordon on its own run root with the shipped providers and runners; `config` adds what a
 * test needs (a cgroup parent, cgroups off, a provider), `plugins` replaces either list.
 */
export function makeCordon(runRoot = freshRunRoot(), config: Omit<CordonConfigInput, "runRoot"> = {}, plugins: Partial<Plugins> = {}): Cordon {
  return new Cordon({ ...config, runRoot }, { providers: plugins.providers ?? builtinProviders(), runners: plugins.runners ?? builtinRunners() });
}

/** A compact description of a result, for assertion messages. */
export function describeResult(r: RunResult): string {
  return JSON.stringify({
    outcome: r.outcome,
    limitHit: r.limitHit,
    exitCode: r.exitCode,
    signal: r.signal,
    durationMs: r.durationMs,
    stdout: r.stdout.slice(0, 2000),
    stderr: r.stderr.slice(0, 2000),
    error: r.error,
    downgrades: r.sandbox?.downgrades,
  });
}

/** The run tree's CPU time (user + system, from its cgroup), 0 when not measured. */
export function cpuMsOf(r: RunResult): number {
  return (r.stats?.cpuUserMs ?? 0) + (r.stats?.cpuSystemMs ?? 0);
}

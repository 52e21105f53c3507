import { readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import { JobInputError } from "./errors.ts";
import type { SandboxUser } from "./host.ts";
import type { Job, Layout, StdinSource } from "./sandbox/spec.ts";

export type ScriptSource = { file: string } | { source: string; name?: string };

export interface ScriptRequest {
  script: ScriptSource;
  args: string[];
  /** Forwarded to the script as it arrives, up to the policy's resources.maxStdinBytes. */
  stdin?: StdinSource;
  /** Variables the caller sets for this run (on top of the policy's). */
  env?: Record<string, string>;
  /** Runner-specific options (e.g. the ESM form), validated by the runner. */
  options?: unknown;
}

export interface RunnerOptions {
  maxScriptBytes: number;
  /**
   * The host uid/gid the sandbox runs as (root supervisor), or null when it runs as the
   * supervisor's own uid. Runners check their interpreter's paths are reachable by it.
   */
  sandboxUser: SandboxUser | null;
}

/** A runner plugin turns a script into a Job: interpreter argv, staged files, binds, env. */
export interface Runner {
  readonly name: string;
  readonly description: string;
  /** File extensions (with dot) this runner is picked for when none is named. */
  readonly extensions: readonly string[];
  prepare(request: ScriptRequest, layout: Layout, options: RunnerOptions): Job;
}

/** Read a script from a file or a string, refusing what is missing, not a file, or too large. */
export function loadScript(script: ScriptSource, maxBytes: number): { name: string; content: Uint8Array } {
  if ("source" in script) {
    const content = new TextEncoder().encode(script.source);
    if (content.length > maxBytes) throw new JobInputError(`script is too large: ${content.length} bytes (limit ${maxBytes})`);
    return { name: script.name ?? "script", content };
  }
  let size: number;
  try {
    const st = statSync(script.file);
    if (!st.isFile()) throw new JobInputError(`script ${script.file} is not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof JobInputError) throw e;
    throw new JobInputError(`cannot read script ${script.file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (size > maxBytes) throw new JobInputError(`script ${script.file} is too large: ${size} bytes (limit ${maxBytes})`);
  return { name: basename(script.file), content: readFileSync(script.file) };
}

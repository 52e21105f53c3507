/** One script run the way most tests run one: the tests' base policy, the options a test varies. */
import { type Cordon, type PolicyOverride, type RunResult } from "../../src/api/index.ts";
import { BASE_POLICY } from "./policy.ts";

export interface ScriptRunOptions {
  args?: string[];
  stdin?: Uint8Array;
  env?: Record<string, string>;
  secretEnv?: Record<string, string>;
  policy?: PolicyOverride;
  provider?: string;
}

/** Run `source` as a script of `runner`; `opts.policy` goes over BASE_POLICY. */
export function runScript(cordon: Cordon, runner: string, source: string, opts: ScriptRunOptions = {}): Promise<RunResult> {
  return cordon.run({
    runner,
    script: { source },
    args: opts.args ?? [],
    ...(opts.stdin ? { stdin: opts.stdin } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.secretEnv ? { secretEnv: opts.secretEnv } : {}),
    ...(opts.provider ? { provider: opts.provider } : {}),
    // unsafe isolates nothing: it only runs under degrade (and is only used for counter-tests).
    policy: opts.provider === "unsafe" ? { onUnavailable: "degrade", ...opts.policy } : { ...BASE_POLICY, ...opts.policy },
  });
}

/** A collector config as a cordon RunRequest. Pure: nothing is read or run here. */
import type { PolicyOverride, RunRequest } from "../../src/api/index.ts";
import type { ScriptConfig } from "./config.ts";

export type ScriptRunner = "shell" | "python" | "esm";

/** esm: an inline `script` is a function body, a `file` is a module with a default export. */
function runnerOptions(runner: ScriptRunner, config: ScriptConfig): Pick<RunRequest, "options"> {
  if (runner !== "esm") return {};
  return { options: { form: config.file === undefined ? "inline" : "module" } };
}

function withTimeout(policy: PolicyOverride | undefined, timeoutMs: number): PolicyOverride {
  return { ...policy, resources: { ...policy?.resources, wallMs: timeoutMs } };
}

export function buildRunRequest(runner: ScriptRunner, config: ScriptConfig, secretEnv: Record<string, string>): RunRequest {
  return {
    runner,
    script: config.file === undefined ? { source: config.script ?? "" } : { file: config.file },
    args: [...config.args],
    env: { ...config.env },
    secretEnv,
    ...(config.provider ? { provider: config.provider } : {}),
    policy: withTimeout(config.policy, config.timeoutMs),
    ...runnerOptions(runner, config),
  };
}

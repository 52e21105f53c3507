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

/**
 * `contextEnv`: the run context's CHECKSTACK_* variables (runContextEnv); the config's own
 * `env` wins over them, as under checkstack.
 */
export function buildRunRequest(runner: ScriptRunner, config: ScriptConfig, secretEnv: Record<string, string>, contextEnv: Record<string, string> = {}): RunRequest {
  return {
    runner,
    script: config.file === undefined ? { source: config.script ?? "" } : { file: config.file },
    args: [...config.args],
    env: { ...contextEnv, ...config.env },
    secretEnv,
    ...(config.provider ? { provider: config.provider } : {}),
    policy: withTimeout(config.policy, config.timeoutMs),
    ...runnerOptions(runner, config),
  };
}

import { enforced } from "../report.ts";
import type { EnvSpec } from "../spec.ts";
import { needsIsolation, type LayerContext, type LayerResult } from "./context.ts";

/**
 * Build the child's environment from scratch: a fixed base, the host variables the
 * policy names, the policy's fixed values, then the runner's own. Nothing else of
 * the host passes. `hostEnv` is a parameter so the layer stays pure.
 */
export function envLayer(ctx: LayerContext, hostEnv: Record<string, string | undefined>): LayerResult<EnvSpec> {
  const { policy, job, layout, caps } = ctx;
  const vars: Record<string, string> = {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: layout.scratchDir,
    TMPDIR: layout.tmpDir,
    LANG: "C.UTF-8",
  };
  const passed: string[] = [];
  for (const name of policy.env.allow) {
    const value = hostEnv[name];
    if (value !== undefined) {
      vars[name] = value;
      passed.push(name);
    }
  }
  Object.assign(vars, policy.env.set, job.env);
  const verdict = caps.env.cleanEnvironment
    ? enforced(`started with an empty environment; ${Object.keys(vars).length} variables set explicitly${passed.length ? ` (host: ${passed.join(", ")})` : ""}`)
    : needsIsolation("this provider cannot keep the host environment out");
  // The child's own environment is not all: other processes' /proc/*/environ must be out of reach too.
  const hostProcesses = caps.filesystem.view && caps.resources.treeKill
    ? enforced("fresh /proc of a private pid namespace: no host process environment is readable")
    : needsIsolation("the host's /proc is visible: the supervisor's environment can be read from /proc/<pid>/environ");
  return { controls: { allowlist: verdict, hostProcesses }, spec: { vars } };
}

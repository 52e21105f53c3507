/**
 * Startup: validate the config, register the plugins, prove what this host enforces, and
 * say loudly, once, when the configured policy cannot run here.
 */
import type { CordonConfigInput } from "./config.ts";
import { Cordon, type Plugins, type PolicyCheck } from "./cordon.ts";
import type { ReadinessReport } from "./readiness/index.ts";

export interface StartedCordon {
  cordon: Cordon;
  readiness: ReadinessReport[];
  check: PolicyCheck;
  /** The lines logged at startup (empty when everything asked for is proven). */
  banner: string[];
}

export function readinessBanner(check: PolicyCheck, configured: string): string[] {
  if (check.ready) return [];
  return [
    `cordon: the configured policy CANNOT be enforced by provider ${configured} on this host.`,
    ...check.reasons.map((r) => `cordon:   ${r}`),
    "cordon: runs under onUnavailable=fail will be refused (nothing runs unsandboxed); fix the above, or choose another provider.",
  ];
}

/** Throws a CordonError (bad config, unknown provider) before probing anything. */
export async function startCordon(config: CordonConfigInput | undefined, plugins: Plugins, options: { log?: (line: string) => void } = {}): Promise<StartedCordon> {
  const cordon = new Cordon(config, plugins);
  const readiness = await cordon.readiness();
  const check = await cordon.check();
  const banner = readinessBanner(check, cordon.config.provider);
  for (const line of banner) (options.log ?? console.error)(line);
  return { cordon, readiness, check, banner };
}

/**
 * Startup: validate the config, register the plugins, prove what this host enforces, and
 * say loudly, once, when the configured policy cannot run here, and what runs will then do.
 */
import { escapeControls } from "./escape.ts";
import type { CordonConfigInput } from "./config.ts";
import { Cordon, type Plugins, type PolicyCheck } from "./cordon.ts";
import { SandboxUnavailableError } from "./errors.ts";
import type { Policy } from "./policy/index.ts";
import { probeOf } from "./provider.ts";
import { trialPlan, type ReadinessReport } from "./readiness/index.ts";

export interface StartedCordon {
  cordon: Cordon;
  readiness: ReadinessReport[];
  check: PolicyCheck;
  /** The lines logged at startup (empty when everything asked for is proven on an isolating provider). */
  banner: string[];
}

/**
 * What runs will really get under `onUnavailable: degrade`: the provider a run goes to and the
 * controls it will not enforce (the downgrades of a plan for a shell job; each run's report
 * lists its own). null: no provider can start, runs are refused even under degrade.
 */
export interface DegradedRuns {
  provider: string;
  isolating: boolean;
  downgrades: readonly string[];
}

export interface BannerInput {
  check: PolicyCheck;
  /** The configured provider (a name or "auto"). */
  configured: string;
  onUnavailable: Policy["onUnavailable"];
  /** Under degrade: what runs go ahead with (see DegradedRuns). */
  degradedRuns?: DegradedRuns | null;
  /** The provider runs go to when the policy is ready, when it isolates nothing. */
  unisolatedProvider?: string | null;
}

const NO_ISOLATION = (provider: string) =>
  `cordon: WARNING: provider ${provider} has NO ISOLATION: scripts run directly on this host as the supervisor's user, with its filesystem, network and privileges.`;

/** The startup lines: what cannot be enforced, and what onUnavailable makes of it. Escaped: reasons quote host output. */
export function readinessBanner(input: BannerInput): string[] {
  const { check, configured, onUnavailable } = input;
  if (check.ready) return input.unisolatedProvider ? [NO_ISOLATION(input.unisolatedProvider)] : [];
  const lines = [`cordon: the configured policy CANNOT be enforced by provider ${configured} on this host.`, ...check.reasons.map((r) => `cordon:   ${r}`)];
  const runs = input.degradedRuns;
  if (onUnavailable === "fail") {
    lines.push("cordon: runs under onUnavailable=fail will be refused (nothing runs unsandboxed); fix the above, or choose another provider.");
  } else if (!runs) {
    lines.push("cordon: onUnavailable=degrade, but no provider can start on this host: every run will be refused; fix the above, or choose another provider.");
  } else {
    if (!runs.isolating) lines.unshift(NO_ISOLATION(runs.provider));
    lines.push(
      runs.downgrades.length
        ? `cordon: onUnavailable=degrade: runs GO AHEAD on provider ${runs.provider} with these controls NOT enforced (each run's report lists its own):`
        : `cordon: onUnavailable=degrade: runs GO AHEAD on provider ${runs.provider}; its plan enforces every control, but the above is not proven on this host.`,
      ...runs.downgrades.map((d) => `cordon:   ${d}`),
    );
  }
  return lines.map(escapeControls);
}

/** The provider a run goes to under `degrade` once none runs the policy in full, and its downgrades. */
async function degradedRuns(cordon: Cordon): Promise<DegradedRuns | null> {
  const names = cordon.config.provider === "auto" ? cordon.providerOrder : [cordon.config.provider];
  for (const name of names) {
    const provider = cordon.provider(name);
    const probe = await probeOf(provider, cordon.host());
    if (!probe.available) continue;
    try {
      const plan = trialPlan(provider, probe, cordon.policy, cordon.host(), cordon.runRoot, cordon.config.identity);
      return { provider: name, isolating: plan.report.provider.isolating, downgrades: plan.report.downgrades };
    } catch (e) {
      if (!(e instanceof SandboxUnavailableError)) throw e;
    }
  }
  return null;
}

/** Throws a CordonError (bad config, unknown provider) before probing anything. */
export async function startCordon(config: CordonConfigInput | undefined, plugins: Plugins, options: { log?: (line: string) => void } = {}): Promise<StartedCordon> {
  return proveAtStartup(new Cordon(config, plugins), options);
}

/** Prove what this host enforces for a Cordon already made (a service starts listening first), and log the banner. */
export async function proveAtStartup(cordon: Cordon, options: { log?: (line: string) => void } = {}): Promise<StartedCordon> {
  const readiness = await cordon.readiness();
  const check = await cordon.check();
  const { onUnavailable } = cordon.policy;
  const banner = readinessBanner({
    check,
    configured: cordon.config.provider,
    onUnavailable,
    ...(!check.ready && onUnavailable === "degrade" ? { degradedRuns: await degradedRuns(cordon) } : {}),
    unisolatedProvider: check.ready && check.provider && !cordon.provider(check.provider).isolating ? check.provider : null,
  });
  for (const line of banner) (options.log ?? console.error)(line);
  return { cordon, readiness, check, banner };
}

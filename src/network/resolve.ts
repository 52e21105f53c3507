/**
 * Hostnames in an allowlist are resolved by the supervisor when the run is planned; the
 * addresses are pinned into the ruleset and the sandbox's /etc/hosts, so the sandbox
 * needs no DNS and cannot exfiltrate through it.
 */
import { JobInputError } from "../errors.ts";
import type { Policy } from "../policy/index.ts";
import { parseAllowEntry } from "./allow.ts";

export type Resolved = Record<string, string[]>;

/** Resolve every hostname entry; `staticHosts` (config) answers first, then the host's resolver. */
export async function resolveAllowlist(policy: Policy, staticHosts: Readonly<Record<string, readonly string[]>> = {}): Promise<Resolved> {
  if (policy.network.mode !== "allowlist") return {};
  const names = new Set<string>();
  for (const entry of policy.network.allow) {
    const rule = parseAllowEntry(entry);
    if (rule.target.kind === "host") names.add(rule.target.name);
  }
  const resolved: Resolved = {};
  await Promise.all(
    [...names].map(async (name) => {
      const pinned = staticHosts[name];
      if (pinned?.length) {
        resolved[name] = [...pinned];
        return;
      }
      const { lookup } = await import("node:dns/promises"); // loaded only when a name is looked up
      try {
        const answers = await lookup(name, { all: true, verbatim: true });
        resolved[name] = [...new Set(answers.map((a) => a.address))];
      } catch (e) {
        throw new JobInputError(`cannot resolve allowlisted host ${name}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
    }),
  );
  return resolved;
}

import { isIPv4 } from "../../network/ip-syntax.ts";
import { parseAllowEntry, type AllowRule } from "../../network/allow.ts";
import { degraded, enforced, off, type ControlVerdict } from "../report.ts";
import type { EgressRule, EgressSpec, NetworkSpec } from "../spec.ts";
import { needsIsolation, type LayerContext, type LayerResult } from "./context.ts";

const DENY_MECHANISM = "fresh network namespace with only loopback";
const FALLBACK = "ran with no network (deny) instead: never open egress unfiltered";
const FRESH: NetworkSpec = { namespace: "fresh", egress: null };

/**
 * A parsed entry as address rules: a network as written (`literal`), a hostname as one
 * /32 or /128 rule per pinned address. A string says why the entry cannot be used.
 * Addresses are kept as resolved: the ruleset re-validates and re-prints every one.
 */
export function egressRulesFor(rule: AllowRule, resolved: LayerContext["resolved"]): EgressRule[] | string {
  const base = { protocols: rule.protocols, ports: rule.ports, entry: rule.entry };
  if (rule.target.kind === "net")
    return [{ ...base, family: rule.target.family, address: rule.target.address, prefix: rule.target.prefix, literal: true }];
  if (resolved === null) return []; // a trial plan: hostnames are looked up only for a real run
  const addresses = resolved[rule.target.name];
  if (!addresses?.length) return `${rule.target.name} was not resolved before planning`;
  return addresses.map((address) => {
    const family = isIPv4(address) ? 4 : 6;
    return { ...base, family, address, prefix: family === 4 ? 32 : 128 };
  });
}

/** The allowlist as address rules plus the hosts to pin, or the entries that could not be used. */
export function egressFor(ctx: LayerContext): { spec: EgressSpec; problems: string[] } {
  const { allow, blockMetadata, mode } = ctx.policy.network;
  const rules: EgressRule[] = [];
  const hosts: EgressSpec["hosts"] = [];
  const problems: string[] = [];
  for (const entry of mode === "allowlist" ? allow : []) {
    const parsed = parseAllowEntry(entry);
    const r = egressRulesFor(parsed, ctx.resolved);
    if (typeof r === "string") {
      problems.push(r);
      continue;
    }
    rules.push(...r);
    if (parsed.target.kind === "host") for (const rule of r) hosts.push({ name: parsed.target.name, address: rule.address });
  }
  return { spec: { mode: mode === "allowlist" ? "allowlist" : "unrestricted", rules, blockMetadata, hosts }, problems };
}

/**
 * Only the rootless provider filters egress (slirp4netns + nftables): this says what its
 * ruleset refuses (plugins/mechanism/egress/ruleset.ts, host-nets.ts) and how slirp4netns,
 * which parses the sandbox's raw packets as root, is confined (a run is refused otherwise).
 */
const BLOCKED =
  "blocked: cloud metadata, link-local and unique-local ranges, the slirp gateway networks, and every address of the host " +
  "(read from its routing table when the run starts: interface addresses v4 and v6, loopback, 0.0.0.0/8, broadcast, multicast)";
const SLIRP_CONFINED =
  "slirp4netns itself confined, checked before the script starts: --enable-sandbox (own mount namespace holding only /etc and /run, read-only; no_new_privs; " +
  "every capability dropped but CAP_NET_BIND_SERVICE; still uid 0) and --enable-seccomp";

function describeEgress(e: EgressSpec): string {
  const what = e.mode === "allowlist" ? `only ${e.rules.length} allowlisted destination(s)` : "any destination";
  const blocked = e.blockMetadata
    ? `; ${BLOCKED}${e.mode === "allowlist" ? ", unless an allow entry names a host address by IP" : ""}`
    : e.mode === "allowlist"
      ? "; network.blockMetadata is false: allow entries may open metadata, link-local and the host's own addresses"
      : "; network.blockMetadata is false: metadata, link-local and every address of the host are reachable (only 10.0.2.2, the host's loopback, is refused, by slirp4netns)";
  return `fresh network namespace; egress to ${what} through a user-mode stack (slirp4netns), nftables policy drop${blocked}; ${SLIRP_CONFINED}`;
}

/**
 * Does a run of this policy on a provider with these capabilities filter egress with an
 * allowlist, so its hostnames must be resolved before it is planned? (The `filtered` path
 * below, for allowlists: the one rule both the layer and the supervisor's lookup follow.)
 */
export function resolvesHostnames(policy: LayerContext["policy"], caps: LayerContext["caps"]): boolean {
  return policy.network.mode === "allowlist" && caps.network.allowlist;
}

export function networkLayer(ctx: LayerContext): LayerResult<NetworkSpec> {
  const { policy, caps } = ctx;
  const { mode, blockMetadata } = policy.network;
  const noNamespace = (): LayerResult<NetworkSpec> => ({
    controls: { egress: needsIsolation("this provider has no network namespace: the script has the host's network") },
    spec: { namespace: "host", egress: null },
  });
  const filtered = (): LayerResult<NetworkSpec> => {
    const { spec, problems } = egressFor(ctx);
    if (problems.length) return { controls: { egress: degraded(problems.join("; "), undefined, FALLBACK) }, spec: FRESH };
    return { controls: { egress: enforced(describeEgress(spec)) }, spec: { namespace: "fresh", egress: spec } };
  };

  if (mode === "deny") {
    return caps.network.deny ? { controls: { egress: enforced(DENY_MECHANISM) }, spec: FRESH } : noNamespace();
  }
  if (mode === "allowlist") {
    if (resolvesHostnames(policy, caps)) return filtered();
    if (!caps.network.deny) return noNamespace();
    return {
      controls: { egress: degraded("this provider cannot filter egress", "use the rootless provider for allowlists", FALLBACK) },
      spec: FRESH,
    };
  }
  // unrestricted
  if (caps.network.metadataBlock) return filtered();
  if (blockMetadata) {
    if (!caps.network.deny) return noNamespace();
    const verdict: ControlVerdict = degraded(
      "unrestricted egress with blockMetadata needs a filter this provider lacks",
      "use the rootless provider, or set network.blockMetadata: false",
      FALLBACK,
    );
    return { controls: { egress: verdict }, spec: FRESH };
  }
  return { controls: { egress: off("policy network.mode is unrestricted: the host's network is shared") }, spec: { namespace: "host", egress: null } };
}

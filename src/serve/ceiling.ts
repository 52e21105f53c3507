/**
 * The operator's policy is a ceiling: a request's override may tighten any control, never
 * loosen one. Each field has a rule saying which way is tighter; a field without a rule must
 * stay exactly as the operator set it, so a policy field added later is held fixed until
 * someone decides its order (fail closed).
 */
import { networkInterfaces } from "node:os";
import { isDeepStrictEqual } from "node:util";
import { canonicalAddress, ipNetContains, parseIpNet, type IpNet } from "../network/address.ts";
import { parseAllowEntry } from "../network/allow.ts";
import type { FieldIssue } from "../errors.ts";
import { isPlainObject } from "../plain-object.ts";
import { mergePolicy, type Policy, type PolicyOverride } from "../policy/index.ts";

/** null: within the ceiling; else why the asked value loosens it. */
type Rule = (asked: unknown, ceiling: unknown) => string | null;

const atMost: Rule = (asked, ceiling) => ((asked as number) <= (ceiling as number) ? null : `${asked} is over the operator's ${ceiling}`);

/** A quota where null means none: none is the loosest. */
const atMostOrNone: Rule = (asked, ceiling) => (ceiling === null ? null : asked === null ? `none is looser than the operator's ${ceiling}` : atMost(asked, ceiling));

/** An enum listed tightest first. */
const ordered =
  (tightestFirst: readonly string[]): Rule =>
  (asked, ceiling) =>
    tightestFirst.indexOf(asked as string) <= tightestFirst.indexOf(ceiling as string) ? null : `"${asked}" is looser than the operator's "${ceiling}"`;

/** A protection the operator turned on stays on. */
const keptOn: Rule = (asked, ceiling) => (ceiling === true && asked !== true ? "the operator's policy turns this on" : null);

/** Only entries the operator's list already has. */
const subsetOf: Rule = (asked, ceiling) => {
  const extra = (asked as unknown[]).filter((a) => !(ceiling as unknown[]).some((c) => isDeepStrictEqual(a, c)));
  return extra.length ? `not in the operator's list: ${extra.map((e) => JSON.stringify(e)).join(", ")}` : null;
};

const anything: Rule = () => null;

const RULES: Record<string, Rule> = {
  onUnavailable: ordered(["fail", "degrade"]),
  "resources.wallMs": atMost,
  "resources.cpuSeconds": atMost,
  "resources.memoryBytes": atMost,
  "resources.maxProcesses": atMost,
  "resources.maxFileSizeBytes": atMost,
  "resources.maxOpenFiles": atMost,
  "resources.maxOutputBytes": atMost,
  "resources.maxStdinBytes": atMost,
  "resources.scratchBytes": atMost,
  "resources.cpuPercent": atMostOrNone,
  "filesystem.mode": ordered(["scratch", "off"]),
  "filesystem.readOnlyBinds": subsetOf,
  "network.mode": ordered(["deny", "allowlist", "unrestricted"]),
  "network.blockMetadata": keptOn,
  "privilege.noNewPrivs": keptOn,
  "privilege.dropCapabilities": keptOn,
  "privilege.seccomp": keptOn,
  // Host variables passed through by name: only those the operator passes.
  "env.allow": subsetOf,
  // Fixed values inside the sandbox: a request sets its own variables anyway (RunRequest.env).
  "env.set": anything,
};

/**
 * Nets an allowlist entry written as an address may open although unrestricted egress with
 * blockMetadata refuses them: the egress ruleset accepts an allowlist rule that lies wholly
 * inside one of this host's own addresses when the policy wrote it as an IP (its one explicit
 * way to reach a host service), and the slirp resolver when named. Read from this process's
 * network namespace, the one slirp4netns inherits: every interface address (and an IPv4
 * subnet's broadcast), the addresses that always mean this host, and the slirp networks.
 * The egress ruleset reads more (AnyIP `local` routes from /proc/net); src may not import it.
 */
const ALWAYS_HOST_NETS = ["0.0.0.0/8", "127.0.0.0/8", "255.255.255.255/32", "224.0.0.0/4", "::/128", "::1/128", "ff00::/8", "10.0.2.0/24", "fd00::/64", "fe80::2/128"];

function hostNets(): IpNet[] {
  const nets = ALWAYS_HOST_NETS.map(parseIpNet);
  for (const a of Object.values(networkInterfaces()).flat()) {
    if (!a) continue;
    const family = a.family === "IPv4" ? 4 : 6;
    const address = canonicalAddress(family, a.address.replace(/%.*$/, ""));
    if (address === null) continue;
    nets.push({ family, address, prefix: family === 4 ? 32 : 128 });
    const prefix = Number(a.cidr?.split("/")[1]);
    if (family === 4 && Number.isInteger(prefix) && prefix < 31) {
      const bits = a.address.split(".").reduce((n, o) => n * 256 + Number(o), 0);
      const broadcast = (bits | (2 ** (32 - prefix) - 1)) >>> 0;
      nets.push({ family: 4, address: [24, 16, 8, 0].map((s) => (broadcast >>> s) & 255).join("."), prefix: 32 });
    }
  }
  return nets;
}

/**
 * Under an unrestricted ceiling an allowlist is tighter, except where it names what the
 * operator's blockMetadata refuses and an allowlist entry may open (see hostNets): such an
 * entry is a loosening. Otherwise only the operator's entries.
 */
function networkAllow(asked: Policy, ceiling: Policy): string | null {
  if (asked.network.mode !== "allowlist") return null;
  if (ceiling.network.mode !== "unrestricted") return subsetOf(asked.network.allow, ceiling.network.allow);
  if (!ceiling.network.blockMetadata) return null;
  const host = hostNets();
  const opening = asked.network.allow.filter((entry) => {
    const { target } = parseAllowEntry(entry);
    return target.kind === "net" && host.some((h) => ipNetContains(h, target));
  });
  return opening.length ? `names this host or the slirp network, which the operator's unrestricted egress with blockMetadata refuses: ${opening.map((e) => JSON.stringify(e)).join(", ")}` : null;
}

function compare(asked: unknown, ceiling: unknown, path: string, out: FieldIssue[]): void {
  const rule = RULES[path];
  if (rule) {
    const why = rule(asked, ceiling);
    if (why) out.push({ path, message: why });
  } else if (isPlainObject(asked) && isPlainObject(ceiling)) {
    for (const key of new Set([...Object.keys(asked), ...Object.keys(ceiling)])) compare(asked[key], ceiling[key], path ? `${path}.${key}` : key, out);
  } else if (!isDeepStrictEqual(asked, ceiling)) {
    out.push({ path, message: "a request may not change this field" });
  }
}

/**
 * The fields where `override` applied to the operator's policy loosens it (empty: within the
 * ceiling). Throws PolicyValidationError for an override that is not a valid policy at all.
 */
export function loosenedFields(ceiling: Policy, override: PolicyOverride): FieldIssue[] {
  const asked = mergePolicy(ceiling, override);
  const out: FieldIssue[] = [];
  compare({ ...asked, network: { ...asked.network, allow: [] } }, { ...ceiling, network: { ...ceiling.network, allow: [] } }, "", out);
  const allow = networkAllow(asked, ceiling);
  if (allow) out.push({ path: "network.allow", message: allow });
  return out;
}

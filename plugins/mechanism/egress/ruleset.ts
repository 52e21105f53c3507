/**
 * nftables egress rulesets for `network.mode: allowlist | unrestricted`.
 *
 * The rulesets are handlebars templates next to this file (templates/<mode>.nft.hbs),
 * rendered from a view model that holds only numbers, fixed keywords chosen in this
 * file ("ip"/"ip6", "tcp"/"udp") and addresses re-printed by this file from their
 * parsed value. Nothing of a policy's text reaches the ruleset: an EgressRule is
 * validated again here, and anything that is not exactly an address, a prefix, a
 * protocol or a port throws (RulesetError, code "internal").
 *
 * Shape of the ruleset (`table inet cordon`, one `output` chain, policy drop):
 *
 *  1. `oif "lo" accept`: the sandbox's own loopback.
 *  2. `ct state established,related accept`, `ct state invalid drop`.
 *  3. IPv6 neighbour discovery (neighbour solicit/advert, router solicit, hop limit 255
 *     as RFC 4861 requires) to any address: slirp4netns's router is fe80::2 and its
 *     network fd00::/64 lies inside the blocked fc00::/7, so without this the guest
 *     cannot resolve its default router and no IPv6 works. slirp answers NDP itself and
 *     never forwards it; the sandbox has no CAP_NET_RAW to forge NDP of its own.
 *  4. The slirp resolver, only when a rule names it exactly (10.0.2.3/32 or fd00::3/128):
 *     tcp/udp port 53 only, whatever ports the rule gave (libslirp forwards TCP to the
 *     DNS alias on any port to the host's resolver, so the rule is narrowed to DNS).
 *     This is the one explicit way to give the sandbox a resolver through the host.
 *  5. Refusals of the always-blocked ranges (blockMetadata: ALWAYS_BLOCKED_V4/V6), of
 *     the slirp virtual networks (blockGateway: 10.0.2.0/24, fd00::/64, fe80::2: libslirp
 *     maps every address there to the host) and of the host's own addresses (blockGateway:
 *     `hostNets`, read by ./host-nets.ts when the run starts: slirp4netns connects
 *     from the host's network namespace, so any of its addresses is a local connection
 *     to host services on 0.0.0.0 / [::]). They come before every accept of step 6,
 *     so no allow rule can open them: a rule lying wholly inside an active blocked
 *     range is refused at render time (RulesetError, code "invalid-policy") instead of
 *     being rendered as an accept that the refusal above silently overrides. A rule that
 *     only overlaps one (0.0.0.0/0, 169.0.0.0/8) is rendered: the refusals carve the
 *     blocked part out. Hostnames that resolve into a blocked range hit the same check;
 *     the planner can ask `blockedRangeContaining` first to report them by name.
 *     One exception, decided here: an allowlist rule that lies wholly inside a host net
 *     AND was written as an IP literal in the policy (`literal`) is an explicit choice to
 *     reach that host service: it is accepted just before the host refusals, with its own
 *     protocols and ports only. A hostname pinned to a host address is refused
 *     (invalid-policy): what a name resolves to can change under the policy's author, the
 *     host is opened only by writing its address.
 *  6. allowlist: one accept per rule, family and protocol (`ip daddr A/P tcp dport X-Y
 *     accept`, or `ip daddr A/P meta l4proto udp accept` without ports), then a final
 *     refusal of everything else. unrestricted: a final `accept`.
 *
 * Refusals use `reject` (tcp reset, or ICMP administratively prohibited) so a script
 * gets an immediate error instead of hanging until the wall-clock limit; the chain's
 * `policy drop` is the backstop for anything reject cannot answer.
 *
 * ICMP: not in the allow grammar; under allowlist no ICMP leaves except NDP and the
 * errors/replies that belong to accepted connections (ct related/established); under
 * unrestricted ICMP goes wherever the blocked ranges do not forbid.
 *
 * No input chain: the namespace's only link is slirp4netns's tap, which opens no inbound
 * path (no port forwarding is configured), and everything the sandbox may receive is
 * a reply to what the output chain let out. Filtering output is what confines it.
 */
import { readFileSync } from "node:fs";
import type HandlebarsModule from "handlebars";
import {
  ALWAYS_BLOCKED_V4,
  ALWAYS_BLOCKED_V6,
  canonicalAddress,
  CordonError,
  ipNetContains,
  isPlainObject,
  networkAddress,
  parseIpNet,
  type EgressRule,
  type IpFamily,
  type IpNet,
  type NetProtocol,
  type PortRange,
} from "../../../src/api/plugin.ts";
import { SLIRP, SLIRP_HOST_RANGES } from "./slirp.ts";

export type RulesetMode = "allowlist" | "unrestricted";

export interface RulesetInput {
  mode: RulesetMode;
  /**
   * allowlist: the allowed destinations (hostnames already pinned to addresses).
   * unrestricted: empty, or only rules naming the slirp resolver (everything else
   * outside the blocked ranges is open already).
   */
  rules: EgressRule[];
  /** Refuse ALWAYS_BLOCKED_V4 / ALWAYS_BLOCKED_V6 (policy `network.blockMetadata`). */
  blockMetadata: boolean;
  /**
   * Refuse the host: the slirp virtual networks (10.0.2.0/24, fd00::/64, fe80::2) and
   * every net in `hostNets`.
   */
  blockGateway: boolean;
  /**
   * The host's own addresses (./host-nets.ts, read in the process that starts
   * slirp4netns). Required non-empty with blockGateway: an empty list would open the host.
   */
  hostNets: readonly IpNet[];
}

/** A ruleset input that must never be rendered. */
export class RulesetError extends CordonError {
  constructor(code: "internal" | "invalid-policy", message: string) {
    super(code, message);
  }
}

export const MAX_RULESET_RULES = 4096;

// ---------------------------------------------------------------------------
// Re-validation: everything the template sees is derived from checked numbers.

type Fam = "ip" | "ip6";
interface ViewNet {
  fam: Fam;
  net: string;
}
interface ViewAccept extends ViewNet {
  rule: number;
  proto: NetProtocol;
  ports: string | null;
}
/** The nftables table every ruleset declares (and that the loader lists to check it is in place). */
export const RULESET_TABLE = "cordon";

interface View {
  mode: RulesetMode;
  table: typeof RULESET_TABLE;
  resolver: (ViewNet & { proto: NetProtocol })[];
  metadata: ViewNet[];
  gateway: ViewNet[];
  /** Allow rules naming a host address by IP: before the host refusals. */
  hostAccepts: ViewAccept[];
  host: ViewNet[];
  accepts: ViewAccept[];
}

const bad = (what: string): never => {
  throw new RulesetError("internal", `refusing to render the ruleset: ${what}`);
};

const isPort = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535;

/** Validate one rule strictly and return a copy built only from checked values. */
export function validateEgressRule(rule: unknown, index = 0): Required<Omit<EgressRule, "entry" | "literal">> & { entry?: string; literal?: true } {
  const where = `rule ${index}`;
  if (!isPlainObject(rule)) return bad(`${where} is not an object`);
  const { family, address, prefix, protocols, ports, entry, literal } = rule;
  if (family !== 4 && family !== 6) return bad(`${where}: family must be 4 or 6, got ${JSON.stringify(family)}`);
  if (typeof address !== "string") return bad(`${where}: address must be a string`);
  const canonical = canonicalAddress(family, address);
  if (canonical === null) return bad(`${where}: ${JSON.stringify(address)} is not an IPv${family} address`);
  const bits = family === 4 ? 32 : 128;
  if (typeof prefix !== "number" || !Number.isInteger(prefix) || prefix < 0 || prefix > bits)
    return bad(`${where}: prefix must be a whole number 0-${bits}, got ${JSON.stringify(prefix)}`);
  if (networkAddress(family, canonical, prefix) !== canonical) return bad(`${where}: ${address}/${prefix} has host bits set`);
  if (!Array.isArray(protocols) || protocols.length === 0 || protocols.length > 2)
    return bad(`${where}: protocols must be a non-empty list of "tcp"/"udp"`);
  const protos: NetProtocol[] = [];
  for (const p of protocols as unknown[]) {
    if (p !== "tcp" && p !== "udp") return bad(`${where}: unknown protocol ${JSON.stringify(p)}`);
    if (protos.includes(p)) return bad(`${where}: protocol ${p} listed twice`);
    protos.push(p);
  }
  protos.sort();
  let range: PortRange | null = null;
  if (ports !== null) {
    if (!isPlainObject(ports) || !isPort(ports.from) || !isPort(ports.to) || ports.from > ports.to)
      return bad(`${where}: ports must be null or { from, to } with 1 <= from <= to <= 65535, got ${JSON.stringify(ports)}`);
    range = { from: ports.from, to: ports.to };
  }
  return {
    family,
    address: canonical,
    prefix,
    protocols: protos,
    ports: range,
    ...(typeof entry === "string" ? { entry } : {}),
    ...(literal === true ? { literal: true as const } : {}),
  };
}

const famOf = (family: IpFamily): Fam => (family === 4 ? "ip" : "ip6");

/** A host net, checked like a rule's destination and rebuilt from checked values. */
function validateNet(raw: unknown, where: string): IpNet {
  if (!isPlainObject(raw)) return bad(`${where} is not an object`);
  const r = validateEgressRule({ family: raw.family, address: raw.address, prefix: raw.prefix, protocols: ["tcp"], ports: null }, 0);
  return { family: r.family, address: r.address, prefix: r.prefix };
}

/** nft text of a validated net: re-printed from its parsed value, never copied. */
function viewNet(net: IpNet): ViewNet {
  const address = canonicalAddress(net.family, net.address);
  if (address === null) return bad(`internal net ${JSON.stringify(net.address)}`);
  return { fam: famOf(net.family), net: `${address}/${net.prefix}` };
}

/**
 * Which always-blocked range (if any) wholly contains `net`, given the switches in
 * force: an allow rule there would be an accept the refusals override, so it is
 * refused instead (and a planner can report a hostname pinned there by name).
 */
export function blockedRangeContaining(
  net: IpNet,
  opts: { blockMetadata: boolean; blockGateway: boolean },
): { range: string; why: "metadata" | "gateway" } | null {
  if (opts.blockMetadata) {
    for (const r of net.family === 4 ? ALWAYS_BLOCKED_V4 : ALWAYS_BLOCKED_V6)
      if (ipNetContains(parseIpNet(r), net)) return { range: r, why: "metadata" };
  }
  if (opts.blockGateway) {
    for (const r of SLIRP_HOST_RANGES) if (ipNetContains(parseIpNet(r), net)) return { range: r, why: "gateway" };
  }
  return null;
}

let slirpDnsNets: IpNet[] | undefined; // parsed on first use, like every address here
const SLIRP_DNS_NETS = (): IpNet[] => (slirpDnsNets ??= [parseIpNet(`${SLIRP.dns}/32`), parseIpNet(`${SLIRP.dnsV6}/128`)]);

function isSlirpResolver(rule: IpNet): boolean {
  return SLIRP_DNS_NETS().some((d) => d.family === rule.family && d.address === rule.address && d.prefix === rule.prefix);
}

function describeRule(rule: { entry?: string; family: IpFamily; address: string; prefix: number }, index: number) {
  return `allow rule ${index}${rule.entry !== undefined ? ` (${JSON.stringify(rule.entry)})` : ""} ${rule.address}/${rule.prefix}`;
}

/** Build the template's view model; throws RulesetError on anything it will not render. */
export function rulesetView(input: RulesetInput): View {
  if (!isPlainObject(input)) return bad("input is not an object");
  const { mode, rules, blockMetadata, blockGateway, hostNets } = input;
  if (mode !== "allowlist" && mode !== "unrestricted") return bad(`unknown mode ${JSON.stringify(mode)}`);
  if (typeof blockMetadata !== "boolean") return bad("blockMetadata must be a boolean");
  if (typeof blockGateway !== "boolean") return bad("blockGateway must be a boolean");
  if (!Array.isArray(rules)) return bad("rules must be an array");
  if (rules.length > MAX_RULESET_RULES) return bad(`more than ${MAX_RULESET_RULES} rules`);
  if (!Array.isArray(hostNets)) return bad("hostNets must be an array");
  if (hostNets.length > MAX_RULESET_RULES) return bad(`more than ${MAX_RULESET_RULES} host nets`);
  if (blockGateway && hostNets.length === 0) return bad("blockGateway without the host's own addresses would leave the host open");
  const host = blockGateway ? hostNets.map((h, i) => validateNet(h, `host net ${i}`)) : [];

  const view: View = {
    mode,
    table: RULESET_TABLE,
    resolver: [],
    metadata: blockMetadata ? [...ALWAYS_BLOCKED_V4, ...ALWAYS_BLOCKED_V6].map((r) => viewNet(parseIpNet(r))) : [],
    gateway: blockGateway ? SLIRP_HOST_RANGES.map((r) => viewNet(parseIpNet(r))) : [],
    hostAccepts: [],
    host: host.map(viewNet),
    accepts: [],
  };

  rules.forEach((raw, index) => {
    const rule = validateEgressRule(raw, index);
    if (blockGateway && isSlirpResolver(rule)) {
      if (rule.ports !== null && (rule.ports.from > 53 || rule.ports.to < 53))
        throw new RulesetError(
          "invalid-policy",
          `${describeRule(rule, index)} is the slirp resolver: only port 53 can be opened there, and the rule's ports ${rule.ports.from}-${rule.ports.to} leave it out`,
        );
      for (const proto of rule.protocols) view.resolver.push({ ...viewNet(rule), proto });
      return;
    }
    const blocked = blockedRangeContaining(rule, { blockMetadata, blockGateway });
    if (blocked)
      throw new RulesetError(
        "invalid-policy",
        blocked.why === "metadata"
          ? `${describeRule(rule, index)} lies inside the always-blocked range ${blocked.range} (cloud metadata, link-local and unique-local addresses); it can only be allowed with network.blockMetadata: false`
          : `${describeRule(rule, index)} lies inside the slirp network ${blocked.range}, which is the host; it can only be allowed with network.blockMetadata: false (the slirp resolver ${SLIRP.dns} can be allowed on port 53)`,
      );
    const own = host.find((h) => ipNetContains(h, rule));
    const explicit = own !== undefined && mode === "allowlist" && rule.literal === true;
    if (own && !explicit)
      throw new RulesetError(
        "invalid-policy",
        `${describeRule(rule, index)} is an address of this host (${own.address}/${own.prefix}), which slirp4netns would reach as a local connection; the host is opened only by an allow entry that names the address itself (e.g. "tcp://${own.family === 4 ? own.address : `[${own.address}]`}:PORT"), never through a hostname`,
      );
    if (mode === "unrestricted")
      throw new RulesetError(
        "internal",
        `${describeRule(rule, index)}: under unrestricted everything outside the blocked ranges is open; only the slirp resolver may be listed`,
      );
    const ports = rule.ports === null ? null : rule.ports.from === rule.ports.to ? `${rule.ports.from}` : `${rule.ports.from}-${rule.ports.to}`;
    for (const proto of rule.protocols) (explicit ? view.hostAccepts : view.accepts).push({ ...viewNet(rule), rule: index, proto, ports });
  });
  return view;
}

// ---------------------------------------------------------------------------
// Templates

// Handlebars loads on the first render (a run under deny or unrestricted never renders a ruleset).
let hbs: typeof HandlebarsModule | undefined;
const compiled = new Map<RulesetMode, HandlebarsTemplateDelegate<View>>();

/** Path of a mode's template (next to this file). */
export function rulesetTemplatePath(mode: RulesetMode): string {
  return new URL(`./templates/${mode}.nft.hbs`, import.meta.url).pathname;
}

function template(mode: RulesetMode): HandlebarsTemplateDelegate<View> {
  let t = compiled.get(mode);
  if (!t) {
    hbs ??= (require("handlebars") as typeof HandlebarsModule).create();
    t = hbs.compile<View>(readFileSync(rulesetTemplatePath(mode), "utf8"), {
      strict: true,
      knownHelpersOnly: true,
      noEscape: false,
    });
    compiled.set(mode, t);
  }
  return t;
}

/** The final check on the rendered text: only the characters a generated ruleset can hold. */
const RENDERED_CHARS = /^[\x20-\x7e\t\n]*$/;

/** Render the nft ruleset (`nft -f` input) for a mode. Throws RulesetError on any input it will not render. */
export function renderRuleset(input: RulesetInput): string {
  const view = rulesetView(input);
  const text = template(view.mode)(view, { allowProtoPropertiesByDefault: false, allowProtoMethodsByDefault: false });
  if (!RENDERED_CHARS.test(text)) return bad("rendered text holds unexpected characters");
  return text;
}

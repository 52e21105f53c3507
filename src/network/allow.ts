/**
 * `network.allow` entries: syntax, validation and canonical form.
 *
 * An entry is `[tcp://|udp://]TARGET[:PORT[-PORT]]`:
 *
 * - no scheme means tcp and udp; no port means every port;
 * - TARGET is an IPv4 address, an IPv6 address, a CIDR of either, or a hostname;
 * - an IPv6 target followed by a port is written in brackets: `[2001:db8::10]:443`,
 *   `[2001:db8::/32]:443`. Without a port the brackets are optional, except when the
 *   bare text could also be read as ADDRESS:PORT (`2001:db8::10:443`): that is refused
 *   as ambiguous, and the message says how to write either meaning.
 *
 * Decisions (documented here because the ruleset depends on them):
 *
 * - **Character whitelist first.** Only `[A-Za-z0-9.:/[\]-]` may appear. Whitespace,
 *   quotes, `;`, braces, `#`, `%` (zone ids), `_`, non-ASCII… are refused before any
 *   other parsing, so no entry can carry text that means anything to nft, a shell or
 *   /etc/hosts. The ruleset is still rendered only from re-validated numbers and
 *   canonical addresses (src/network/ruleset.ts), never from the entry text.
 * - **CIDRs with host bits set are refused**, not masked: `10.1.2.3/8` is far more
 *   likely a typo than a wish to open 10.0.0.0/8. The message names the network the
 *   author probably meant.
 * - Addresses are canonicalised: IPv4 dotted quad without leading zeros (leading zeros
 *   are refused: `010.0.0.1` is octal to some parsers), IPv6 in RFC 5952 form (lower
 *   case, longest zero run compressed, embedded dotted IPv4 rewritten in hex).
 * - **Loopback targets are refused** (127.0.0.0/8, ::1): the sandbox's loopback is its
 *   own and always reachable; the host's loopback is never reachable. **IPv4-mapped
 *   IPv6** (::ffff:0:0/96) is refused: such traffic leaves as IPv4, so an ip6 rule
 *   would never match; write the IPv4 form.
 * - **Hostnames** follow RFC 1123: labels of 1–63 `[a-z0-9-]`, not starting or ending
 *   with `-`, at most 253 characters, compared lower-cased. A single label (`db`) is
 *   accepted: the supervisor's resolver may complete it with a search domain, and
 *   the pinned /etc/hosts entry makes the same name work inside. `localhost` and
 *   `*.localhost` are refused (loopback, see above). The last label must not be all
 *   digits (RFC 3696 §2), so `1.2.3` or `300.1.1.1` are refused as bad IPv4 instead of
 *   being sent to a resolver that may read them as inet_aton shorthand. A trailing
 *   dot (`example.com.`) is refused: write the name without it.
 * - The scheme is lower-case `tcp://` or `udp://` only.
 * - Ports are decimal 1–65535 without leading zeros; a range needs from ≤ to.
 *
 * Whether an entry falls inside an always-blocked range is NOT decided here (it
 * depends on `blockMetadata`): see `blockedRangeContaining` and the ruleset, which
 * refuses such a rule rather than silently emitting an accept it then overrides.
 */
import { isIPv4, isIPv6 } from "node:net";
import { z } from "zod";
import { CordonError } from "../errors.ts";

export type NetProtocol = "tcp" | "udp";
export type IpFamily = 4 | 6;

export interface PortRange {
  from: number;
  to: number;
}

export type AllowTarget =
  | { kind: "net"; family: IpFamily; address: string; prefix: number }
  | { kind: "host"; name: string };

export interface AllowRule {
  /** The entry exactly as written in the policy. */
  entry: string;
  /** Sorted, without duplicates: ["tcp", "udp"] when the entry has no scheme. */
  protocols: NetProtocol[];
  target: AllowTarget;
  /** null: every port. */
  ports: PortRange | null;
}

/** Always blocked unless `blockMetadata: false`: cloud metadata and link-local services. */
export const ALWAYS_BLOCKED_V4 = ["169.254.0.0/16", "100.100.100.200/32", "168.63.129.16/32"] as const;
/** Always blocked unless `blockMetadata: false`: link-local and unique-local (incl. AWS fd00:ec2::254). */
export const ALWAYS_BLOCKED_V6 = ["fe80::/10", "fc00::/7"] as const;

/**
 * slirp4netns 1.2 default addressing (`--cidr` unset; IPv6 with `--enable-ipv6`,
 * measured here: the guest takes a SLAAC address in fd00::/64 from the router
 * advertisement, its default route is `via fe80::2`).
 *
 * libslirp translates EVERY address of its virtual network other than the DNS
 * address to the host's loopback (`--disable-host-loopback` then refuses it), and
 * the DNS address to the host's resolver: so the whole virtual network is "the host".
 */
export const SLIRP = {
  network: "10.0.2.0",
  prefix: 24,
  gateway: "10.0.2.2",
  dns: "10.0.2.3",
  guest: "10.0.2.100",
  networkV6: "fd00::",
  prefixV6: 64,
  gatewayV6: "fd00::2",
  dnsV6: "fd00::3",
  /** The router's link-local address: the guest's IPv6 default route goes through it. */
  routerLinkLocalV6: "fe80::2",
} as const;

/** An allow entry that is not well-formed. `code` is "invalid-policy". */
export class AllowEntryError extends CordonError {
  constructor(
    readonly entry: string,
    readonly reason: string,
  ) {
    super("invalid-policy", `invalid network allow entry ${JSON.stringify(entry)}: ${reason}`);
  }
}

export const MAX_ALLOW_ENTRY_LENGTH = 300;
export const MAX_HOSTNAME_LENGTH = 253;

// ---------------------------------------------------------------------------
// Addresses

const V4_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])";
/** A canonical dotted quad: four decimal octets 0–255, no leading zeros. */
export const IPV4_PATTERN = new RegExp(`^${V4_OCTET}(?:\\.${V4_OCTET}){3}$`);

const V4_MAX = (1n << 32n) - 1n;
const V6_MAX = (1n << 128n) - 1n;

/** Parse a strict dotted quad into a 32-bit integer, or null. */
export function ipv4ToBigInt(s: string): bigint | null {
  if (!IPV4_PATTERN.test(s) || !isIPv4(s)) return null;
  return s.split(".").reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}

export function bigIntToIpv4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((n >> shift) & 255n)).join(".");
}

/** Parse an IPv6 address (no zone id) into a 128-bit integer, or null. */
export function ipv6ToBigInt(input: string): bigint | null {
  if (!/^[0-9A-Fa-f:.]+$/.test(input) || !isIPv6(input)) return null;
  let s = input.toLowerCase();
  // An embedded dotted IPv4 tail becomes two hex groups.
  const lastColon = s.lastIndexOf(":");
  const tail = s.slice(lastColon + 1);
  if (tail.includes(".")) {
    const v4 = ipv4ToBigInt(tail);
    if (v4 === null) return null;
    s = `${s.slice(0, lastColon + 1)}${((v4 >> 16n) & 0xffffn).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const groupsOf = (h: string | undefined) => (h === undefined || h === "" ? [] : h.split(":"));
  const head = groupsOf(halves[0]);
  const rest = groupsOf(halves[1]);
  let groups: string[];
  if (halves.length === 2) {
    const missing = 8 - head.length - rest.length;
    if (missing < 1) return null;
    groups = [...head, ...Array<string>(missing).fill("0"), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return null;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

/** RFC 5952 text of a 128-bit integer: lower case, the longest run (≥ 2) of zero groups compressed. */
export function bigIntToIpv6(n: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

export function addressToBigInt(family: IpFamily, address: string): bigint | null {
  return family === 4 ? ipv4ToBigInt(address) : ipv6ToBigInt(address);
}

export function canonicalAddress(family: IpFamily, address: string): string | null {
  const n = addressToBigInt(family, address);
  if (n === null) return null;
  return family === 4 ? bigIntToIpv4(n) : bigIntToIpv6(n);
}

const bitsOf = (family: IpFamily) => (family === 4 ? 32 : 128);

function maskOf(family: IpFamily, prefix: number): bigint {
  const bits = bitsOf(family);
  const all = family === 4 ? V4_MAX : V6_MAX;
  return prefix === 0 ? 0n : (all >> BigInt(bits - prefix)) << BigInt(bits - prefix);
}

export interface IpNet {
  family: IpFamily;
  address: string;
  prefix: number;
}

/** Parse "A/P" (or a bare address, as a host route) of a known family; throws on anything else. */
export function parseIpNet(cidr: string): IpNet {
  const [addr, prefixText, extra] = cidr.split("/");
  if (addr === undefined || extra !== undefined) throw new Error(`bad network ${JSON.stringify(cidr)}`);
  const family: IpFamily = addr.includes(":") ? 6 : 4;
  const prefix = prefixText === undefined ? bitsOf(family) : Number(prefixText);
  const address = canonicalAddress(family, addr);
  if (address === null || !Number.isInteger(prefix) || prefix < 0 || prefix > bitsOf(family))
    throw new Error(`bad network ${JSON.stringify(cidr)}`);
  return { family, address, prefix };
}

/** Is net `inner` entirely inside net `outer`? */
export function ipNetContains(outer: IpNet, inner: IpNet): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false;
  const o = addressToBigInt(outer.family, outer.address);
  const i = addressToBigInt(inner.family, inner.address);
  if (o === null || i === null) return false;
  const mask = maskOf(outer.family, outer.prefix);
  return (i & mask) === (o & mask);
}

/** Does net `a` share at least one address with net `b`? */
export function ipNetsOverlap(a: IpNet, b: IpNet): boolean {
  return ipNetContains(a, b) || ipNetContains(b, a);
}

/** Text of a net for messages and rulesets: "A/P". */
export const ipNetText = (n: IpNet) => `${n.address}/${n.prefix}`;

/**
 * Which always-blocked range (if any) wholly contains `net`, given the switches in
 * force. Use it when pinning resolved hostnames: an address inside a blocked range
 * would be dropped by the ruleset anyway, and the ruleset refuses such a rule.
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

/** The slirp virtual networks (every address there is the host) and the slirp router's link-local address. */
export const SLIRP_HOST_RANGES = [
  `${SLIRP.network}/${SLIRP.prefix}`,
  `${SLIRP.networkV6}/${SLIRP.prefixV6}`,
  `${SLIRP.routerLinkLocalV6}/128`,
] as const;

const LOOPBACK: IpNet[] = [parseIpNet("127.0.0.0/8"), parseIpNet("::1/128")];
const V4_MAPPED: IpNet = parseIpNet("::ffff:0.0.0.0/96");

// ---------------------------------------------------------------------------
// Entries

type Result<T> = { ok: true; value: T } | { ok: false; error: string };
const fail = (error: string): { ok: false; error: string } => ({ ok: false, error });

const ALLOWED_CHARS = /^[A-Za-z0-9.:/[\]-]*$/;

function describeChar(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  const named: Record<string, string> = {
    " ": "a space",
    "\t": "a tab",
    "\n": "a newline",
    "\r": "a carriage return",
    "\0": "a NUL byte",
    '"': "a double quote",
    "'": "a single quote",
    "`": "a backquote",
    ";": "a semicolon",
    "{": "a brace",
    "}": "a brace",
    "#": "a '#'",
    "%": "a '%' (IPv6 zone ids are not supported)",
    _: "an underscore (not valid in hostnames)",
    ",": "a comma (write one entry per target)",
  };
  if (named[ch]) return named[ch];
  if (cp > 0x7e) return `the non-ASCII character U+${cp.toString(16).toUpperCase().padStart(4, "0")} (write IDN hostnames in punycode, xn--…)`;
  if (cp < 0x20 || cp === 0x7f) return `the control character U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
  return `the character ${JSON.stringify(ch)}`;
}

function parsePort(text: string, what: string): Result<number> {
  if (!/^[0-9]+$/.test(text)) return fail(`${what} ${JSON.stringify(text)} is not a decimal number`);
  if (text.length > 1 && text.startsWith("0")) return fail(`${what} ${JSON.stringify(text)} has a leading zero`);
  const n = Number(text);
  if (n < 1 || n > 65535) return fail(`${what} ${text} is out of range (1-65535)`);
  return { ok: true, value: n };
}

function parsePorts(text: string): Result<PortRange> {
  if (text === "") return fail("a ':' must be followed by a port or a port range");
  const parts = text.split("-");
  if (parts.length > 2) return fail(`port range ${JSON.stringify(text)} must be PORT or PORT-PORT`);
  const from = parsePort(parts[0] ?? "", "port");
  if (!from.ok) return from;
  if (parts.length === 1) return { ok: true, value: { from: from.value, to: from.value } };
  const to = parsePort(parts[1] ?? "", "port");
  if (!to.ok) return to;
  if (from.value > to.value) return fail(`port range ${text} is reversed (${from.value} > ${to.value})`);
  return { ok: true, value: { from: from.value, to: to.value } };
}

function parsePrefix(text: string, family: IpFamily): Result<number> {
  const max = bitsOf(family);
  if (!/^[0-9]+$/.test(text) || (text.length > 1 && text.startsWith("0")))
    return fail(`prefix length ${JSON.stringify(text)} is not a decimal number without leading zeros`);
  const n = Number(text);
  if (n > max) return fail(`prefix length /${text} is out of range for IPv${family} (0-${max})`);
  return { ok: true, value: n };
}

/** ADDRESS or ADDRESS/PREFIX of the given family. */
function parseNetTarget(text: string, family: IpFamily): Result<AllowTarget & { kind: "net" }> {
  const slash = text.indexOf("/");
  const addrText = slash === -1 ? text : text.slice(0, slash);
  let prefix = bitsOf(family);
  if (slash !== -1) {
    const p = parsePrefix(text.slice(slash + 1), family);
    if (!p.ok) return p;
    prefix = p.value;
  }
  const n = family === 4 ? ipv4ToBigInt(addrText) : ipv6ToBigInt(addrText);
  if (n === null) {
    if (family === 4 && /^0[0-9]|\.0[0-9]/.test(addrText))
      return fail(`${JSON.stringify(addrText)} has an octet with a leading zero (ambiguous: octal to some parsers)`);
    return fail(`${JSON.stringify(addrText)} is not a valid IPv${family} address`);
  }
  const mask = maskOf(family, prefix);
  if ((n & mask) !== n) {
    const net = family === 4 ? bigIntToIpv4(n & mask) : bigIntToIpv6(n & mask);
    return fail(`${addrText}/${prefix} has host bits set (the network is ${net}/${prefix})`);
  }
  const target = { kind: "net" as const, family, address: family === 4 ? bigIntToIpv4(n) : bigIntToIpv6(n), prefix };
  if (LOOPBACK.some((l) => ipNetContains(l, target)))
    return fail("a loopback target never leaves the sandbox (its own loopback is always reachable, the host's never)");
  if (family === 6 && ipNetContains(V4_MAPPED, target))
    return fail("IPv4-mapped IPv6 addresses leave as IPv4: write the IPv4 form");
  return { ok: true, value: target };
}

function parseHostname(text: string): Result<AllowTarget & { kind: "host" }> {
  if (text.length > MAX_HOSTNAME_LENGTH)
    return fail(`hostname is ${text.length} characters long (at most ${MAX_HOSTNAME_LENGTH})`);
  if (text.endsWith(".")) return fail("hostname has a trailing dot: write it without");
  const name = text.toLowerCase();
  const labels = name.split(".");
  for (const label of labels) {
    if (label === "") return fail(`hostname ${JSON.stringify(text)} has an empty label`);
    if (label.length > 63) return fail(`hostname label ${JSON.stringify(label)} is longer than 63 characters`);
    if (!/^[a-z0-9-]+$/.test(label))
      return fail(`hostname label ${JSON.stringify(label)} may hold only letters, digits and '-'`);
    if (label.startsWith("-") || label.endsWith("-"))
      return fail(`hostname label ${JSON.stringify(label)} must not start or end with '-'`);
  }
  const last = labels[labels.length - 1] ?? "";
  if (/^[0-9]+$/.test(last)) {
    if (/^[0-9.]+$/.test(name)) return fail(`${JSON.stringify(text)} is not a valid IPv4 address`);
    return fail(`hostname ${JSON.stringify(text)} ends in an all-numeric label`);
  }
  if (last === "localhost")
    return fail("localhost is loopback: the sandbox's own loopback is always reachable, the host's never");
  return { ok: true, value: { kind: "host", name } };
}

/** True when bare `text` (a valid IPv6 address) could also be read as IPV6:PORT. */
function ambiguousV6Port(text: string): boolean {
  const i = text.lastIndexOf(":");
  const head = text.slice(0, i);
  const tail = text.slice(i + 1);
  if (!/^[0-9]{1,5}$/.test(tail) || Number(tail) < 1 || Number(tail) > 65535) return false;
  return ipv6ToBigInt(head) !== null;
}

/** Parse without throwing: the rule, or a message saying what is wrong. */
export function tryParseAllowEntry(entry: string): Result<AllowRule> {
  if (typeof entry !== "string") return fail("must be a string");
  if (entry === "") return fail("is empty");
  if (entry.length > MAX_ALLOW_ENTRY_LENGTH) return fail(`is longer than ${MAX_ALLOW_ENTRY_LENGTH} characters`);
  if (!ALLOWED_CHARS.test(entry)) {
    const bad = [...entry].find((ch) => !ALLOWED_CHARS.test(ch)) ?? "?";
    return fail(`contains ${describeChar(bad)}; an entry is [tcp://|udp://]TARGET[:PORT[-PORT]]`);
  }

  let rest = entry;
  let protocols: NetProtocol[] = ["tcp", "udp"];
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(entry);
  if (scheme) {
    const name = scheme[1] ?? "";
    if (name !== "tcp" && name !== "udp")
      return fail(`unknown scheme "${name}://": use tcp:// or udp://, or no scheme for both`);
    protocols = [name];
    rest = entry.slice(scheme[0].length);
  } else if (entry.includes("//")) {
    return fail("malformed scheme: use tcp:// or udp://");
  }
  if (rest === "") return fail("has no target");

  let target: AllowTarget;
  let portText: string | null = null;

  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close === -1) return fail("'[' without a matching ']'");
    const inner = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (inner.includes("[") || after.includes("[") || after.includes("]")) return fail("unbalanced brackets");
    if (after !== "") {
      if (!after.startsWith(":")) return fail(`unexpected ${JSON.stringify(after)} after ']' (expected ':PORT')`);
      portText = after.slice(1);
    }
    const addrPart = inner.split("/")[0] ?? "";
    if (!addrPart.includes(":"))
      return fail("brackets are only for IPv6 addresses (write IPv4 addresses and hostnames without them)");
    const t = parseNetTarget(inner, 6);
    if (!t.ok) return t;
    target = t.value;
  } else {
    if (rest.includes("[") || rest.includes("]")) return fail("unbalanced brackets");
    const colons = rest.split(":").length - 1;
    if (colons >= 2) {
      // Unbracketed IPv6, optionally a CIDR: never followed by a port.
      const addrPart = rest.split("/")[0] ?? "";
      if (ipv6ToBigInt(addrPart) === null) {
        const i = addrPart.lastIndexOf(":");
        if (ipv6ToBigInt(addrPart.slice(0, i)) !== null)
          return fail(`write an IPv6 address followed by a port in brackets: [${addrPart.slice(0, i)}]:${addrPart.slice(i + 1)}`);
        return fail(`${JSON.stringify(addrPart)} is not a valid IPv6 address`);
      }
      if (!rest.includes("/") && ambiguousV6Port(rest)) {
        const i = rest.lastIndexOf(":");
        return fail(
          `ambiguous: write [${rest.slice(0, i)}]:${rest.slice(i + 1)} for a port, or [${rest}] for the address`,
        );
      }
      const t = parseNetTarget(rest, 6);
      if (!t.ok) return t;
      target = t.value;
    } else {
      const [targetText = "", port] = rest.split(":");
      if (port !== undefined) portText = port;
      if (targetText === "") return fail("has no target before ':'");
      if (/^[0-9./]+$/.test(targetText)) {
        const t = parseNetTarget(targetText, 4);
        if (!t.ok) return t;
        target = t.value;
      } else if (targetText.includes("/")) {
        return fail(`${JSON.stringify(targetText)}: only IP networks take a /prefix, not hostnames`);
      } else {
        const h = parseHostname(targetText);
        if (!h.ok) return h;
        target = h.value;
      }
    }
  }

  let ports: PortRange | null = null;
  if (portText !== null) {
    const p = parsePorts(portText);
    if (!p.ok) return p;
    ports = p.value;
  }
  return { ok: true, value: { entry, protocols, target, ports } };
}

/** Parse one allow entry; throws AllowEntryError saying what is wrong. */
export function parseAllowEntry(entry: string): AllowRule {
  const r = tryParseAllowEntry(entry);
  if (!r.ok) throw new AllowEntryError(entry, r.error);
  return r.value;
}

/**
 * zod schema for one `network.allow` element: the policy keeps the string as
 * written (no transform); every problem becomes an issue at `network.allow.N`.
 */
export const AllowEntrySchema = z.string({ error: "expected a string" }).superRefine((entry, ctx) => {
  const r = tryParseAllowEntry(entry);
  if (!r.ok) ctx.addIssue({ code: "custom", message: r.error });
});

/**
 * IP addresses and networks as the allowlist and the egress ruleset need them: strict
 * parsing, canonical text, containment. The arithmetic is ipaddr.js's; what is decided
 * here is which TEXT counts as an address, because ipaddr.js (like inet_aton) is
 * generous where a policy must not be:
 *
 * - IPv4 is a canonical dotted quad only: four decimal octets 0–255 without leading
 *   zeros. ipaddr.js also reads `010.0.0.1` (octal), `0xa.0.0.1`, `10.1` and
 *   `167772161`; to some other parser each of those is a different address.
 * - IPv6 is hex groups of 1–4 digits, optionally ending in such a dotted quad, and no
 *   zone id (`%eth0`). A dotted tail is rewritten as two hex groups before ipaddr.js
 *   sees it: ipaddr.js reads `::1.2.3.4` as the IPv4-MAPPED `::ffff:1.2.3.4`, while the
 *   text means the IPv4-compatible `::102:304` (RFC 4291 §2.5.5.1).
 * - Canonical text: IPv4 dotted quad, IPv6 in RFC 5952 form (lower case, the longest
 *   run of zero groups compressed, an embedded IPv4 printed in hex).
 */
import { isIPv6 } from "./ip-syntax.ts";
import type ipaddr from "ipaddr.js";

/** ipaddr.js loads on the first address parsed (a run under network deny parses none). */
let ipaddrLib: typeof ipaddr | undefined;
const lib = (): typeof ipaddr => (ipaddrLib ??= require("ipaddr.js") as typeof ipaddr);

export type IpFamily = 4 | 6;

export interface IpNet {
  family: IpFamily;
  address: string;
  prefix: number;
}

type Address = ipaddr.IPv4 | ipaddr.IPv6;

const V4_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])";
/** A canonical dotted quad: four decimal octets 0–255, no leading zeros. */
const IPV4_PATTERN = new RegExp(`^${V4_OCTET}(?:\\.${V4_OCTET}){3}$`);
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

export const bitsOf = (family: IpFamily): number => (family === 4 ? 32 : 128);

function parseV4(text: string): ipaddr.IPv4 | null {
  return IPV4_PATTERN.test(text) ? lib().IPv4.parse(text) : null;
}

function parseV6(text: string): ipaddr.IPv6 | null {
  // node's isIPv6 and the group check refuse what ipaddr.js would forgive (a stray
  // edge colon, five-digit groups); the character check refuses zone ids.
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !isIPv6(text)) return null;
  let hex = text;
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    const v4 = parseV4(tail);
    if (v4 === null) return null;
    const [a = 0, b = 0, c = 0, d = 0] = v4.octets;
    hex = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  if (!hex.split(":").every((g) => g === "" || HEX_GROUP.test(g))) return null;
  return lib().IPv6.isValid(hex) ? lib().IPv6.parse(hex) : null;
}

function parseAddress(family: IpFamily, text: string): Address | null {
  if (typeof text !== "string") return null;
  return family === 4 ? parseV4(text) : parseV6(text);
}

const textOf = (a: Address): string => (a.kind() === "ipv4" ? a.toString() : (a as ipaddr.IPv6).toRFC5952String());

/** The canonical text of an address of `family`, or null when `text` is not exactly one. */
export function canonicalAddress(family: IpFamily, text: string): string | null {
  const a = parseAddress(family, text);
  return a === null ? null : textOf(a);
}

/** The first address of ADDRESS/PREFIX (its host bits cleared), canonical; null when not an address or prefix. */
export function networkAddress(family: IpFamily, address: string, prefix: number): string | null {
  const a = parseAddress(family, address);
  if (a === null || !Number.isInteger(prefix) || prefix < 0 || prefix > bitsOf(family)) return null;
  const cidr = `${textOf(a)}/${prefix}`;
  return textOf(family === 4 ? lib().IPv4.networkAddressFromCIDR(cidr) : lib().IPv6.networkAddressFromCIDR(cidr));
}

/** Parse "A/P" (or a bare address, as a host route) of either family; throws on anything else. */
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

/** Is net `inner` entirely inside net `outer`? (False when either is not a net.) */
export function ipNetContains(outer: IpNet, inner: IpNet): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false;
  const o = parseAddress(outer.family, outer.address);
  const i = parseAddress(inner.family, inner.address);
  if (o === null || i === null || !Number.isInteger(outer.prefix) || outer.prefix < 0 || outer.prefix > bitsOf(outer.family)) return false;
  return i.match(o, outer.prefix);
}

/** Order of nets: IPv4 first, then by address value, then by prefix. Unparsable addresses sort as zero. */
export function compareIpNets(a: IpNet, b: IpNet): number {
  if (a.family !== b.family) return a.family - b.family;
  const x = parseAddress(a.family, a.address)?.toByteArray() ?? [];
  const y = parseAddress(b.family, b.address)?.toByteArray() ?? [];
  for (let k = 0; k < bitsOf(a.family) / 8; k++) {
    const d = (x[k] ?? 0) - (y[k] ?? 0);
    if (d !== 0) return d;
  }
  return a.prefix - b.prefix;
}

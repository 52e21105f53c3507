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
 *   canonical addresses (plugins/mechanism/egress/ruleset.ts), never from the entry text.
 * - **CIDRs with host bits set are refused**, not masked: `10.1.2.3/8` is far more
 *   likely a typo than a wish to open 10.0.0.0/8. The message names the network the
 *   author probably meant.
 * - Addresses are canonicalised: IPv4 dotted quad without leading zeros (leading zeros
 *   are refused: `010.0.0.1` is octal to some parsers), IPv6 in RFC 5952 form (lower
 *   case, longest zero run compressed, embedded dotted IPv4 rewritten in hex): see
 *   ./address.ts, which also says why a dotted tail is never read as IPv4-mapped.
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
 * depends on `blockMetadata`): the egress ruleset decides it (its `blockedRangeContaining`),
 * and refuses such a rule rather than silently emitting an accept it then overrides.
 */
import { z } from "zod";
import { CordonError } from "../errors.ts";
import { bitsOf, canonicalAddress, ipNetContains, networkAddress, parseIpNet, type IpFamily, type IpNet } from "./address.ts";

export type NetProtocol = "tcp" | "udp";

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
// Entries

// Parsed on first use (ipaddr.js loads with the first address): importing this costs nothing.
let special: { loopback: IpNet[]; v4Mapped: IpNet } | undefined;
const specialNets = () => (special ??= { loopback: [parseIpNet("127.0.0.0/8"), parseIpNet("::1/128")], v4Mapped: parseIpNet("::ffff:0.0.0.0/96") });

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
  const address = canonicalAddress(family, addrText);
  if (address === null) {
    if (family === 4 && /^0[0-9]|\.0[0-9]/.test(addrText))
      return fail(`${JSON.stringify(addrText)} has an octet with a leading zero (ambiguous: octal to some parsers)`);
    return fail(`${JSON.stringify(addrText)} is not a valid IPv${family} address`);
  }
  const network = networkAddress(family, address, prefix);
  if (network !== address) return fail(`${addrText}/${prefix} has host bits set (the network is ${network}/${prefix})`);
  const target = { kind: "net" as const, family, address, prefix };
  if (specialNets().loopback.some((l) => ipNetContains(l, target)))
    return fail("a loopback target never leaves the sandbox (its own loopback is always reachable, the host's never)");
  if (family === 6 && ipNetContains(specialNets().v4Mapped, target))
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
  return canonicalAddress(6, head) !== null;
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
      if (canonicalAddress(6, addrPart) === null) {
        const i = addrPart.lastIndexOf(":");
        if (canonicalAddress(6, addrPart.slice(0, i)) !== null)
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

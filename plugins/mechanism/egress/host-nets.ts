/**
 * The host's own addresses, as slirp4netns would reach them.
 *
 * slirp4netns opens an ordinary socket in the network namespace it runs in (the
 * supervisor's) for every connection the sandbox makes, so a destination that is an
 * address of that namespace is delivered locally: host services bound to 0.0.0.0 or
 * [::] see a local connection. These are the nets the ruleset refuses as "the host".
 *
 * Read from the kernel's own view of "local", without netlink or helper tools:
 *
 * - IPv4: /proc/net/fib_trie, every LOCAL entry (interface addresses, 127.0.0.0/8, and
 *   AnyIP prefixes routed `local`) and every BROADCAST entry (a subnet broadcast is
 *   delivered to the host's own listeners too);
 * - IPv6: /proc/net/if_inet6 (every interface address, tentative ones included) and the
 *   local and anycast routes of /proc/net/ipv6_route (AnyIP prefixes, subnet-router
 *   anycast);
 * - always: 0.0.0.0/8 and :: (a connect there means "this host"), 127.0.0.0/8 and ::1
 *   (loopback, whatever lo holds), 255.255.255.255, and multicast (224.0.0.0/4,
 *   ff00::/8: a host service that joined a group, e.g. mDNS or LLMNR, receives what
 *   slirp sends there, looped back by the host's stack).
 *
 * /proc/net is the reading process's network namespace: call this in the process that
 * starts slirp4netns, which inherits that namespace. A file that cannot be read throws:
 * an incomplete list would open the host silently.
 */
import { readFileSync } from "node:fs";
import { canonicalAddress, compareIpNets, ipNetContains, networkAddress, parseIpNet, type IpFamily, type IpNet } from "../../../src/api/plugin.ts";

const ALWAYS_V4 = ["0.0.0.0/8", "127.0.0.0/8", "255.255.255.255/32", "224.0.0.0/4"] as const;
const ALWAYS_V6 = ["::/128", "::1/128", "ff00::/8"] as const;

/** ipv6_route flags: RTF_LOCAL (the kernel's `local` route type) and RTF_ANYCAST. */
const RTF_LOCAL = 0x80000000;
const RTF_ANYCAST = 0x00100000;

export interface HostNetSources {
  fibTrie: string;
  ifInet6: string;
  ipv6Route: string;
}

/** The net of ADDRESS/PREFIX, host bits cleared (the kernel lists a prefix route by any of its addresses). */
function net(family: IpFamily, address: string, prefix: number): IpNet {
  const network = networkAddress(family, address, prefix);
  if (network === null) throw new Error(`internal: ${address}/${prefix}`);
  return { family, address: network, prefix };
}

/** 32 hex digits (the /proc/net IPv6 notation) → the address, or null. */
function hex128(text: string): string | null {
  return /^[0-9a-f]{32}$/i.test(text) ? canonicalAddress(6, text.replace(/(.{4})(?!$)/g, "$1:")) : null;
}

function fibTrieNets(text: string): IpNet[] {
  const out: IpNet[] = [];
  let leaf: string | null = null;
  for (const line of text.split("\n")) {
    const l = /^\s*\|-- (\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(line);
    if (l) {
      leaf = canonicalAddress(4, l[1]!);
      continue;
    }
    const e = /^\s*\/(\d{1,2}) \S+ (LOCAL|BROADCAST)\b/.exec(line);
    if (e && leaf !== null && Number(e[1]) <= 32) out.push(net(4, leaf, Number(e[1])));
  }
  return out;
}

function ifInet6Nets(text: string): IpNet[] {
  return text
    .split("\n")
    .map((line) => hex128(line.trim().split(/\s+/)[0] ?? ""))
    .filter((a): a is string => a !== null)
    .map((a) => net(6, a, 128));
}

function ipv6LocalRoutes(text: string): IpNet[] {
  const out: IpNet[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    const dest = hex128(f[0] ?? "");
    const prefix = parseInt(f[1] ?? "", 16);
    const flags = parseInt(f[8] ?? "", 16);
    if (dest === null || !(prefix >= 0 && prefix <= 128) || Number.isNaN(flags)) continue;
    if ((flags & RTF_LOCAL) !== 0 || (flags & RTF_ANYCAST) !== 0) out.push(net(6, dest, prefix));
  }
  return out;
}

/** Sorted, without duplicates and without nets that lie inside another listed net. */
function minimal(nets: IpNet[]): IpNet[] {
  const unique = [...new Map(nets.map((n) => [`${n.family} ${n.address}/${n.prefix}`, n])).values()];
  return unique.filter((a) => !unique.some((b) => b !== a && ipNetContains(b, a))).sort(compareIpNets);
}

/** The host nets from the given /proc/net texts (pure: for tests). */
export function hostNetsFrom(src: HostNetSources): IpNet[] {
  const v4 = fibTrieNets(src.fibTrie);
  // A fib_trie with no LOCAL entry at all is not one this parser understands: refuse.
  if (v4.length === 0) throw new Error("no local IPv4 address found in /proc/net/fib_trie");
  return minimal([
    ...ALWAYS_V4.map(parseIpNet),
    ...ALWAYS_V6.map(parseIpNet),
    ...v4,
    ...ifInet6Nets(src.ifInet6),
    ...ipv6LocalRoutes(src.ipv6Route),
  ]);
}

/** Without IPv6 in the kernel these files are absent: then there is no IPv6 address to block. */
function readOptional(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw e;
  }
}

/** Every net of the calling process's network namespace that is "this host" (see above). */
export function readHostNets(): IpNet[] {
  try {
    return hostNetsFrom({
      fibTrie: readFileSync("/proc/net/fib_trie", "utf8"),
      ifInet6: readOptional("/proc/net/if_inet6"),
      ipv6Route: readOptional("/proc/net/ipv6_route"),
    });
  } catch (e) {
    throw new Error(`cannot list the host's own addresses (they must be blocked): ${e instanceof Error ? e.message : String(e)}`);
  }
}

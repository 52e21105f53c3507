/**
 * network.allow entries and the nftables egress rulesets rendered from them.
 *
 * Parser and template tests are pure. `nft -c -f` checks every rendered ruleset against
 * the kernel (in a throwaway network namespace); as root the rulesets are also loaded for
 * real, and a veth pair between two throwaway namespaces shows that they enforce what
 * they say (allowed port connects, other ports and blocked ranges are refused).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PolicyValidationError } from "../src/errors.ts";
import { DEFAULT_POLICY, mergePolicy, parsePolicy } from "../src/policy/index.ts";
import { canonicalAddress, ipNetContains, parseIpNet } from "../src/network/address.ts";
import { ALWAYS_BLOCKED_V4, ALWAYS_BLOCKED_V6, AllowEntryError, parseAllowEntry, tryParseAllowEntry } from "../src/network/allow.ts";
import { egressRulesFor } from "../src/sandbox/layers/network.ts";
import type { EgressRule } from "../src/sandbox/spec.ts";
import { hostNetsFrom, readHostNets } from "../plugins/mechanism/egress/host-nets.ts";
import { renderRuleset, RulesetError, type RulesetInput } from "../plugins/mechanism/egress/ruleset.ts";
import { SLIRP } from "../plugins/mechanism/egress/slirp.ts";

const IS_ROOT = process.getuid?.() === 0;
const SYS_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";
const which = (bin: string) => Bun.which(bin, { PATH: SYS_PATH });
const NFT = which("nft");
const UNSHARE = which("unshare");
const IP = which("ip");

function rejection(entry: string): string {
  try {
    parseAllowEntry(entry);
  } catch (e) {
    expect(e).toBeInstanceOf(AllowEntryError);
    return (e as AllowEntryError).reason;
  }
  throw new Error(`expected ${JSON.stringify(entry)} to be rejected`);
}

describe("allow entries: accepted", () => {
  test("the examples of the issue", () => {
    expect(parseAllowEntry("192.0.2.10:8080")).toEqual({
      entry: "192.0.2.10:8080",
      protocols: ["tcp", "udp"],
      target: { kind: "net", family: 4, address: "192.0.2.10", prefix: 32 },
      ports: { from: 8080, to: 8080 },
    });
    expect(parseAllowEntry("10.1.0.0/16")).toEqual({
      entry: "10.1.0.0/16",
      protocols: ["tcp", "udp"],
      target: { kind: "net", family: 4, address: "10.1.0.0", prefix: 16 },
      ports: null,
    });
    expect(parseAllowEntry("udp://192.0.2.53:53")).toEqual({
      entry: "udp://192.0.2.53:53",
      protocols: ["udp"],
      target: { kind: "net", family: 4, address: "192.0.2.53", prefix: 32 },
      ports: { from: 53, to: 53 },
    });
    expect(parseAllowEntry("api.example.com:443")).toEqual({
      entry: "api.example.com:443",
      protocols: ["tcp", "udp"],
      target: { kind: "host", name: "api.example.com" },
      ports: { from: 443, to: 443 },
    });
  });

  test("IPv6 in brackets with a port, CIDR with a scheme and a port range", () => {
    expect(parseAllowEntry("[2001:db8::10]:443")).toEqual({
      entry: "[2001:db8::10]:443",
      protocols: ["tcp", "udp"],
      target: { kind: "net", family: 6, address: "2001:db8::10", prefix: 128 },
      ports: { from: 443, to: 443 },
    });
    expect(parseAllowEntry("tcp://10.1.0.0/16:1000-2000")).toEqual({
      entry: "tcp://10.1.0.0/16:1000-2000",
      protocols: ["tcp"],
      target: { kind: "net", family: 4, address: "10.1.0.0", prefix: 16 },
      ports: { from: 1000, to: 2000 },
    });
  });

  test("more forms: bare IPv6 and IPv6 CIDR, brackets without port, canonical IPv6, lower-cased hostnames", () => {
    expect(parseAllowEntry("2001:db8::/32").target).toEqual({ kind: "net", family: 6, address: "2001:db8::", prefix: 32 });
    expect(parseAllowEntry("2001:db8::10").target).toEqual({ kind: "net", family: 6, address: "2001:db8::10", prefix: 128 });
    expect(parseAllowEntry("[2001:db8::/48]:80-81").ports).toEqual({ from: 80, to: 81 });
    expect(parseAllowEntry("udp://[2001:DB8:0:0::0:1]").target).toEqual({
      kind: "net",
      family: 6,
      address: "2001:db8::1",
      prefix: 128,
    });
    expect(parseAllowEntry("API.Example.COM").target).toEqual({ kind: "host", name: "api.example.com" });
    expect(parseAllowEntry("db:5432").target).toEqual({ kind: "host", name: "db" });
    expect(parseAllowEntry("0.0.0.0/0").target).toEqual({ kind: "net", family: 4, address: "0.0.0.0", prefix: 0 });
    expect(parseAllowEntry("::/0").target).toEqual({ kind: "net", family: 6, address: "::", prefix: 0 });
    expect(parseAllowEntry("x:1-65535").ports).toEqual({ from: 1, to: 65535 });
    expect(parseAllowEntry(`${"a".repeat(63)}.example.com`).target.kind).toBe("host");
  });
});

describe("allow entries: rejected, with a message naming the problem", () => {
  const cases: [string, RegExp][] = [
    ["1.2.3.4; flush ruleset", /semicolon/],
    ["1.2.3.4\n", /newline/],
    ['"1.2.3.4"', /double quote/],
    ["'1.2.3.4'", /single quote/],
    ["1.2.3.4 ", /space/],
    ["1.2.3.4\taccept", /tab/],
    ["1.2.3.4}", /brace/],
    ["{1.2.3.4}", /brace/],
    ["1.2.3.4#x", /'#'/],
    ["fe80::1%eth0", /zone/],
    ["10.0.0.0/33", /prefix length \/33 is out of range for IPv4 \(0-32\)/],
    ["::1/129", /prefix length \/129 is out of range for IPv6 \(0-128\)/],
    ["2001:db8::10:443", /ambiguous: write \[2001:db8::10\]:443 for a port, or \[2001:db8::10:443\] for the address/],
    ["host:0", /port 0 is out of range \(1-65535\)/],
    ["host:70000", /port 70000 is out of range/],
    ["host:90-80", /reversed \(90 > 80\)/],
    ["host:", /must be followed by a port/],
    ["host:08", /leading zero/],
    ["host:80-90-100", /PORT or PORT-PORT/],
    ["ftp://1.2.3.4", /unknown scheme "ftp:\/\/"/],
    ["TCP://1.2.3.4", /unknown scheme/],
    ["tcp://", /no target/],
    ["", /is empty/],
    ["bad_host.example.com", /underscore/],
    ["bad host.example.com", /space/],
    ["bad{host}.example.com", /brace/],
    ["bücher.example", /non-ASCII character U\+00FC/],
    ["-bad.example.com", /must not start or end with '-'/],
    ["bad-.example.com", /must not start or end with '-'/],
    ["a..example.com", /empty label/],
    ["example.com.", /trailing dot/],
    [`${"a".repeat(64)}.example.com`, /longer than 63/],
    ["localhost:8080", /localhost is loopback/],
    ["api.localhost", /localhost is loopback/],
    ["127.0.0.1:80", /loopback/],
    ["::1", /loopback/],
    ["::ffff:192.0.2.1", /IPv4-mapped/],
    ["10.1.2.3/16", /host bits set \(the network is 10\.1\.0\.0\/16\)/],
    ["2001:db8::1/32", /host bits set \(the network is 2001:db8::\/32\)/],
    ["256.1.1.1", /not a valid IPv4 address/],
    ["1.2.3", /not a valid IPv4 address/],
    ["010.0.0.1", /leading zero/],
    ["10.0.0.0/08", /leading zeros/],
    ["1234", /not a valid IPv4 address/],
    ["example.123", /all-numeric label/],
    ["[1.2.3.4]:80", /brackets are only for IPv6/],
    ["[example.com]:80", /brackets are only for IPv6/],
    ["[2001:db8::1:80", /without a matching/],
    ["[2001:db8::1]80", /expected ':PORT'/],
    ["2001:db8::1/64:80", /not a valid IPv6 address|host bits|leading zeros|prefix/],
    ["gggg::1", /not a valid IPv6 address/],
    ["example.com/24", /only IP networks take a \/prefix/],
    [":80", /no target/],
    ["tcp:/1.2.3.4", /not a decimal number|unknown|malformed/],
  ];
  for (const [entry, message] of cases) {
    test(JSON.stringify(entry), () => expect(rejection(entry)).toMatch(message));
  }

  test("a 300-character hostname", () => {
    const name = Array.from({ length: 5 }, () => "a".repeat(59)).join(".") + ".example.com"; // 307 chars
    expect(rejection(name.slice(0, 300))).toMatch(/at most 253/);
    const long254 = `${Array.from({ length: 4 }, () => "b".repeat(62)).join(".")}.cc`; // 254 chars
    expect(long254.length).toBe(254);
    expect(rejection(long254)).toMatch(/254 characters long \(at most 253\)/);
    expect(rejection("a".repeat(301))).toMatch(/longer than 300/);
  });

  test("the error is a CordonError with code invalid-policy naming the entry", () => {
    try {
      parseAllowEntry("1.2.3.4; flush ruleset");
      throw new Error("not rejected");
    } catch (e) {
      expect(e).toBeInstanceOf(AllowEntryError);
      expect((e as AllowEntryError).code).toBe("invalid-policy");
      expect((e as Error).message).toContain('"1.2.3.4; flush ruleset"');
    }
  });
});

/**
 * ipaddr.js does the address arithmetic, but it reads more than a policy may mean
 * (`010.0.0.1` as octal, `::1.2.3.4` as IPv4-MAPPED, zone ids, five-digit groups, a
 * stray edge colon). Each row: the text, what an allow entry makes of it (null:
 * refused), its canonical IPv4 and IPv6 readings (null: not an address).
 */
const HOSTILE_ADDRESSES: [string, string | null, string | null, string | null][] = [
  ["010.0.0.1", null, null, null],
  ["10.0.0.01", null, null, null],
  ["00.0.0.0", null, null, null],
  ["0.0.0.0", "4 0.0.0.0/32", "0.0.0.0", null],
  ["0x0a.0.0.1", null, null, null],
  ["10.1", null, null, null],
  ["167772161", null, null, null],
  ["1.2.3", null, null, null],
  ["256.0.0.1", null, null, null],
  ["1.2.3.4.5", null, null, null],
  [" 10.0.0.1", null, null, null],
  ["10.0.0.1 ", null, null, null],
  ["fe80::1%eth0", null, null, null],
  ["fe80::1%1", null, null, null],
  ["[fe80::1%eth0]:80", null, null, null],
  ["::ffff:1.2.3.4", null, null, "::ffff:102:304"],
  ["::ffff:a00:1", null, null, "::ffff:a00:1"],
  ["::FFFF:0A00:0001", null, null, "::ffff:a00:1"],
  ["[::ffff:10.0.0.1]:443", null, null, null],
  ["::ffff:0.0.0.0/96", null, null, null],
  ["::fffe:0:0/96", "6 ::fffe:0:0/96", null, null],
  ["::1.2.3.4", "6 ::102:304/128", null, "::102:304"],
  ["[::1.2.3.4]:80", "6 ::102:304/128", null, null],
  ["64:ff9b::192.0.2.1", "6 64:ff9b::c000:201/128", null, "64:ff9b::c000:201"],
  ["1:2:3:4:5:6:1.2.3.4", "6 1:2:3:4:5:6:102:304/128", null, "1:2:3:4:5:6:102:304"],
  ["1:2:3:4:5:6:7:1.2.3.4", null, null, null],
  ["::1.2.3", null, null, null],
  ["::01.2.3.4", null, null, null],
  ["::256.1.1.1", null, null, null],
  [":::", null, null, null],
  ["1::2::3", null, null, null],
  ["1:::2", null, null, null],
  [":1::2", null, null, null],
  ["1::2:", null, null, null],
  ["1:2:3:4:5:6:7:8:9", null, null, null],
  ["1:2:3:4:5:6:7::8", null, null, null],
  ["00001::1", null, null, null],
  ["12345::1", null, null, null],
  ["2001:DB8::10", "6 2001:db8::10/128", null, "2001:db8::10"],
  ["2001:0db8:0000:0000:0000:0000:0000:0001", "6 2001:db8::1/128", null, "2001:db8::1"],
  ["2001:db8:0:0:1:0:0:1", "6 2001:db8::1:0:0:1/128", null, "2001:db8::1:0:0:1"],
  ["0:0:1:0:0:1:1:1", "6 ::1:0:0:1:1:1/128", null, "::1:0:0:1:1:1"],
  ["1:0:0:1:0:0:0:1", "6 1:0:0:1::1/128", null, "1:0:0:1::1"],
  ["10.0.0.0/33", null, null, null],
  ["10.0.0.0/999999999999999999999", null, null, null],
  ["10.0.0.0/08", null, null, null],
  ["10.0.0.0/", null, null, null],
  ["10.0.0.0/8/8", null, null, null],
  ["10.1.2.3/8", null, null, null],
  ["0.0.0.0/0", "4 0.0.0.0/0", null, null],
  ["::/0", "6 ::/0", null, null],
  ["2001:db8::/129", null, null, null],
  ["2001:db8::1/32", null, null, null],
  ["[2001:db8::/32]:443", "6 2001:db8::/32", null, null],
  ["127.0.0.1", null, "127.0.0.1", null],
  ["126.0.0.0/7", "4 126.0.0.0/7", null, null],
  ["::1", null, null, "::1"],
  ["::/127", "6 ::/127", null, null],
  ["::0:1", null, null, "::1"],
];

describe("addresses: hostile and ambiguous text", () => {
  for (const [text, entry, v4, v6] of HOSTILE_ADDRESSES)
    test(JSON.stringify(text), () => {
      const r = tryParseAllowEntry(text);
      expect(r.ok ? (r.value.target.kind === "net" ? `${r.value.target.family} ${r.value.target.address}/${r.value.target.prefix}` : r.value.target.name) : null).toBe(entry);
      expect(canonicalAddress(4, text)).toBe(v4);
      expect(canonicalAddress(6, text)).toBe(v6);
    });
  test("containment at the edges: /0 holds everything of its family only, a net holds itself, not its parent", () => {
    const v4 = parseIpNet("10.0.0.0/8");
    expect(ipNetContains(parseIpNet("0.0.0.0/0"), v4)).toBe(true);
    expect(ipNetContains(parseIpNet("::/0"), v4)).toBe(false);
    expect(ipNetContains(v4, v4)).toBe(true);
    expect(ipNetContains(v4, parseIpNet("10.0.0.0/7"))).toBe(false);
    expect(ipNetContains(parseIpNet("::ffff:0.0.0.0/96"), parseIpNet("::ffff:10.0.0.1"))).toBe(true);
    expect(ipNetContains(parseIpNet("::ffff:0.0.0.0/96"), parseIpNet("::1.2.3.4"))).toBe(false);
  });
});

describe("policy validation of network.allow", () => {
  const allowlist = (allow: unknown[]) => ({
    ...DEFAULT_POLICY,
    network: { mode: "allowlist", allow, blockMetadata: true },
  });

  test("valid entries are kept exactly as written", () => {
    const allow = ["192.0.2.10:8080", "10.1.0.0/16", "udp://192.0.2.53:53", "API.example.com:443", "[2001:db8::10]:443"];
    expect(parsePolicy(allowlist(allow)).network.allow).toEqual(allow);
  });

  test("a bad entry fails naming network.allow.N and what is wrong", () => {
    let issues: readonly { path: string; message: string }[] = [];
    try {
      parsePolicy(allowlist(["192.0.2.10:8080", "10.0.0.0/33", "ok.example", "x; drop"]));
    } catch (e) {
      expect(e).toBeInstanceOf(PolicyValidationError);
      issues = (e as PolicyValidationError).issues;
    }
    expect(issues.map((i) => i.path)).toEqual(["network.allow.1", "network.allow.3"]);
    expect(issues[0]?.message).toMatch(/\/33 is out of range for IPv4/);
    expect(issues[1]?.message).toMatch(/semicolon/);
  });

  test("through a policy override too", () => {
    expect(() => mergePolicy(DEFAULT_POLICY, { network: { mode: "allowlist", allow: ["host:70000"] } })).toThrow(
      /network\.allow\.0: port 70000 is out of range/,
    );
    expect(() => parsePolicy(allowlist([42]))).toThrow(/network\.allow\.0: expected a string/);
  });
});

// ---------------------------------------------------------------------------
// Rulesets

const rule = (r: Partial<EgressRule> & Pick<EgressRule, "family" | "address" | "prefix">): EgressRule => ({
  protocols: ["tcp", "udp"],
  ports: null,
  ...r,
});

/** The network layer's rules of one allow entry, a hostname pinned to `addresses`. */
function rulesFor(entry: string, addresses: string[] = []): EgressRule[] {
  const parsed = parseAllowEntry(entry);
  const rules = egressRulesFor(parsed, parsed.target.kind === "host" ? { [parsed.target.name]: addresses } : {});
  if (typeof rules === "string") throw new Error(rules);
  return rules;
}

/** "The host" of the pure ruleset tests: what plugins/mechanism/egress/host-nets.ts would read. */
const HOST_NETS = ["127.0.0.0/8", "198.51.100.1/32", "198.51.100.255/32", "224.0.0.0/4", "::1/128", "2001:db8:ffff::1/128", "ff00::/8"].map(parseIpNet);

const ALLOWLIST: RulesetInput = {
  mode: "allowlist",
  blockMetadata: true,
  blockGateway: true,
  hostNets: HOST_NETS,
  rules: [
    ...rulesFor("192.0.2.10:8080"),
    ...rulesFor("tcp://10.1.0.0/16:1000-2000"),
    ...rulesFor("udp://[2001:db8::10]:53"),
    ...rulesFor("2001:db8:100::/40"),
    ...rulesFor("api.example.com:443", ["192.0.2.77", "2001:DB8::77"]),
  ],
};
const UNRESTRICTED: RulesetInput = { mode: "unrestricted", blockMetadata: true, blockGateway: true, hostNets: HOST_NETS, rules: [] };

const VARIANTS: [string, RulesetInput][] = [
  ["allowlist", ALLOWLIST],
  ["allowlist without blocks", { ...ALLOWLIST, blockMetadata: false, blockGateway: false }],
  ["allowlist, empty", { ...ALLOWLIST, rules: [] }],
  ["allowlist with the slirp resolver", { ...ALLOWLIST, rules: [...ALLOWLIST.rules, rule({ family: 4, address: SLIRP.dns, prefix: 32 })] }],
  ["unrestricted", UNRESTRICTED],
  ["unrestricted without blocks", { ...UNRESTRICTED, blockMetadata: false, blockGateway: false }],
  [
    "unrestricted with the slirp resolvers",
    {
      ...UNRESTRICTED,
      rules: [
        rule({ family: 4, address: SLIRP.dns, prefix: 32, ports: { from: 53, to: 53 } }),
        rule({ family: 6, address: SLIRP.dnsV6, prefix: 128, protocols: ["udp"] }),
      ],
    },
  ],
  [
    "allowlist naming host addresses by IP",
    { ...ALLOWLIST, rules: [...rulesFor("tcp://198.51.100.1:22"), ...rulesFor("[2001:db8:ffff::1]")] },
  ],
];

const linesOf = (text: string) => text.split("\n").map((l) => l.trim());
const firstIndex = (lines: string[], re: RegExp) => lines.findIndex((l) => re.test(l));
const lastIndex = (lines: string[], re: RegExp) => lines.findLastIndex((l) => re.test(l));

describe("rendered rulesets", () => {
  test("allowlist: output chain with policy drop, both families, per-protocol accepts, port ranges", () => {
    const text = renderRuleset(ALLOWLIST);
    const lines = linesOf(text);
    expect(text).toContain("table inet cordon {");
    expect(lines).toContain("type filter hook output priority filter; policy drop;");
    expect(lines).toContain('oif "lo" accept');
    expect(lines).toContain("ct state established,related accept");
    for (const expected of [
      "ip daddr 192.0.2.10/32 tcp dport 8080 accept",
      "ip daddr 192.0.2.10/32 udp dport 8080 accept",
      "ip daddr 10.1.0.0/16 tcp dport 1000-2000 accept",
      "ip6 daddr 2001:db8::10/128 udp dport 53 accept",
      "ip6 daddr 2001:db8:100::/40 meta l4proto tcp accept",
      "ip6 daddr 2001:db8:100::/40 meta l4proto udp accept",
      "ip daddr 192.0.2.77/32 tcp dport 443 accept",
      "ip6 daddr 2001:db8::77/128 udp dport 443 accept",
    ])
      expect(lines).toContain(expected);
    expect(lines).not.toContain("ip daddr 10.1.0.0/16 udp dport 1000-2000 accept");
    // Final refusal after the accepts; no bare accept.
    expect(lines.at(-4)).toBe("reject with icmpx type admin-prohibited");
    expect(lines).not.toContain("accept");
    // Nothing of the entries' text is rendered (e.g. the hostname).
    expect(text).not.toContain("api.example.com");
  });

  test("the blocked ranges (and the slirp networks) come before every accept", () => {
    for (const [, input] of VARIANTS.filter(([, i]) => i.blockMetadata)) {
      const lines = linesOf(renderRuleset(input));
      const blocks = [...ALWAYS_BLOCKED_V4, ...ALWAYS_BLOCKED_V6, "10.0.2.0/24", "fd00::/64", "fe80::2/128", ...HOST_NETS.map((n) => `${n.address}/${n.prefix}`)].map((r) =>
        firstIndex(lines, new RegExp(`^ip6? daddr ${r.replaceAll(".", "\\.")} reject`)),
      );
      expect(blocks.every((i) => i > 0)).toBe(true);
      const lastBlock = Math.max(...blocks);
      const firstAccept = firstIndex(lines, /daddr (?!10\.0\.2\.3\/32 |fd00::3\/128 |198\.51\.100\.1\/32 |2001:db8:ffff::1\/128 ).* accept$|^accept$/);
      if (firstAccept !== -1) expect(firstAccept).toBeGreaterThan(lastBlock);
      // Before the blocks only loopback, conntrack, neighbour discovery and the explicit slirp resolver are accepted.
      const early = lines.slice(0, Math.min(...blocks)).filter((l) => l.endsWith("accept"));
      // Accepts among the blocks: only explicit host addresses, after the gateway, before their own refusal.
      const among = lines.slice(Math.min(...blocks), lastBlock).filter((l) => l.endsWith("accept"));
      for (const l of among) expect(l).toMatch(/^(ip daddr 198\.51\.100\.1\/32 tcp dport 22|ip6 daddr 2001:db8:ffff::1\/128 meta l4proto (tcp|udp)) accept$/);
      for (const l of among) expect(lines.indexOf(l)).toBeGreaterThan(firstIndex(lines, /^ip6 daddr fe80::2\/128 reject/));
      for (const l of early)
        expect(l).toMatch(/^(oif "lo" accept|ct state established,related accept|icmpv6 type \{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit \} ip6 hoplimit 255 accept|ip daddr 10\.0\.2\.3\/32 (tcp|udp) dport 53 accept|ip6 daddr fd00::3\/128 (tcp|udp) dport 53 accept)$/);
    }
  });

  test("unrestricted: the blocks, then accept; policy drop behind it", () => {
    const lines = linesOf(renderRuleset(UNRESTRICTED));
    expect(lines).toContain("type filter hook output priority filter; policy drop;");
    expect(lines).toContain("ip daddr 169.254.0.0/16 reject with icmpx type admin-prohibited");
    expect(lines).toContain("ip6 daddr fc00::/7 reject with icmpx type admin-prohibited");
    expect(lastIndex(lines, /^accept$/)).toBeGreaterThan(lastIndex(lines, /reject/));
    const open = linesOf(renderRuleset({ ...UNRESTRICTED, blockMetadata: false, blockGateway: false }));
    expect(open.filter((l) => /reject/.test(l))).toEqual([]);
  });

  test("the slirp resolver: port 53 only, before the gateway block; other ports are refused", () => {
    const lines = linesOf(renderRuleset(VARIANTS[3]![1]));
    const udp = lines.indexOf("ip daddr 10.0.2.3/32 udp dport 53 accept");
    expect(udp).toBeGreaterThan(0);
    expect(lines.indexOf("ip daddr 10.0.2.3/32 tcp dport 53 accept")).toBeGreaterThan(0);
    expect(udp).toBeLessThan(lines.indexOf("ip daddr 10.0.2.0/24 reject with icmpx type admin-prohibited"));
    expect(lines.some((l) => /10\.0\.2\.3\/32 meta l4proto/.test(l))).toBe(false);
    expect(() =>
      renderRuleset({ ...ALLOWLIST, rules: [rule({ family: 4, address: SLIRP.dns, prefix: 32, ports: { from: 80, to: 80 } })] }),
    ).toThrow(/slirp resolver: only port 53/);
  });

  test("an allow rule inside a blocked range is refused, never silently overridden", () => {
    const cases: EgressRule[] = [
      rule({ family: 4, address: "169.254.169.254", prefix: 32, ports: { from: 80, to: 80 } }),
      rule({ family: 4, address: "100.100.100.200", prefix: 32 }),
      rule({ family: 4, address: "168.63.129.16", prefix: 32 }),
      rule({ family: 6, address: "fd00:ec2::254", prefix: 128 }),
      rule({ family: 6, address: "fe80::1", prefix: 128 }),
      rule({ family: 4, address: SLIRP.gateway, prefix: 32 }),
      rule({ family: 4, address: "10.0.2.0", prefix: 25 }),
    ];
    for (const r of cases) {
      let err: unknown;
      try {
        renderRuleset({ ...ALLOWLIST, rules: [r] });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RulesetError);
      expect((err as RulesetError).code).toBe("invalid-policy");
      expect((err as Error).message).toMatch(/blockMetadata: false/);
    }
    // With the blocks off, the same rules render as accepts.
    const open = renderRuleset({ ...ALLOWLIST, blockMetadata: false, blockGateway: false, rules: cases });
    expect(open).toContain("ip daddr 169.254.169.254/32 tcp dport 80 accept");
    expect(open).toContain("ip6 daddr fd00:ec2::254/128 meta l4proto udp accept");
    // A rule that only overlaps a blocked range renders: the blocks carve it out.
    const wide = linesOf(renderRuleset({ ...ALLOWLIST, rules: [rule({ family: 4, address: "0.0.0.0", prefix: 0 }), rule({ family: 6, address: "::", prefix: 0 })] }));
    expect(wide.indexOf("ip daddr 0.0.0.0/0 meta l4proto tcp accept")).toBeGreaterThan(wide.indexOf("ip daddr 169.254.0.0/16 reject with icmpx type admin-prohibited"));
    expect(wide).toContain("ip6 daddr ::/0 meta l4proto udp accept");
  });

  test("render-time re-validation refuses anything that is not exactly an address, prefix, protocol or port", () => {
    const bads: unknown[] = [
      { family: 4, address: "1.2.3.4 accept; ", prefix: 32, protocols: ["tcp"], ports: null },
      { family: 4, address: "1.2.3.4\n}", prefix: 32, protocols: ["tcp"], ports: null },
      { family: 6, address: "2001:db8::1 accept", prefix: 128, protocols: ["tcp"], ports: null },
      { family: 4, address: "2001:db8::1", prefix: 32, protocols: ["tcp"], ports: null },
      { family: 5, address: "1.2.3.4", prefix: 32, protocols: ["tcp"], ports: null },
      { family: "4", address: "1.2.3.4", prefix: 32, protocols: ["tcp"], ports: null },
      { family: 4, address: "1.2.3.4", prefix: 33, protocols: ["tcp"], ports: null },
      { family: 4, address: "1.2.3.4", prefix: "32 accept", protocols: ["tcp"], ports: null },
      { family: 4, address: "1.2.3.4", prefix: 24, protocols: ["tcp"], ports: null },
      { family: 4, address: "1.2.3.4", prefix: 32, protocols: ["icmp"], ports: null },
      { family: 4, address: "1.2.3.4", prefix: 32, protocols: ["tcp dport 1 accept"], ports: null },
      { family: 4, address: "1.2.3.4", prefix: 32, protocols: [], ports: null },
      { family: 4, address: "1.2.3.4", prefix: 32, protocols: ["tcp", "tcp"], ports: null },
      { family: 4, address: "1.2.3.4", prefix: 32, protocols: ["tcp"], ports: { from: 0, to: 80 } },
      { family: 4, address: "1.2.3.4", prefix: 32, protocols: ["tcp"], ports: { from: 90, to: 80 } },
      { family: 4, address: "1.2.3.4", prefix: 32, protocols: ["tcp"], ports: { from: "80; flush ruleset", to: 80 } },
      { family: 4, address: "1.2.3.4", prefix: 32, protocols: ["tcp"], ports: { from: 80.5, to: 81 } },
      { family: 4, address: "1.2.3.4", prefix: 32, protocols: ["tcp"] },
      "1.2.3.4",
      null,
    ];
    for (const r of bads) {
      let err: unknown;
      try {
        renderRuleset({ ...ALLOWLIST, rules: [r as EgressRule] });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RulesetError);
      expect((err as RulesetError).code).toBe("internal");
    }
    expect(() => renderRuleset({ ...ALLOWLIST, mode: "deny" as never })).toThrow(RulesetError);
    expect(() => renderRuleset({ ...ALLOWLIST, blockMetadata: "yes" as never })).toThrow(RulesetError);
    expect(() => renderRuleset({ ...UNRESTRICTED, rules: [rule({ family: 4, address: "192.0.2.1", prefix: 32 })] })).toThrow(
      /only the slirp resolver may be listed/,
    );
    // A resolver answer that is not an address never reaches the ruleset.
    expect(() => renderRuleset({ ...ALLOWLIST, rules: rulesFor("api.example.com", ["192.0.2.1 accept"]) })).toThrow(RulesetError);
  });

  test("the host's own addresses: refused after the gateway and before the accepts; a network holding one is carved", () => {
    const lines = linesOf(renderRuleset({ ...ALLOWLIST, rules: rulesFor("198.51.100.0/24") }));
    const refusal = lines.indexOf("ip daddr 198.51.100.1/32 reject with icmpx type admin-prohibited");
    expect(refusal).toBeGreaterThan(lines.indexOf("ip6 daddr fe80::2/128 reject with icmpx type admin-prohibited"));
    expect(lines.indexOf("ip daddr 198.51.100.0/24 meta l4proto tcp accept")).toBeGreaterThan(refusal);
    for (const n of ["127.0.0.0/8", "198.51.100.255/32", "224.0.0.0/4"]) expect(lines).toContain(`ip daddr ${n} reject with icmpx type admin-prohibited`);
    for (const n of ["::1/128", "2001:db8:ffff::1/128", "ff00::/8"]) expect(lines).toContain(`ip6 daddr ${n} reject with icmpx type admin-prohibited`);
    const unrestricted = linesOf(renderRuleset(UNRESTRICTED));
    expect(unrestricted.indexOf("ip6 daddr 2001:db8:ffff::1/128 reject with icmpx type admin-prohibited")).toBeLessThan(lastIndex(unrestricted, /^accept$/));
  });

  test("an allow entry naming a host address by IP opens that address (its ports only) before the host refusal; a hostname pinned there is refused", () => {
    const lines = linesOf(renderRuleset({ ...ALLOWLIST, rules: rulesFor("tcp://198.51.100.1:22") }));
    const accept = lines.indexOf("ip daddr 198.51.100.1/32 tcp dport 22 accept");
    expect(accept).toBeGreaterThan(0);
    expect(accept).toBeLessThan(lines.indexOf("ip daddr 198.51.100.1/32 reject with icmpx type admin-prohibited"));
    expect(lines.some((l) => /198\.51\.100\.1\/32 (udp|meta)/.test(l))).toBe(false);
    let err: unknown;
    try {
      renderRuleset({ ...ALLOWLIST, rules: rulesFor("self.example:22", ["2001:db8:ffff::1"]) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RulesetError);
    expect((err as RulesetError).code).toBe("invalid-policy");
    expect((err as Error).message).toContain("address of this host");
    // A rule that does not say it was written as an address is treated like a hostname.
    const { literal: _, ...unmarked } = rulesFor("198.51.100.1")[0]!;
    expect(() => renderRuleset({ ...ALLOWLIST, rules: [unmarked] })).toThrow(/address of this host/);
    // Under unrestricted nothing can open the host.
    expect(() => renderRuleset({ ...UNRESTRICTED, rules: rulesFor("198.51.100.1") })).toThrow(/address of this host/);
  });

  test("blocking the host without its addresses, or with a malformed one, is refused", () => {
    expect(() => renderRuleset({ ...UNRESTRICTED, hostNets: [] })).toThrow(/leave the host open/);
    expect(() => renderRuleset({ ...UNRESTRICTED, hostNets: undefined as never })).toThrow(RulesetError);
    expect(() => renderRuleset({ ...UNRESTRICTED, hostNets: [{ family: 4, address: "1.2.3.4 accept", prefix: 32 }] })).toThrow(RulesetError);
    expect(() => renderRuleset({ ...UNRESTRICTED, hostNets: [{ family: 4, address: "1.2.3.4", prefix: 24 }] })).toThrow(/host bits/);
    // Without the host block the list is not needed.
    expect(renderRuleset({ ...UNRESTRICTED, blockMetadata: false, blockGateway: false, hostNets: [] })).toContain("accept");
  });

  test("addresses are re-printed canonically from their value", () => {
    const text = renderRuleset({ ...ALLOWLIST, rules: [rule({ family: 6, address: "2001:0DB8:0000::0001", prefix: 128 })] });
    expect(text).toContain("ip6 daddr 2001:db8::1/128 meta l4proto tcp accept");
  });
});

// ---------------------------------------------------------------------------
// The host's own addresses (plugins/mechanism/egress/host-nets.ts)

describe("the host's own addresses", () => {
  const FIB_TRIE = `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     |-- 192.0.2.0
        /24 link UNICAST
     |-- 192.0.2.2
        /32 host LOCAL
     |-- 192.0.2.255
        /32 link BROADCAST
     |-- 203.0.113.0
        /24 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 192.0.2.2
        /32 host LOCAL
`;
  const IF_INET6 = `fe8000000000000000fc00fffe000001 04 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
20010db8000000000000000000000002 04 40 00 82     eth0
`;
  const IPV6_ROUTE = `20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
20010db8000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001     eth0
20010db8000000000000000000000000 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80300001     eth0
20010db8000100000000000000000000 30 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001       lo
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001     eth0
`;

  test("parsed from /proc/net text: local and broadcast IPv4, AnyIP prefixes, every IPv6 address, local and anycast routes, and the fixed ranges", () => {
    const nets = hostNetsFrom({ fibTrie: FIB_TRIE, ifInet6: IF_INET6, ipv6Route: IPV6_ROUTE }).map((n) => `${n.address}/${n.prefix}`);
    expect(nets).toEqual([
      "0.0.0.0/8",
      "127.0.0.0/8",
      "192.0.2.2/32",
      "192.0.2.255/32",
      "203.0.113.0/24",
      "224.0.0.0/4",
      "255.255.255.255/32",
      "::/128",
      "::1/128",
      "2001:db8::/128",
      "2001:db8::2/128",
      "2001:db8:1::/48",
      "fe80::fc:ff:fe00:1/128",
      "ff00::/8",
    ]);
    expect(() => hostNetsFrom({ fibTrie: "garbage", ifInet6: "", ipv6Route: "" })).toThrow(/no local IPv4/);
  });

  test.skipIf(!IP)("read on this machine: every address `ip -j addr` lists lies inside one of them", () => {
    const nets = readHostNets();
    const listed = JSON.parse(Bun.spawnSync([IP!, "-j", "addr"], { env: { PATH: SYS_PATH } }).stdout.toString()) as { addr_info: { family: string; local: string }[] }[];
    const addrs = listed.flatMap((i) => i.addr_info).filter((a) => a.family === "inet" || a.family === "inet6");
    expect(addrs.length).toBeGreaterThan(0);
    for (const a of addrs) {
      const one = parseIpNet(a.local);
      expect(nets.some((n) => ipNetContains(n, one)), `${a.local} is not blocked`).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------
// nft itself

/** argv prefix that runs a command in a throwaway network namespace, or null with the reason. */
function netnsPrefix(): { argv: string[] } | { skip: string } {
  if (!NFT) return { skip: "nft is not installed" };
  if (!UNSHARE) return { skip: "unshare is not installed" };
  const argv = IS_ROOT ? [UNSHARE, "-n"] : [UNSHARE, "-r", "-n"];
  const probe = Bun.spawnSync([...argv, NFT, "list", "ruleset"], { env: { PATH: SYS_PATH }, stderr: "pipe" });
  if (probe.exitCode !== 0) return { skip: `cannot run nft in a throwaway network namespace: ${probe.stderr.toString().trim()}` };
  return { argv };
}

const NETNS = netnsPrefix();
if ("skip" in NETNS) console.warn(`network-rules: nft checks skipped: ${NETNS.skip}`);
const tmp = mkdtempSync(join(tmpdir(), "cordon-nft-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function writeRuleset(name: string, text: string): string {
  const file = join(tmp, `${name.replace(/[^a-z0-9]+/gi, "-")}.nft`);
  writeFileSync(file, text);
  return file;
}

describe("nft accepts every rendered ruleset", () => {
  for (const [name, input] of VARIANTS) {
    test.skipIf("skip" in NETNS)(`nft -c -f: ${name}`, () => {
      if (!("argv" in NETNS) || !NFT) return;
      const file = writeRuleset(name, renderRuleset(input));
      const r = Bun.spawnSync([...NETNS.argv, NFT, "-c", "-f", file], { env: { PATH: SYS_PATH }, stderr: "pipe" });
      expect(r.stderr.toString()).toBe("");
      expect(r.exitCode).toBe(0);
    });
  }

  test.skipIf("skip" in NETNS)("nft -c catches a broken ruleset (the check is real)", () => {
    if (!("argv" in NETNS) || !NFT) return;
    const file = writeRuleset("broken", renderRuleset(ALLOWLIST).replace("tcp dport 8080", "tcp dport 8080-"));
    const r = Bun.spawnSync([...NETNS.argv, NFT, "-c", "-f", file], { env: { PATH: SYS_PATH }, stderr: "pipe" });
    expect(r.exitCode).not.toBe(0);
  });

  for (const [name, input] of [VARIANTS[0]!, VARIANTS[4]!]) {
    test.skipIf("skip" in NETNS)(`loaded for real in a throwaway namespace: ${name}`, () => {
      if (!("argv" in NETNS) || !NFT) return;
      const file = writeRuleset(`load-${name}`, renderRuleset(input));
      const r = Bun.spawnSync([...NETNS.argv, "/bin/sh", "-c", `"$0" -f "$1" && "$0" list ruleset`, NFT, file], {
        env: { PATH: SYS_PATH },
        stderr: "pipe",
      });
      expect(r.stderr.toString()).toBe("");
      expect(r.exitCode).toBe(0);
      const listed = r.stdout.toString();
      expect(listed).toContain("table inet cordon {");
      expect(listed).toContain("policy drop;");
      expect(listed).toContain("ip daddr 169.254.0.0/16 reject with icmpx admin-prohibited");
      if (input.mode === "allowlist") expect(listed).toContain("ip6 daddr 2001:db8:100::/40 meta l4proto tcp accept");
    });
  }
});

// ---------------------------------------------------------------------------
// Enforcement: two throwaway namespaces joined by a veth pair.

const ENFORCE_SKIP = !IS_ROOT
  ? "needs root (ip netns)"
  : !IP
    ? "ip is not installed"
    : "skip" in NETNS
      ? NETNS.skip
      : null;
if (ENFORCE_SKIP) console.warn(`network-rules: enforcement checks skipped: ${ENFORCE_SKIP}`);

describe.skipIf(ENFORCE_SKIP !== null)("the rulesets enforce what they say (veth between two namespaces)", () => {
  const id = `${process.pid}`;
  const client = `cordon-t${id}-c`;
  const server = `cordon-t${id}-s`;
  const SERVER4 = "198.51.100.2";
  const SERVER6 = "2001:db8:51::2";
  const METADATA = "169.254.169.254";
  let serverProc: ReturnType<typeof Bun.spawn> | null = null;

  const sh = (...argv: string[]) => {
    const r = Bun.spawnSync(argv, { env: { PATH: SYS_PATH }, stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString().trim()}`);
  };
  const inNs = (ns: string, ...argv: string[]) => sh(IP!, "netns", "exec", ns, ...argv);

  beforeAll(async () => {
    sh(IP!, "netns", "add", client);
    sh(IP!, "netns", "add", server);
    sh(IP!, "link", "add", `ct${id}`, "netns", client, "type", "veth", "peer", "name", `st${id}`, "netns", server);
    inNs(client, IP!, "link", "set", "lo", "up");
    inNs(server, IP!, "link", "set", "lo", "up");
    inNs(client, IP!, "addr", "add", "198.51.100.1/24", "dev", `ct${id}`);
    inNs(client, IP!, "-6", "addr", "add", "2001:db8:51::1/64", "dev", `ct${id}`, "nodad");
    inNs(server, IP!, "addr", "add", `${SERVER4}/24`, "dev", `st${id}`);
    inNs(server, IP!, "addr", "add", `${METADATA}/32`, "dev", `st${id}`);
    inNs(server, IP!, "-6", "addr", "add", `${SERVER6}/64`, "dev", `st${id}`, "nodad");
    inNs(client, IP!, "link", "set", `ct${id}`, "up");
    inNs(server, IP!, "link", "set", `st${id}`, "up");
    inNs(client, IP!, "route", "add", "169.254.0.0/16", "dev", `ct${id}`);
    const script = join(tmp, "server.js");
    writeFileSync(
      script,
      `const net = require("node:net");
for (const host of ["0.0.0.0", "::"]) for (const port of [8080, 8081])
  net.createServer((c) => c.end("hi")).listen({ host, port, ipv6Only: host === "::" });
setTimeout(() => process.exit(0), 120000);`,
    );
    serverProc = Bun.spawn([IP!, "netns", "exec", server, process.execPath, script], { env: { PATH: SYS_PATH } });
    await Bun.sleep(500);
  });

  afterAll(() => {
    serverProc?.kill();
    for (const ns of [client, server]) Bun.spawnSync([IP!, "netns", "delete", ns], { env: { PATH: SYS_PATH } });
  });

  // The server listens on every address (metadata included), so anything but "ok" is the ruleset's doing.
  // Bun 1.4.5 reports the ICMP admin-prohibited refusal (EHOSTUNREACH for python) as ECONNREFUSED too;
  // either way it is immediate, not a TIMEOUT.
  const REFUSED = "ECONNREFUSED";

  /** Connect from the client namespace: "ok", or the error code (fast refusals, or TIMEOUT). */
  function connect(host: string, port: number): string {
    const probe = join(tmp, "probe.js");
    writeFileSync(
      probe,
      `const s = require("node:net").connect({ host: process.argv[2], port: Number(process.argv[3]) });
s.setTimeout(3000, () => { console.log("TIMEOUT"); process.exit(0); });
s.on("data", () => { console.log("ok"); process.exit(0); });
s.on("error", (e) => { console.log(e.code); process.exit(0); });`,
    );
    const r = Bun.spawnSync([IP!, "netns", "exec", client, process.execPath, probe, host, String(port)], {
      env: { PATH: SYS_PATH },
      stderr: "pipe",
    });
    return r.stdout.toString().trim();
  }

  function load(input: RulesetInput) {
    const file = writeRuleset(`enforce-${input.mode}`, `flush ruleset\n${renderRuleset(input)}`);
    inNs(client, NFT!, "-f", file);
  }

  test("without rules everything connects (the harness works)", () => {
    Bun.spawnSync([IP!, "netns", "exec", client, NFT!, "flush", "ruleset"], { env: { PATH: SYS_PATH } });
    expect(connect(SERVER4, 8081)).toBe("ok");
    expect(connect(SERVER6, 8081)).toBe("ok");
    expect(connect(METADATA, 8080)).toBe("ok");
  });

  test("allowlist: the allowed port connects over IPv4 and IPv6; other ports and metadata are refused at once", () => {
    load({
      mode: "allowlist",
      blockMetadata: true,
      blockGateway: true,
      hostNets: HOST_NETS,
      rules: [
        ...rulesFor(`tcp://${SERVER4}:8080`),
        ...rulesFor(`tcp://[${SERVER6}]:8080`),
        ...rulesFor("169.0.0.0/8"),
      ],
    });
    expect(connect(SERVER4, 8080)).toBe("ok");
    expect(connect(SERVER6, 8080)).toBe("ok");
    expect(connect(SERVER4, 8081)).toBe(REFUSED);
    expect(connect(SERVER6, 8081)).toBe(REFUSED);
    expect(connect(METADATA, 8080)).toBe(REFUSED);
  });

  test("unrestricted: everything connects except the blocked ranges; blockMetadata: false opens them", () => {
    load(UNRESTRICTED);
    expect(connect(SERVER4, 8081)).toBe("ok");
    expect(connect(SERVER6, 8081)).toBe("ok");
    expect(connect(METADATA, 8080)).toBe(REFUSED);
    load({ ...UNRESTRICTED, blockMetadata: false, blockGateway: false });
    expect(connect(METADATA, 8080)).toBe("ok");
  });
});

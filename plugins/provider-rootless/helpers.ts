/**
 * The supervisor-side plumbing of one rootless run, done while bwrap holds the command:
 * load the ruleset into the sandbox's network namespace, start slirp4netns, verify.
 */
import { dlopen, FFIType } from "bun:ffi";
import { RULESET_TABLE } from "../mechanism/egress/ruleset.ts";
import { closeSync, openSync, readFileSync, readlinkSync } from "node:fs";
import { runSystemCommand, SYSTEM_PATH, type SystemCommandOptions } from "../../src/api/plugin.ts";

const HELPER_ENV = { PATH: SYSTEM_PATH };

export interface Tools {
  slirp4netns: string;
  nft: string;
  nsenter: string;
}

/**
 * Where a helper enters the sandbox's network namespace. Root (initial user namespace)
 * may administer any namespace; a non-root supervisor must first enter the user
 * namespace that OWNS it — bwrap's outer one, not the child's nested one.
 */
export interface NetnsAccess {
  pid: number;
  /** An fd (in this process) of the owning user namespace, or null as root. */
  ownerUserns: number | null;
}

const NS_GET_USERNS = 0xb701;
let libc: { symbols: { ioctl: (fd: number, request: number, arg: number) => number } } | null = null;

/** ioctl(NS_GET_USERNS) on the pid's net namespace: an fd of its owner. No setns in this (threaded) process. */
export function openOwnerUserns(pid: number): number {
  libc ??= dlopen("libc.so.6", { ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.u64], returns: FFIType.i32 } }) as unknown as typeof libc;
  const netns = openSync(`/proc/${pid}/ns/net`, "r");
  try {
    const owner = libc!.symbols.ioctl(netns, NS_GET_USERNS, 0);
    if (owner < 0) throw new Error(`ioctl(NS_GET_USERNS) on /proc/${pid}/ns/net failed`);
    return owner;
  } finally {
    closeSync(netns);
  }
}

/** A helper inside the namespace; the owner's fd is passed to it as its fd 3 (nsenter) or 5 (slirp4netns). */
const inNs = (ns: NetnsAccess, stdin?: string): SystemCommandOptions => ({ ...(stdin !== undefined ? { stdin } : {}), extraFd: ns.ownerUserns });

const inNetns = (tools: Tools, ns: NetnsAccess, argv: string[]) =>
  ns.ownerUserns === null
    ? [tools.nsenter, `--target=${ns.pid}`, "--net", "--", ...argv]
    : [tools.nsenter, "--user=/proc/self/fd/3", `--net=/proc/${ns.pid}/ns/net`, "--preserve-credentials", "--", ...argv];

/** Load the ruleset (from stdin: no file the script could touch) and check the table is there. */
export async function loadRuleset(tools: Tools, ns: NetnsAccess, ruleset: string): Promise<void> {
  const load = await runSystemCommand(inNetns(tools, ns, [tools.nft, "-f", "-"]), inNs(ns, ruleset));
  if (!load.ok) throw new Error(`nft could not load the egress ruleset: ${load.stderr}`);
  const check = await runSystemCommand(inNetns(tools, ns, [tools.nft, "list", "table", "inet", RULESET_TABLE]), inNs(ns));
  if (!check.ok || !check.stdout.includes("policy drop")) throw new Error(`the egress ruleset is not in place after loading: ${check.stderr || "no drop policy listed"}`);
}

const IPV6_ROUTE_MS = 4_000;

/**
 * slirp4netns signals ready once IPv4 is configured; the IPv6 address and default route
 * come later, from its router advertisement after DAD (~1-2 s). A script released before
 * that would find allowlisted IPv6 destinations unreachable: wait for the route.
 */
export async function waitForIpv6Route(tools: Tools & { ip: string }, ns: NetnsAccess): Promise<void> {
  const deadline = performance.now() + IPV6_ROUTE_MS;
  while (performance.now() < deadline) {
    const r = await runSystemCommand(inNetns(tools, ns, [tools.ip, "-6", "route", "show", "default"]), inNs(ns));
    if (r.ok && r.stdout.includes("default")) return;
    await Bun.sleep(50);
  }
  throw new Error(`slirp4netns gave the sandbox no IPv6 default route within ${IPV6_ROUTE_MS} ms`);
}

export interface Slirp {
  stop(): Promise<void>;
}

const SLIRP_READY_MS = 5_000;

/**
 * slirp4netns for the sandbox's namespace, entered by path: with --disable-userns the
 * child sits in a nested user namespace that does not own the net namespace, so slirp's
 * default (join the pid's user namespace, then its net namespace) fails with EPERM. --disable-host-loopback: 10.0.2.2 must not
 * reach the host's 127.0.0.1. --exit-fd: it exits when the supervisor closes its end
 * (or dies), so it never outlives the run.
 *
 * It parses every raw packet the sandbox sends, so it is confined before it reads one:
 * --enable-sandbox (its own mount namespace holding only /etc and /run, read-only;
 * no_new_privs; every capability but CAP_NET_BIND_SERVICE dropped, bounding set
 * included) and --enable-seccomp (a filter refusing execve, ptrace, mount, setns,
 * unshare, prctl …). slirp4netns applies both before it writes its ready fd; the
 * supervisor then checks them in /proc (assertConfined) and refuses the run otherwise.
 */
export async function startSlirp(tools: Tools, ns: NetnsAccess): Promise<Slirp> {
  const userns = ns.ownerUserns === null ? [] : ["--userns-path=/proc/self/fd/5"];
  const proc = Bun.spawn(
    [tools.slirp4netns, "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-ipv6", ...SLIRP_CONFINEMENT, "--exit-fd=3", "--ready-fd=4", "--netns-type=path", ...userns, `/proc/${ns.pid}/ns/net`, "tap0"],
    { env: HELPER_ENV, stdio: ns.ownerUserns === null ? ["ignore", "ignore", "pipe", "pipe", "pipe"] : ["ignore", "ignore", "pipe", "pipe", "pipe", ns.ownerUserns] },
  );
  const exitFd = proc.stdio[3] as number;
  const readyFd = proc.stdio[4] as number;
  const stop = async () => {
    try {
      closeSync(exitFd);
    } catch {
      // closed already
    }
    const timer = setTimeout(() => proc.kill("SIGKILL"), 1_000);
    await proc.exited;
    clearTimeout(timer);
  };
  try {
    await waitReady(readyFd, proc.exited);
    assertConfined(proc.pid);
  } catch (e) {
    proc.kill("SIGKILL");
    await stop();
    const err = await new Response(proc.stderr as ReadableStream).text().catch(() => "");
    throw new Error(`slirp4netns did not start: ${e instanceof Error ? e.message : String(e)}${err ? `: ${err.trim().split("\n").slice(-3).join(" / ")}` : ""}`);
  } finally {
    closeSync(readyFd);
  }
  void new Response(proc.stderr as ReadableStream).arrayBuffer().catch(() => {}); // drain its log
  return { stop };
}

/** slirp4netns's own confinement (both since 0.4.0). */
export const SLIRP_CONFINEMENT = ["--enable-sandbox", "--enable-seccomp"] as const;

/** The only capability --enable-sandbox keeps (slirp binds no port below 1024 without port forwarding, which is off). */
const CAP_NET_BIND_SERVICE = 1n << 10n;

/**
 * Fail closed: a slirp4netns that signalled ready without its sandbox (an old or
 * patched build, a flag ignored, a wrapper in its place) must not serve the run.
 * Checked from /proc, which the process cannot forge: seccomp filter mode, no_new_privs,
 * capability sets, and a mount namespace other than the supervisor's.
 */
export function assertConfined(pid: number): void {
  const status: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) status[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  const problems: string[] = [];
  if (status.Seccomp !== "2") problems.push(`no seccomp filter (Seccomp: ${status.Seccomp ?? "?"})`);
  if (status.NoNewPrivs !== "1") problems.push("no_new_privs is not set");
  for (const set of ["CapEff", "CapPrm", "CapBnd", "CapAmb"] as const) {
    const v = /^[0-9a-f]{16}$/.test(status[set] ?? "") ? BigInt(`0x${status[set]}`) : null;
    if (v === null || (v & ~CAP_NET_BIND_SERVICE) !== 0n) problems.push(`${set} ${status[set] ?? "?"} holds more than CAP_NET_BIND_SERVICE`);
  }
  if (readlinkSync(`/proc/${pid}/ns/mnt`) === readlinkSync("/proc/self/ns/mnt")) problems.push("it shares the supervisor's mount namespace");
  if (problems.length) throw new Error(`slirp4netns is not confined: ${problems.join("; ")}`);
}

/** slirp4netns writes "1" (no newline) on --ready-fd once the tap device is configured. */
async function waitReady(fd: number, exited: Promise<number>): Promise<void> {
  const reader = Bun.file(fd).stream().getReader();
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not ready within ${SLIRP_READY_MS} ms`)), SLIRP_READY_MS);
  });
  const died = exited.then((code): never => {
    throw new Error(`exited with status ${code}`);
  });
  died.catch(() => {}); // it exits on purpose at the end of the run
  try {
    const first = await Promise.race([reader.read(), timeout, died]);
    if (first.done || !new TextDecoder().decode(first.value).startsWith("1")) throw new Error("closed its ready fd without signalling");
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
}

/**
 * The supervisor-side plumbing of one rootless run, done while bwrap holds the command:
 * load the ruleset into the sandbox's network namespace, start slirp4netns, verify.
 */
import { dlopen, FFIType } from "bun:ffi";
import { closeSync, openSync } from "node:fs";

const HELPER_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };

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

/** The owner's fd is passed to helpers as their fd 3 (nsenter) or 5 (slirp4netns). */
async function run(argv: string[], stdin?: string, extraFd?: number | null): Promise<{ ok: boolean; out: string; err: string }> {
  const input = stdin !== undefined ? new TextEncoder().encode(stdin) : "ignore";
  const p = Bun.spawn(argv, { env: HELPER_ENV, stdio: extraFd != null ? [input, "pipe", "pipe", extraFd] : [input, "pipe", "pipe"] });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { ok: code === 0, out, err: err.trim() };
}

const inNetns = (tools: Tools, ns: NetnsAccess, argv: string[]) =>
  ns.ownerUserns === null
    ? [tools.nsenter, `--target=${ns.pid}`, "--net", "--", ...argv]
    : [tools.nsenter, "--user=/proc/self/fd/3", `--net=/proc/${ns.pid}/ns/net`, "--preserve-credentials", "--", ...argv];

/** Load the ruleset (from stdin: no file the script could touch) and check the table is there. */
export async function loadRuleset(tools: Tools, ns: NetnsAccess, ruleset: string): Promise<void> {
  const load = await run(inNetns(tools, ns, [tools.nft, "-f", "-"]), ruleset, ns.ownerUserns);
  if (!load.ok) throw new Error(`nft could not load the egress ruleset: ${load.err}`);
  const check = await run(inNetns(tools, ns, [tools.nft, "list", "table", "inet", "cordon"]), undefined, ns.ownerUserns);
  if (!check.ok || !check.out.includes("policy drop")) throw new Error(`the egress ruleset is not in place after loading: ${check.err || "no drop policy listed"}`);
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
    const r = await run(inNetns(tools, ns, [tools.ip, "-6", "route", "show", "default"]), undefined, ns.ownerUserns);
    if (r.ok && r.out.includes("default")) return;
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
 */
export async function startSlirp(tools: Tools, ns: NetnsAccess): Promise<Slirp> {
  const userns = ns.ownerUserns === null ? [] : ["--userns-path=/proc/self/fd/5"];
  const proc = Bun.spawn(
    [tools.slirp4netns, "--configure", "--mtu=65520", "--disable-host-loopback", "--enable-ipv6", "--exit-fd=3", "--ready-fd=4", "--netns-type=path", ...userns, `/proc/${ns.pid}/ns/net`, "tap0"],
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

/**
 * The syscall filter and the keyrings, attacked for real: the same Python attacks readiness
 * makes (src/readiness/syscall-attacks.py), run by the python runner inside every provider
 * that is ready on this host (bwrap; rootless, with its egress path: an allowlist, slirp4netns
 * and nftables; nsjail when it is on PATH) and, as the counter-proof, under `unsafe` (no
 * isolation, `onUnavailable: "degrade"`), where every attack must get through: a test whose
 * attack cannot succeed without the filter could never fail.
 *
 * Where the filter's answer differs from what the kernel says anyway, the test asks for the
 * filter's answer (AF_PACKET: EAFNOSUPPORT, not the EPERM of a missing CAP_NET_RAW; x32:
 * death by SIGSYS, not ENOSYS). Keys are planted by this process (root) in its session
 * keyring, right before the run that would inherit it, and in root's user keyring; the
 * supervisor reads them back afterwards, so an overwrite cannot hide.
 *
 * The last block runs ordinary workloads under the filter (threads, multiprocessing,
 * subprocess, asyncio, sqlite3, Bun modules, workers and Bun.spawn, a shell pipeline): a deny
 * list must not break what health checks do.
 *
 * nsjail is not packaged in Debian: `PATH=/path/to/nsjail-dir:$PATH bun test test/syscall-filter.test.ts`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { type Cordon, type PolicyOverride, type Provider, type RunRequest, type RunResult } from "../src/api/index.ts";
import { hostFacts } from "../src/host.ts";
import { builtinProviders, builtinRunners } from "../plugins/index.ts";
import {
  BASE_POLICY,
  KEY_PERM_OWNER,
  attackResults,
  callSucceeded,
  describeResult,
  expectClean,
  freshRunRoot,
  keyAttack,
  makeCordon,
  plantKey,
  removeTempDirs,
  syscallAttackRequest,
  token,
  type PlantedKey,
} from "./support.ts";
import { invalidateKey } from "../src/keyring.ts";

const PROVIDERS = builtinProviders();
const RUNNERS = builtinRunners();
const UNDER_TEST = ["bwrap", "rootless", "nsjail", "unsafe"];
const TABLE = await Promise.all(PROVIDERS.filter((p) => UNDER_TEST.includes(p.name)).map(async (provider) => ({ provider, probe: await provider.probe(hostFacts()) })));
/** rootless goes through its egress path (held launcher, nft, slirp4netns); nothing connects anywhere. */
const ROOTLESS_POLICY: PolicyOverride = { network: { mode: "allowlist", allow: ["192.0.2.10:443"] } };

const VSOCK_DEVICE = existsSync("/dev/vsock");
if (!VSOCK_DEVICE) console.warn("syscall filter: the AF_VSOCK tests are SKIPPED: no /dev/vsock on this host (no vsock transport to reach)");

/** The attacks every provider gets in one run; each test below judges one of them. */
const SHARED_ATTACKS = ["io_uring", "userfaultfd", "perf_event_open", "vsock", "packet", "netlink", "x32", "i386", "unshare_user", "clone_newuser", "clone3", "mount=mnt", "tiocsti"];

interface Attack {
  succeeded: boolean;
  evidence: string;
}

class Target {
  readonly name: string;
  readonly isolating: boolean;
  readonly runRoot: string;
  readonly cordon: Cordon;
  readonly base: PolicyOverride;
  /** What the unsafe counter-proof got through, printed at the end. */
  readonly gotThrough: string[] = [];

  constructor(provider: Provider) {
    this.name = provider.name;
    this.isolating = provider.isolating;
    this.runRoot = freshRunRoot(`syscall-${provider.name}`);
    this.cordon = makeCordon(this.runRoot, { provider: provider.name }, { providers: PROVIDERS, runners: RUNNERS });
    this.base = !provider.isolating ? { onUnavailable: "degrade" } : provider.name === "rootless" ? { ...BASE_POLICY, ...ROOTLESS_POLICY } : BASE_POLICY;
  }

  /** Run the named attacks; `policy` goes over this target's base policy. */
  async attack(attacks: readonly string[], policy: PolicyOverride = {}): Promise<{ r: RunResult; kv: Record<string, string> }> {
    const request: RunRequest = { ...syscallAttackRequest(attacks), policy: { ...this.base, ...policy } };
    const r = await this.cordon.run(request);
    return { r, kv: attackResults(r, describeResult) };
  }

  /**
   * The core check. Isolating: the report says `control` is enforced and the attack failed.
   * unsafe: the report says degraded and the attack GOT THROUGH (else it is not real).
   */
  expectHeld(r: RunResult, attack: Attack, control = "seccomp"): void {
    const verdict = r.sandbox?.layers.privilege.controls[control];
    if (this.isolating) {
      expect(verdict?.status, `privilege.${control} on ${this.name}: ${describeResult(r)}`).toBe("enforced");
      if (attack.succeeded) throw new Error(`ATTACK SUCCEEDED on ${this.name} although privilege.${control} is reported enforced: ${attack.evidence}\n${describeResult(r)}`);
    } else {
      expect(verdict?.status, describeResult(r)).toBe("degraded");
      if (!attack.succeeded) throw new Error(`${this.name} (no isolation): the attack did not get through (${attack.evidence}): it is not real, so the test could not fail`);
      this.gotThrough.push(attack.evidence);
    }
  }
}

/** The call went through (`ok…`), judged on one attack line. */
const through = (kv: Record<string, string>, name: string, label: string): Attack => ({ succeeded: callSucceeded(kv[name]), evidence: `${label}: ${kv[name] ?? "not reported"}` });

function suite(t: Target): void {
  let shared: { r: RunResult; kv: Record<string, string> };
  beforeAll(async () => {
    shared = await t.attack(SHARED_ATTACKS);
  });
  afterAll(() => {
    expectClean(t.runRoot);
    if (!t.isolating) console.log(`syscall filter counter-proof (${t.name}, no filter): ${t.gotThrough.length} attacks got through:\n  ${t.gotThrough.join("\n  ")}`);
  });

  test("io_uring_setup is refused", () => t.expectHeld(shared.r, through(shared.kv, "io_uring", "io_uring_setup")));
  test("userfaultfd (user-mode only, what an unprivileged process may open) is refused", () => t.expectHeld(shared.r, through(shared.kv, "userfaultfd", "userfaultfd")));
  test("perf_event_open (a software clock on itself, allowed at perf_event_paranoid 2) is refused", () => t.expectHeld(shared.r, through(shared.kv, "perf_event_open", "perf_event_open")));

  test.skipIf(!VSOCK_DEVICE)("AF_VSOCK (a /dev/vsock host: it reaches the hypervisor across the network namespace): the socket is refused, nothing is bound", () => {
    t.expectHeld(shared.r, through(shared.kv, "vsock", "AF_VSOCK socket + bind"));
    if (t.isolating) expect(shared.kv.vsock).toBe("EAFNOSUPPORT");
  });

  test("a rare family (AF_PACKET) is refused by the family filter: EAFNOSUPPORT, not the EPERM of a missing CAP_NET_RAW", () => {
    t.expectHeld(shared.r, { succeeded: shared.kv.packet !== "EAFNOSUPPORT", evidence: `AF_PACKET socket: ${shared.kv.packet}` });
  });

  test("AF_NETLINK other than NETLINK_ROUTE (kobject uevents) is refused with EPROTONOSUPPORT; NETLINK_ROUTE works and lists the interfaces", () => {
    t.expectHeld(shared.r, { succeeded: shared.kv.netlink_uevent !== "EPROTONOSUPPORT", evidence: `NETLINK_KOBJECT_UEVENT socket: ${shared.kv.netlink_uevent}` });
    expect(shared.kv.netlink_route, describeResult(shared.r)).toBe("ok");
    expect(shared.kv.netlink_interfaces).toMatch(/^ok:(.*,)?lo(,|$)/);
  });

  test("the x32 ABI (a syscall number with bit 30 set, run in a child): the child is killed by SIGSYS", () => {
    t.expectHeld(shared.r, { succeeded: shared.kv.x32 !== "killed:SIGSYS", evidence: `x32 getpid: ${shared.kv.x32}` });
  });

  test("the i386 ABI (int 0x80, in a child): killed by SIGSYS, or refused by the host itself (reported as such)", () => {
    const v = shared.kv.i386;
    if (v === "killed:SIGSEGV") {
      // This host refuses int 0x80 before any filter sees it: the filter's i386 check cannot be shown here.
      console.warn(`syscall filter (${t.name}): i386 int 0x80 refused by the host (SIGSEGV), with or without a filter`);
      return;
    }
    t.expectHeld(shared.r, { succeeded: v !== "killed:SIGSYS", evidence: `i386 getpid: ${v}` });
  });

  test("unshare(CLONE_NEWUSER) is refused", () => t.expectHeld(shared.r, through(shared.kv, "unshare_user", "unshare(CLONE_NEWUSER)")));
  test("clone(CLONE_NEWUSER) is refused", () => t.expectHeld(shared.r, through(shared.kv, "clone_newuser", "clone(CLONE_NEWUSER)")));

  test("clone3 answers ENOSYS (so libc falls back to clone, whose flags the filter reads)", () => {
    t.expectHeld(shared.r, { succeeded: shared.kv.clone3 !== "ENOSYS", evidence: `clone3: ${shared.kv.clone3}` });
  });

  test("mount (a tmpfs on a directory of its own) and fsopen are refused", () => {
    t.expectHeld(shared.r, { succeeded: callSucceeded(shared.kv.mount) || callSucceeded(shared.kv.fsopen), evidence: `mount: ${shared.kv.mount}, fsopen: ${shared.kv.fsopen}` });
  });

  test("TIOCSTI into a terminal the script made its own controlling tty is refused", () => {
    const v = shared.kv.tiocsti ?? "";
    if (v.includes("no-pty")) console.warn(`syscall filter (${t.name}): no pty inside (${v}): TIOCSTI has no terminal to inject into`);
    t.expectHeld(shared.r, through(shared.kv, "tiocsti", "TIOCSTI"));
  });

  // ---- keyrings ------------------------------------------------------------------------

  /** Plant, run the key attacks, judge, remove: the key goes into the keyring the run would inherit right before it. */
  async function keyRun(key: PlantedKey, policy: PolicyOverride = {}) {
    try {
      const { r, kv } = await t.attack([`key_serial=${key.serial}`, `key_search=${key.description}`], policy);
      return { r, kv, attack: keyAttack(r, kv, key) };
    } finally {
      key.remove();
    }
  }

  test("a key in the supervisor's session keyring (readable by anyone who knows its serial) is neither readable nor writable, by serial or through @s", async () => {
    const { r, attack } = await keyRun(plantKey("session"));
    t.expectHeld(r, attack);
    t.expectHeld(r, attack, "keyring");
  });

  test("a key in root's user keyring (readable by anyone who knows its serial) is neither readable nor writable, by serial or through @u", async () => {
    const { r, attack } = await keyRun(plantKey("user"));
    t.expectHeld(r, attack);
  });

  /** Run 1 leaves a key in its session keyring; run 2 looks for it. */
  async function leftKey(policy: PolicyOverride) {
    const description = token("cordon-left-");
    const payload = token("left-payload-");
    const first = await t.attack([`key_add=${description}/${payload}`], policy);
    const second = await t.attack([`key_search=${description}`], policy);
    const serial = /^ok:(\d+)$/.exec(first.kv.key_add ?? "")?.[1];
    if (serial && !t.isolating) invalidateKey(BigInt(serial)); // a leak: the key sits in a keyring of this process
    const found = ["key_search_s", "key_search_u", "key_search_us"].filter((k) => callSucceeded(second.kv[k]));
    const attack = { succeeded: found.length > 0 || second.r.stdout.includes(payload), evidence: `run 1 add_key: ${first.kv.key_add}; run 2 found it through: ${found.join(", ") || "nothing"} (${second.kv.key_search_s})` };
    return { first, second, attack };
  }

  test("a key left by one run is not visible to the next", async () => {
    const { second, attack } = await leftKey({});
    t.expectHeld(second.r, attack, "keyring");
  });

  test("with privilege.seccomp false (degrade), the fresh session keyring alone still hides the supervisor's key and what a previous run left", async () => {
    const off: PolicyOverride = { onUnavailable: "degrade", privilege: { seccomp: false } };
    const { r, kv, attack } = await keyRun(plantKey("session", KEY_PERM_OWNER), off);
    t.expectHeld(r, attack, "keyring");
    const left = await leftKey(off);
    t.expectHeld(left.second.r, left.attack, "keyring");
    if (r.sandbox?.layers.privilege.controls.seccomp?.status === "degraded" && t.isolating) {
      // The filter is really off: the calls reached the kernel, which found nothing in the run's own keyring.
      expect(kv.key_search_s, describeResult(r)).toBe("ENOKEY");
      expect(left.first.kv.key_add, describeResult(left.first.r)).toMatch(/^ok:\d+$/);
      expect(left.second.kv.key_search_s).toBe("ENOKEY");
    }
  });
}

for (const { provider, probe } of TABLE) {
  const title = provider.isolating ? `syscall filter: ${provider.name}` : `syscall filter: ${provider.name} (no isolation: every attack must get through)`;
  if (!probe.available) {
    console.warn(`syscall filter: provider ${provider.name} SKIPPED on this host: ${probe.reason ?? "unavailable"}`);
    describe.skip(`${title} — skipped: ${probe.reason ?? "unavailable"}`, () => suite(new Target(provider)));
    continue;
  }
  describe(title, () => suite(new Target(provider)));
}

afterAll(() => removeTempDirs());

// ---------------------------------------------------------------------------------------
// What the filter must not break: ordinary workloads of health checks, under bwrap.
// ---------------------------------------------------------------------------------------

const BWRAP = TABLE.find((e) => e.provider.name === "bwrap")!;
const NO_BWRAP = BWRAP.probe.available ? null : (BWRAP.probe.reason ?? "bwrap unavailable");
if (NO_BWRAP) console.warn(`syscall filter: legitimate workloads SKIPPED: ${NO_BWRAP}`);

describe.skipIf(NO_BWRAP !== null)("legitimate workloads under the filter (bwrap)", () => {
  const runRoot = freshRunRoot("syscall-legit");
  const cordon = makeCordon(runRoot, { provider: "bwrap" }, { providers: PROVIDERS, runners: RUNNERS });
  afterAll(() => expectClean(runRoot));

  /** Run under the default policy; the filter must be on (enforced) and the run ok. */
  async function legit(request: Omit<RunRequest, "policy">): Promise<RunResult> {
    const r = await cordon.run({ ...request, policy: BASE_POLICY });
    expect(r.sandbox?.layers.privilege.controls.seccomp?.status, describeResult(r)).toBe("enforced");
    expect([r.outcome, r.exitCode, r.error], describeResult(r)).toEqual(["ok", 0, null]);
    return r;
  }
  const python = (source: string) => legit({ runner: "python", script: { source }, args: [] });

  test("Python threads", async () => {
    const r = await python(`
import hashlib, threading
out = [None] * 8
def work(i):
    out[i] = hashlib.sha256(str(i).encode() * 100000).hexdigest()
threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print("threads=%d" % sum(1 for o in out if o))
`);
    expect(r.stdout).toBe("threads=8\n");
  });

  test("Python multiprocessing: a Pool of 2 workers (fork, POSIX semaphores in /dev/shm)", async () => {
    const r = await python(`
import multiprocessing
def square(x):
    return x * x
if __name__ == "__main__":
    with multiprocessing.Pool(2) as pool:
        print("pool=%d" % sum(pool.map(square, range(100))))
`);
    expect(r.stdout).toBe("pool=328350\n");
  });

  test("Python subprocess: a shell pipeline as a child", async () => {
    const r = await python(`
import subprocess
p = subprocess.run(["sh", "-c", "echo hello | tr a-z A-Z"], capture_output=True, text=True, check=True)
print("subprocess=" + p.stdout.strip())
`);
    expect(r.stdout).toBe("subprocess=HELLO\n");
  });

  test("Python asyncio: a TCP echo server and client on loopback, and a thread-pool executor", async () => {
    const r = await python(`
import asyncio
async def handle(reader, writer):
    writer.write(await reader.readline()); await writer.drain(); writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping\\n"); await writer.drain()
    echoed = (await reader.readline()).decode().strip()
    writer.close(); server.close(); await server.wait_closed()
    summed = await asyncio.get_running_loop().run_in_executor(None, sum, range(10))
    print("asyncio=%s %d" % (echoed, summed))
asyncio.run(main())
`);
    expect(r.stdout).toBe("asyncio=ping 45\n");
  });

  test("Python sqlite3: a database file in scratch, WAL journal, a transaction", async () => {
    const r = await python(`
import sqlite3
db = sqlite3.connect("checks.db")
print("journal=" + db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
with db:
    db.execute("CREATE TABLE t (n INTEGER)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
print("rows=%d" % db.execute("SELECT count(*) FROM t").fetchone()[0])
db.close()
`);
    expect(r.stdout).toBe("journal=wal\nrows=1000\n");
  });

  test("Bun: an ES module importing a second file by a relative path (no install)", async () => {
    const r = await legit({
      runner: "esm",
      script: { source: `export default async () => ({ status: "ok", message: (await import(process.cwd() + "/entry.mjs")).greet() });`, name: "check.mjs" },
      args: [],
      files: [
        { path: "entry.mjs", content: `import { name } from "./lib/name.mjs";\nexport const greet = () => "hello " + name;\n` },
        { path: "lib/name.mjs", content: `export const name = "from a relative import";\n` },
      ],
    });
    expect(r.result?.message).toBe("hello from a relative import");
  });

  test("Bun: a Worker and Bun.spawn", async () => {
    const r = await legit({
      runner: "esm",
      script: {
        source: `export default async () => {
  const worker = new Worker(process.cwd() + "/worker.mjs");
  const fromWorker = await new Promise((resolve, reject) => { worker.onmessage = (e) => resolve(e.data); worker.onerror = reject; worker.postMessage(20); });
  worker.terminate();
  const child = Bun.spawn(["sh", "-c", "echo spawned | tr a-z A-Z"], { stdout: "pipe" });
  const out = (await new Response(child.stdout).text()).trim();
  return { status: (await child.exited) === 0 ? "ok" : "crit", message: fromWorker + " " + out };
};`,
        name: "check.mjs",
      },
      args: [],
      files: [{ path: "worker.mjs", content: `const fib = (n) => (n < 2 ? n : fib(n - 1) + fib(n - 2));\nself.onmessage = (e) => postMessage(fib(e.data));\n` }],
    });
    expect(r.result?.message).toBe("6765 SPAWNED");
  });

  test("a shell pipeline, command substitution, background jobs and xargs -P", async () => {
    const r = await legit({
      runner: "shell",
      script: { source: `top=$(seq 1 2000 | sort -rn | head -n 3 | paste -sd, -)\necho "top=$top"\n(sleep 0.1; echo a > a.txt) & (echo b > b.txt) & wait\necho "files=$(cat a.txt b.txt | tr -d '\\n')"\necho "xargs=$(seq 1 8 | xargs -P 2 -n 1 sh -c 'echo $(($0 * 2))' | sort -n | tail -n 1)"\n` },
      args: [],
    });
    expect(r.stdout).toBe("top=2000,1999,1998\nfiles=ab\nxargs=16\n");
  });
});

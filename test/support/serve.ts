/**
 * `cordon serve` as a real child process (`bun bin/cordon.ts serve`), the way an operator
 * starts it: a config file, a token file, `--listen 127.0.0.1:0`. startServe() waits for the
 * one "listening" log line and returns the URL; the child's JSON log lines are collected as
 * they come; stop() sends SIGTERM and waits for the exit code. Each child gets a temp dir of
 * its own holding its config, token file and run root, its own cgroup parent and its own
 * identity range, so leftovers() after it exits are its runs' and nobody else's.
 * No bun:test import here: the bench (bench/serve.ts) starts its service with this too.
 */
import type { Subprocess } from "bun";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inRange, type IdentityRange } from "../../src/identity/range.ts";
import { cgroupParentDirs, removeCgroupParent } from "./cgroups.ts";
import { CORDON_CLI } from "./cli.ts";
import { freshIdentityRange } from "./identity.ts";
import { token as freshToken } from "./marks.ts";
import { hostPids, processesWithMarker, readProc, uidOf } from "./processes.ts";
import { mountsUnder, runRootEntries, tempDir } from "./temp.ts";

export interface ServeOptions {
  /**
   * The config file's content: cordon config keys plus `serve`. `runRoot`, `cgroupParent` and
   * `identity` get the child's own (a temp run root, a fresh parent, a fresh range) unless
   * given here; `null` for `config` writes no config file and passes no `--config`.
   */
  config?: Record<string, unknown> | null;
  /** The tokens the service accepts; default: one fresh token. `[]`: none (serve refuses to start without `--insecure-loopback`). */
  tokens?: readonly string[];
  /** How the tokens reach serve: a `--token-file` (default) or `CORDON_TOKENS`. */
  tokensVia?: "file" | "env";
  /** `--listen`; default `127.0.0.1:0` (a free port); `null`: no `--listen` flag (the config's or the default). */
  listen?: string | null;
  /** Extra arguments after the ones above (`--insecure-loopback`, …). */
  args?: readonly string[];
  /** Environment on top of this process's (a value `undefined` removes a variable). */
  env?: Record<string, string | undefined>;
  /** How long to wait for the "listening" line; default 60 s (readiness runs first). */
  startTimeoutMs?: number;
  /** Names the temp dir and the cgroup parent. */
  label?: string;
}

/** One JSON log line of serve (pino): level, time, msg, and per request reqId, method, path, status, ms, token, … */
export type ServeLog = Record<string, unknown> & { msg?: string };

/** What a stopped service left on the host (everything empty when nothing leaked). */
export interface ServeLeftovers {
  /** Entries in the run root. */
  runDirs: string[];
  /** Cgroups (any name) under the child's cgroup parent, in any hierarchy. */
  cgroups: string[];
  /** Mounts under the child's temp dir (scratch mounts). */
  mounts: string[];
  /** Live processes running as one of the child's identity range, or naming its temp dir (serve itself aside), as "pid comm". */
  processes: string[];
}

export interface ServeChild {
  /** `http://127.0.0.1:PORT`, from the "listening" line. */
  url: string;
  /** The first token (every request of a test that does not care which). */
  token: string;
  tokens: string[];
  proc: Subprocess<"ignore", "pipe", "pipe">;
  pid: number;
  /** The child's temp dir: config.json, tokens, runs/. */
  dir: string;
  /** The config file serve was started with (null: none). */
  configPath: string | null;
  /** The config as written (with the filled-in runRoot, cgroupParent, identity). */
  config: Record<string, unknown> | null;
  runRoot: string;
  cgroupParent: string;
  identity: IdentityRange;
  /** `Authorization: Bearer TOKEN` (the first token unless another is given). */
  auth(token?: string): { authorization: string };
  /** fetch(url + path) with the first token's Authorization header unless `init.headers` has one. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** POST /v1/runs with a JSON body and the first token. */
  run(body: unknown, token?: string): Promise<Response>;
  /** Every stdout line so far that parsed as a JSON object. */
  logs(): ServeLog[];
  /** Every stdout line so far, as written. */
  lines(): string[];
  /** stderr so far. */
  stderr(): string;
  /** The first log line (so far or within `timeoutMs`) `match` accepts; null when none came. */
  waitForLog(match: (log: ServeLog) => boolean, timeoutMs?: number): Promise<ServeLog | null>;
  /** VmRSS of the serve process in bytes (/proc/PID/status); NaN once it exited. */
  rss(): number;
  /**
   * SIGTERM (or `signal`), then the exit code: 0 for a clean drain, 128+N when a signal
   * ended it. Past `timeoutMs` (default 60 s) it is SIGKILLed and stop() throws.
   */
  stop(opts?: { signal?: NodeJS.Signals; timeoutMs?: number }): Promise<number>;
  /** Has the child exited. */
  exited(): boolean;
  /** What the child's runs left behind (call after stop()). */
  leftovers(): ServeLeftovers;
}

/** serve exited (or never said "listening") before it was ready: its code and output. */
export class ServeStartError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

const started = new Set<ServeChild>();
/** Cgroup parents of every child started (removed by stopServes). */
const parents: string[] = [];
let count = 0;

const LISTENING = "listening";

/** Collect a stream's lines as they come, calling `onLine` for each complete one. */
function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  return (async () => {
    const decoder = new TextDecoder();
    let pending = "";
    for await (const chunk of stream) {
      pending += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    }
    pending += decoder.decode();
    if (pending !== "") onLine(pending);
  })();
}

function parseLog(line: string): ServeLog | null {
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as ServeLog) : null;
  } catch {
    return null;
  }
}

/** Live processes (zombies are not) running as one of `range`'s uids or whose command line names `marker`, as "pid comm". */
function liveProcesses(range: IdentityRange, marker: string): string[] {
  const found = new Map<number, string>();
  const live = (pid: number) => !/^State:\s*[ZX]/m.test(readProc(pid, "status") ?? "State: X");
  const comm = (pid: number) => (readProc(pid, "comm") ?? "?").trim();
  for (const pid of hostPids()) {
    const uid = uidOf(pid);
    if (uid !== null && inRange(range, uid) && live(pid)) found.set(pid, `${pid} ${comm(pid)}`);
  }
  for (const p of processesWithMarker(marker)) if (live(p.pid)) found.set(p.pid, `${p.pid} ${p.comm}`);
  return [...found.values()];
}

/** Every cgroup directory (any name) under `parent`, in every hierarchy cordon uses. */
function cgroupsUnder(parent: string): string[] {
  return cgroupParentDirs(parent).flatMap((dir) => {
    if (!existsSync(dir)) return [];
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(dir, e.name));
  });
}

/**
 * Start `cordon serve` and wait until it says "listening". Throws ServeStartError (with its
 * exit code, stdout and stderr) when it exits first or stays silent past the timeout (then it
 * is killed). Stop it with `stop()`; stopServes() in a file's afterAll stops what is left.
 */
export async function startServe(opts: ServeOptions = {}): Promise<ServeChild> {
  const label = opts.label ?? "serve";
  const n = ++count;
  const dir = tempDir(label, 0o711); // the sandbox uid must reach the run directories below
  const runRoot = typeof opts.config?.runRoot === "string" ? opts.config.runRoot : join(dir, "runs");
  const cgroupParent = typeof opts.config?.cgroupParent === "string" ? opts.config.cgroupParent : `cordon-${label}-test-${process.pid}-${n}`;
  const identity = (opts.config?.identity as IdentityRange | undefined) ?? freshIdentityRange(32);
  if (!parents.includes(cgroupParent)) parents.push(cgroupParent);
  const config = opts.config === null ? null : { ...opts.config, runRoot, cgroupParent, identity };
  const configPath = config === null ? null : join(dir, "config.json");
  if (configPath !== null) writeFileSync(configPath, JSON.stringify(config, null, 2));

  const tokens = [...(opts.tokens ?? [freshToken("tok")])];
  const args: string[] = ["serve"];
  if (configPath !== null) args.push("--config", configPath);
  const listen = opts.listen === undefined ? "127.0.0.1:0" : opts.listen;
  if (listen !== null) args.push("--listen", listen);
  const env: Record<string, string | undefined> = { ...process.env, CORDON_TOKENS: undefined };
  if (tokens.length > 0) {
    if (opts.tokensVia === "env") env.CORDON_TOKENS = tokens.join(",");
    else {
      const tokenFile = join(dir, "tokens");
      writeFileSync(tokenFile, `# cordon serve test tokens\n${tokens.join("\n")}\n`, { mode: 0o600 });
      args.push("--token-file", tokenFile);
    }
  }
  args.push(...(opts.args ?? []));
  Object.assign(env, opts.env);
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];

  const proc = Bun.spawn([process.execPath, CORDON_CLI, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: env as Record<string, string> });
  const lines: string[] = [];
  const logs: ServeLog[] = [];
  const waiters = new Set<{ match: (l: ServeLog) => boolean; resolve: (l: ServeLog) => void }>();
  let stderr = "";
  const stdoutDone = readLines(proc.stdout, (line) => {
    lines.push(line);
    const log = parseLog(line);
    if (log === null) return;
    logs.push(log);
    for (const w of waiters) {
      if (w.match(log)) {
        waiters.delete(w);
        w.resolve(log);
      }
    }
  });
  const stderrDone = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) stderr += decoder.decode(chunk, { stream: true });
  })();
  let exitCode: number | null = null;
  const exited = proc.exited.then((code) => {
    exitCode = code;
    return code;
  });

  const waitForLog = async (match: (log: ServeLog) => boolean, timeoutMs = 10_000): Promise<ServeLog | null> => {
    const seen = logs.find(match);
    if (seen) return seen;
    let timer: Timer | undefined;
    let waiter: { match: (l: ServeLog) => boolean; resolve: (l: ServeLog) => void } | undefined;
    const found = new Promise<ServeLog>((resolve) => {
      waiter = { match, resolve };
      waiters.add(waiter);
    });
    const none = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)));
    // A child that exits sends no more lines: wait for its stdout to end, then look once more.
    const ended = Promise.all([exited, stdoutDone]).then(() => logs.find(match) ?? null);
    try {
      return await Promise.race([found, none, ended]);
    } finally {
      clearTimeout(timer);
      if (waiter) waiters.delete(waiter);
    }
  };

  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  const listening = await waitForLog((l) => l.msg === LISTENING && typeof l.url === "string", startTimeoutMs);
  if (listening === null) {
    const why = exitCode !== null ? `exited with ${exitCode} before "listening"` : `said nothing of "listening" in ${startTimeoutMs} ms (killed)`;
    if (exitCode === null) proc.kill("SIGKILL");
    await exited;
    await Promise.allSettled([stdoutDone, stderrDone]);
    throw new ServeStartError(`cordon serve ${why}; stderr: ${stderr.slice(0, 2000)}; stdout: ${lines.join("\n").slice(0, 2000)}`, exitCode, lines.join("\n"), stderr);
  }
  const url = String(listening.url);

  const auth = (token = tokens[0]) => ({ authorization: `Bearer ${token ?? ""}` });
  const child: ServeChild = {
    url,
    token: tokens[0] ?? "",
    tokens,
    proc,
    pid: proc.pid,
    dir,
    configPath,
    config,
    runRoot,
    cgroupParent,
    identity,
    auth,
    fetch(path, init = {}) {
      const headers = new Headers(init.headers);
      if (!headers.has("authorization") && tokens.length > 0) headers.set("authorization", auth().authorization);
      return fetch(`${url}${path}`, { ...init, headers });
    },
    run(body, token) {
      return fetch(`${url}/v1/runs`, { method: "POST", headers: { "content-type": "application/json", ...auth(token) }, body: JSON.stringify(body) });
    },
    logs: () => [...logs],
    lines: () => [...lines],
    stderr: () => stderr,
    waitForLog,
    rss() {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readProc(proc.pid, "status") ?? "");
      return exitCode === null && m ? Number(m[1]) * 1024 : Number.NaN;
    },
    async stop({ signal = "SIGTERM", timeoutMs = 60_000 } = {}) {
      if (exitCode === null) proc.kill(signal);
      let timer: Timer | undefined;
      const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), timeoutMs)));
      const code = await Promise.race([exited, late]);
      clearTimeout(timer);
      if (code === "late") {
        proc.kill("SIGKILL");
        await exited;
        await Promise.allSettled([stdoutDone, stderrDone]);
        throw new Error(`cordon serve did not exit within ${timeoutMs} ms of ${signal} (killed); stderr: ${stderr.slice(-2000)}`);
      }
      await Promise.allSettled([stdoutDone, stderrDone]);
      started.delete(child);
      return code;
    },
    exited: () => exitCode !== null,
    leftovers: () => ({
      runDirs: runRootEntries(runRoot),
      cgroups: cgroupsUnder(cgroupParent),
      mounts: mountsUnder(dir),
      processes: liveProcesses(identity, dir).filter((p) => !p.startsWith(`${proc.pid} `)),
    }),
  };
  started.add(child);
  return child;
}

/**
 * A test file's afterAll (before removeTempDirs): SIGKILL every child still running, then
 * remove the cgroup parents of every child started (run cgroups a failure left are reported).
 */
export async function stopServes(label = "serve tests"): Promise<void> {
  for (const child of [...started]) {
    if (!child.exited()) child.proc.kill("SIGKILL");
    await child.proc.exited;
    started.delete(child);
  }
  for (const parent of parents.splice(0)) removeCgroupParent(parent, label);
}

/**
 * Wait until the service has proven readiness (it proves it in the background after it starts
 * listening): the /v1/readiness body once it is no longer pending, with its status.
 */
export async function provenReadiness(child: ServeChild, timeoutMs = 60_000): Promise<{ status: number; body: Record<string, unknown> }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await fetch(`${child.url}/v1/readiness`);
    const body = (await response.json()) as Record<string, unknown>;
    if (!("pending" in body) || Date.now() > deadline) return { status: response.status, body };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A POST /v1/runs body for a shell script, with `extra` fields on top. */
export const shellRun = (source: string, extra: Record<string, unknown> = {}) => ({ runner: "shell", script: { source }, ...extra });

/** A response's JSON body, loosely typed for assertions. */
export async function jsonBody(response: Response): Promise<Record<string, any>> {
  return (await response.json()) as Record<string, any>;
}

/** The value of one sample in Prometheus text (0 when the series is absent). */
export function metricSample(metrics: string, series: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

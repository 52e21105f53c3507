/**
 * The runs every measurement uses: a request for the library, the same work as a bare host
 * command (the baseline), and what a correct result looks like. A run that comes back
 * wrong throws: a fast wrong answer must never count as a sample.
 */
import type { RunRequest, RunResult } from "../../src/api/index.ts";
import { findExecutable } from "../../src/host.ts";
import type { RawRun } from "./rendered.ts";

export interface BenchCase {
  label: string;
  request: RunRequest;
  /** The same work without any sandbox. */
  bare: string[];
  /** The bare command's expected stdout. */
  bareStdout: string;
  /** Why a result is wrong, or null when it is right. */
  wrong: (r: RunResult) => string | null;
  /** Why the raw-rendered command's output is wrong, or null. */
  rawWrong: (r: RawRun) => string | null;
}

function rawStdout(text: string): (r: RawRun) => string | null {
  return (r) => (r.exitCode !== 0 || r.stdout !== text ? `exit ${r.exitCode}, stdout ${JSON.stringify(r.stdout.slice(0, 100))}, stderr ${r.stderr.slice(0, 300)}` : null);
}

const python = findExecutable("python3", "/usr/bin:/bin") ?? "/usr/bin/python3";

function expectStdout(text: string): (r: RunResult) => string | null {
  return (r) => (r.outcome !== "ok" ? `outcome ${r.outcome}: ${r.error?.message ?? r.stderr.slice(0, 300)}` : r.stdout !== text ? `stdout ${JSON.stringify(r.stdout.slice(0, 100))}, expected ${JSON.stringify(text)}` : null);
}

export const TRUE_CASE: BenchCase = {
  label: "/bin/true",
  request: { runner: "shell", script: { source: "exec /bin/true" }, args: [] },
  bare: ["/bin/true"],
  bareStdout: "",
  wrong: expectStdout(""),
  rawWrong: rawStdout(""),
};

export const SHELL_ECHO_CASE: BenchCase = {
  label: "shell `echo ok`",
  request: { runner: "shell", script: { source: "echo ok" }, args: [] },
  bare: ["/bin/sh", "-c", "echo ok"],
  bareStdout: "ok\n",
  wrong: expectStdout("ok\n"),
  rawWrong: rawStdout("ok\n"),
};

export const PYTHON_CASE: BenchCase = {
  label: "python `print('ok')`",
  request: { runner: "python", script: { source: "print('ok')" }, args: [] },
  bare: [python, "-c", "print('ok')"],
  bareStdout: "ok\n",
  wrong: expectStdout("ok\n"),
  rawWrong: rawStdout("ok\n"),
};

/** The ESM runner returns its check's result on the result channel, not on stdout. */
export const ESM_CASE: BenchCase = {
  label: "ESM check",
  request: { runner: "esm", script: { source: "export default () => ({ status: 'ok', message: 'ok' })" }, args: [] },
  bare: [process.execPath, "-e", "console.log('ok')"],
  bareStdout: "ok\n",
  wrong: (r) => (r.outcome !== "ok" ? `outcome ${r.outcome}: ${r.error?.message ?? r.stderr.slice(0, 300)}` : r.result?.status !== "ok" || r.result.message !== "ok" ? `result ${JSON.stringify(r.result)}` : null),
  rawWrong: (r) => (r.exitCode !== 0 || !r.channel.includes('"status":"ok"') ? `exit ${r.exitCode}, channel ${r.channel.slice(0, 200)}, stderr ${r.stderr.slice(0, 300)}` : null),
};

/** Run a case through a Cordon; throws when the result is wrong. */
export async function runChecked(cordon: { run(r: RunRequest): Promise<RunResult> }, c: BenchCase): Promise<RunResult> {
  const r = await cordon.run(c.request);
  const why = c.wrong(r);
  if (why) throw new Error(`${c.label}: wrong result: ${why}`);
  return r;
}

/** The bare command, output drained; throws when it fails or prints something else. */
export async function runBare(c: BenchCase): Promise<void> {
  const p = Bun.spawn(c.bare, { env: {}, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0 || out !== c.bareStdout) throw new Error(`bare ${c.bare.join(" ")}: exit ${code}, stdout ${JSON.stringify(out)}, stderr ${err.slice(0, 300)}`);
}

import { fstatSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { CordonError } from "../errors.ts";
import { Cordon, type Plugins } from "../cordon.ts";
import { readInputDirectory, writeOutputFiles } from "./directory.ts";
import { parsePolicyOverride, type PolicyOverride } from "../policy/index.ts";
import { resultFromError, runResultToJson, type RunResult } from "../result.ts";
import type { StdinSource } from "../sandbox/spec.ts";
import { formatReport } from "../sandbox/report.ts";
import { parseCommand, USAGE, UsageError, type ReadinessCommand, type RunCommand } from "./args.ts";
import { checkRunCommand } from "./run-checks.ts";
import { describeFailure, describeReceipt, describeRun } from "./run-text.ts";
import { escapeControls, escapeLines, jsonText } from "../escape.ts";
import { EXIT, exitStatusOf } from "./exit-status.ts";

export interface CliIO {
  stdout: (data: string | Uint8Array) => void;
  stderr: (data: string | Uint8Array) => void;
  /** Bytes to forward to the script, or undefined for none. */
  /** The script's stdin, forwarded as it arrives (never read whole first), or undefined for none. */
  readStdin: () => Promise<StdinSource | undefined>;
}

/**
 * Forward stdin when it is a pipe, a socket or a file; never a terminal (a script must not
 * read the user's keystrokes unasked). Streamed, so an idle pipe or socket holds nothing back.
 */
export async function processStdin(): Promise<StdinSource | undefined> {
  try {
    const st = fstatSync(0);
    if (!st.isFIFO() && !st.isFile() && !st.isSocket()) return undefined;
  } catch {
    return undefined;
  }
  // A stream, not the whole input: the script starts at once, and memory stays bounded
  // (the supervisor forwards at most resources.maxStdinBytes, then stops reading).
  return Bun.stdin.stream() as ReadableStream<Uint8Array>;
}

function readJsonFile(path: string, what: string, invalidCode: "invalid-policy" | "invalid-config"): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new CordonError("invalid-job", `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CordonError(invalidCode, `${what} ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

function makeCordon(cmd: { configFile?: string; provider?: string }, plugins: Plugins): Cordon {
  const config = cmd.configFile !== undefined ? (readJsonFile(cmd.configFile, "config file", "invalid-config") as Record<string, unknown>) : {};
  // One run per process: a warm pool would only start sandboxes to destroy them (and keep the
  // process alive until they idle out), so the CLI's run always starts cold.
  const oneShot = { ...config, pool: { size: 0 } };
  return new Cordon(cmd.provider !== undefined ? { ...oneShot, provider: cmd.provider } : oneShot, plugins);
}

function readPolicyFile(path: string | undefined): PolicyOverride | undefined {
  return path !== undefined ? parsePolicyOverride(readJsonFile(path, "policy file", "invalid-policy")) : undefined;
}

async function runCommand(cmd: RunCommand, plugins: Plugins, io: CliIO): Promise<number> {
  let result: RunResult;
  try {
    const cordon = makeCordon(cmd, plugins);
    const policy = readPolicyFile(cmd.policyFile);
    checkRunCommand(cmd, cordon);
    const files = cmd.filesDir ? readInputDirectory(cmd.filesDir, cordon.config.inputFiles) : undefined;
    const stdin = await io.readStdin();
    result = await cordon.run({
      script: { file: resolve(cmd.file) },
      // The operator named FILE on their own command line: read it with the CLI's permissions.
      scriptFileAccess: "caller",
      args: cmd.args,
      ...(cmd.runner ? { runner: cmd.runner } : {}),
      ...(cmd.inline ? { options: { form: "inline" } } : {}),
      ...(cmd.verify ? { verify: true } : {}),
      ...(policy ? { policy } : {}),
      ...(files ? { files } : {}),
      ...(stdin ? { stdin } : {}),
    });
  } catch (e) {
    result = resultFromError(e);
  }
  const ran = result.outcome !== "error" && result.outcome !== "refused";
  const notes: string[] = [];
  let status = exitStatusOf(result);
  if (cmd.outDir && ran) {
    try {
      const { skipped } = writeOutputFiles(cmd.outDir, result.files);
      for (const s of skipped) notes.push(`cordon: not written: ${s.path} (${s.reason})`);
    } catch (e) {
      notes.push(`cordon: --out ${cmd.outDir}: ${e instanceof Error ? e.message : String(e)}`);
      status = EXIT.internal; // the run's files were not delivered
    }
  }
  // Below, the script's own bytes pass through as they are; every line cordon writes is escaped.
  if (cmd.json) {
    io.stdout(`${jsonText(runResultToJson(result))}\n`);
  } else {
    io.stdout(result.stdoutBytes); // the exact bytes, not the decoded text
    io.stderr(result.stderrBytes);
    if (cmd.outDir) notes.unshift(...result.filesOmitted.map((o) => `cordon: not returned: ${o.path} (${o.reason})`));
    if (result.stdinTruncated) notes.unshift(`cordon: stdin cut at resources.maxStdinBytes (${result.sandbox?.requested.resources.maxStdinBytes ?? "?"} bytes): the script got that much, then end of file`);
    if (cmd.report && result.sandbox) io.stderr(`${escapeLines(formatReport(result.sandbox))}\n`);
    if (cmd.verify && ran) io.stderr(`${describeReceipt(result.receipt).join("\n")}\n`);
  }
  for (const note of notes) io.stderr(`${escapeControls(note)}\n`);
  if (!cmd.json) io.stderr(`${(ran ? [describeRun(result)] : describeFailure(result)).join("\n")}\n`);
  return status;
}

async function readinessCommand(cmd: ReadinessCommand, plugins: Plugins, io: CliIO): Promise<number> {
  const cordon = makeCordon(cmd, plugins);
  // Judged against the policy runs would get: the configured one, with --policy on top like `run --policy`.
  const policy = readPolicyFile(cmd.policyFile);
  const reports = await cordon.readiness();
  const check = await cordon.check(policy);
  const configured = cordon.config.provider;
  const ready = check.ready;
  if (cmd.json) {
    io.stdout(`${jsonText({ configuredProvider: configured, policyFile: cmd.policyFile ?? null, ready, check, providers: reports }, 2)}\n`);
  } else {
    // Loaded for this command only, like the probes behind cordon.readiness(): `run` never needs them.
    const [{ readinessTable }, { readinessVerdict }] = await Promise.all([import("../readiness/table.ts"), import("./readiness-text.ts")]);
    io.stdout(`${readinessTable(reports)}\n\n${readinessVerdict(configured, cmd.policyFile, check).join("\n")}\n`);
  }
  return ready ? 0 : EXIT.notReady;
}

/** The CLI, independent of process globals so tests can drive it. Returns the exit status. */
export async function main(argv: string[], plugins: Plugins, io: CliIO): Promise<number> {
  try {
    if (argv[0] === "schema") return await (await import("./schema.ts")).schemaCommand(argv.slice(1), io);
    if (argv[0] === "serve") return await (await import("../serve/cli.ts")).serveCommand(argv.slice(1), plugins, { stdout: (d) => io.stdout(d), stderr: (d) => io.stderr(d), env: process.env });
    const cmd = parseCommand(argv);
    if (cmd.kind === "help") {
      io.stdout(`${USAGE}\n`);
      return 0;
    }
    return cmd.kind === "run" ? await runCommand(cmd, plugins, io) : await readinessCommand(cmd, plugins, io);
  } catch (e) {
    // The message may quote a path or a value from the command line: escaped; the usage text is ours.
    const message = e instanceof UsageError ? `${escapeControls(e.detail)}\n${USAGE}` : escapeControls(e instanceof Error ? e.message : String(e));
    io.stderr(`cordon: ${message}\n`);
    return exitStatusOf(resultFromError(e)); // one mapping from error to status, shared with `run`
  }
}

/** The cordon CLI as users run it, and what the text it writes may not hold. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./temp.ts";

/** The cordon CLI as users run it: `bun bin/cordon.ts ARGS` in a real process. */
export const CORDON_CLI = join(import.meta.dir, "../../bin/cordon.ts");

export interface CliRun {
  stdout: string;
  stderr: string;
  code: number;
}

export async function runCli(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<CliRun> {
  const p = Bun.spawn([process.execPath, CORDON_CLI, ...args], {
    stdin: opts.stdin !== undefined ? new TextEncoder().encode(opts.stdin) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

/**
 * Characters that steer a terminal or reorder what it shows: C0 (newline aside), DEL, C1,
 * Unicode line/paragraph separators and bidi controls. Text cordon writes itself must hold none.
 */
export const TERMINAL_CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** The widest line of `text`, in terminal columns (what a reader's screen must hold). */
export function widestLine(text: string): number {
  return Math.max(0, ...text.split("\n").map((line) => Bun.stringWidth(line)));
}

/** The widest a line cordon writes for people may be. */
export const CLI_WIDTH = 100;

/** What cordon itself wrote on stderr: the lines after the script's own stderr bytes. */
export function cordonLines(stderr: string, scriptStderr = ""): string[] {
  if (!stderr.startsWith(scriptStderr)) throw new Error(`stderr does not start with the script's own bytes: ${JSON.stringify(stderr.slice(0, 200))}`);
  return stderr.slice(scriptStderr.length).split("\n").filter((l) => l !== "");
}

/** A directory for CLI tests (removed by removeTempDirs): a config with its own run root, and files to name on the command line. */
export interface CliWorkspace {
  dir: string;
  runRoot: string;
  /** A config file holding `runRoot` and whatever else was asked for. */
  config: string;
  /** Write `content` to `name` in the workspace; its path. */
  file(name: string, content: string): string;
  /** Write `value` as JSON to `name`; its path. */
  json(name: string, value: unknown): string;
}

export function cliWorkspace(label: string, config: Record<string, unknown> = {}): CliWorkspace {
  const dir = tempDir(label, 0o711); // the sandbox uid must reach the run directories below
  const runRoot = join(dir, "runs");
  const file = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };
  const json = (name: string, value: unknown) => file(name, JSON.stringify(value));
  return { dir, runRoot, config: json("config.json", { ...config, runRoot }), file, json };
}

import { existsSync, readFileSync } from "node:fs";
import { JOB_FD, JobInputError, loadScript, RESULT_FD, RESULT_FD_ENV, type Job, type Layout, type PlannedCommand, type Runner, type RunnerOptions, type ScriptRequest, type WarmStart } from "../../src/api/plugin.ts";

/** The result helper, staged as an executable in the job's bin directory. */
const RESULT_HELPER = readFileSync(new URL("./cordon-result.sh", import.meta.url));

/** POSIX shell scripts, run by /bin/sh inside the sandbox (dash on Debian). */
export class ShellRunner implements Runner {
  readonly name = "shell";
  readonly description = "POSIX shell script run by /bin/sh";
  readonly extensions = [".sh"] as const;

  constructor(private readonly shell = "/bin/sh") {}

  prepare(request: ScriptRequest, layout: Layout, options: RunnerOptions): Job {
    if (!existsSync(this.shell)) throw new JobInputError(`shell interpreter ${this.shell} not found`);
    const script = loadScript(request.script, options.maxScriptBytes, options.scriptReader);
    const file = "script.sh";
    const job = this.job(layout, request.env ?? {});
    return {
      ...job,
      // $0 is the script's own name, as when a user runs it directly.
      argv: [this.shell, `${layout.jobDir}/${file}`, ...request.args],
      files: [{ path: file, content: script.content }, ...job.files],
      ...(request.stdin ? { stdin: request.stdin } : {}),
    };
  }

  /**
   * The waiter: the same shell reads ONE line from JOB_FD, closes it, and evals it. The line
   * is `exec env -i VAR=VALUE… COMMAND…`, every word single-quoted, so the shell becomes the
   * run's command with exactly its environment, as bwrap would have exec'd it.
   */
  warm(layout: Layout): WarmStart | null {
    if (!existsSync(this.shell) || !existsSync(ENV_BINARY)) return null;
    return {
      waiter: { ...this.job(layout, {}), argv: [this.shell, "-c", SHELL_WAITER] },
      handOver: (run) => shellHandOver(run),
    };
  }

  /** What every run of this runner has: the result helper, PATH, the result fd, the caller's variables. */
  private job(layout: Layout, env: Record<string, string>): Job {
    return {
      runner: this.name,
      argv: [],
      files: [{ path: "bin/cordon-result", content: RESULT_HELPER, mode: 0o755 }],
      readOnlyBinds: [],
      env: { PATH: `${layout.jobDir}/bin:/usr/local/bin:/usr/bin:/bin`, [RESULT_FD_ENV]: String(RESULT_FD), ...env },
      // `cordon-result ok|warn|crit|unknown [MESSAGE] [NAME=NUMBER ...]`, or JSON to fd 4; else exit 0/1/2 map to ok/warn/crit.
      result: { exitCodeFallback: true },
      addressSpaceLimitSafe: true,
    };
  }
}

/** Clears the environment before the run's command (coreutils, under the sandbox's read-only /usr). */
const ENV_BINARY = "/usr/bin/env";

/**
 * The shell waiter. `read -r` takes one line, so a newline inside a word travels as
 * '"$nl"' (nl holds one); nothing else in a single-quoted word is special. Neither nl nor
 * job is exported, and env -i starts the command with the run's variables only.
 */
const SHELL_WAITER = `nl='\n'; IFS= read -r job <&${JOB_FD} || exit 125; exec ${JOB_FD}<&-; eval "$job"`;

/** One word for the waiter's eval: single-quoted, a quote as '\'', a newline as '"$nl"'. */
function shellWord(word: string): string {
  return `'${word.replaceAll("'", "'\\''").replaceAll("\n", `'"$nl"'`)}'`;
}

const encoder = new TextEncoder();

function shellHandOver(run: PlannedCommand): Uint8Array | null {
  const names = Object.keys(run.env);
  // env(1) takes NAME=VALUE up to the first word without "=": a name must be plain, the command absolute.
  if (names.some((n) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(n)) || !run.command[0]?.startsWith("/") || run.command[0].includes("=")) return null;
  const words = [ENV_BINARY, "-i", ...names.map((n) => `${n}=${run.env[n]}`), ...run.command];
  return encoder.encode(`exec ${words.map(shellWord).join(" ")}\n`);
}

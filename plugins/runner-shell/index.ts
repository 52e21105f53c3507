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
   * unsets what the waiter exports, exports the run's variables and execs the run's command,
   * every word single-quoted: the shell becomes the run's command with exactly its
   * environment, as bwrap would have exec'd it.
   */
  warm(layout: Layout): WarmStart | null {
    if (!existsSync(this.shell)) return null;
    return {
      waiter: { ...this.job(layout, {}), argv: [this.shell, "-c", SHELL_WAITER] },
      handOver: shellHandOver,
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

/**
 * The shell waiter. It acknowledges the line with one byte (the supervisor starts the run
 * cold if the waiter dies before that). `read -r` takes one line, so a newline inside a word travels as '"$1"':
 * the waiter's only positional parameter holds one, and no variable of the run can change a
 * positional parameter (a variable named nl could, once exported). nl and job are not
 * exported; the hand-over unsets what is.
 */
const SHELL_WAITER = `nl='\n'; IFS= read -r job <&${JOB_FD} || exit 125; printf . >&${JOB_FD}; exec ${JOB_FD}<&-; set -- "$nl"; eval "$job"`;

/**
 * The most a shell hand-over may be: dash's read(1) takes one byte per read(2), inside the
 * sandbox and on the run's CPU budget. A larger run starts cold (a run never waits for the pool).
 */
const MAX_SHELL_HAND_OVER_BYTES = 64 * 1024;

/** One word for the waiter's eval: single-quoted, a quote as '\'', a newline as '"$1"'. */
function shellWord(word: string): string {
  return `'${word.replaceAll("'", "'\\''").replaceAll("\n", `'"$1"'`)}'`;
}

const encoder = new TextEncoder();

/** What the waiting shell exports besides its own variables: dash sets and exports PWD (and OLDPWD after a cd). */
const SHELL_EXPORTS = ["PWD", "OLDPWD"];

/**
 * `unset` every variable the waiter exports, `export` the run's (one command: its words are
 * expanded before any is set), then `exec` the run's command: exactly the environment a cold
 * start's exec gives. Builtins all: no value of the run appears on any process's command
 * line (an env(1) in between put every variable, secrets too, in a host-readable argv).
 */
function shellHandOver(run: PlannedCommand, waiter: PlannedCommand): Uint8Array | null {
  const names = Object.keys(run.env);
  const plain = (n: string) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(n);
  if (!names.every(plain) || !Object.keys(waiter.env).every(plain)) return null;
  const unset = [...new Set([...SHELL_EXPORTS, ...Object.keys(waiter.env)])];
  const exports = names.length ? [`export ${names.map((n) => shellWord(`${n}=${run.env[n]}`)).join(" ")}`] : [];
  const line = [`unset ${unset.join(" ")}`, ...exports, `exec ${run.command.map(shellWord).join(" ")}`].join("; ");
  const bytes = encoder.encode(`${line}\n`);
  return bytes.length <= MAX_SHELL_HAND_OVER_BYTES ? bytes : null;
}

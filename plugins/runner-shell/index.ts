import { existsSync, readFileSync } from "node:fs";
import { JobInputError, loadScript, RESULT_FD, RESULT_FD_ENV, type Job, type Layout, type Runner, type RunnerOptions, type ScriptRequest } from "../../src/api/plugin.ts";

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
    return {
      runner: this.name,
      // $0 is the script's own name, as when a user runs it directly.
      argv: [this.shell, `${layout.jobDir}/${file}`, ...request.args],
      files: [
        { path: file, content: script.content },
        { path: "bin/cordon-result", content: RESULT_HELPER, mode: 0o755 },
      ],
      readOnlyBinds: [],
      env: { PATH: `${layout.jobDir}/bin:/usr/local/bin:/usr/bin:/bin`, [RESULT_FD_ENV]: String(RESULT_FD), ...request.env },
      ...(request.stdin ? { stdin: request.stdin } : {}),
      // `cordon-result ok|warn|crit|unknown [MESSAGE] [NAME=NUMBER ...]`, or JSON to fd 4; else exit 0/1/2 map to ok/warn/crit.
      result: { exitCodeFallback: true },
      addressSpaceLimitSafe: true,
    };
  }
}

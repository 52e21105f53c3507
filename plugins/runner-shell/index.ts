import { existsSync } from "node:fs";
import { JobInputError, loadScript, type Job, type Layout, type Runner, type RunnerOptions, type ScriptRequest } from "../../src/index.ts";

/** POSIX shell scripts, run by /bin/sh inside the sandbox (dash on Debian). */
export class ShellRunner implements Runner {
  readonly name = "shell";
  readonly description = "POSIX shell script run by /bin/sh";
  readonly extensions = [".sh"] as const;

  constructor(private readonly shell = "/bin/sh") {}

  prepare(request: ScriptRequest, layout: Layout, options: RunnerOptions): Job {
    if (!existsSync(this.shell)) throw new JobInputError(`shell interpreter ${this.shell} not found`);
    const script = loadScript(request.script, options.maxScriptBytes);
    const file = "script.sh";
    return {
      runner: this.name,
      // $0 is the script's own name, as when a user runs it directly.
      argv: [this.shell, `${layout.jobDir}/${file}`, ...request.args],
      files: [{ path: file, content: script.content }],
      readOnlyBinds: [],
      env: { ...request.env },
      ...(request.stdin ? { stdin: request.stdin } : {}),
      addressSpaceLimitSafe: true,
    };
  }
}

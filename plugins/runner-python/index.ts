import { existsSync, readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import {
  interpreterWarmStart,
  JobInputError,
  loadScript,
  RESULT_FD,
  RESULT_FD_ENV,
  type Job,
  type Layout,
  type ReadOnlyBind,
  type Runner,
  type RunnerOptions,
  type ScriptRequest,
  type SandboxUser,
  type WarmStart,
} from "../../src/api/plugin.ts";
import { resolvePython, type PythonInstall } from "./interpreter.ts";

const BOOT = readFileSync(new URL("./boot.py", import.meta.url));
const HELPER = readFileSync(new URL("./lib/cordon.py", import.meta.url));

export interface PythonRunnerOptions {
  /** A name on PATH or an absolute path; resolved to the real interpreter. Default "python3". */
  interpreter?: string;
  /** Read-only package directories or zip files put on sys.path (e.g. a pre-built bundle). */
  packagePaths?: string[];
}

/** Where package paths appear inside the sandbox. */
const PACKAGES_DIR = "/cordon/packages";

function packageBinds(paths: readonly string[]): ReadOnlyBind[] {
  return paths.map((source, i) => {
    if (!source.startsWith("/")) throw new JobInputError(`python package path ${source} must be absolute`);
    if (!existsSync(source)) throw new JobInputError(`python package path ${source} does not exist`);
    const st = statSync(source);
    if (!st.isDirectory() && !st.isFile()) throw new JobInputError(`python package path ${source} is neither a directory nor a zip file`);
    return { source, target: `${PACKAGES_DIR}/${i}-${basename(source)}` };
  });
}

/** Python scripts, isolated from the host's site-packages and environment (-I), no bytecode writes (-B). */
export class PythonRunner implements Runner {
  readonly name = "python";
  readonly description = "Python 3 script (python3 -I -B), cwd = scratch, `import cordon` for structured results";
  readonly extensions = [".py"] as const;
  private readonly resolved = new Map<string, PythonInstall & { skipped: string[] }>();

  constructor(private readonly options: PythonRunnerOptions = {}) {}

  /** Resolved once per sandbox user: asking the interpreter costs a spawn. */
  interpreter(user: SandboxUser | null): PythonInstall & { skipped: string[] } {
    const key = user ? `${user.uid}:${user.gid}` : "self";
    let install = this.resolved.get(key);
    if (!install) {
      install = resolvePython(this.options.interpreter ?? "python3", user);
      this.resolved.set(key, install);
    }
    return install;
  }

  prepare(request: ScriptRequest, layout: Layout, options: RunnerOptions): Job {
    const script = loadScript(request.script, options.maxScriptBytes, options.scriptReader);
    const job = this.job(layout, options, request.env ?? {});
    const file = `main/${scriptFileName(script.name)}`;
    return {
      ...job,
      argv: [...job.argv, `${layout.jobDir}/${file}`, ...request.args],
      // Alone in its directory: sys.path[0] is the script's dir, so nothing of cordon's shadows an import.
      files: [...job.files, { path: file, content: script.content }],
      ...(request.stdin ? { stdin: request.stdin } : {}),
    };
  }

  /**
   * The waiter: the interpreter starts with boot.py in warm mode and blocks on JOB_FD. Given
   * a run whose interpreter, flags and start-up variables are its own, it runs the script
   * in-process (the start-up is already paid); otherwise it execs the run's command.
   */
  warm(layout: Layout, options: RunnerOptions): WarmStart {
    return interpreterWarmStart(this.job(layout, options, {}), START_UP_VARIABLES, "exec");
  }

  /** What every run of this interpreter has: argv up to boot.py, the bootstrap and helper, binds, variables. */
  private job(layout: Layout, options: RunnerOptions, env: Record<string, string>): Job {
    const python = this.interpreter(options.sandboxUser);
    const packages = packageBinds(this.options.packagePaths ?? []);
    return {
      runner: this.name,
      argv: [python.executable, "-I", "-B", `${layout.jobDir}/boot.py`],
      files: [
        { path: "boot.py", content: BOOT },
        { path: "lib/cordon.py", content: HELPER },
      ],
      readOnlyBinds: [...python.prefixes.map((p) => ({ source: p, target: p })), ...packages],
      env: {
        [RESULT_FD_ENV]: String(RESULT_FD),
        PYTHONDONTWRITEBYTECODE: "1",
        PYTHONUNBUFFERED: "1",
        // glibc reserves 64 MiB of address space per malloc arena: under a per-process
        // RLIMIT_AS (no cgroup) a thread pool would otherwise fail after a handful of threads.
        MALLOC_ARENA_MAX: "2",
        ...(packages.length ? { CORDON_PYTHON_PACKAGES: packages.map((p) => p.target).join(":") } : {}),
        ...env,
      },
      result: { exitCodeFallback: true },
      addressSpaceLimitSafe: true,
      notes: [
        `interpreter ${python.executable} (Python ${python.version}, asked for ${python.requested})`,
        ...python.skipped.map((s) => `skipped: ${s}`),
      ],
    };
  }
}

/**
 * Variables the interpreter or the C library read only while starting (locale, allocator,
 * loader, Python's own): a run that sets any of them differently from the waiter is exec'd
 * afresh, never run in the already-started interpreter. TZ is re-read (time.tzset).
 */
const START_UP_VARIABLES = /^(LANG|LANGUAGE|LC_.*|PYTHON.*|MALLOC_.*|GLIBC_TUNABLES|LD_.*)$/;

/** Keep the user's file name (tracebacks name it) but never a path, and always .py. */
function scriptFileName(name: string): string {
  const safe = basename(name).replace(/[^A-Za-z0-9._-]/g, "_") || "script";
  return safe.endsWith(".py") ? safe : `${safe}.py`;
}

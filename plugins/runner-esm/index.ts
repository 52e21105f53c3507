import { readFileSync, realpathSync } from "node:fs";
import { basename, extname } from "node:path";
import { z } from "zod";
import {
  describeIssues,
  firstUnreachableAncestor,
  interpreterWarmStart,
  JobInputError,
  loadScript,
  RESULT_FD,
  RESULT_FD_ENV,
  zodIssues,
  type Job,
  type Layout,
  type Runner,
  type RunnerOptions,
  type SandboxUser,
  type ScriptRequest,
  type WarmStart,
} from "../../src/api/plugin.ts";
import { normalizeEsmPayload } from "./result.ts";

const HARNESS = readFileSync(new URL("./harness.mjs", import.meta.url));
/** An empty Bun config, staged read-only: what Bun reads instead of a bunfig.toml in the cwd. */
const CONFIG_FILE = "bunfig.toml";

export interface EsmRunnerOptions {
  /** The Bun binary run inside the sandbox; default: the one running cordon. */
  bun?: string;
}

/**
 * module: the script's default export is `(ctx) => result | Promise<result>`.
 * inline: the script is a function body (checkstack style: `return { success: true, message, value }`).
 */
export const EsmRequestOptions = z.strictObject({ form: z.enum(["module", "inline"]).default("module") }).default({ form: "module" });

const MODULE_EXTENSIONS = [".ts", ".mts", ".js", ".mjs"];

/** The user's code as a module file: kept as is, or an inline body wrapped into a default export. */
function userModule(name: string, content: Uint8Array, form: "module" | "inline"): { file: string; content: Uint8Array | string } {
  if (form === "inline") {
    const body = new TextDecoder().decode(content);
    return { file: "check.ts", content: `export default async function check(ctx: { args: string[]; env: Record<string, string | undefined> }) {\n${body}\n}\n` };
  }
  const ext = extname(name);
  const stem = basename(name, ext).replace(/[^A-Za-z0-9._-]/g, "_") || "script";
  return { file: `${stem}${MODULE_EXTENSIONS.includes(ext) ? ext : ".ts"}`, content };
}

function resolveBun(requested: string | undefined, user: SandboxUser | null): string {
  const candidate = requested ?? process.execPath;
  let bun: string;
  try {
    bun = realpathSync(candidate);
  } catch {
    throw new JobInputError(`bun interpreter ${candidate} not found`);
  }
  const blocked = user && firstUnreachableAncestor(bun, user);
  if (blocked) throw new JobInputError(`bun interpreter ${bun} is not reachable by the sandbox uid ${user.uid} (${blocked} is not searchable for it); install Bun under a world-searchable directory such as /usr/local`);
  return bun;
}

/** JavaScript/TypeScript ES modules run by Bun inside the sandbox; the return value is the result. */
export class EsmRunner implements Runner {
  readonly name = "esm";
  readonly description = "JavaScript/TypeScript ES module run by Bun; its default export's return value is the result";
  readonly extensions = MODULE_EXTENSIONS;

  constructor(private readonly options: EsmRunnerOptions = {}) {}

  prepare(request: ScriptRequest, layout: Layout, options: RunnerOptions): Job {
    const parsed = EsmRequestOptions.safeParse(request.options);
    if (!parsed.success) throw new JobInputError(`invalid esm runner options: ${describeIssues(zodIssues(parsed.error))}`);
    const script = loadScript(request.script, options.maxScriptBytes, options.scriptReader);
    const module = userModule(script.name, script.content, parsed.data.form);
    const job = this.job(layout, options, request.env ?? {});
    return {
      ...job,
      argv: [...job.argv, `${layout.jobDir}/main/${module.file}`, ...request.args],
      files: [...job.files, { path: `main/${module.file}`, content: module.content }],
      ...(request.stdin ? { stdin: request.stdin } : {}),
      notes: [`${job.notes![0]!} (${parsed.data.form} form)`],
    };
  }

  /**
   * The waiter: Bun starts the harness in warm mode and blocks on JOB_FD; the harness then
   * imports the run's module in this process. Bun cannot exec, so a run whose Bun, flags or
   * start-up variables differ from the waiter's is not handed over (it starts cold).
   */
  warm(layout: Layout, options: RunnerOptions): WarmStart {
    return interpreterWarmStart(this.job(layout, options, {}), START_UP_VARIABLES, "cold");
  }

  /** What every run of this runner has: Bun and its flags up to the harness, its files and variables. */
  private job(layout: Layout, options: RunnerOptions, env: Record<string, string>): Job {
    const bun = resolveBun(this.options.bun, options.sandboxUser);
    const inUsr = bun.startsWith("/usr/");
    return {
      runner: this.name,
      // --no-install: an import of a missing package must fail, not try to download it.
      // The cwd is scratch, where input files land: Bun must not take its configuration from
      // there (a bunfig.toml `preload` would run before the harness) nor load `.env` files
      // into the environment. --config names an empty file in the read-only job directory
      // (Bun then reads no bunfig.toml of the cwd), --no-env-file turns every .env file off.
      argv: [bun, "--no-install", "--no-env-file", `--config=${layout.jobDir}/${CONFIG_FILE}`, `${layout.jobDir}/harness.mjs`],
      files: [
        { path: CONFIG_FILE, content: "" },
        { path: "harness.mjs", content: HARNESS },
      ],
      readOnlyBinds: inUsr ? [] : [{ source: bun, target: bun }],
      env: {
        [RESULT_FD_ENV]: String(RESULT_FD),
        // No transpiler cache writes, no telemetry attempts.
        BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0",
        DO_NOT_TRACK: "1",
        ...env,
      },
      result: { exitCodeFallback: false, normalize: normalizeEsmPayload },
      // Bun reserves tens of GiB of address space at start and ignores heap-size flags:
      // its memory can only be capped by a cgroup, never reported as a heap cap.
      addressSpaceLimitSafe: false,
      notes: [`bun ${bun}`],
    };
  }
}

/**
 * Variables Bun or the C library read only while starting (Bun's and Node's own, locale,
 * allocator, loader, time zone, proxies; PATH for Bun.which and command lookup, HOME for
 * os.homedir, the terminal and colour ones for console output): a run that sets any of them
 * differently from the waiter is not handed over to it.
 */
const START_UP_VARIABLES = /^(BUN_.*|NODE_.*|LANG|LANGUAGE|LC_.*|TZ|MALLOC_.*|GLIBC_TUNABLES|LD_.*|.*_PROXY|.*_proxy|DO_NOT_TRACK|PATH|HOME|TMPDIR|USER|LOGNAME|SHELL|TERM|COLORTERM|FORCE_COLOR|NO_COLOR|CI)$/;

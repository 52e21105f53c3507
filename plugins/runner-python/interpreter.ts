/**
 * Finding the Python the sandbox will run: a name on PATH or a path, resolved to the real
 * interpreter (pyenv shims are scripts that exec the real one, so the interpreter itself is
 * asked), plus the directories it needs bound read-only when it lives outside /usr.
 */
import { realpathSync } from "node:fs";
import { delimiter, join } from "node:path";
import { firstUnreachableAncestor, JobInputError, type SandboxUser } from "../../src/api/plugin.ts";

export interface PythonInstall {
  /** As the user named it. */
  requested: string;
  /** The real interpreter binary. */
  executable: string;
  version: string;
  /** Install prefixes outside /usr, bound read-only at the same path. */
  prefixes: string[];
}

const ASK = "import json, sys; print(json.dumps({'executable': sys.executable, 'prefix': sys.prefix, 'base_prefix': sys.base_prefix, 'version': sys.version.split()[0]}))";

/** Run the candidate on the host (trusted config, not the untrusted script) and ask where it lives. */
function ask(candidate: string): PythonInstall | string {
  let r;
  try {
    r = Bun.spawnSync([candidate, "-I", "-c", ASK], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/" }, stdin: "ignore" });
  } catch (e) {
    return `${candidate} cannot be run: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
  }
  if (!r.success) return `${candidate} did not run: ${r.stderr.toString().trim().split("\n").at(-1) ?? `exit ${r.exitCode}`}`;
  try {
    const info = JSON.parse(r.stdout.toString()) as { executable: string; prefix: string; base_prefix: string; version: string };
    const executable = realpathSync(info.executable);
    const prefixes = [...new Set([info.base_prefix, info.prefix].map((p) => realpathSync(p)))].filter((p) => p !== "/usr" && !p.startsWith("/usr/"));
    return { requested: candidate, executable, version: info.version, prefixes };
  } catch (e) {
    return `${candidate} gave no usable answer: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** Every `name` on PATH, in order, then the system one. */
function candidates(name: string): string[] {
  if (name.includes("/")) return [name];
  const onPath = (process.env.PATH ?? "").split(delimiter).filter(Boolean).map((dir) => join(dir, name));
  return [...new Set([...onPath, `/usr/bin/${name}`])].filter((p) => Bun.which(p) !== null);
}

function unreachable(install: PythonInstall, user: SandboxUser | null): string | null {
  if (!user) return null;
  // The binary's directories, and each prefix directory itself, must be searchable.
  for (const path of [install.executable, ...install.prefixes.map((p) => `${p}/.`)]) {
    const blocked = firstUnreachableAncestor(path, user);
    if (blocked) return `${install.executable} is not reachable by the sandbox uid ${user.uid} (${blocked} is not searchable for it)`;
  }
  return null;
}

/**
 * The first candidate the sandbox user can reach. A configured path must work as given;
 * for a bare name, later PATH entries are tried and what was skipped is said.
 */
export function resolvePython(name: string, user: SandboxUser | null): PythonInstall & { skipped: string[] } {
  const skipped: string[] = [];
  for (const candidate of candidates(name)) {
    const install = ask(candidate);
    const problem = typeof install === "string" ? install : unreachable(install, user);
    if (!problem && typeof install !== "string") return { ...install, skipped };
    skipped.push(problem!);
  }
  throw new JobInputError(`no usable Python interpreter for "${name}"${skipped.length ? `: ${skipped.join("; ")}` : ": not found"}`);
}

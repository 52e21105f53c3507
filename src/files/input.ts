/**
 * Input files: { path, content } entries staged into scratch before the run.
 * Everything is checked here, before anything is created or spawned.
 */
import { posix } from "node:path";
import { JobInputError } from "../errors.ts";

export interface InputFile {
  /** Relative to scratch (the script's working directory). */
  path: string;
  content: string | Uint8Array;
  /** Make it executable (0755 instead of 0644). */
  executable?: boolean;
}

export interface StagedInput {
  path: string;
  content: Uint8Array;
  mode: number;
}

export interface InputLimits {
  maxCount: number;
  maxTotalBytes: number;
}

export const MAX_PATH_BYTES = 1024;
const MAX_NAME_BYTES = 255;

/** The normalized relative path; a path that is refused throws JobInputError saying why. */
function checkPath(raw: string): string {
  if (typeof raw !== "string" || raw.length === 0) throw new JobInputError("input file path is empty");
  if (raw.includes("\0")) throw new JobInputError(`input file path ${JSON.stringify(raw)} contains a NUL byte`);
  if (raw.startsWith("/")) throw new JobInputError(`input file path ${raw} is absolute; paths are relative to scratch`);
  if (Buffer.byteLength(raw) > MAX_PATH_BYTES) throw new JobInputError(`input file path ${raw.slice(0, 64)}… is longer than ${MAX_PATH_BYTES} bytes`);
  const path = posix.normalize(raw);
  if (path === ".." || path.startsWith("../")) throw new JobInputError(`input file path ${raw} leaves scratch through ..`);
  if (path === "." || path.endsWith("/")) throw new JobInputError(`input file path ${raw} names a directory, not a file`);
  for (const name of path.split("/")) {
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw new JobInputError(`input file path ${raw} has a component longer than ${MAX_NAME_BYTES} bytes`);
  }
  return path;
}

/** Every proper ancestor directory of a relative path ("a/b/c" → "a", "a/b"). */
function ancestors(path: string): string[] {
  const parts = path.split("/");
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join("/"));
}

/** Validate and normalize input files; throws JobInputError naming the first bad entry. */
export function validateInputFiles(files: readonly InputFile[], limits: InputLimits): StagedInput[] {
  if (files.length > limits.maxCount) throw new JobInputError(`too many input files: ${files.length} (limit ${limits.maxCount})`);
  const staged: StagedInput[] = [];
  const filePaths = new Set<string>();
  const dirPaths = new Set<string>();
  let total = 0;
  for (const file of files) {
    const path = checkPath(file.path);
    const content = typeof file.content === "string" ? new TextEncoder().encode(file.content) : file.content;
    if (!(content instanceof Uint8Array)) throw new JobInputError(`input file ${path}: content must be a string or bytes`);
    total += content.length;
    if (total > limits.maxTotalBytes) throw new JobInputError(`input files exceed ${limits.maxTotalBytes} bytes in total`);
    if (filePaths.has(path)) throw new JobInputError(`input file ${path} is given twice`);
    if (dirPaths.has(path)) throw new JobInputError(`input file ${path} collides with a directory of another input file`);
    for (const dir of ancestors(path)) {
      if (filePaths.has(dir)) throw new JobInputError(`input file ${path} needs ${dir} to be a directory, but it is an input file`);
      dirPaths.add(dir);
    }
    filePaths.add(path);
    staged.push({ path, content, mode: file.executable ? 0o755 : 0o644 });
  }
  return staged;
}

/**
 * What the launcher itself says about a run, read from LAUNCHER_STATUS_FD (fd 3): a channel the launcher
 * writes and the sandboxed script never holds. "Did the sandbox start?" and "which pid
 * is the namespace's init?" are decided from here and never from stderr, which the
 * script owns and can make say anything ("bwrap: Can't mount proc …").
 */
import { readFileSync } from "node:fs";

/**
 * bwrap --json-status-fd: one JSON document a line. `{"child-pid": N, …}` once its child
 * exists; `{"exit-code": N}` at the end ONLY when the command was exec'd (bwrap tracks
 * the exec with a close-on-exec pipe), so its absence means setup failed before the
 * command ran. Checked by hand, not with a schema: the supervisor reads this file at every
 * poll while it waits for the child (every 2 ms), and a CLI run should not build a schema for it.
 */
const isObject = (doc: unknown): doc is Record<string, unknown> => typeof doc === "object" && doc !== null && !Array.isArray(doc);
const childPidOf = (doc: unknown): number | null => {
  const pid = isObject(doc) ? doc["child-pid"] : undefined;
  return typeof pid === "number" && Number.isInteger(pid) && pid > 0 ? pid : null;
};
const isExitCodeLine = (doc: unknown): boolean => isObject(doc) && Number.isInteger(doc["exit-code"]);

export interface LaunchStatus {
  /** The launcher reported its child (the pid namespace's init). */
  childPid: number | null;
  /** The launcher exec'd the planned command (the script started), or null when this launcher cannot tell. */
  commandStarted: boolean | null;
  /** The launcher's own error lines (nsjail's log), if it has a separate log. */
  launcherErrors: string[];
}

export type StatusChannel = "bwrap-json-status" | "nsjail-log";

function completeLines(text: string): string[] {
  const end = text.lastIndexOf("\n");
  return end < 0 ? [] : text.slice(0, end).split("\n").filter((l) => l.trim() !== "");
}

export function parseLaunchStatus(kind: StatusChannel, text: string): LaunchStatus {
  if (kind === "nsjail-log") {
    // nsjail's own log (log_fd): [E]rror and [F]atal lines are nsjail failing, never the script.
    const launcherErrors = completeLines(text).filter((l) => /^\[[EF]\]/.test(l));
    return { childPid: null, commandStarted: null, launcherErrors };
  }
  let childPid: number | null = null;
  let commandStarted = false;
  for (const line of completeLines(text)) {
    let doc: unknown;
    try {
      doc = JSON.parse(line);
    } catch {
      continue; // a torn or foreign line proves nothing
    }
    childPid ??= childPidOf(doc);
    if (isExitCodeLine(doc)) commandStarted = true;
  }
  return { childPid, commandStarted, launcherErrors: [] };
}

export function readLaunchStatus(kind: StatusChannel, path: string): LaunchStatus {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    // not created: nothing reported
  }
  return parseLaunchStatus(kind, text);
}

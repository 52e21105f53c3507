/**
 * One job: which ids of a range something on this host already uses, so the pool never
 * hands a run a uid that another account or a live process has. Looked up at every
 * allocation (a single pass over /proc and the account files), never cached: an id is
 * free only if nothing uses it now.
 */
import { readdirSync, readFileSync } from "node:fs";
import { inRange, type IdentityRange } from "./range.ts";

/** Account databases read directly: the ids in their third field (passwd: uid and gid in fields 3 and 4). */
const ACCOUNT_FILES: { path: string; fields: number[] }[] = [
  { path: "/etc/passwd", fields: [2, 3] },
  { path: "/etc/group", fields: [2] },
];

/**
 * Ids of the range named by /etc/passwd (uid, primary gid) or /etc/group. Only the files:
 * accounts served by LDAP or another NSS source are not seen (keep the range out of theirs).
 */
export function accountIdsIn(range: IdentityRange, files = ACCOUNT_FILES): Set<number> {
  const ids = new Set<number>();
  for (const { path, fields } of files) {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch {
      continue; // no such database on this host
    }
    for (const line of text.split("\n")) {
      const cols = line.split(":");
      for (const f of fields) {
        const id = Number(cols[f]);
        if (cols[f] !== undefined && cols[f] !== "" && inRange(range, id)) ids.add(id);
      }
    }
  }
  return ids;
}

/** "Uid:\t0\t0\t0\t0" → the four numbers (real, effective, saved, filesystem). */
function idsOf(status: string, field: "Uid" | "Gid"): number[] {
  const m = new RegExp(`^${field}:\\s*(.*)$`, "m").exec(status);
  return (m?.[1] ?? "").split(/\s+/).filter(Boolean).map(Number);
}

/**
 * Ids of the range any live host process runs as (real, effective, saved or filesystem uid
 * or gid), in every pid namespace this one can see: a run's leftover process, a process some
 * service started under that id, a sandbox of another supervisor.
 *
 * Zombies do not count: a dead process holds no file, no memory, no inotify instance or key,
 * and cannot be signalled into doing anything. They are common: bwrap's outer process exits
 * as soon as the sandbox's init reported the command's status, so that init is reaped by the
 * host's pid 1, which on some hosts takes seconds (measured ~1.8 s on these VMs), long after
 * the run was cleaned up.
 */
export async function processIdsIn(range: IdentityRange, proc = "/proc", options: { blocking?: boolean } = {}): Promise<Set<number>> {
  // node:fs/promises only when needed: loading it costs a CLI start ~4 ms.
  const fsp = options.blocking ? null : await import("node:fs/promises");
  let pids: string[] = [];
  try {
    pids = (fsp ? await fsp.readdir(proc) : readdirSync(proc)).filter((n) => /^\d+$/.test(n));
  } catch {
    return new Set(); // no /proc: nothing to say (the claim files still keep supervisors apart)
  }
  // Read in parallel, off the event loop: a few hundred status files take tens of ms on a
  // loaded host, and a blocked loop would delay other runs' timers (wall clocks) and pumps.
  // With nothing else in flight (`blocking`: a CLI's one run) plain reads are cheaper: ~2 ms
  // for 150 processes here, against ~15 ms for the first parallel scan (the thread pool starts).
  const statuses = fsp
    ? await Promise.all(pids.map((pid) => fsp.readFile(`${proc}/${pid}/status`, "utf8").catch(() => null)))
    : pids.map((pid) => readStatus(`${proc}/${pid}/status`));
  return idsInStatuses(range, statuses);
}

function readStatus(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null; // gone meanwhile
  }
}

function idsInStatuses(range: IdentityRange, statuses: readonly (string | null)[]): Set<number> {
  const ids = new Set<number>();
  for (const status of statuses) {
    if (status === null) continue; // gone meanwhile
    if (/^State:\s*[ZX]/m.test(status)) continue; // zombie or dead: holds nothing any more
    for (const id of [...idsOf(status, "Uid"), ...idsOf(status, "Gid")]) if (inRange(range, id)) ids.add(id);
  }
  return ids;
}

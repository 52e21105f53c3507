import type { Policy } from "../policy/index.ts";
import type { ReadinessCell, ReadinessReport } from "./types.ts";

/** The readiness cells a policy relies on: what must be proven before a run of it goes ahead under `fail`. */
export function cellsNeeded(policy: Policy): ReadinessCell[] {
  const needed: ReadinessCell[] = ["memory", "pids", "cpu", "wall", "fsize", "output", "privilege", "env", "identity"];
  if (policy.filesystem.mode === "scratch") needed.unshift("filesystem");
  // Only a fresh namespace is probed (allowlist and unrestricted egress are tested by the rootless suite).
  if (policy.network.mode === "deny") needed.splice(1, 0, "network");
  // The syscall filter's attacks: only a policy that asks for the filter relies on them.
  if (policy.privilege.seccomp) needed.push("seccomp");
  return needed;
}

/** Cells a policy relies on that a provider's readiness did not prove (none when it was not probed). */
export function unprovenCells(policy: Policy, cells: ReadinessReport["cells"] | undefined): ReadinessCell[] {
  return cells ? cellsNeeded(policy).filter((c) => cells[c].status !== "proven") : [];
}

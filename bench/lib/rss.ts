/** The supervisor's own memory, from /proc/self/status (kB there, bytes here). */
import { readFileSync, writeFileSync } from "node:fs";

function statusField(name: "VmRSS" | "VmHWM"): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(readFileSync("/proc/self/status", "utf8"));
  if (!m) throw new Error(`bench: no ${name} in /proc/self/status`);
  return Number(m[1]) * 1024;
}

export const rss = () => statusField("VmRSS");
/** The peak RSS since the process started or since resetPeakRss. */
export const peakRss = () => statusField("VmHWM");

/** Reset VmHWM to the current RSS (clear_refs "5"), so the next peak is the next phase's own. */
export function resetPeakRss(): void {
  writeFileSync("/proc/self/clear_refs", "5");
}

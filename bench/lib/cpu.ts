/**
 * CPU time spent during a batch of runs: the supervisor's own (this process, user + system)
 * and the whole host's (every CPU's busy time in /proc/stat, so other work on the host
 * counts too: an upper bound of what the runs cost). On 2 cores, runs/s can never exceed
 * 2000 / (host CPU ms per run): the number that says how far a goal is from reach.
 */
import { readFileSync } from "node:fs";

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** Busy jiffies of all CPUs (everything but idle and iowait), in ms. */
export function hostBusyMs(): number {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) * TICK_MS;
}

export interface CpuMeter {
  /** CPU ms since the meter started: this process's, and the host's (all processes). */
  read(): { supervisorMs: number; hostMs: number };
}

export function startCpuMeter(): CpuMeter {
  const own = process.cpuUsage();
  const host = hostBusyMs();
  return {
    read() {
      const d = process.cpuUsage(own);
      return { supervisorMs: (d.user + d.system) / 1000, hostMs: hostBusyMs() - host };
    },
  };
}

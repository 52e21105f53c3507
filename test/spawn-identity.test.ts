/**
 * A run without a run cgroup drops root with Bun.spawn's uid/gid (no setpriv process):
 * the launcher on the host runs as the run's own uid with no groups and no capabilities,
 * and the sandboxed command still has no_new_privs (bwrap sets it before exec). A run
 * with a cgroup keeps setpriv after the join shell (which writes the procs files as root).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { describeResult, freshRunRoot, IS_ROOT, isSandboxHostUid, makeCordon, processesWithMarker, readProc, removeTempDirs, sleepMarker, waitFor } from "./support.ts";
import { hostFacts } from "../src/host.ts";

afterAll(() => removeTempDirs());

/** The status lines of a process: Uid, Gid, Groups, CapEff, NoNewPrivs. */
function statusOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of (readProc(pid, "status") ?? "").split("\n")) {
    const m = /^(Uid|Gid|Groups|CapEff|CapPrm|NoNewPrivs):\s*(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.trim().replace(/\s+/g, " ");
  }
  return out;
}

const rootOnly = IS_ROOT ? test : test.skip;

describe("the host identity drop at spawn", () => {
  rootOnly("cgroups off: bwrap is spawned as the run's uid (no setpriv), no groups, no capabilities; the command has no_new_privs", async () => {
    const cordon = makeCordon(freshRunRoot(), { cgroups: "off" });
    const marker = sleepMarker(30);
    const running = cordon.run({ runner: "shell", script: { source: `sleep ${marker} & wait` }, args: [], verify: true });
    expect(await waitFor(() => processesWithMarker(marker).length > 0, 10_000)).toBe(true);
    // Up from the sleep to the launcher the test spawned: every process of the run on the way.
    const chain: number[] = [];
    for (let pid: number | undefined = processesWithMarker(marker)[0]!.pid; pid && pid !== process.pid; ) {
      chain.push(pid);
      pid = Number(/^PPid:\s+(\d+)$/m.exec(readProc(pid, "status") ?? "")?.[1] ?? 0);
    }
    const statuses = chain.map(statusOf); // read while all are alive
    const comms = chain.map((pid) => (readProc(pid, "comm") ?? "").trim());
    const launcherStatus = statuses.at(-1)!;
    const killSleep = processesWithMarker(marker)[0]!;
    process.kill(killSleep.pid, "SIGKILL");
    const r = await running;

    expect(comms.at(-1)).toBe("bwrap"); // spawned directly: no setpriv, no sh in front
    expect(comms).not.toContain("setpriv");
    const uid = r.receipt?.hostUid ?? null;
    expect(isSandboxHostUid(uid), describeResult(r)).toBe(true);
    expect(uid).not.toBe(0);
    expect(launcherStatus.Uid).toBe(`${uid} ${uid} ${uid} ${uid}`);
    expect(launcherStatus.Gid).toBe(`${uid} ${uid} ${uid} ${uid}`);
    expect(launcherStatus.Groups).toBe("");
    expect(launcherStatus.CapEff).toBe("0000000000000000");
    expect(launcherStatus.CapPrm).toBe("0000000000000000");
    // The script's processes (not bwrap's own two): no_new_privs, set by bwrap before exec.
    const script = statuses.filter((_, i) => comms[i] !== "bwrap");
    expect(script.length).toBeGreaterThanOrEqual(2); // sh and sleep
    for (const st of script) expect(st.NoNewPrivs).toBe("1");
    expect(r.receipt?.noNewPrivs).toBe(true);
    expect(r.receipt?.capEff).toBe("0000000000000000");
    expect(r.sandbox?.layers.privilege.controls.noNewPrivs?.status).toBe("enforced");
    expect(r.sandbox!.argv[0]).toBe(`<spawned as uid ${uid} gid ${uid}, no supplementary groups>`);
    expect(r.sandbox!.argv[1]).toMatch(/\/bwrap$/);
  });

  rootOnly("with a run cgroup: setpriv still drops after the join shell", async () => {
    if (hostFacts().cgroups.problem !== null) return console.warn(`skipped: no cgroups here (${hostFacts().cgroups.problem})`);
    const r = await makeCordon().run({ runner: "shell", script: { source: "true" }, args: [], verify: true });
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.sandbox!.argv[0]).toBe("/usr/bin/setpriv");
    expect(r.receipt?.noNewPrivs).toBe(true);
    expect(isSandboxHostUid(r.receipt?.hostUid ?? null)).toBe(true);
  });
});

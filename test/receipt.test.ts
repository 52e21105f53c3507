/** `verify: true`: the run carries what the sandboxed process itself saw, and the script cannot forge it. */
import { afterAll, describe, expect, test } from "bun:test";
import { describeResult, freshRunRoot, isSandboxHostUid, makeCordon, removeTempDirs, runRootEntries } from "./support.ts";

afterAll(removeTempDirs);

describe("per-run receipt", () => {
  test("under bwrap: the run's own host uid (65534 inside), no capabilities, no_new_privs, only lo; the marker is not an output file", async () => {
    const runRoot = freshRunRoot();
    const r = await makeCordon(runRoot).run({ runner: "shell", script: { source: "echo out > made.txt; cordon-result ok fine" }, args: [], verify: true });
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.receipt).toMatchObject({ uidInside: 65534, capEff: "0000000000000000", noNewPrivs: true, interfaces: ["lo"] });
    expect(isSandboxHostUid(r.receipt!.hostUid), `host uid ${r.receipt!.hostUid}`).toBe(true);
    expect(r.receipt!.cgroup.length).toBeGreaterThan(0);
    expect(r.result).toEqual({ status: "ok", message: "fine" }); // the script's result is still its own
    expect(r.files.map((f) => f.path)).toEqual(["made.txt"]);
    expect(runRootEntries(runRoot)).toEqual([]);
  });

  test("under unsafe (degrade) the receipt tells the truth: host root, full capabilities, the host's interfaces", async () => {
    const r = await makeCordon().run({ runner: "shell", provider: "unsafe", policy: { onUnavailable: "degrade" }, script: { source: "true" }, args: [], verify: true });
    expect(r.receipt?.hostUid).toBe(process.getuid!());
    expect(r.receipt?.capEff).not.toBe("0000000000000000");
    expect(r.receipt?.interfaces.some((i) => i !== "lo")).toBe(true);
  });

  test("a script cannot forge a receipt: its own receipt-shaped line comes after the real one and stays its result", async () => {
    const fake = `{"cordonReceipt":"x","uid":"0","capEff":"0000003fffffffff","noNewPrivs":"0","seccomp":"0","interfaces":"eth0","cgroup":"/"}`;
    const r = await makeCordon().run({ runner: "shell", script: { source: `printf '%s\\n' '${fake}' >&4; exit 0` }, args: [], verify: true });
    expect(r.receipt).toMatchObject({ capEff: "0000000000000000" });
    expect(isSandboxHostUid(r.receipt!.hostUid)).toBe(true);
    expect(r.resultError).toContain("status"); // the forged line was read as the script's (invalid) result
  });

  test("without verify there is no receipt and the command is not wrapped", async () => {
    const r = await makeCordon().run({ runner: "shell", script: { source: "true" }, args: [] });
    expect(r.receipt).toBeUndefined();
    expect(r.sandbox!.argv).not.toContain("cordon-receipt");
  });
});

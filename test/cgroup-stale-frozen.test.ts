/**
 * A supervisor that dies between freezing its run cgroup (v1 killAll) and thawing it
 * leaves the run FROZEN: its SIGKILLs stay pending and nothing exits. Stale cleanup must
 * still remove it (and its processes), or every later run sees a live process as the
 * sandbox uid.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { detectCgroups } from "../src/cgroup/detect.ts";
import { removeStaleCgroup } from "../src/cgroup/run-cgroup.ts";

const PARENT = `cordon-stale-test-${process.pid}`;
const facts = detectCgroups(PARENT);
const freezer = facts.controllers.freezer;
const v1Freezer = process.getuid?.() === 0 && freezer?.version === 1 && facts.problem === null;

afterAll(() => {
  if (v1Freezer && freezer) for (const dir of [join(freezer.mount, PARENT)]) if (existsSync(dir)) rmdirSync(dir);
});

test.skipIf(!v1Freezer)("a stale run cgroup left FROZEN with a pending SIGKILL is thawed, emptied and removed", async () => {
  const dir = join(freezer!.mount, PARENT, "run-1-deadbeef");
  mkdirSync(dir, { recursive: true });
  const proc = Bun.spawn(["/bin/sh", "-c", `echo $$ > ${join(dir, "cgroup.procs")}; exec sleep 60`], { stdio: ["ignore", "ignore", "ignore"] });
  for (let i = 0; i < 100 && !readFileSync(join(dir, "cgroup.procs"), "utf8").trim(); i++) await Bun.sleep(10);
  // What a supervisor killed inside killAll leaves: frozen, SIGKILL sent, never thawed.
  writeFileSync(join(dir, "freezer.state"), "FROZEN");
  process.kill(proc.pid, "SIGKILL");
  await removeStaleCgroup([dir]);
  expect(existsSync(dir)).toBe(false);
  expect(await proc.exited).not.toBe(0);
});

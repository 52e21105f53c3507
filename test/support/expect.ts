/** Assertions many test files make: a run ended ok, a run left nothing behind. */
import { expect } from "bun:test";
import { type RunResult } from "../../src/api/index.ts";
import { describeResult } from "./cordon.ts";
import { mountsUnder, runRootEntries } from "./temp.ts";

/** The run directory and every mount under the run root are gone. */
export function expectClean(runRoot: string): void {
  expect(runRootEntries(runRoot)).toEqual([]);
  expect(mountsUnder(runRoot)).toEqual([]);
}

/** The run ended ok, exit 0, no error. */
export function expectOk(r: RunResult): void {
  expect(r.outcome, describeResult(r)).toBe("ok");
  expect(r.exitCode).toBe(0);
  expect(r.error).toBeNull();
}

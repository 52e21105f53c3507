/** bwrap's json status lines, read by hand (src/protocol/launch-status.ts): only well-formed lines count. */
import { describe, expect, test } from "bun:test";
import { parseLaunchStatus } from "../src/protocol/launch-status.ts";

describe("parseLaunchStatus (bwrap --json-status-fd)", () => {
  test("the first child-pid and an exit-code line; torn, foreign or malformed lines prove nothing", () => {
    const text = [
      '{ "child-pid": 0 }',
      '{ "child-pid": -4 }',
      '{ "child-pid": 1.5 }',
      '{ "child-pid": "12" }',
      '[{ "child-pid": 9 }]',
      "not json",
      '{ "child-pid": 4242, "cgroup-namespace": 1 }',
      '{ "child-pid": 77 }',
      '{ "exit-code": "0" }',
    ].join("\n") + "\n";
    expect(parseLaunchStatus("bwrap-json-status", text)).toEqual({ childPid: 4242, commandStarted: false, launcherErrors: [] });
    expect(parseLaunchStatus("bwrap-json-status", `${text}{ "exit-code": 0 }\n`).commandStarted).toBe(true);
    // A line without its newline is still being written: not read yet.
    expect(parseLaunchStatus("bwrap-json-status", '{ "child-pid": 5 }').childPid).toBeNull();
  });
});

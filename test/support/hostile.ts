/**
 * The frame of a runner's hostile-script tests: a warmed-up Cordon, a mark every process of
 * the run inherits, and afterwards the proof that the supervisor survived and nothing leaked.
 */
import { expect } from "bun:test";
import { type Cordon, type RunResult } from "../../src/api/index.ts";
import { expectClean, expectOk } from "./expect.ts";
import { fdCount, markedSandboxProcesses } from "./processes.ts";
import { token } from "./marks.ts";
import { freshRunRoot } from "./temp.ts";
import { waitFor } from "./wait.ts";

export interface HostileContext {
  cordon: Cordon;
  /** Set as CORDON_TEST_MARK in every hostile run; every process of the run inherits it. */
  mark: string;
  env: Record<string, string>;
}

/** How the runner under test is driven. */
export interface HostileRunner {
  /** A Cordon for this runner on `runRoot`. */
  cordon(runRoot: string): Cordon;
  /** Run `source` as this runner's script, under the tests' base policy. */
  run(cordon: Cordon, source: string): Promise<RunResult>;
  /** A script of this runner that prints `word` and a newline. */
  echo(word: string): string;
}

export type Hostile = (label: string, body: (ctx: HostileContext) => Promise<void>) => Promise<void>;

/**
 * `hostile(label, body)`: run a hostile body on a warmed-up cordon, then check the supervisor
 * survived and nothing leaked: no run dir or mount, no marked sandbox process, fd count back
 * to its baseline, and the same Cordon still runs the next job normally.
 */
export function hostileHarness(runner: HostileRunner): Hostile {
  return async (label, body) => {
    const runRoot = freshRunRoot(label);
    const cordon = runner.cordon(runRoot);
    expectOk(await runner.run(cordon, runner.echo("warm"))); // probes, interpreter resolution, lazy allocations happen once
    const fds = fdCount();
    const mark = token("mark");
    await body({ cordon, mark, env: { CORDON_TEST_MARK: mark } });
    expect(await waitFor(() => markedSandboxProcesses(mark).length === 0, 2000), `left: ${markedSandboxProcesses(mark).join(",")}`).toBe(true);
    expectClean(runRoot);
    const after = await runner.run(cordon, runner.echo("still-serving"));
    expectOk(after);
    expect(after.stdout).toBe("still-serving\n");
    expectClean(runRoot);
    expect(await waitFor(() => fdCount() <= fds, 1000), `fds now ${fdCount()}, baseline ${fds}`).toBe(true);
  };
}

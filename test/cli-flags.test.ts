/**
 * The CLI does what its flags say or refuses them: a flag a command does not use is refused
 * (126, before anything runs), never silently dropped; `--inline` only where it means
 * something; `--verify` shows its receipt in plain mode too; a missing FILE is said to be
 * missing; `cordon` alone is a usage error.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { USAGE } from "../src/cli/args.ts";
import { CLI_WIDTH, cliWorkspace, cordonLines, removeTempDirs, runCli, widestLine } from "./support.ts";

const ws = cliWorkspace("cli-flags");
afterAll(removeTempDirs);

/** A script that leaves a mark if it ever runs, so a refusal can be shown to have run nothing. */
const marker = join(ws.dir, "ran");
const s = ws.file("mark.sh", `echo RAN; : > ${marker}\n`);
const ranAtAll = () => readdirSync(ws.dir).includes("ran");

describe("usage", () => {
  test("`cordon` with no command prints the usage on stderr and exits 126; `cordon help` on stdout, 0", async () => {
    const bare = await runCli([]);
    expect(bare.code).toBe(126);
    expect(bare.stdout).toBe("");
    expect(bare.stderr).toStartWith("cordon: no command given\nusage:");
    const help = await runCli(["help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toBe(`${USAGE}\n`);
    expect(help.stderr).toBe("");
  });

  test("the usage fits in 100 columns", () => {
    expect(widestLine(USAGE), USAGE).toBeLessThanOrEqual(CLI_WIDTH);
  });
});

describe("every flag a command does not use is refused: 126, nothing run", () => {
  const cases: [string, string[], string][] = [
    ["--report with --json (the JSON holds the report)", ["run", "--json", "--report", s], "--report prints the report as text"],
    ["an option given twice (one value would be dropped)", ["run", "--policy", ws.json("p1.json", {}), "--policy", ws.json("p2.json", {}), s], "--policy is given more than once"],
    ["a boolean given twice", ["run", "--verify", "--verify", s], "--verify is given more than once"],
    ["an empty --runner (it fell back to the extension)", ["run", "--runner", "", s], "--runner needs a runner name"],
    ["an empty --provider", ["run", "--provider=", s], "--provider needs a provider name"],
    ["an empty --policy", ["run", "--policy", "", s], "--policy needs a policy file"],
    ["arguments to help", ["help", "run"], "help takes no arguments"],
    ["readiness options of run", ["readiness", "--runner", "shell"], "--runner is an option of run, not readiness"],
    ["--inline for a shell script (it has no function-body form)", ["run", "--inline", s], "--inline applies to the esm runner"],
    ["--inline for a python script", ["run", "--inline", "--runner", "python", s], "runs with the python runner"],
  ];
  for (const [what, args, message] of cases) {
    test(what, async () => {
      const [verb, ...rest] = args;
      const r = await runCli([verb!, ...(verb === "help" ? [] : ["--config", ws.config]), ...rest]);
      expect(r.code, r.stderr).toBe(126);
      expect(r.stderr).toContain(message);
      expect(r.stdout).toBe("");
      expect(ranAtAll()).toBe(false);
    });
  }

  test("--inline for an esm file runs it as a function body", async () => {
    const body = ws.file("body.ts", 'return { success: true, message: "inline body ran" };\n');
    const r = await runCli(["run", "--config", ws.config, "--inline", body]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("result=ok: inline body ran");
  });
});

describe("small surprises", () => {
  test("a missing file without an extension is reported as missing, not as an unknown runner", async () => {
    const missing = join(ws.dir, "no-such-script");
    for (const extra of [[], ["--runner", "shell"]]) {
      const r = await runCli(["run", "--config", ws.config, ...extra, missing]);
      expect(r.code).toBe(126);
      expect(r.stderr).toContain(`cannot read script ${missing}: no such file`);
      expect(r.stderr).not.toContain("unknown runner");
    }
    const json = JSON.parse((await runCli(["run", "--config", ws.config, "--json", missing])).stdout);
    expect(json).toMatchObject({ outcome: "error", error: { code: "invalid-job", message: `cannot read script ${missing}: no such file` } });
  });

  test("--verify without --json shows the receipt on stderr, before the summary", async () => {
    const r = await runCli(["run", "--config", ws.config, "--verify", ws.file("verify.sh", "echo hi\n")]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("hi\n");
    const lines = cordonLines(r.stderr);
    expect(lines[0]).toBe("cordon: receipt (what the sandboxed process saw before the script started):");
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}uid +\d+ inside, \d+ on the host$/));
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}capabilities +CapEff 0{16} \(none\)$/));
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}no_new_privs +set$/));
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}seccomp +mode 2 \(filter\)$/));
    expect(lines).toContainEqual(expect.stringMatching(/^ {2}interfaces +lo$/));
    expect(lines.at(-1)).toMatch(/^cordon: sandbox bwrap /);
    expect(widestLine(r.stderr)).toBeLessThanOrEqual(CLI_WIDTH);
  });
});

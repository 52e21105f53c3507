/**
 * Input files must not reconfigure the interpreter that runs the script.
 *
 * Input files (`files`, CLI `--files`) land in scratch, the script's cwd. Python used to put
 * that directory on sys.path ahead of the standard library and of cordon's own `cordon`
 * module, so an input `cordon.py` turned `cordon.result("crit", …)` into a silent exit 0
 * (and then the exit-code fallback said `ok`), and an input `json.py` or `csv.py` replaced
 * the standard module. Bun read `bunfig.toml` (whose `preload` ran before cordon's harness)
 * and `.env` files from its cwd. Every test here stages the attack through the public
 * surface (`Cordon.run` with `files`) and checks that it has no effect, while modules the
 * script ships as inputs (not named like anything else) still import.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { type PolicyOverride, type RunRequest, type RunResult } from "../src/api/index.ts";
import { BASE_POLICY, describeResult, freshRunRoot, makeCordon, removeTempDirs, token } from "./support.ts";

afterAll(() => removeTempDirs());

const cordon = makeCordon(freshRunRoot("interp"));

function run(runner: "python" | "esm", source: string, files: RunRequest["files"], policy: PolicyOverride = {}): Promise<RunResult> {
  return cordon.run({
    runner,
    script: { source },
    args: [],
    files,
    // Bun's memory is a cgroup cap only: degrade keeps these tests about the inputs, not the host.
    policy: { ...BASE_POLICY, ...(runner === "esm" ? { onUnavailable: "degrade" } : {}), ...policy },
  });
}

describe("python: input files cannot shadow cordon or the standard library", () => {
  test("an input cordon.py does not replace cordon's result helper (crit stays crit)", async () => {
    const marker = token("fakecordon");
    const r = await run("python", 'import cordon\ncordon.result("crit", "backend down")\n', [
      { path: "cordon.py", content: `print("${marker}")\ndef result(*a, **k):\n    pass\n` },
    ]);
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.stdout).not.toContain(marker);
    expect(r.resultSource).toBe("channel");
    expect(r.result?.status).toBe("crit");
    expect(r.result?.message).toBe("backend down");
  });

  test("an input cordon.py does not swallow an uncaught exception (still crit with the error)", async () => {
    const r = await run("python", 'raise RuntimeError("target unreachable")\n', [
      { path: "cordon.py", content: "def _report_exception(exc):\n    pass\n" },
    ]);
    expect(r.exitCode).toBe(1);
    expect(r.resultSource).toBe("channel");
    expect(r.result?.status).toBe("crit");
    expect(r.result?.message).toContain("target unreachable");
  });

  // json is imported by cordon's helper; csv, fractions and email are not imported at start:
  // both paths (already loaded, first imported by the script) must come from the standard library.
  test.each([
    ["json.py", "import json\nprint(json.dumps({'a': 1}))\n", '{"a": 1}'],
    ["csv.py", "import csv, io\nprint(next(csv.reader(io.StringIO('x,y'))))\n", "['x', 'y']"],
    ["fractions.py", "from fractions import Fraction\nprint(Fraction(1, 3) + Fraction(1, 6))\n", "1/2"],
    ["email/__init__.py", "import email.utils\nprint(email.utils.quote('a\"b'))\n", 'a\\"b'],
    ["encodings/__init__.py", "print(b'\\xe9'.decode('latin-1'), 'x'.encode('utf-16-le'))\n", "é b'x\\x00'"],
  ])("an input %s does not shadow the standard module", async (path, source, expected) => {
    const marker = token("shadow");
    const r = await run("python", source, [{ path, content: `print("${marker}")\nraise SystemExit(7)\n` }]);
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).not.toContain(marker);
    expect(r.stdout.trim()).toBe(expected);
  });

  test("a module shipped as an input file still imports, after the standard library", async () => {
    const r = await run("python", "import sys, os\nimport checkhelper\nprint(checkhelper.VALUE)\nprint(sys.path[-1] == os.getcwd())\n", [
      { path: "checkhelper.py", content: "VALUE = 'helper-ok'\n" },
    ]);
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.stdout.trim().split("\n")).toEqual(["helper-ok", "True"]);
  });
});

describe("esm: Bun ignores bunfig.toml and .env files in the script's cwd", () => {
  test("a scratch bunfig.toml preload does not run", async () => {
    const marker = token("preload");
    const r = await run("esm", 'export default () => ({ status: "crit", message: String((globalThis as any).__hijacked ?? "clean") });\n', [
      { path: "bunfig.toml", content: 'preload = ["./evil.ts"]\n' },
      { path: "evil.ts", content: `console.log("${marker}");\n(globalThis as any).__hijacked = "hijacked";\n` },
    ]);
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.stdout).not.toContain(marker);
    expect(r.result?.status).toBe("crit");
    expect(r.result?.message).toBe("clean");
  });

  test("scratch .env files set no variables", async () => {
    const r = await run("esm", 'export default (ctx: any) => ({ status: "ok", message: JSON.stringify([ctx.env.EVIL_A ?? null, process.env.EVIL_B ?? null, process.env.EVIL_C ?? null]) });\n', [
      { path: ".env", content: "EVIL_A=from-dotenv\n" },
      { path: ".env.local", content: "EVIL_B=from-dotenv-local\n" },
      { path: ".env.development", content: "EVIL_C=from-dotenv-development\n" },
    ]);
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.result?.message).toBe("[null,null,null]");
  });

  test("the script can still read files in its cwd", async () => {
    const r = await run("esm", 'import { readFileSync } from "node:fs";\nexport default () => ({ status: "ok", message: readFileSync(".env", "utf8").trim() });\n', [
      { path: ".env", content: "JUST=data\n" },
    ]);
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.result?.message).toBe("JUST=data");
  });
});

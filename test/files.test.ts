/**
 * Files in and out of a run, against real bwrap: input validation (refused before anything
 * exists), staging, returning created/changed files, and the hostile cases (symlinks to
 * the host, FIFOs, sparse 1 TiB files, floods of entries, deep trees). Also the host-side
 * directory helpers behind `cordon run --files DIR --out DIR`, and the CLI itself.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cordon, GiB, JobInputError, type CordonConfigInput, type InputFile, type OutputFile, type PolicyOverride, type RunResult } from "../src/api/index.ts";
import { validateInputFiles } from "../src/files/input.ts";
import { BASE_POLICY, CORDON_CLI, caught, describeResult, freshRunRoot, makeCordon, mountsUnder, removeTempDirs, runRootEntries, tempDir } from "./support.ts";
import { readInputDirectory, writeOutputFiles } from "../src/cli/directory.ts";

afterAll(() => removeTempDirs());

const LIMITS = { maxCount: 256, maxTotalBytes: 16 * 1024 * 1024 };
const enc = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

function cordonWith(config: Omit<CordonConfigInput, "runRoot"> = {}, runRoot = freshRunRoot("files")): Cordon {
  return makeCordon(runRoot, config);
}

async function runShell(source: string, opts: { files?: InputFile[]; config?: Omit<CordonConfigInput, "runRoot">; policy?: PolicyOverride } = {}): Promise<RunResult> {
  const runRoot = freshRunRoot("files");
  const r = await cordonWith(opts.config, runRoot).run({
    runner: "shell",
    script: { source },
    args: [],
    ...(opts.files ? { files: opts.files } : {}),
    policy: { ...BASE_POLICY, ...opts.policy },
  });
  // Whatever the script did, its run directory and scratch mount are gone.
  expect(runRootEntries(runRoot)).toEqual([]);
  expect(mountsUnder(runRoot)).toEqual([]);
  return r;
}

const paths = (r: RunResult) => r.files.map((f) => f.path);
const omittedPaths = (r: RunResult) => r.filesOmitted.map((o) => o.path);

/** The bad inputs every layer must refuse, with what the message must say. */
const BAD_INPUTS: [string, InputFile[], RegExp][] = [
  ["absolute path", [{ path: "/etc/cron.d/x", content: "x" }], /\/etc\/cron\.d\/x is absolute/],
  ["../ escape", [{ path: "../x", content: "x" }], /\.\.\/x leaves scratch through \.\./],
  ["a/../../ escape", [{ path: "a/../../x", content: "x" }], /a\/\.\.\/\.\.\/x leaves scratch/],
  ["NUL in path", [{ path: "a\0b", content: "x" }], /contains a NUL byte/],
  ["more than maxCount", [1, 2, 3, 4].map((i) => ({ path: `f${i}`, content: "" })), /too many input files: 4 \(limit 3\)/],
  ["over maxTotalBytes", [{ path: "a", content: "123456" }, { path: "b", content: "123456" }], /exceed 10 bytes in total/],
  ["file, then a file below it", [{ path: "a", content: "" }, { path: "a/b", content: "" }], /a\/b needs a to be a directory, but it is an input file/],
  ["file below, then the file", [{ path: "a/b", content: "" }, { path: "a", content: "" }], /input file a collides with a directory/],
  ["duplicate path", [{ path: "x", content: "1" }, { path: "x", content: "2" }], /input file x is given twice/],
  ["duplicate after normalization", [{ path: "a/b", content: "1" }, { path: "a/./b", content: "2" }], /input file a\/b is given twice/],
  ["empty path", [{ path: "", content: "" }], /input file path is empty/],
  ["directory path", [{ path: "dir/", content: "" }], /names a directory/],
];
const SMALL = { maxCount: 3, maxTotalBytes: 10 };

describe("validateInputFiles", () => {
  for (const [name, files, message] of BAD_INPUTS) {
    test(`refuses ${name} with a JobInputError naming the problem`, () => {
      let err: unknown;
      try {
        validateInputFiles(files, SMALL);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(JobInputError);
      expect((err as Error).message).toMatch(message);
    });
  }

  test("paths that stay inside scratch are accepted and normalized; executable means 0755", () => {
    const staged = validateInputFiles(
      [
        { path: "a/./b", content: "1" },
        { path: "a/../c", content: "2" },
        { path: "./d//e", content: enc("3"), executable: true },
      ],
      LIMITS,
    );
    expect(staged.map((s) => s.path)).toEqual(["a/b", "c", "d/e"]);
    expect(staged.map((s) => s.mode)).toEqual([0o644, 0o644, 0o755]);
    expect(staged.map((s) => text(s.content))).toEqual(["1", "2", "3"]);
  });

  test("exactly at the caps is accepted", () => {
    expect(validateInputFiles([{ path: "a", content: "12345" }, { path: "b", content: "12345" }, { path: "c", content: "" }], SMALL)).toHaveLength(3);
  });
});

describe("input files through cordon.run", () => {
  for (const [name, files, message] of BAD_INPUTS) {
    test(`${name}: JobInputError before anything runs (no run root, no run dir)`, async () => {
      const runRoot = freshRunRoot("refused");
      const cordon = cordonWith({ inputFiles: SMALL }, runRoot);
      // Were the script to run at all, it would print to stdout; nothing must come back at all.
      const err = await caught(() => cordon.run({ runner: "shell", script: { source: "echo RAN" }, args: [], files, policy: BASE_POLICY }));
      expect(err).toBeInstanceOf(JobInputError);
      expect((err as Error).message).toMatch(message);
      // The run root is created by the first run that reaches materialization: never here.
      expect(existsSync(runRoot)).toBe(false);
    });
  }

  test("staged inputs (nested, binary, executable) are readable; only created and changed files come back", async () => {
    const binary = new Uint8Array([0, 1, 2, 0xff, 0xfe, 10]);
    const r = await runShell(
      [
        "set -e",
        'echo "in: $(cat in.txt)"',
        'echo "deep: $(cat sub/deep/data.txt)"',
        "./tool.sh first",
        "sub/deep/tool2.sh second",
        "echo more >> sub/deep/data.txt", // modified
        "cat bin.dat > copy.dat", // created, binary
        "echo new > new.txt",
        "mkdir -p made/inner && printf x > made/inner/y",
        "stat -c %a tool.sh in.txt",
      ].join("\n"),
      {
        files: [
          { path: "in.txt", content: "unchanged input" },
          { path: "sub/deep/data.txt", content: "line1\n" },
          { path: "bin.dat", content: binary },
          { path: "tool.sh", content: '#!/bin/sh\necho "tool ran: $1"\n', executable: true },
          { path: "sub/deep/tool2.sh", content: '#!/bin/sh\necho "tool2 ran: $1"\n', executable: true },
        ],
      },
    );
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.stdout).toBe("in: unchanged input\ndeep: line1\ntool ran: first\ntool2 ran: second\n755\n644\n");
    expect(paths(r)).toEqual(["copy.dat", "made/inner/y", "new.txt", "sub/deep/data.txt"]);
    const byPath = Object.fromEntries(r.files.map((f) => [f.path, f]));
    expect(text(byPath["sub/deep/data.txt"]!.content)).toBe("line1\nmore\n");
    expect(byPath["sub/deep/data.txt"]!.size).toBe(11);
    expect([...byPath["copy.dat"]!.content]).toEqual([...binary]);
    expect(byPath["copy.dat"]!.size).toBe(binary.length);
    expect(text(byPath["new.txt"]!.content)).toBe("new\n");
    expect(text(byPath["made/inner/y"]!.content)).toBe("x");
    expect(r.filesOmitted).toEqual([]);
  });

  test("an input rewritten with a restored mtime still counts as changed", async () => {
    const r = await runShell('m=$(stat -c %y in.txt); printf same > in.txt; touch -d "$m" in.txt', { files: [{ path: "in.txt", content: "same" }] });
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(paths(r)).toEqual(["in.txt"]);
  });

  test("outputFiles.collect false returns nothing", async () => {
    const r = await runShell("echo x > out.txt", { config: { outputFiles: { collect: false } } });
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.files).toEqual([]);
    expect(r.filesOmitted).toEqual([]);
  });
});

describe("output files from a hostile script", () => {
  test("symlinks to host files and to / return nothing of the host; FIFOs and sockets are skipped; no blocking", async () => {
    const started = performance.now();
    const r = await runShell(
      [
        "ln -s /etc/passwd leak",
        "ln -s / rootlink",
        "ln -s /etc etclink",
        "rm cfg && ln -s /etc/shadow cfg", // an input file swapped for a link
        "mkfifo fifo",
        `python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')"`,
        "mkdir d && ln -s ../../../../etc/passwd d/up",
        "echo real > real.txt",
      ].join("\n"),
      { files: [{ path: "cfg", content: "config" }] },
    );
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(performance.now() - started).toBeLessThan(5000);
    expect(paths(r)).toEqual(["real.txt"]);
    const omitted = Object.fromEntries(r.filesOmitted.map((o) => [o.path, o.reason]));
    for (const link of ["leak", "rootlink", "etclink", "cfg", "d/up"]) expect(omitted[link]).toBe("symlink (never followed)");
    expect(omitted.fifo).toMatch(/not a regular file/);
    expect(omitted.sock).toMatch(/not a regular file/);
    const everything = JSON.stringify(r.files.map((f) => text(f.content)));
    expect(everything).not.toContain("root:");
  });

  test("a 1 TiB sparse file (truncate, dd seek, python seek) is omitted with a reason, promptly", async () => {
    const started = performance.now();
    const r = await runShell(
      [
        "truncate -s 1T big",
        "dd if=/dev/zero of=big2 bs=1 count=1 seek=$((1024*1024*1024*1024 - 1)) 2>/dev/null",
        `python3 -c "f = open('big3', 'wb'); f.seek(2**40 - 1); f.write(b'x')"`,
        "stat -c '%n %s' big big2 big3",
        "echo small > small.txt",
      ].join("\n"),
      { policy: { resources: { maxFileSizeBytes: 1024 * GiB } } }, // the schema's maximum: RLIMIT_FSIZE allows exactly 1 TiB
    );
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.stdout).toBe(["big", "big2", "big3"].map((n) => `${n} ${1024 * GiB}\n`).join(""));
    expect(performance.now() - started).toBeLessThan(5000);
    expect(paths(r)).toEqual(["small.txt"]);
    expect(omittedPaths(r).sort()).toEqual(["big", "big2", "big3"]);
    for (const o of r.filesOmitted) expect(o.reason).toBe(`${1024 * GiB} bytes would exceed the ${16 * 1024 * 1024}-byte output cap`);
  });

  test("a file whose name is not UTF-8 is listed as omitted, never silently lost; its neighbours come back", async () => {
    const r = await runShell("printf hi > \"$(printf 'bad\\377name')\"; echo ok > fine.txt");
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(paths(r)).toEqual(["fine.txt"]);
    expect(r.filesOmitted).toEqual([{ path: "bad\uFFFDname", reason: "its name is not valid UTF-8: not returned" }]);
  });

  test("more files than outputFiles.maxCount: stops with a '*' entry", async () => {
    const r = await runShell("for i in 1 2 3 4 5 6 7 8 9 10; do echo $i > f$i; done", { config: { outputFiles: { maxCount: 5 } } });
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.files).toHaveLength(5);
    expect(r.filesOmitted).toEqual([{ path: "*", reason: "more than 5 output files; the rest were not read" }]);
  });

  // Product bug (src/files/collect.ts, Collector.walk): the count budget is checked before
  // reading the next entry, so a scratch with EXACTLY maxCount files reports "more than N
  // output files" although there were no more. Flip to `test` once collect.ts is fixed.
  test("exactly outputFiles.maxCount files: all returned, no '*' entry", async () => {
    const r = await runShell("echo 1 > a; echo 2 > b; echo 3 > c", { config: { outputFiles: { maxCount: 3 } } });
    expect(paths(r)).toEqual(["a", "b", "c"]);
    expect(r.filesOmitted).toEqual([]);
  });

  test("total bytes cap: what would exceed it is omitted, what fits comes back", async () => {
    const r = await runShell("head -c 60 /dev/zero > a; head -c 60 /dev/zero > b; head -c 30 /dev/zero > c", { config: { outputFiles: { maxTotalBytes: 100 } } });
    expect(r.outcome, describeResult(r)).toBe("ok");
    const total = r.files.reduce((n, f) => n + f.size, 0);
    expect(total).toBeLessThanOrEqual(100);
    expect(r.files.length).toBeGreaterThanOrEqual(1);
    expect(r.files.length + r.filesOmitted.length).toBe(3);
    for (const o of r.filesOmitted) expect(o.reason).toBe("60 bytes would exceed the 100-byte output cap");
  });

  test("depth cap: directories deeper than maxDepth are omitted, shallower files come back", async () => {
    const r = await runShell("mkdir -p d1/d2/d3/d4/d5 && echo 3 > d1/d2/d3/f && echo 5 > d1/d2/d3/d4/d5/f && echo 1 > d1/f", { config: { outputFiles: { maxDepth: 3 } } });
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(paths(r)).toEqual(["d1/d2/d3/f", "d1/f"]);
    expect(r.filesOmitted).toEqual([{ path: "d1/d2/d3/d4", reason: "deeper than 3 levels" }]);
  });

  test("a very deep tree under the default cap does not recurse unboundedly", async () => {
    const r = await runShell('p=.; for i in $(seq 200); do p="$p/d"; done; mkdir -p "$p" && echo deep > "$p/f"');
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.files).toEqual([]);
    expect(r.filesOmitted).toEqual([{ path: Array(17).fill("d").join("/"), reason: "deeper than 16 levels" }]);
  });

  test("collectMs: 50,000 empty files with a 10 ms budget stop early with a '*' entry", async () => {
    const started = performance.now();
    const r = await runShell("mkdir many && cd many && seq 50000 | xargs touch && echo made", {
      config: { outputFiles: { maxCount: 100_000, collectMs: 10 } },
      policy: { resources: { wallMs: 30_000, cpuSeconds: 30 } },
    });
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(r.stdout).toBe("made\n");
    expect(r.files.length).toBeLessThan(50_000);
    expect(r.filesOmitted.at(-1)).toEqual({ path: "*", reason: "collection stopped after 10 ms; the rest of scratch was not read" });
    expect(performance.now() - started).toBeLessThan(20_000);
  });

  test("the omitted list is itself capped (200 FIFOs → at most 100 entries)", async () => {
    const r = await runShell("mkfifo $(seq -f 'p%g' 200) && echo ok > ok.txt");
    expect(r.outcome, describeResult(r)).toBe("ok");
    expect(paths(r)).toEqual(["ok.txt"]);
    expect(r.filesOmitted.length).toBe(100);
  });
});

describe("readInputDirectory", () => {
  function tree(): string {
    const dir = tempDir("in");
    mkdirSync(join(dir, "sub/deeper"), { recursive: true });
    writeFileSync(join(dir, "b.txt"), "bee");
    writeFileSync(join(dir, "a.txt"), "ay");
    writeFileSync(join(dir, "sub/deeper/c.bin"), new Uint8Array([0xff, 0]));
    writeFileSync(join(dir, "sub/run.sh"), "#!/bin/sh\n");
    chmodSync(join(dir, "sub/run.sh"), 0o700);
    mkdirSync(join(dir, "empty"));
    return dir;
  }

  test("relative paths in a stable order, contents, the executable bit", () => {
    const files = readInputDirectory(tree(), LIMITS);
    expect(files.map((f) => f.path)).toEqual(["a.txt", "b.txt", "sub/deeper/c.bin", "sub/run.sh"]);
    expect(files.map((f) => f.executable ?? false)).toEqual([false, false, false, true]);
    expect([...(files[2]!.content as Uint8Array)]).toEqual([0xff, 0]);
    expect(text(files[0]!.content as Uint8Array)).toBe("ay");
    // What it returns is what validateInputFiles accepts.
    expect(validateInputFiles(files, LIMITS).map((s) => s.mode)).toEqual([0o644, 0o644, 0o644, 0o755]);
  });

  function expectRefused(fn: () => unknown, message: RegExp): void {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(JobInputError);
    expect((err as Error).message).toMatch(message);
  }

  test("a symlink anywhere in the tree is refused, naming it (file or directory link)", () => {
    const a = tree();
    symlinkSync("/etc/passwd", join(a, "sub/leak"));
    expectRefused(() => readInputDirectory(a, LIMITS), new RegExp(`${join(a, "sub/leak")} is a symlink.*never followed`));
    const b = tree();
    symlinkSync("/etc", join(b, "etc"));
    expectRefused(() => readInputDirectory(b, LIMITS), new RegExp(`${join(b, "etc")} is a symlink`));
  });

  test("FIFOs are refused without blocking", () => {
    const dir = tree();
    expect(Bun.spawnSync(["mkfifo", join(dir, "pipe")]).exitCode).toBe(0);
    expectRefused(() => readInputDirectory(dir, LIMITS), /pipe is a FIFO; only regular files and directories/);
  });

  test("the directory itself must be a real directory: missing, a file, a symlink to one are refused", () => {
    const dir = tree();
    expectRefused(() => readInputDirectory(join(dir, "nope"), LIMITS), /cannot read input directory .*nope: ENOENT/);
    expectRefused(() => readInputDirectory(join(dir, "a.txt"), LIMITS), /a\.txt is a regular file, not a directory/);
    const link = join(tempDir("link"), "to-dir");
    symlinkSync(dir, link);
    expectRefused(() => readInputDirectory(link, LIMITS), /is a symlink, not a directory \(symlinks are not followed\)/);
  });

  test("count and total-size caps stop early; a 1 TiB sparse file is refused without being read", () => {
    expectRefused(() => readInputDirectory(tree(), { maxCount: 3, maxTotalBytes: 1000 }), /too many input files in .*: more than the limit of 3/);
    expectRefused(() => readInputDirectory(tree(), { maxCount: 10, maxTotalBytes: 6 }), /exceed 6 bytes in total/);
    const dir = tempDir("sparse");
    writeFileSync(join(dir, "huge"), "");
    truncateSync(join(dir, "huge"), 1024 * GiB);
    const started = performance.now();
    expectRefused(() => readInputDirectory(dir, LIMITS), /exceed 16777216 bytes in total \(at .*huge, 1099511627776 bytes\)/);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe("writeOutputFiles", () => {
  const out = (path: string, content: string): OutputFile => ({ path, size: content.length, content: enc(content) });

  test("writes nested files 0644, creating the directory and parents", () => {
    const dir = join(tempDir("out"), "new/out");
    const { written, skipped } = writeOutputFiles(dir, [out("a.txt", "A"), out("x/y/z.txt", "Z")]);
    expect(written).toEqual(["a.txt", "x/y/z.txt"]);
    expect(skipped).toEqual([]);
    expect(readFileSync(join(dir, "x/y/z.txt"), "utf8")).toBe("Z");
    expect(statSync(join(dir, "a.txt")).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir).sort()).toEqual(["a.txt", "x"]); // no temporary file left behind
  });

  test("an existing file is replaced and made 0644", () => {
    const dir = tempDir("out");
    writeFileSync(join(dir, "f"), "old", { mode: 0o600 });
    writeOutputFiles(dir, [out("f", "new")]);
    expect(readFileSync(join(dir, "f"), "utf8")).toBe("new");
    expect(statSync(join(dir, "f")).mode & 0o777).toBe(0o644);
  });

  test("never writes through a symlinked parent: sub -> elsewhere, sub/x is skipped with the reason", () => {
    const dir = tempDir("out");
    const elsewhere = tempDir("elsewhere");
    symlinkSync(elsewhere, join(dir, "sub"));
    const { written, skipped } = writeOutputFiles(dir, [out("sub/x", "PWNED"), out("sub/deeper/y", "PWNED"), out("ok.txt", "ok")]);
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(written).toEqual(["ok.txt"]);
    expect(skipped).toEqual([
      { path: "sub/x", reason: `${join(dir, "sub")} is a symlink (never written through)` },
      { path: "sub/deeper/y", reason: `${join(dir, "sub")} is a symlink (never written through)` },
    ]);
    expect(lstatSync(join(dir, "sub")).isSymbolicLink()).toBe(true);
  });

  test("an existing symlink or hard link at the destination is replaced, its target untouched", () => {
    const dir = tempDir("out");
    const elsewhere = tempDir("elsewhere");
    writeFileSync(join(elsewhere, "victim"), "original");
    writeFileSync(join(elsewhere, "victim2"), "original");
    symlinkSync(join(elsewhere, "victim"), join(dir, "viasymlink"));
    linkSync(join(elsewhere, "victim2"), join(dir, "viahardlink"));
    const { written } = writeOutputFiles(dir, [out("viasymlink", "PWNED"), out("viahardlink", "PWNED")]);
    expect(written).toEqual(["viasymlink", "viahardlink"]);
    expect(readFileSync(join(elsewhere, "victim"), "utf8")).toBe("original");
    expect(readFileSync(join(elsewhere, "victim2"), "utf8")).toBe("original");
    expect(lstatSync(join(dir, "viasymlink")).isFile()).toBe(true);
    expect(readFileSync(join(dir, "viahardlink"), "utf8")).toBe("PWNED");
  });

  test("a non-directory in the way, or a directory at the destination, is skipped", () => {
    const dir = tempDir("out");
    writeFileSync(join(dir, "file"), "f");
    mkdirSync(join(dir, "adir"));
    const { written, skipped } = writeOutputFiles(dir, [out("file/x", "1"), out("adir", "2")]);
    expect(written).toEqual([]);
    expect(skipped.map((s) => s.reason)).toEqual([`${join(dir, "file")} is a regular file, not a directory`, `${join(dir, "adir")} is a directory`]);
  });

  test("paths are re-validated before anything is written: absolute, .., empty components, NUL", () => {
    for (const bad of ["/etc/passwd", "../x", "a/../../x", "a/../b", "a//b", "./a", "a/", "", "a\0b"]) {
      const dir = join(tempDir("out"), "never");
      let err: unknown;
      try {
        writeOutputFiles(dir, [out("fine.txt", "1"), out(bad, "x")]);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(JobInputError);
      expect(existsSync(dir)).toBe(false); // nothing at all, not even the good file
    }
  });
});

describe("cordon run --files / --out", () => {
  const base = tempDir("cli", 0o711);
  const runRoot = join(base, "runs");
  const config = join(base, "config.json");
  writeFileSync(config, JSON.stringify({ runRoot, inputFiles: { maxCount: 5, maxTotalBytes: 1000 } }));

  function script(name: string, body: string): string {
    const path = join(base, name);
    writeFileSync(path, body);
    return path;
  }

  async function cli(args: string[]) {
    const p = Bun.spawn([process.execPath, CORDON_CLI, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).bytes(), new Response(p.stderr).text(), p.exited]);
    return { stdout, stderr, code };
  }

  function inputTree(): string {
    const dir = tempDir("cli-in");
    mkdirSync(join(dir, "sub/deeper"), { recursive: true });
    writeFileSync(join(dir, "a.txt"), "alpha\n");
    writeFileSync(join(dir, "sub/b.txt"), "beta\n");
    writeFileSync(join(dir, "sub/deeper/keep.txt"), "kept\n");
    writeFileSync(join(dir, "sub/tool.sh"), '#!/bin/sh\necho "tool: $(cat sub/deeper/keep.txt)"\n');
    chmodSync(join(dir, "sub/tool.sh"), 0o755);
    return dir;
  }

  test("round trip: nested inputs staged, created and changed files written to --out, omissions listed", async () => {
    const outDir = join(tempDir("cli-out"), "result");
    const s = script("roundtrip.sh", ["cat a.txt sub/b.txt", "./sub/tool.sh", "tr a-z A-Z < sub/b.txt > sub/B.txt", "echo changed >> a.txt", "mkdir -p n/m && echo nested > n/m/file", "ln -s /etc/passwd link", "printf '\\377\\376'"].join("\n"));
    const r = await cli(["run", "--config", config, "--files", inputTree(), "--out", outDir, s]);
    expect(r.code, r.stderr).toBe(0);
    expect([...r.stdout]).toEqual([...enc("alpha\nbeta\ntool: kept\n"), 0xff, 0xfe]); // raw bytes, not decoded text
    expect(r.stderr).toContain("cordon: not returned: link (symlink (never followed))\n");
    const written: string[] = [];
    const walk = (d: string, rel = ""): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) (e.isDirectory() ? walk(join(d, e.name), `${rel}${e.name}/`) : written.push(`${rel}${e.name}`));
    };
    walk(outDir);
    expect(written.sort()).toEqual(["a.txt", "n/m/file", "sub/B.txt"]);
    expect(readFileSync(join(outDir, "a.txt"), "utf8")).toBe("alpha\nchanged\n");
    expect(readFileSync(join(outDir, "sub/B.txt"), "utf8")).toBe("BETA\n");
    expect(readFileSync(join(outDir, "n/m/file"), "utf8")).toBe("nested\n");
    expect(statSync(join(outDir, "sub/B.txt")).mode & 0o777).toBe(0o644);
  });

  test("--json with --out: one JSON object on stdout carrying the files, and the files written", async () => {
    const outDir = tempDir("cli-out");
    const s = script("json-out.sh", "echo hi > hi.txt; ln -s / root");
    const r = await cli(["run", "--config", config, "--json", "--out", outDir, s]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(text(r.stdout));
    expect(result.files).toEqual([{ path: "hi.txt", size: 3, content: "hi\n" }]);
    expect(result.filesOmitted).toEqual([{ path: "root", reason: "symlink (never followed)" }]);
    expect(readFileSync(join(outDir, "hi.txt"), "utf8")).toBe("hi\n");
    expect(r.stderr).toBe("");
  });

  test("--out with a symlink planted in it: the file is not written through, the skip is reported", async () => {
    const outDir = tempDir("cli-out");
    const elsewhere = tempDir("cli-elsewhere");
    symlinkSync(elsewhere, join(outDir, "sub"));
    const s = script("planted.sh", "mkdir sub && echo x > sub/x && echo y > y");
    const r = await cli(["run", "--config", config, "--out", outDir, s]);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(readFileSync(join(outDir, "y"), "utf8")).toBe("y\n");
    expect(r.stderr).toContain(`cordon: not written: sub/x (${join(outDir, "sub")} is a symlink (never written through))`);
  });

  test("bad --files/--out: status 126, a clear message, nothing spawned, no run directory", async () => {
    const s = script("never.sh", "echo RAN\n");
    const withLink = inputTree();
    symlinkSync("/etc/passwd", join(withLink, "sub/leak"));
    const tooMany = inputTree();
    for (const n of [1, 2, 3]) writeFileSync(join(tooMany, `extra${n}`), "");
    const tooBig = inputTree();
    writeFileSync(join(tooBig, "big"), "x".repeat(2000));
    const withFifo = inputTree();
    Bun.spawnSync(["mkfifo", join(withFifo, "pipe")]);
    const linkToDir = join(tempDir("cli-link"), "dir");
    symlinkSync(inputTree(), linkToDir);
    const cases: [string[], string][] = [
      [["--files", join(base, "missing")], "cannot read input directory"],
      [["--files", s], "is a regular file, not a directory"],
      [["--files", linkToDir], "is a symlink, not a directory"],
      [["--files", withLink], `${join(withLink, "sub/leak")} is a symlink`],
      [["--files", withFifo], "pipe is a FIFO"],
      [["--files", tooMany], "too many input files"],
      [["--files", tooBig], "exceed 1000 bytes in total"],
      [["--out", s], "exists and is not a directory"],
      [["--files", ""], "--files needs a directory"],
    ];
    for (const [args, message] of cases) {
      const r = await cli(["run", "--config", config, ...args, s]);
      expect(r.stderr, args.join(" ")).toContain(message);
      expect(r.code, args.join(" ")).toBe(126);
      expect(text(r.stdout)).not.toContain("RAN");
    }
    expect(runRootEntries(runRoot)).toEqual([]);
  });

  test("the usage text documents --files and --out", async () => {
    const r = await cli(["help"]);
    expect(text(r.stdout)).toContain("--files DIR");
    expect(text(r.stdout)).toContain("--out DIR");
  });
});

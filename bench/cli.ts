/**
 * The CLI's wall time for one short run, as ratios against yardsticks measured in the same
 * run, interleaved (one of each per round, so drifting host load hits all alike):
 *   - `bun -e 0`: Bun's own start, the floor of any Bun CLI;
 *   - the raw bwrap command: examples/hello.sh under a hand-written bwrap of the same shape as
 *     cordon's default (root dropped with setpriv, every namespace new, read-only /usr, fresh
 *     /proc and /dev, a tmpfs scratch, no environment), without cordon;
 *   - `cordon run examples/hello.sh` from the sources (bin/cordon.ts) and from the bundle
 *     `bun run cordon` uses (bin/launch.ts, built first if stale), and through `bun run cordon`.
 *   bun bench/cli.ts [ROUNDS]
 */
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROUNDS = Number(process.argv[2] ?? 20);
const root = resolve(import.meta.dir, "..");
// A copy the dropped uid can read (the checkout may sit under a 0700 home).
const copyDir = mkdtempSync(join(tmpdir(), "cordon-bench-cli-"));
chmodSync(copyDir, 0o755);
const script = join(copyDir, "hello.sh");
copyFileSync(resolve(root, "examples/hello.sh"), script);
chmodSync(script, 0o644);
const bun = process.execPath;

const raw = [
  "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
  "env", "-i", "bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--hostname", "cordon",
  "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
  "--ro-bind", "/etc/passwd", "/etc/passwd", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/scratch", "--chdir", "/scratch",
  "--ro-bind", script, "/job/hello.sh", "--setenv", "PATH", "/usr/bin:/bin", "/bin/sh", "/job/hello.sh",
];

const commands: [string, string[]][] = [
  ["bun -e 0", [bun, "-e", "0"]],
  ["raw bwrap, hello.sh", raw],
  ["cordon run, sources (bun bin/cordon.ts)", [bun, "bin/cordon.ts", "run", "examples/hello.sh"]],
  ["cordon run, bundle (bun bin/launch.ts)", [bun, "bin/launch.ts", "run", "examples/hello.sh"]],
  ["cordon run, via `bun run cordon`", [bun, "run", "cordon", "run", "examples/hello.sh"]],
  ["cordon, no command (start-up only), bundle", [bun, "bin/launch.ts", "help"]],
];

async function once(argv: string[]): Promise<number> {
  const t = performance.now();
  const p = Bun.spawn(argv, { cwd: root, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [, err, code] = await Promise.all([new Response(p.stdout).arrayBuffer(), new Response(p.stderr).text(), p.exited]);
  const ms = performance.now() - t;
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${err.slice(0, 500)}`);
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

process.on("exit", () => rmSync(copyDir, { recursive: true, force: true }));
for (const [, argv] of commands) await once(argv); // warm-up (and a build of the bundle if it is stale)
const samples = commands.map(() => [] as number[]);
for (let r = 0; r < ROUNDS; r++) for (const [i, [, argv]] of commands.entries()) samples[i]!.push(await once(argv));
const m = samples.map(median);
const [bunStart, rawBwrap] = [m[0]!, m[1]!];

console.log(`\nCLI wall time, ${ROUNDS} interleaved rounds, median ms`);
console.log("| command | wall | vs `bun -e 0` | vs raw bwrap |");
console.log("| --- | --- | --- | --- |");
for (const [i, [label]] of commands.entries()) console.log(`| ${label} | ${m[i]!.toFixed(1)} | ${(m[i]! / bunStart).toFixed(2)}x | ${(m[i]! / rawBwrap).toFixed(2)}x |`);

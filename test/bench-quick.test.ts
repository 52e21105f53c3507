/**
 * The bench runs end to end in quick mode (BENCH_QUICK=1: tiny sizes) and prints every
 * table: latency, flood, memory, throughput. Not timed: nothing here looks at a number's
 * size, only that each measurement ran real sandboxes, got correct results and left
 * nothing behind on the host.
 */
import { expect, test } from "bun:test";
import { ROOT } from "./support.ts";

test("bun bench/all.ts in quick mode prints every measurement's table, with correct runs and no leaks", async () => {
  const p = Bun.spawn([process.execPath, "bench/all.ts"], { cwd: ROOT, env: { ...process.env, BENCH_QUICK: "1" }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect({ code, err: err.slice(0, 2000) }).toEqual({ code: 0, err: expect.any(String) });
  for (const title of ["Latency per run", "Where a run's time goes", "Output flood ended by the output cap", "Every ending", "Supervisor memory", "Throughput"]) expect(out).toContain(`\n${title}`);
  // Each table row names its variant; every run was checked correct, the floods were capped.
  expect(out).toContain("| /bin/true | raw-rendered");
  expect(out).not.toContain("WRONG RESULTS");
  expect(out).not.toContain("NOT CAPPED");
  // Throughput rows end with the leak column: nothing left on the host.
  const throughputRows = out.split("\n").filter((l) => /^\| (shell|python) .*\| \d+ \| [^|]+ \|$/.test(l));
  expect(throughputRows.length).toBeGreaterThanOrEqual(2);
  // The floor (a hand-written bwrap, no cordon) has no leak check of cordon's: its row says "-".
  for (const row of throughputRows) expect(row).toEndWith(row.includes("no cordon") ? "| 0 | - |" : "| 0 | none |");
  // Every ending came back as expected and left nothing behind.
  expect(out).not.toContain("UNEXPECTED");
  const endingRows = out.slice(out.indexOf("\nEvery ending")).split("\n\n")[0]!.split("\n").slice(4); // after the blank line, the title, the header and its rule
  expect(endingRows.length).toBeGreaterThanOrEqual(6);
  for (const row of endingRows) expect(row).toEndWith("| none |");
}, 120_000);

test("bun bench/serve.ts in quick mode compares the service with the library on correct runs and leaves nothing behind", async () => {
  const p = Bun.spawn([process.execPath, "bench/serve.ts"], { cwd: ROOT, env: { ...process.env, BENCH_QUICK: "1" }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect({ code, err: err.slice(0, 2000) }).toEqual({ code: 0, err: expect.any(String) });
  expect(out).not.toContain("WRONG RESULTS");
  // Both rows ran every run right (wrong 0) and left nothing (leaks none).
  const rows = out.split("\n").filter((l) => /^\| (library|service): /.test(l));
  expect(rows.map((r) => r.split(" | ")[0])).toEqual(["| library: Cordon.run in process", "| service: POST /v1/runs, autocannon on loopback"]);
  for (const row of rows) expect(row).toEndWith("| 0 | none |");
  // The ratio table: service over library, every ratio a number.
  const ratios = out.slice(out.indexOf("\nThe HTTP layer's cost")).split("\n")[4]!;
  expect(ratios).toMatch(/^\| \d+\.\d\dx \| \d+\.\d\dx \| \d+\.\d\dx \| \d+\.\d\dx \| \d+\.\d\dx \|$/);
}, 120_000);

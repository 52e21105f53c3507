// cordon's ESM harness: imports the user's module, calls its default export with a
// context, and writes the return value (or the exception) as one JSON line to the
// result channel. The supervisor validates it; nothing here is trusted.
import { closeSync, readSync, writeSync } from "node:fs";

/**
 * A warm sandbox's waiter (cordon's src/pool/): block until the supervisor writes ONE run's
 * command and environment on fd (one JSON line), acknowledge it with one byte (the supervisor
 * starts the run cold if the waiter dies before that), then become that run in this process.
 * The supervisor hands over only a run whose Bun, flags and start-up variables are this
 * one's. PWD stays what the launcher set for this process, as it would for the command.
 */
function becomeRun(fd) {
  const chunks = [];
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = readSync(fd, buf);
    if (n === 0) process.exit(125); // the sandbox was discarded unused
    chunks.push(buf.slice(0, n));
    if (buf[n - 1] === 0x0a) break;
  }
  writeSync(fd, ".");
  closeSync(fd);
  const job = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  if (job.inProcess !== true) process.exit(125);
  const pwd = process.env.PWD;
  for (const name of Object.keys(process.env)) delete process.env[name];
  Object.assign(process.env, job.env, pwd === undefined ? {} : { PWD: pwd });
  // Bun.spawn and Bun.spawnSync (and node:child_process, built on them) default to the
  // environment this process STARTED with, Bun's shell to its own copy: give children the run's.
  for (const name of ["spawn", "spawnSync"]) {
    const original = Bun[name];
    Bun[name] = (first, options) =>
      Array.isArray(first) ? original(first, { env: { ...process.env }, ...options }) : original({ env: { ...process.env }, ...first }, options);
  }
  Bun.$.env({ ...process.env });
  // As a cold start sees it: [bun, harness, module, args...] (Bun's own flags are not in process.argv).
  const harnessAt = job.argv.indexOf(process.argv[1]);
  if (harnessAt < 0) process.exit(125);
  process.argv.splice(2, Infinity, ...job.argv.slice(harnessAt + 1));
}

if (process.argv[2] === "--cordon-warm") becomeRun(Number(process.argv[3]));

const fd = Number(process.env.CORDON_RESULT_FD ?? 4);
const [, , modulePath, ...args] = process.argv;

function describe(error) {
  return error instanceof Error
    ? { name: error.name, message: error.message, stack: error.stack ?? "" }
    : { name: "Thrown", message: String(error), stack: "" };
}

function report(envelope) {
  writeSync(fd, `${JSON.stringify(envelope)}\n`);
}

async function main() {
  const mod = await import(modulePath);
  if (typeof mod.default !== "function") {
    throw new TypeError("the module has no default export function: export default (ctx) => result");
  }
  const value = await mod.default({ args, env: { ...process.env } });
  let line;
  try {
    line = JSON.stringify({ cordon: "return", value: value === undefined ? null : value });
  } catch (error) {
    throw new TypeError(`the return value is not JSON-serialisable: ${describe(error).message}`);
  }
  writeSync(fd, `${line}\n`);
}

try {
  await main();
  process.exitCode = 0;
} catch (error) {
  console.error(describe(error).stack || `${describe(error).name}: ${describe(error).message}`);
  report({ cordon: "exception", ...describe(error) });
  process.exitCode = 1;
}
// The check is over once it returns: open sockets or timers must not hold the run until the wall limit.
setTimeout(() => process.exit(), 0).unref?.();

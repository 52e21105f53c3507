// cordon's ESM harness: imports the user's module, calls its default export with a
// context, and writes the return value (or the exception) as one JSON line to the
// result channel. The supervisor validates it; nothing here is trusted.
import { writeSync } from "node:fs";

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

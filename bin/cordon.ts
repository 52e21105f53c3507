#!/usr/bin/env bun
// Composition root: the core CLI with the plugins shipped in this repository.
import "../src/cli/jitless.ts"; // before any schema is built
import { main, processStdin } from "../src/cli/main.ts";
import { fdWriter } from "../src/cli/output.ts";
import { builtinProviders, builtinRunners } from "../plugins/builtin.ts"; // not the collectors: the CLI never uses them

// No top-level await: the bundle (scripts/build-cli.ts) is CommonJS, for Bun's bytecode cache.
void main(process.argv.slice(2), { providers: builtinProviders(), runners: builtinRunners() }, {
  stdout: fdWriter(1),
  stderr: fdWriter(2),
  readStdin: processStdin,
}).then((status) => {
  process.exitCode = status;
});

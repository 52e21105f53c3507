/**
 * The providers and runners shipped with cordon, without the collectors: what the CLI
 * registers. plugins/index.ts (the package entry `cordon/plugins`) re-exports all of it.
 */
import type { Provider, Runner } from "../src/api/plugin.ts";
import { BwrapProvider } from "./provider-bwrap/index.ts";
import { UnsafeNoIsolationProvider } from "./provider-unsafe/index.ts";
import { RootlessProvider } from "./provider-rootless/index.ts";
import { NsjailProvider } from "./provider-nsjail/index.ts";
import { ShellRunner } from "./runner-shell/index.ts";
import { PythonRunner } from "./runner-python/index.ts";
import { EsmRunner } from "./runner-esm/index.ts";

export { BwrapProvider, RootlessProvider, NsjailProvider, UnsafeNoIsolationProvider, ShellRunner, PythonRunner, EsmRunner };

export function builtinProviders(): Provider[] {
  return [new BwrapProvider(), new RootlessProvider(), new NsjailProvider(), new UnsafeNoIsolationProvider()];
}

export function builtinRunners(): Runner[] {
  return [new ShellRunner(), new PythonRunner(), new EsmRunner()];
}

/** cordon's public contracts. Plugins import from here and nowhere else in src/. */
export * from "./errors.ts";
export * from "./policy/index.ts";
export * from "./host.ts";
export * from "./provider.ts";
export * from "./runner.ts";
export * from "./result.ts";
export * from "./readiness.ts";
export * from "./sandbox/report.ts";
export * from "./sandbox/spec.ts";
export { composePlan, type ProviderPlanner } from "./sandbox/plan.ts";
export * from "./sandbox/layers/index.ts";
export { runInSandbox } from "./sandbox/run.ts";
export { executePlan } from "./sandbox/execute.ts";
export { decodeExit, signalName } from "./sandbox/exit.ts";
export { allocateWorkspace, cleanStaleWorkspaces, defaultRunRoot, disposeWorkspace } from "./sandbox/workspace.ts";
export * from "./config.ts";
export * from "./cordon.ts";

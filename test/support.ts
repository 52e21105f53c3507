/**
 * The test harness, one import for every test file: a cordon factory, temp dirs and run roots
 * that are removed at the end, host-side scans of processes, mounts, cgroups and file
 * descriptors, and the assertions many files share. Everything here looks at the REAL host
 * (no mocks): the tests attack real sandboxes. Each module under test/support/ has one job;
 * provider-conformance.ts (the conformance suite's attacks and judge) is that suite's alone.
 */
export * from "./support/policy.ts";
export * from "./support/temp.ts";
export * from "./support/marks.ts";
export * from "./support/wait.ts";
export * from "./support/cordon.ts";
export * from "./support/run.ts";
export * from "./support/processes.ts";
export * from "./support/cgroups.ts";
export * from "./support/listener.ts";
export * from "./support/flipper.ts";
export * from "./support/cli.ts";
export * from "./support/expect.ts";
export * from "./support/hostile.ts";
export * from "./support/attacks.ts";
export * from "./support/import-graph.ts";
export * from "./support/hosts.ts";
export * from "./support/bpf.ts";
export * from "./support/identity.ts";
export * from "./support/syscall-attacks.ts";
export * from "./support/pool.ts";
export * from "./support/serve.ts";

/** Hand-made host facts and a job for pure planning tests: the same hosts for every provider's plan tests. */
import type { HostFacts, Job } from "../../src/api/plugin.ts";
import { detectHostFacts } from "../../src/host.ts";
import { DEFAULT_IDENTITY_RANGE, type RunIdentity } from "../../src/identity/range.ts";

export const NO_CGROUPS: HostFacts["cgroups"] = { layout: "none", controllers: {}, writable: false, problem: "no cgroup filesystem is mounted" };
/** This machine, as root, with no cgroups. */
export const ROOT_HOST: HostFacts = { ...detectHostFacts(), uid: 0, gid: 0, isRoot: true, cgroups: NO_CGROUPS };
const v1 = (c: string) => ({ version: 1 as const, mount: `/sys/fs/cgroup/${c}` });
/** The hybrid layout of these Debian machines: memory and pids through v1. */
export const CGROUP_HOST: HostFacts = {
  ...ROOT_HOST,
  cgroups: { layout: "hybrid", controllers: { memory: v1("memory"), pids: v1("pids"), cpu: v1("cpu"), cpuacct: v1("cpuacct"), freezer: v1("freezer") }, writable: true, problem: null },
};
export const USER_HOST: HostFacts = { ...ROOT_HOST, uid: 1000, gid: 1000, isRoot: false };
/** A shell job as the shell runner would prepare it. */
export const PLAN_JOB: Job = { runner: "shell", argv: ["/bin/sh", "/cordon/job/script.sh"], files: [{ path: "script.sh", content: "true" }], readOnlyBinds: [], env: {}, result: { exitCodeFallback: true }, addressSpaceLimitSafe: true };
/** A run's own host identity as a Cordon would have allocated it from the default pool, for pure plans. */
export const PLAN_IDENTITY: RunIdentity = { uid: DEFAULT_IDENTITY_RANGE.base + 7, gid: DEFAULT_IDENTITY_RANGE.base + 7, range: DEFAULT_IDENTITY_RANGE, representative: false };

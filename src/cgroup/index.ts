export * from "./detect.ts";
export * from "./run-cgroup.ts";

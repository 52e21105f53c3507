export * from "./types.ts";
export { proveProvider, type ProveOptions } from "./prove.ts";

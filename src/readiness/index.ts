export * from "./types.ts";
export { proveProvider, trialPlan, trialPlanRefusal, type ProveOptions } from "./prove.ts";
export { cellsNeeded, unprovenCells } from "./needs.ts";

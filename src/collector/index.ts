/** Health-check collector contracts: versioned stored data, incremental aggregation, the strategy interface. */
export * from "./versioned.ts";
export * from "./aggregate.ts";
export * from "./fields.ts";
export * from "./strategy.ts";
export * from "./definition.ts";
export * from "./run-context.ts";
export * from "./effective-sandbox.ts";
export * from "./client.ts";

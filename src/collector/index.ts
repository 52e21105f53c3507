/** Health-check collector contracts: versioned stored data, incremental aggregation, the strategy interface. */
export * from "./versioned.ts";
export * from "./aggregate.ts";
export * from "./strategy.ts";
export * from "./client.ts";

/**
 * `@checkstack/backend-api` as the compat type check sees it (tsconfig.json maps the package
 * name here): the package's own collector-contract modules, re-exported as they are. Its
 * index also loads the whole backend (hono, drizzle, oRPC, and internal packages that are not
 * on the registry), none of which the collector contract uses. Real declarations only: nothing
 * here is written in their place.
 */
export * from "../../vendor/checkstack/node_modules/@checkstack/backend-api/src/config-versioning.ts";
export * from "../../vendor/checkstack/node_modules/@checkstack/backend-api/src/incremental-aggregation.ts";
export * from "../../vendor/checkstack/node_modules/@checkstack/backend-api/src/aggregated-result.ts";
export * from "../../vendor/checkstack/node_modules/@checkstack/backend-api/src/transport-client.ts";
export * from "../../vendor/checkstack/node_modules/@checkstack/backend-api/src/collector-strategy.ts";
export * from "../../vendor/checkstack/node_modules/@checkstack/backend-api/src/collector-registry.ts";
export * from "../../vendor/checkstack/node_modules/@checkstack/backend-api/src/health-check.ts";
export * from "../../vendor/checkstack/node_modules/@checkstack/backend-api/src/base-strategy-config.ts";
export type { EffectiveSandbox } from "../../vendor/checkstack/node_modules/@checkstack/backend-api/src/script-sandbox/report.ts";

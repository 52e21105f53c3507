/**
 * The library: what an application that runs scripts in cordon uses (the Cordon facade,
 * its config and policy, results and reports, errors, and the monitoring collectors'
 * framework). Providers and runners have their own contract (./plugin.ts). Everything
 * not named here is internal. test/public-api.test.ts pins these names.
 */
export { Cordon, type PolicyCheck, type Plugins, type RunRequest } from "../cordon.ts";
export { startCordon, type StartedCordon } from "../startup.ts";
export { ConfigFileSchema, CordonConfigSchema, parseConfig, type CordonConfig, type CordonConfigInput } from "../config.ts";
export { configJsonSchema, policyJsonSchema, type JsonSchema } from "../schema/json-schema.ts";
export {
  AbsolutePath,
  DEFAULT_POLICY,
  EnvName,
  EnvValue,
  GiB,
  KiB,
  mergePolicy,
  MiB,
  parsePolicy,
  parsePolicyOverride,
  PolicyFileSchema,
  PolicyOverrideSchema,
  PolicySchema,
  type NetworkMode,
  type Policy,
  type PolicyInput,
  type PolicyOverride,
  type ReadOnlyBind,
} from "../policy/index.ts";
export {
  ConfigValidationError,
  CordonError,
  describeIssues,
  zodIssues,
  IdentityPoolExhaustedError,
  JobInputError,
  PolicyValidationError,
  SandboxUnavailableError,
  UnknownProviderError,
  UnknownRunnerError,
  type CordonErrorCode,
  type FieldIssue,
} from "../errors.ts";
export { resultFromError, runResultToJson, type LimitHit, type Outcome, type RunResult, type RunStats } from "../result.ts";
export { RESULT_STATUSES, type ResultStatus } from "../protocol/result-channel.ts";
export type { OmittedFile, OutputFile } from "../result.ts";
export type { InputFile } from "../files/input.ts";
export type { Receipt } from "../sandbox/receipt.ts";
export { formatReport, LAYER_NAMES, summarizeReport, type ControlVerdict, type EffectiveSandboxReport, type LayerName, type LayerReport, type SandboxStart } from "../sandbox/report.ts";
export type { PoolStats } from "../pool/pool.ts";
export type { ReadinessCell, ReadinessReport, ReadinessStatus, ReadinessVerdict, PolicyFit } from "../readiness/index.ts";
export { readinessTable } from "../readiness/table.ts";
export { maskMetrics, maskText, MIN_SECRET_BYTES, secretValues, weakSecretMessage, weakSecretNames } from "../secrets.ts";
export type { Provider } from "../provider.ts";
export type { Runner } from "../runner.ts";
export * from "../collector/index.ts";

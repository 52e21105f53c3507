/**
 * The plugin contract: what a provider, a runner or shared provider mechanism may use.
 * Plugins import from src/ through this file only; everything not named here is internal
 * and may change without notice. test/public-api.test.ts pins these names.
 */
export type { Provider, ProviderProbe, RenderContext, Rendering, ReportAmendments } from "../provider.ts";
export { loadScript, type PlannedCommand, type Runner, type RunnerOptions, type ScriptRequest, type ScriptSource, type WarmStart } from "../runner.ts";
export { interpreterWarmStart } from "../pool/hand-over.ts";
export type {
  Capabilities,
  EgressRule,
  EgressSpec,
  EnvSpec,
  FilesystemSpec,
  Job,
  JobFile,
  Launch,
  Layout,
  Mount,
  NetworkSpec,
  PlanInput,
  PrivilegeSpec,
  ResourcesSpec,
  RlimitName,
  SandboxSpec,
  SpawnPlan,
  StagedFile,
  StdinSource,
  Workspace,
} from "../sandbox/spec.ts";
export { composePlan, composeSpec, type ComposedSpec } from "../sandbox/plan.ts";
export {
  degraded,
  enforced,
  layerReport,
  LAYER_NAMES,
  off,
  type ControlStatus,
  type ControlVerdict,
  type EffectiveSandboxReport,
  type LayerName,
  type LayerReport,
} from "../sandbox/report.ts";
export { CordonError, describeIssues, JobInputError, SandboxUnavailableError, zodIssues } from "../errors.ts";
export { isPlainObject } from "../plain-object.ts";
export { DEFAULT_POLICY, mergePolicy, type Policy, type ReadOnlyBind } from "../policy/index.ts";
export { ALWAYS_BLOCKED_V4, ALWAYS_BLOCKED_V6, type NetProtocol, type PortRange } from "../network/allow.ts";
export { canonicalAddress, compareIpNets, ipNetContains, networkAddress, parseIpNet, type IpFamily, type IpNet } from "../network/address.ts";
export { findExecutable, firstUnreachableAncestor, type HostFacts, type SandboxUser } from "../host.ts";
export { cgroupMechanism } from "../cgroup/detect.ts";
export { maskDeep, maskText } from "../secrets.ts";
export { BLOCK_FD, JOB_FD, SECCOMP_FD, LAUNCHER_ARGS_FD, LAUNCHER_STATUS_FD, RESULT_FD, RESULT_FD_ENV, SANDBOX_LAYOUT, SYSTEM_PATH } from "../protocol/index.ts";
export { runSystemCommand, type SystemCommandOptions, type SystemCommandResult } from "../process.ts";
export type { SetupStep } from "../sandbox/setup.ts";
export { RlimitError, setRlimits, type RlimitPair } from "../sandbox/rlimit-syscall.ts";
export { ERRNO, SYSCALL_RULES, type ArgTest, type ErrnoName, type SyscallRule } from "../seccomp/policy.ts";
export { freshKeyringProblem } from "../keyring.ts";
export { cachedProbe, type CachedProbeOptions } from "../probe-cache.ts";

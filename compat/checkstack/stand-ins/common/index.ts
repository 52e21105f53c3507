/**
 * STAND-IN for `@checkstack/common`, which is not on the npm registry (so `npm install
 * @checkstack/backend-api` fails). Written here, for cordon's checkstack compat tests only:
 * the smallest declarations that the modules of @checkstack/backend-api 0.35.2 these tests
 * load (its collector contract: compat/checkstack/contract.ts) need, shaped after how those
 * modules use them. Not checkstack's code, never shipped; vendor/checkstack links it in.
 * The other three missing packages (cache-api, queue-api, signal-common) need no stand-in:
 * no module of the collector contract imports them.
 */
import type { z } from "zod";

/** A plugin's identity; collectors list the transport plugins they run over by it. */
export interface PluginMetadata {
  pluginId: string;
}

/** What a transport strategy's connected client does for a collector. */
export interface TransportClient<TCommand, TResult> {
  exec(command: TCommand): Promise<TResult>;
}

/** One step of a versioned record's upgrade chain; `Versioned` awaits it. */
export interface Migration<TFrom = unknown, TTo = unknown> {
  fromVersion: number;
  toVersion: number;
  description: string;
  migrate(data: TFrom): TTo | Promise<TTo>;
}

export type ChartType = "line" | "bar" | "pie" | "counter" | "gauge" | "boolean" | "text" | "status";

interface ResultMetaBase {
  "x-chart-label"?: string;
  "x-chart-unit"?: string;
  "x-jsonpath"?: boolean;
}

/**
 * Chart metadata of a result field (the aggregated-field factories take it, less
 * `x-jsonpath`): a charted field must say whether anomaly detection watches it.
 */
export type HealthResultMeta =
  | (ResultMetaBase & { "x-chart-type": ChartType; "x-anomaly-enabled": false })
  | (ResultMetaBase & { "x-chart-type": ChartType; "x-anomaly-enabled": true; "x-anomaly-direction": "higher-is-better" | "lower-is-better" | "deviation" | "dominance" })
  | (ResultMetaBase & { "x-chart-type"?: never; "x-anomaly-enabled"?: never });

/** A config field's editor kind (zod-config.ts lists them in a meta key). */
export type EditorType = string;

/** `Versioned` words a failed migration with it. */
export function extractErrorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// The script sandbox's policy: backend-api's script-sandbox/policy.ts re-exports these and its
// EffectiveSandbox report carries the policy a run asked for. Types and declared schemas only:
// the compat tests never run that module.

// Object types, not interfaces: policy.ts passes them where a Record<string, unknown> is taken.
export type OnUnavailable = "degrade" | "fail";
export type ResourceLimits = {
  cpuSeconds?: number;
  memoryBytes?: number;
  maxOpenFiles?: number;
  maxProcesses?: number;
  maxOutputBytes?: number;
  maxFileSizeBytes?: number;
};
export type FilesystemPolicy = {
  mode: "off" | "scratch-only" | "scratch-plus-ro";
  scratchBytes?: number;
};
export type NetworkPolicy = {
  mode: "unrestricted" | "deny" | "allowlist";
  allow: string[];
  denyLinkLocalAndMetadata: boolean;
};
export type PrivilegePolicy = {
  mode: "inherit" | "drop-to-uid";
  uid?: number;
  gid?: number;
};
export type SandboxPolicy = {
  enabled: boolean;
  onUnavailable: OnUnavailable;
  resources: ResourceLimits;
  filesystem: FilesystemPolicy;
  network: NetworkPolicy;
  privilege: PrivilegePolicy;
};
export type SandboxPolicyInput = {
  enabled?: boolean;
  onUnavailable?: OnUnavailable;
  resources?: ResourceLimits;
  filesystem?: Partial<FilesystemPolicy>;
  network?: Partial<NetworkPolicy>;
  privilege?: Partial<PrivilegePolicy>;
};
export declare const onUnavailableSchema: z.ZodType<OnUnavailable>;
export declare const resourceLimitsSchema: z.ZodType<ResourceLimits>;
export declare const filesystemPolicySchema: z.ZodType<FilesystemPolicy, Partial<FilesystemPolicy>>;
export declare const networkPolicySchema: z.ZodType<NetworkPolicy, Partial<NetworkPolicy>>;
export declare const privilegePolicySchema: z.ZodType<PrivilegePolicy, Partial<PrivilegePolicy>>;
export declare const sandboxPolicySchema: z.ZodType<SandboxPolicy, SandboxPolicyInput>;

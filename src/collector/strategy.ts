/**
 * Collector contracts: a collector runs over a transport a health-check
 * strategy has already connected (SSH, a sandbox, ...), returns a typed
 * result per run, and folds each run into a per-bucket aggregate so history
 * costs O(1) memory per bucket. Config, result and aggregate are all
 * `Versioned` because they are stored and must survive schema changes.
 */
import type { AggregatedFields } from "./fields.ts";
import type { Versioned } from "./versioned.ts";

/** The one thing a collector may do with its transport: send a command, await the answer. */
export interface TransportClient<TCommand, TResult> {
  exec(command: TCommand): Promise<TResult>;
}

/** Identifies the plugin that owns a transport strategy; collectors list the ones they can run over. */
export interface PluginMetadata {
  pluginId: string;
}

export interface CollectorResult<TResult> {
  result: TResult;
  /** Set when collection partly failed but `result` still holds what was gathered. */
  error?: string;
}

/** What `mergeResult` sees of one run: enough to aggregate, nothing the bucket must not keep. */
export interface HealthCheckRunForAggregation<TResult = Record<string, unknown>> {
  status: "healthy" | "unhealthy" | "degraded";
  latencyMs?: number;
  /** The collector's result for this run; absent when the run produced none. */
  metadata?: TResult;
}

/**
 * The stored aggregate: versioned like any other stored data, declared as fields (see
 * fields.ts), and able to merge two buckets. Folding one run in lives on the strategy.
 */
export type AggregatedStore<TAggregated> = Versioned<TAggregated> & {
  readonly fields: AggregatedFields;
  mergeAggregatedStates(a: TAggregated | undefined, b: TAggregated): TAggregated;
};

/**
 * Read-only facts about the health check and the system a run is for (metadata, never
 * secrets): checkstack's `CollectorRunContext`. Script collectors hand it to the script
 * as CHECKSTACK_* environment variables (run-context.ts).
 */
export interface CollectorRunContext {
  check: { id: string; name: string; intervalSeconds: number };
  /** `metadata`: the system's free-form custom fields; absent counts as `{}`. */
  system: { id: string; name: string; metadata?: Record<string, unknown> };
  /** The environment this run is for, when the check fans out per environment. */
  environment?: { id: string; name: string; fields: Record<string, unknown> };
}

export interface CollectorExecuteParams<TClient, TConfig> {
  /** Already parsed through `config`, so the collector never sees stale shapes. */
  config: TConfig;
  /** Connected by the transport strategy; the collector does not own its lifecycle. */
  client: TClient;
  /** The transport strategy running this collector, for collectors that support several. */
  pluginId: string;
  /** What check and system this run is for; absent outside a monitoring backend. */
  runContext?: CollectorRunContext;
  /**
   * Secrets for this run only, delivered just in time and never stored. The
   * collector must keep them out of its returned result.
   */
  secretEnv?: Record<string, string>;
}

export interface CollectorStrategy<
  TClient extends TransportClient<unknown, unknown>,
  TConfig = unknown,
  TResult = Record<string, unknown>,
  TAggregated = Record<string, unknown>,
> {
  /** Stable identifier; stored alongside configs and results. */
  id: string;
  displayName: string;
  description?: string;
  /** Transport strategies this collector can run over; the registry matches on `pluginId`. */
  supportedPlugins: PluginMetadata[];
  /** Whether one health check may hold several instances (default false). */
  allowMultiple?: boolean;
  config: Versioned<TConfig>;
  result: Versioned<TResult>;
  aggregatedResult: AggregatedStore<TAggregated>;
  execute(params: CollectorExecuteParams<TClient, TConfig>): Promise<CollectorResult<TResult>>;
  /**
   * Fold one run into the bucket's aggregate (`existing` undefined on the
   * bucket's first run). Must be pure: the caller stores the return value.
   */
  mergeResult(existing: TAggregated | undefined, newRun: HealthCheckRunForAggregation<TResult>): TAggregated;
}

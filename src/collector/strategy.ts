/**
 * Collector contracts: a collector runs over a transport a health-check
 * strategy has already connected (SSH, a sandbox, ...), returns a typed
 * result per run, and folds each run into a per-bucket aggregate so history
 * costs O(1) memory per bucket. Config, result and aggregate are all
 * `Versioned` because they are stored and must survive schema changes.
 */
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

/** The stored aggregate is versioned like any other stored data; merging lives on the strategy. */
export type VersionedAggregated<TAggregated> = Versioned<TAggregated>;

export interface CollectorExecuteParams<TClient, TConfig> {
  /** Already parsed through `config`, so the collector never sees stale shapes. */
  config: TConfig;
  /** Connected by the transport strategy; the collector does not own its lifecycle. */
  client: TClient;
  /** The transport strategy running this collector, for collectors that support several. */
  pluginId: string;
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
  aggregatedResult: VersionedAggregated<TAggregated>;
  execute(params: CollectorExecuteParams<TClient, TConfig>): Promise<CollectorResult<TResult>>;
  /**
   * Fold one run into the bucket's aggregate (`existing` undefined on the
   * bucket's first run). Must be pure: the caller stores the return value.
   */
  mergeResult(existing: TAggregated | undefined, newRun: HealthCheckRunForAggregation<TResult>): TAggregated;
}

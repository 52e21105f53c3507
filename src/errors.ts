/**
 * Typed errors. Every error that stops a run before anything is spawned is a
 * CordonError with a stable `code`, so callers (CLI, collectors) can map it to
 * a RunResult without parsing messages.
 */
import type { z } from "zod";

export type CordonErrorCode =
  | "invalid-policy"
  | "invalid-config"
  | "invalid-job"
  | "unknown-provider"
  | "unknown-runner"
  | "sandbox-unavailable"
  | "sandbox-failed"
  | "cancelled"
  | "internal";

export class CordonError extends Error {
  constructor(
    readonly code: CordonErrorCode,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** One problem in an external input, located by its dotted field path. */
export interface FieldIssue {
  path: string;
  message: string;
}

/** zod's issues as field issues: the path dotted ("" for the root). */
export function zodIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
}

/** Field issues in one line: "path: message; …", the root named "(root)". */
export function describeIssues(issues: readonly FieldIssue[]): string {
  return issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; ");
}

export class PolicyValidationError extends CordonError {
  constructor(
    readonly issues: readonly FieldIssue[],
    what = "policy",
  ) {
    super("invalid-policy", `invalid ${what}: ${describeIssues(issues)}`);
  }
}

export class ConfigValidationError extends CordonError {
  constructor(readonly issues: readonly FieldIssue[]) {
    super("invalid-config", `invalid config: ${describeIssues(issues)}`);
  }
}

/** Bad job input: script too large, missing interpreter, unreadable file… */
export class JobInputError extends CordonError {
  constructor(message: string) {
    super("invalid-job", message);
  }
}

export class UnknownProviderError extends CordonError {
  constructor(
    readonly requested: string,
    readonly known: readonly string[],
  ) {
    super("unknown-provider", `unknown provider "${requested}" (known: ${known.join(", ") || "none"})`);
  }
}

export class UnknownRunnerError extends CordonError {
  constructor(
    readonly requested: string,
    readonly known: readonly string[],
  ) {
    super("unknown-runner", `unknown runner "${requested}" (known: ${known.join(", ") || "none"})`);
  }
}

/**
 * The policy asked for a layer the provider cannot enforce on this host and the
 * policy says `onUnavailable: fail`. Nothing was spawned.
 */
export class SandboxUnavailableError extends CordonError {
  constructor(
    readonly provider: string,
    readonly reasons: readonly string[],
  ) {
    super(
      "sandbox-unavailable",
      `provider "${provider}" cannot enforce the policy (onUnavailable: fail, nothing was run): ${reasons.join("; ")}`,
    );
  }
}

/**
 * Every host id of the identity pool is taken: each concurrent run needs one of its own,
 * and a run is never given a shared uid instead. Nothing was spawned. A refusal (outcome
 * `refused`, CLI status 125): it goes away when runs end or the pool grows.
 */
export class IdentityPoolExhaustedError extends CordonError {
  constructor(
    readonly range: { readonly base: number; readonly count: number },
    /** Why each id was not free: held by this process's runs, by another supervisor's claim, or used by a host account or process. */
    readonly taken: { readonly thisProcess: number; readonly otherSupervisors: number; readonly hostUsers: number },
    /** Ids asked for at once (readiness's concurrent probes ask for two). */
    readonly needed = 1,
  ) {
    const last = range.base + range.count - 1;
    const free = range.count - taken.thisProcess - taken.otherSupervisors - taken.hostUsers;
    const pool = `ids of the pool ${range.base}–${last} (config identity.base, identity.count)`;
    super(
      "sandbox-unavailable",
      `no free per-run host identity: ${needed === 1 ? `all ${range.count} ${pool} are taken` : `${free} of the ${range.count} ${pool} are free, ${needed} were needed at once`} ` +
        `(${taken.thisProcess} by runs of this process, ${taken.otherSupervisors} by other supervisors, ${taken.hostUsers} by host accounts or processes); ` +
        `nothing was run. Raise identity.count in cordon's config, or retry when runs have ended`,
    );
  }
}

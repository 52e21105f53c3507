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

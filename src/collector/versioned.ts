/**
 * Versioned data: a zod schema plus the migrations that upgrade older stored
 * copies of it. Collector configs, results and aggregates outlive the code that
 * wrote them (they sit in a database between deploys), so every read goes
 * through `parse`, which upgrades step by step and then validates.
 */
import type { z } from "zod";
import { describeIssues, zodIssues, type FieldIssue } from "../errors.ts";

/** One upgrade step: turns data written at `fromVersion` into data valid at `toVersion` (always `fromVersion + 1`). */
export interface Migration<TFrom = unknown, TTo = unknown> {
  fromVersion: number;
  toVersion: number;
  /** Shown in errors, so a failing step can be found without reading code. */
  description: string;
  migrate(data: TFrom): TTo;
}

/** The stored shape: the payload and the schema version it was written at. */
export interface VersionedRecord<T> {
  version: number;
  data: T;
}

export interface VersionedOptions<T> {
  /** Current schema version, an integer from 1. */
  version: number;
  schema: z.ZodType<T>;
  /** Exactly one step per version from 1 to `version`; order does not matter. */
  migrations?: readonly Migration[];
}

export type VersionedParseResult<T> = { success: true; data: T } | { success: false; error: Error };

/** Stored data that cannot be read at the current version; `issues` names each bad field. */
export class VersionedDataError extends Error {
  constructor(
    message: string,
    /** The version the record claimed to be written at. */
    readonly recordVersion: number | undefined,
    readonly issues: readonly FieldIssue[] = [],
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "VersionedDataError";
  }
}

export class Versioned<T> {
  readonly version: number;
  readonly schema: z.ZodType<T>;
  /** Sorted so that `migrations[v - 1]` upgrades v to v + 1. */
  readonly migrations: readonly Migration[];

  /** Throws when the migration chain is broken, so a bad bump fails at import time, not on the first old record. */
  constructor(options: VersionedOptions<T>) {
    this.version = options.version;
    this.schema = options.schema;
    this.migrations = Object.freeze(checkMigrationChain(options.version, options.migrations ?? []));
  }

  /** Upgrade a stored record to the current version and validate it. */
  parse(record: VersionedRecord<unknown>): T {
    const from = this.recordVersion(record);
    let data = record.data;
    for (let v = from; v < this.version; v++) data = this.migrateOne(v, data);
    const context = from === this.version ? `v${from} data` : `v${from} data migrated to v${this.version}`;
    return this.check(data, context, from);
  }

  /** `parse` without throwing, for callers that skip unreadable rows. */
  safeParse(record: VersionedRecord<unknown>): VersionedParseResult<T> {
    try {
      return { success: true, data: this.parse(record) };
    } catch (error) {
      return { success: false, error: error instanceof Error ? error : new Error(String(error)) };
    }
  }

  /** Validate data already at the current version (no migration). */
  validate(data: unknown): T {
    return this.check(data, `v${this.version} data`, this.version);
  }

  /** Wrap fresh data for storage, validated, stamped with the current version. */
  create(data: T): VersionedRecord<T> {
    return { version: this.version, data: this.validate(data) };
  }

  private recordVersion(record: VersionedRecord<unknown>): number {
    const version: unknown = (record as Partial<VersionedRecord<unknown>> | null)?.version;
    if (typeof version !== "number" || !Number.isInteger(version) || version < 1) {
      throw new VersionedDataError(`stored record version must be an integer from 1, got ${String(version)}`, undefined);
    }
    if (version > this.version) {
      throw new VersionedDataError(
        `stored record is v${version}, newer than the current v${this.version}; it was written by newer code`,
        version,
      );
    }
    return version;
  }

  private migrateOne(from: number, data: unknown): unknown {
    const step = this.migrations[from - 1];
    if (step === undefined) {
      throw new VersionedDataError(`no migration from v${from} to v${from + 1}`, from);
    }
    try {
      return step.migrate(data);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new VersionedDataError(`migration v${from}->v${from + 1} (${step.description}) failed: ${reason}`, from, [], {
        cause: error,
      });
    }
  }

  private check(data: unknown, context: string, recordVersion: number): T {
    const parsed = this.schema.safeParse(data);
    if (parsed.success) return parsed.data;
    const issues = zodIssues(parsed.error);
    throw new VersionedDataError(`invalid ${context}: ${describeIssues(issues)}`, recordVersion, issues);
  }
}

/**
 * The chain must be exactly 1->2, 2->3, ..., (version-1)->version: a gap would
 * strand every record written before it, a duplicate makes the upgrade
 * ambiguous. Returns the steps sorted by `fromVersion`.
 */
function checkMigrationChain(version: number, migrations: readonly Migration[]): Migration[] {
  if (!Number.isInteger(version) || version < 1) {
    throw new Error(`Versioned: version must be an integer from 1, got ${version}`);
  }
  const sorted = [...migrations].sort((a, b) => a.fromVersion - b.fromVersion);
  sorted.forEach((step, i) => checkStep(version, step, i + 1));
  const reached = sorted.length + 1;
  if (reached < version) {
    throw new Error(
      `Versioned v${version}: migration chain stops at v${reached}; missing a migration from v${reached} to v${reached + 1}`,
    );
  }
  return sorted;
}

function checkStep(version: number, step: Migration, expectedFrom: number): void {
  const label = `Versioned v${version}: migration "${step.description}" (v${step.fromVersion}->v${step.toVersion})`;
  if (step.toVersion !== step.fromVersion + 1) {
    throw new Error(`${label} must step up by exactly 1`);
  }
  if (step.fromVersion < expectedFrom) {
    const why = step.fromVersion < 1 ? "versions start at 1" : `a second migration from v${step.fromVersion}`;
    throw new Error(`${label} is ${why}`);
  }
  if (step.fromVersion > expectedFrom) {
    throw new Error(`${label} leaves a gap: missing a migration from v${expectedFrom} to v${expectedFrom + 1}`);
  }
  if (step.toVersion > version) {
    throw new Error(`${label} goes past the current version v${version}`);
  }
}

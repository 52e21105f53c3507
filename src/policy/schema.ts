import { posix } from "node:path";
import { z } from "zod";
import { AllowEntrySchema } from "../network/allow.ts";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** The lowest `resources.maxOpenFiles` under which every runner still starts (see ResourcesSchema). */
export const MIN_OPEN_FILES = 12;

const int = (min: number, max: number, unit = "") =>
  z
    .number({ error: `expected a number${unit ? ` (${unit})` : ""}` })
    .int({ error: "expected a whole number" })
    .min(min, { error: `must be at least ${min}${unit ? ` ${unit}` : ""}` })
    .max(max, { error: `must be at most ${max}${unit ? ` ${unit}` : ""}` });

/** Absolute, already-normalised path without NUL: what a bind source or target must be. */
export const AbsolutePath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.includes("\0"), { error: "must not contain NUL bytes" })
  .refine((p) => p.startsWith("/"), { error: "must be an absolute path" })
  .refine((p) => posix.normalize(p) === p && !p.split("/").includes(".."), {
    error: "must be normalised (no '..', '.', '//' or trailing '/')",
  });

export const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: "not a valid environment variable name" });
export const EnvValue = z.string().max(128 * KiB).refine((v) => !v.includes("\0"), { error: "must not contain NUL bytes" });

export const ResourcesSchema = z.strictObject({
  /** Wall-clock limit, enforced by the supervisor (kills the whole tree). */
  wallMs: int(1, 24 * 3600 * 1000, "ms"),
  cpuSeconds: int(1, 24 * 3600, "s"),
  memoryBytes: int(4 * MiB, 1024 * GiB, "bytes"),
  maxProcesses: int(1, 65536),
  maxFileSizeBytes: int(1, 1024 * GiB, "bytes"),
  /**
   * RLIMIT_NOFILE. The floor is what every runner needs to start, print and report
   * (measured, Debian 12, bwrap and rootless): dash puts the script's fd at 10 and saves a
   * redirected fd at 11 (`echo … >&4`, `cordon-result`), so 12; python3 -I needs 6 and the
   * Bun harness 7, but `--verify`'s receipt prologue is dash again: 12 for every runner.
   */
  maxOpenFiles: int(MIN_OPEN_FILES, 1 << 20),
  /** Per stream (stdout and stderr each). */
  maxOutputBytes: int(1, GiB, "bytes"),
  /** Stdin is streamed into the sandbox up to this many bytes; the rest is cut (RunResult.stdinTruncated). */
  maxStdinBytes: int(0, 64 * GiB, "bytes").default(16 * MiB),
  /** Size of the writable scratch directory, and of /tmp. */
  scratchBytes: int(64 * KiB, 64 * GiB, "bytes"),
  /** CPU bandwidth for the whole tree in percent of one CPU (cgroup quota), or null for none. */
  cpuPercent: z.number().int().min(1).max(6400).nullable(),
});

/** Paths the sandbox owns: a policy bind may not shadow them. */
export const RESERVED_SANDBOX_PATHS = ["/", "/proc", "/dev", "/tmp", "/scratch", "/cordon"] as const;

export const ReadOnlyBindSchema = z
  .union([AbsolutePath, z.strictObject({ source: AbsolutePath, target: AbsolutePath.optional() })])
  .transform((b) => (typeof b === "string" ? { source: b, target: b } : { source: b.source, target: b.target ?? b.source }))
  .refine(
    (b) => !RESERVED_SANDBOX_PATHS.some((r) => b.target === r || (r !== "/" && b.target.startsWith(`${r}/`))),
    { error: `target must not be or lie under a path the sandbox owns (${RESERVED_SANDBOX_PATHS.join(", ")})` },
  );

export const FilesystemSchema = z.strictObject({
  /** scratch: minimal read-only system view + per-run writable scratch; off: no filesystem isolation. */
  mode: z.enum(["scratch", "off"]),
  readOnlyBinds: z.array(ReadOnlyBindSchema).max(64),
});

export const NetworkSchema = z
  .strictObject({
    mode: z.enum(["deny", "allowlist", "unrestricted"]),
    /** Egress entries for `allowlist`: `[tcp://|udp://]TARGET[:PORT[-PORT]]` (src/network/allow.ts). */
    allow: z.array(AllowEntrySchema).max(256),
    /** Block cloud metadata and link-local targets even when egress is open. */
    blockMetadata: z.boolean(),
  })
  .superRefine((n, ctx) => {
    if (n.mode !== "allowlist" && n.allow.length > 0)
      ctx.addIssue({ code: "custom", path: ["allow"], message: `only used with mode "allowlist" (mode is "${n.mode}")` });
  });

export const PrivilegeSchema = z.strictObject({
  uid: int(0, 2 ** 32 - 2).refine((u) => u !== 0, { error: "uid 0 is root on the host: choose an unprivileged uid" }),
  gid: int(1, 2 ** 32 - 2),
  noNewPrivs: z.boolean(),
  dropCapabilities: z.boolean(),
  /** The syscall filter (src/seccomp/policy.ts). false only to debug a script: reported as degraded, so `fail` refuses. */
  seccomp: z.boolean(),
});

export const EnvSchema = z.strictObject({
  /** Names of host variables passed through; every other host variable is dropped. */
  allow: z.array(EnvName).max(256),
  /** Variables set to fixed values inside the sandbox. */
  set: z.record(EnvName, EnvValue),
});

export const PolicySchema = z.strictObject({
  /** What happens when a requested layer cannot be enforced: refuse the run, or run the enforceable subset. */
  onUnavailable: z.enum(["fail", "degrade"]),
  resources: ResourcesSchema,
  filesystem: FilesystemSchema,
  network: NetworkSchema,
  privilege: PrivilegeSchema,
  env: EnvSchema,
});

/** A partial policy: every field optional at every depth, still strict about unknown keys. */
export const PolicyOverrideSchema = z.strictObject({
  onUnavailable: PolicySchema.shape.onUnavailable.optional(),
  resources: ResourcesSchema.partial().optional(),
  filesystem: FilesystemSchema.partial().optional(),
  network: z
    .strictObject({
      mode: z.enum(["deny", "allowlist", "unrestricted"]).optional(),
      allow: NetworkSchema.shape.allow.optional(),
      blockMetadata: z.boolean().optional(),
    })
    .optional(),
  privilege: PrivilegeSchema.partial().optional(),
  env: EnvSchema.partial().optional(),
});

export type Policy = z.output<typeof PolicySchema>;
export type PolicyInput = z.input<typeof PolicySchema>;
export type PolicyOverride = z.input<typeof PolicyOverrideSchema>;
export type NetworkMode = Policy["network"]["mode"];
export type ReadOnlyBind = Policy["filesystem"]["readOnlyBinds"][number];

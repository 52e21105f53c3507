import { z } from "zod";
import { ConfigValidationError, zodIssues } from "./errors.ts";
import { DEFAULT_CGROUP_PARENT } from "./protocol/index.ts";
import { AbsolutePath, MiB, PolicyOverrideSchema } from "./policy/index.ts";
import { DEFAULT_IDENTITY_BASE, DEFAULT_IDENTITY_COUNT, MAX_HOST_ID } from "./identity/range.ts";

/**
 * The per-run host identities (a root supervisor): run i of those running at once drops to
 * host uid = gid = base + i, its own. Every supervisor on a host must use the same range
 * (they coordinate through claims in /run/cordon-identities); nothing else may use it.
 */
const IdentitySchema = z
  .strictObject({
    base: z.number().int().min(1000, "ids below 1000 are system accounts").max(MAX_HOST_ID).default(DEFAULT_IDENTITY_BASE),
    count: z.number().int().min(1).max(65_536).default(DEFAULT_IDENTITY_COUNT),
  })
  .refine((r) => r.base + r.count - 1 <= MAX_HOST_ID, { error: `base + count - 1 must be at most ${MAX_HOST_ID} (4294967295 is (uid_t) -1)`, path: ["count"] })
  .refine((r) => r.base > 65_535 || r.base + r.count - 1 < 65_534, { error: "the range must not hold 65534 (nobody) or 65535 ((uint16) -1)", path: ["base"] });

export const CordonConfigSchema = z.strictObject({
  /** A provider name, or "auto": the first provider in providerOrder that is available and can run the policy. */
  provider: z.string().min(1).default("bwrap"),
  providerOrder: z.array(z.string().min(1)).min(1).default(["bwrap", "rootless"]),
  /** Applied on top of the shipped default policy. */
  policy: PolicyOverrideSchema.default({}),
  /** Fixed answers for allowlisted hostnames (name → addresses), consulted before DNS. */
  staticHosts: z.record(z.string().min(1).max(253), z.array(z.union([z.ipv4(), z.ipv6()])).min(1)).default({}),
  /** auto: per-run cgroups where the host allows them; off: never (memory falls back to per-process rlimits, reported). */
  cgroups: z.enum(["auto", "off"]).default("auto"),
  /** The cgroup (relative to each hierarchy's mount) per-run cgroups are created under. */
  cgroupParent: z.string().regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, "a relative cgroup path such as cordon or system.slice/cordon").default(DEFAULT_CGROUP_PARENT),
  /**
   * Where per-run directories are created (default: /run/cordon for a root supervisor, else
   * $XDG_RUNTIME_DIR/cordon, else $TMPDIR/cordon-runs-<uid>). Checked before every run: every
   * directory on the way owned by the supervisor's uid or root and not writable by others.
   */
  runRoot: AbsolutePath.optional(),
  identity: IdentitySchema.default({ base: DEFAULT_IDENTITY_BASE, count: DEFAULT_IDENTITY_COUNT }),
  maxScriptBytes: z.number().int().min(1).max(64 * MiB).default(1 * MiB),
  /** Input files staged into scratch: refused before anything runs when over these caps. */
  inputFiles: z
    .strictObject({
      maxCount: z.number().int().min(0).max(100_000).default(256),
      maxTotalBytes: z.number().int().min(0).max(1024 * MiB).default(16 * MiB),
    })
    .default({ maxCount: 256, maxTotalBytes: 16 * MiB }),
  /** Files created or changed under scratch, returned after the run. */
  outputFiles: z
    .strictObject({
      /** false: return none (scratch is still removed). */
      collect: z.boolean().default(true),
      maxCount: z.number().int().min(0).max(100_000).default(256),
      maxTotalBytes: z.number().int().min(0).max(1024 * MiB).default(16 * MiB),
      maxDepth: z.number().int().min(1).max(64).default(16),
      collectMs: z.number().int().min(10).max(60_000).default(2_000),
    })
    .default({ collect: true, maxCount: 256, maxTotalBytes: 16 * MiB, maxDepth: 16, collectMs: 2_000 }),
  /** The structured result channel is read up to this many bytes; more is a resultError. */
  maxResultBytes: z.number().int().min(64).max(16 * MiB).default(64 * 1024),
});

export type CordonConfig = z.output<typeof CordonConfigSchema>;
export type CordonConfigInput = z.input<typeof CordonConfigSchema>;

export function parseConfig(input: unknown): CordonConfig {
  const parsed = CordonConfigSchema.safeParse(input ?? {});
  if (!parsed.success) throw new ConfigValidationError(zodIssues(parsed.error));
  return parsed.data;
}

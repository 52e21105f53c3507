import { z } from "zod";
import { ConfigValidationError, zodIssues } from "./errors.ts";
import { DEFAULT_CGROUP_PARENT } from "./protocol/index.ts";
import { AbsolutePath, MiB, PolicyOverrideSchema, SchemaReference } from "./policy/index.ts";
import { DEFAULT_IDENTITY_BASE, DEFAULT_IDENTITY_COUNT, MAX_HOST_ID } from "./identity/range.ts";

/**
 * The per-run host identities (a root supervisor): run i of those running at once drops to
 * host uid = gid = base + i, its own. Every supervisor on a host must use the same range
 * (they coordinate through claims in /run/cordon-identities); nothing else may use it.
 */
const IdentitySchema = z
  .strictObject({
    base: z.number().int().min(1000, "ids below 1000 are system accounts").max(MAX_HOST_ID).default(DEFAULT_IDENTITY_BASE).meta({ description: "the first host uid (= gid) of the pool; default in the range systemd leaves unused" }),
    count: z.number().int().min(1).max(65_536).default(DEFAULT_IDENTITY_COUNT).meta({ description: "how many runs may hold an identity at once; one more is refused (IdentityPoolExhaustedError)" }),
  })
  .refine((r) => r.base + r.count - 1 <= MAX_HOST_ID, { error: `base + count - 1 must be at most ${MAX_HOST_ID} (4294967295 is (uid_t) -1)`, path: ["count"] })
  .refine((r) => r.base > 65_535 || r.base + r.count - 1 < 65_534, { error: "the range must not hold 65534 (nobody) or 65535 ((uint16) -1)", path: ["base"] });

/**
 * Every field's `description` is the documentation: schema/config.schema.json and the README's
 * config table are generated from it (`bun run schema`), and a test fails while they differ.
 */
const doc = (description: string) => ({ description });

/** A byte budget for the files of one run (input or output): up to 1 GiB, 16 MiB by default. */
const fileBytesCap = (description: string) =>
  z
    .number()
    .int()
    .min(0)
    .max(1024 * MiB)
    .default(16 * MiB)
    .meta(doc(description));

export const CordonConfigSchema = z.strictObject({
  /** A provider name, or "auto": the first provider in providerOrder that is available and can run the policy. */
  provider: z
    .string()
    .min(1)
    .default("bwrap")
    .meta(doc("a provider name, or `auto`: the first provider in `providerOrder` that is available and enforces everything the policy asks")),
  providerOrder: z
    .array(z.string().min(1))
    .min(1)
    .default(["bwrap", "rootless"])
    .meta(doc("the providers `auto` tries, in order")),
  /** Applied on top of the shipped default policy. */
  policy: PolicyOverrideSchema.meta(doc("applied on top of the shipped default policy: the fields of a policy file (see **Policy**)")).default({}),
  /** Fixed answers for allowlisted hostnames (name → addresses), consulted before DNS. */
  staticHosts: z
    .record(z.string().min(1).max(253), z.array(z.union([z.ipv4(), z.ipv6()])).min(1))
    .default({})
    .meta(doc("fixed answers for allowlisted hostnames (name → IPv4/IPv6 addresses), consulted before the host's resolver")),
  /** auto: per-run cgroups where the host allows them; off: never (memory falls back to per-process rlimits, reported). */
  cgroups: z
    .enum(["auto", "off"])
    .default("auto")
    .meta(doc("`auto`: a cgroup per run where the host allows it (root, or a delegated v2 subtree); `off`: never (memory falls back to per-process rlimits, reported)")),
  /** The cgroup (relative to each hierarchy's mount) per-run cgroups are created under. */
  cgroupParent: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, "a relative cgroup path such as cordon or system.slice/cordon")
    .default(DEFAULT_CGROUP_PARENT)
    .meta(doc("the cgroup, relative to each hierarchy's mount, per-run cgroups are created under (`cordon`, `system.slice/cordon`)")),
  /**
   * Where per-run directories are created (default: /run/cordon for a root supervisor, else
   * $XDG_RUNTIME_DIR/cordon, else $TMPDIR/cordon-runs-<uid>). Checked before every run: every
   * directory on the way owned by the supervisor's uid or root and not writable by others.
   */
  runRoot: AbsolutePath.optional().meta(
    doc("where run directories are created; unset: `/run/cordon` for a root supervisor, else `$XDG_RUNTIME_DIR/cordon`, else `$TMPDIR/cordon-runs-<uid>`. Checked before every run (see **Library**)"),
  ),
  maxScriptBytes: z
    .number()
    .int()
    .min(1)
    .max(64 * MiB)
    .default(1 * MiB)
    .meta(doc("the largest script (inline source or file) a run accepts; a larger one is refused before anything runs")),
  identity: IdentitySchema.default({ base: DEFAULT_IDENTITY_BASE, count: DEFAULT_IDENTITY_COUNT }).meta(
    doc("the per-run host identities of a root supervisor: run i of those running at once drops to host uid = gid = `base + i` (see **Per-run host identities**)"),
  ),
  /** Input files staged into scratch: refused before anything runs when over these caps. */
  inputFiles: z
    .strictObject({
      maxCount: z.number().int().min(0).max(100_000).default(256).meta(doc("the most input files (`files`, `--files DIR`) one run stages into scratch")),
      maxTotalBytes: fileBytesCap("the most bytes of input files one run stages; over either cap the run is refused (`JobInputError`)"),
    })
    .default({ maxCount: 256, maxTotalBytes: 16 * MiB }),
  /** Files created or changed under scratch, returned after the run. */
  outputFiles: z
    .strictObject({
      /** false: return none (scratch is still removed). */
      collect: z.boolean().default(true).meta(doc("return the files the run created or changed under scratch (`result.files`, `--out DIR`); `false`: none")),
      maxCount: z.number().int().min(0).max(100_000).default(256).meta(doc("the most output files returned; the rest are listed in `filesOmitted`")),
      maxTotalBytes: fileBytesCap("the most bytes of output files returned; a file past the budget is not read, and listed in `filesOmitted`"),
      maxDepth: z.number().int().min(1).max(64).default(16).meta(doc("the deepest directory level under scratch that is walked")),
      collectMs: z.number().int().min(10).max(60_000).default(2_000).meta(doc("the time the walk of scratch may take after the run")),
    })
    .default({ collect: true, maxCount: 256, maxTotalBytes: 16 * MiB, maxDepth: 16, collectMs: 2_000 }),
  /** The warm pool (src/pool/): sandboxes started ahead, one run each. */
  pool: z
    .strictObject({
      size: z.number().int().min(0).max(64).default(0).meta(doc("sandboxes kept started ahead per shape (provider, runner, policy), each for exactly one run; `0`: no pool, every run starts cold. The CLI runs one run per process and always starts it cold")),
      idleMs: z.number().int().min(100).max(3_600_000).default(60_000).meta(doc("an idle pooled sandbox is destroyed after this long, and its shape is no longer kept warm until a run uses it again")),
      memoryBytes: z
        .number()
        .int()
        .min(0)
        .max(64 * 1024 * MiB)
        .default(512 * MiB)
        .meta(doc("what idle pooled sandboxes may hold in memory together (their cgroups' charge); past it no more are started")),
    })
    .default({ size: 0, idleMs: 60_000, memoryBytes: 512 * MiB }),
  /** The structured result channel is read up to this many bytes; more is a resultError. */
  maxResultBytes: z
    .number()
    .int()
    .min(64)
    .max(16 * MiB)
    .default(64 * 1024)
    .meta(doc("the structured result channel (fd 4) is read up to this; more is a `resultError`, the result `crit`, and the run ends as `limit`/`output`")),
});

/** A config file: the config, plus the `$schema` key that points an editor at schema/config.schema.json. */
export const ConfigFileSchema = CordonConfigSchema.extend({ $schema: SchemaReference });

export type CordonConfig = z.output<typeof CordonConfigSchema>;
export type CordonConfigInput = z.input<typeof CordonConfigSchema>;

/** Validate a config (a config file's `$schema` key is accepted and dropped); throws ConfigValidationError naming every bad field. */
export function parseConfig(input: unknown): CordonConfig {
  const parsed = ConfigFileSchema.safeParse(input ?? {});
  if (!parsed.success) throw new ConfigValidationError(zodIssues(parsed.error));
  const { $schema: _editorHint, ...config } = parsed.data;
  return config;
}

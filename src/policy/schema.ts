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

/**
 * Every field's `description` is the documentation: the JSON Schema (schema/*.schema.json) and
 * the README's policy table are generated from it (`bun run schema`), and a test fails while
 * either differs from what these schemas say.
 */
const doc = (description: string) => ({ description });

const MaxStdinBytes = int(0, 64 * GiB, "bytes").meta(doc("stdin is streamed into the sandbox up to this; the rest is cut (never buffered whole), `stdinTruncated: true`"));

export const ResourcesSchema = z.strictObject({
  /** Wall-clock limit, enforced by the supervisor (kills the whole tree). */
  wallMs: int(1, 24 * 3600 * 1000, "ms").meta(doc("wall clock, enforced by the supervisor, kills the whole tree")),
  cpuSeconds: int(1, 24 * 3600, "s").meta(
    doc("RLIMIT_CPU per process (SIGXCPU at N s, SIGKILL at N+1); reported as `limitHit: cpu` only when the run cgroup measured the tree at N s of CPU or more (see exit statuses)"),
  ),
  memoryBytes: int(4 * MiB, 1024 * GiB, "bytes").meta(
    doc("the run's cgroup memory cap for the whole tree, swap off; without usable cgroups RLIMIT_AS per process where the interpreter tolerates it (reported as per-process, never as a tree cap)"),
  ),
  maxProcesses: int(1, 65536).meta(doc("the run's cgroup `pids.max` (processes and threads of the whole tree); without cgroups RLIMIT_NPROC inside the sandbox's own user namespace")),
  maxFileSizeBytes: int(1, 1024 * GiB, "bytes").meta(
    doc("RLIMIT_FSIZE: a write past it fails (EFBIG) and SIGXFSZ kills the writer unless handled; reported as the script's own end (`killed`, SIGXFSZ), not as a limit (see exit statuses)"),
  ),
  /**
   * RLIMIT_NOFILE. The floor is what every runner needs to start, print and report
   * (measured, Debian 12, bwrap and rootless): dash puts the script's fd at 10 and saves a
   * redirected fd at 11 (`echo … >&4`, `cordon-result`), so 12; python3 -I needs 6 and the
   * Bun harness 7, but `--verify`'s receipt prologue is dash again: 12 for every runner.
   */
  maxOpenFiles: int(MIN_OPEN_FILES, 1 << 20).meta(
    doc(`RLIMIT_NOFILE; at least ${MIN_OPEN_FILES}, what every runner needs to start and report (dash puts the script at fd 10 and saves a redirected fd at 11; \`--verify\` runs through dash too)`),
  ),
  /** Per stream (stdout and stderr each). */
  maxOutputBytes: int(1, GiB, "bytes").meta(doc("per stream; the run is killed when a stream exceeds it")),
  /** Stdin is streamed into the sandbox up to this many bytes; the rest is cut (RunResult.stdinTruncated). */
  maxStdinBytes: MaxStdinBytes.default(16 * MiB),
  /** Size of the writable scratch directory, and of /tmp. */
  scratchBytes: int(64 * KiB, 64 * GiB, "bytes").meta(doc("size of the scratch tmpfs (root supervisor), of `/tmp` and of `/dev/shm`")),
  /** CPU bandwidth for the whole tree in percent of one CPU (cgroup quota), or null for none. */
  cpuPercent: z
    .number()
    .int()
    .min(1)
    .max(6400)
    .nullable()
    .meta(doc("optional CPU quota for the whole tree, in percent of one CPU (cgroup `cpu.max` / `cfs_quota_us`); `null` for none")),
});

/** Paths the sandbox owns: a policy bind may not shadow them. */
export const RESERVED_SANDBOX_PATHS = ["/", "/proc", "/dev", "/tmp", "/scratch", "/cordon"] as const;

export const ReadOnlyBindSchema = z
  .union([AbsolutePath, z.strictObject({ source: AbsolutePath, target: AbsolutePath.optional() })])
  .meta(doc("a host path bound read-only at the same path, or `{ source, target }`"))
  .transform((b) => (typeof b === "string" ? { source: b, target: b } : { source: b.source, target: b.target ?? b.source }))
  .refine(
    (b) => !RESERVED_SANDBOX_PATHS.some((r) => b.target === r || (r !== "/" && b.target.startsWith(`${r}/`))),
    { error: `target must not be or lie under a path the sandbox owns (${RESERVED_SANDBOX_PATHS.join(", ")})` },
  );

export const FilesystemSchema = z.strictObject({
  /** scratch: minimal read-only system view + per-run writable scratch; off: no filesystem isolation. */
  mode: z.enum(["scratch", "off"]).meta(
    doc(
      "`scratch`: read-only /usr, stub /etc, fresh /proc and /dev (read-only itself: only its device nodes, `/dev/pts` and the sized `/dev/shm` are writable), per-run writable `/scratch` (cwd) and tmpfs `/tmp`; `off`: no isolation: the host's top-level entries bound read-write at their own paths (writes limited by the sandbox uid's permissions) on a read-only tmpfs `/`, fresh /proc and /dev, private `/tmp`, `/scratch` (cwd) and `/cordon/job`, the run root covered by an empty tmpfs; `readOnlyBinds` not applied",
    ),
  ),
  readOnlyBinds: z.array(ReadOnlyBindSchema).max(64).meta(doc('extra host paths bound read-only (`"/opt/x"` or `{source, target}`)')),
});

export const NetworkSchema = z
  .strictObject({
    mode: z.enum(["deny", "allowlist", "unrestricted"]).meta(
      doc("`deny`: fresh namespace, loopback only; `allowlist`/`unrestricted`: filtered egress, needs the `rootless` provider (bwrap alone refuses, or runs with `deny` under `degrade`: never unfiltered)"),
    ),
    /** Egress entries for `allowlist`: `[tcp://|udp://]TARGET[:PORT[-PORT]]` (src/network/allow.ts). */
    allow: z
      .array(AllowEntrySchema)
      .max(256)
      .meta(
        doc("allowlist entries `[tcp://|udp://]TARGET[:PORT[-PORT]]`, TARGET an IPv4/IPv6 address, a CIDR or a hostname (`[2001:db8::10]:443`); no scheme = tcp and udp, no port = every port"),
      ),
    /** Block cloud metadata and link-local targets even when egress is open. */
    blockMetadata: z
      .boolean()
      .meta(
        doc("always drop 169.254.0.0/16, 100.100.100.200, 168.63.129.16, fe80::/10, fc00::/7, the host through the slirp gateway and every address of the host itself (all interfaces, both families, loopback and multicast; read from `/proc/net` at plan time and again before release), even under `unrestricted`. An allowlist entry that names a host address by IP opens exactly that address and its ports; a hostname resolving to a host address is refused"),
      ),
  })
  .superRefine((n, ctx) => {
    if (n.mode !== "allowlist" && n.allow.length > 0)
      ctx.addIssue({ code: "custom", path: ["allow"], message: `only used with mode "allowlist" (mode is "${n.mode}")` });
  });

export const PrivilegeSchema = z.strictObject({
  uid: int(0, 2 ** 32 - 2)
    .refine((u) => u !== 0, { error: "uid 0 is root on the host: choose an unprivileged uid" })
    .meta(doc("the uid the script runs as inside the sandbox; never 0. On the host a root supervisor drops each run to a uid of its own from the identity pool (config `identity`), never to this one")),
  gid: int(1, 2 ** 32 - 2).meta(doc("the gid the script runs as inside the sandbox, with no supplementary groups (on the host: the run's own, like the uid)")),
  noNewPrivs: z.boolean().meta(doc("no_new_privs: setuid binaries and file capabilities grant nothing")),
  dropCapabilities: z.boolean().meta(doc("drop every capability")),
  /** The syscall filter (src/seccomp/policy.ts). false only to debug a script: reported as degraded, so `fail` refuses. */
  seccomp: z
    .boolean()
    .meta(
      doc("the syscall filter (see **Syscall filter**); `false` only to debug a script: reported as `privilege.seccomp` degraded, so `fail` refuses the run. Every run also starts in a fresh anonymous session keyring, filter or not (`privilege.keyring`)"),
    ),
});

export const EnvSchema = z.strictObject({
  /** Names of host variables passed through; every other host variable is dropped. */
  allow: z.array(EnvName).max(256).meta(doc("host variables passed through by name; nothing else of the host environment reaches the script")),
  /** Variables set to fixed values inside the sandbox. */
  set: z.record(EnvName, EnvValue).meta(doc("variables set to fixed values inside the sandbox")),
});

export const PolicySchema = z.strictObject({
  /** What happens when a requested layer cannot be enforced: refuse the run, or run the enforceable subset. */
  onUnavailable: z
    .enum(["fail", "degrade"])
    .meta(doc("`fail`: refuse the run when any requested control cannot be enforced; `degrade`: run the enforceable subset and list every downgrade")),
  resources: ResourcesSchema,
  filesystem: FilesystemSchema,
  network: NetworkSchema,
  privilege: PrivilegeSchema,
  env: EnvSchema,
});

/**
 * A partial policy: every field optional at every depth, still strict about unknown keys.
 * Each field is the complete policy's own schema made optional, so it keeps its description.
 */
export const PolicyOverrideSchema = z.strictObject({
  onUnavailable: PolicySchema.shape.onUnavailable.optional(),
  // Without the full policy's default: an override that does not name maxStdinBytes must keep
  // the base policy's, not reset it to 16 MiB (`.partial()` keeps a default).
  resources: ResourcesSchema.extend({ maxStdinBytes: MaxStdinBytes }).partial().optional(),
  filesystem: FilesystemSchema.partial().optional(),
  // NetworkSchema's cross-field check needs both fields, so the partial one is rebuilt from its fields.
  network: z
    .strictObject({
      mode: NetworkSchema.shape.mode.optional(),
      allow: NetworkSchema.shape.allow.optional(),
      blockMetadata: NetworkSchema.shape.blockMetadata.optional(),
    })
    .optional(),
  privilege: PrivilegeSchema.partial().optional(),
  env: EnvSchema.partial().optional(),
});

/** The `$schema` key an editor reads: allowed at the top of a policy or config file, and ignored. */
export const SchemaReference = z.string().max(4096).optional().meta(doc("the JSON Schema this file follows, for editors; ignored by cordon"));

/** A policy file: an override, plus the `$schema` key that points an editor at schema/policy.schema.json. */
export const PolicyFileSchema = PolicyOverrideSchema.extend({ $schema: SchemaReference });

export type Policy = z.output<typeof PolicySchema>;
export type PolicyInput = z.input<typeof PolicySchema>;
export type PolicyOverride = z.input<typeof PolicyOverrideSchema>;
export type NetworkMode = Policy["network"]["mode"];
export type ReadOnlyBind = Policy["filesystem"]["readOnlyBinds"][number];

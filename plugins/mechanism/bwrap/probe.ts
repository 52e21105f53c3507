/**
 * Finding bwrap and what it can do: its version and the options its --help lists, read
 * from the binary itself (two spawns, ~11 ms) or from the probe cache (src/probe-cache.ts)
 * when this very binary was probed before.
 *
 * The cache key is the binary's identity: path, device, inode, size, mtime and ctime (a
 * replaced or rewritten binary has a new inode or ctime, which no chmod or touch can set
 * back), and the kernel release. The result depends on nothing else: `--version` and
 * `--help` only print what was compiled in, whatever the sysctls say (what the kernel
 * allows is proven by readiness, not here). Even an entry that lied could not weaken a
 * run silently: an option claimed but missing makes bwrap refuse the whole command line
 * (the run fails), and one denied makes the report say that control is not enforced.
 */
import { statSync, type BigIntStats } from "node:fs";
import { release } from "node:os";
import { cachedProbe, findExecutable, type ProviderProbe } from "../../../src/api/plugin.ts";

/** What --version and --help said. */
interface HelperFacts {
  version: string;
  features: { disableUserns: boolean; tmpfsSize: boolean; blockFd: boolean; seccomp: boolean };
}

const FEATURES = ["disableUserns", "tmpfsSize", "blockFd", "seccomp"] as const;

function acceptFacts(v: unknown): HelperFacts | null {
  if (typeof v !== "object" || v === null) return null;
  const { version, features } = v as Partial<HelperFacts>;
  if (typeof version !== "string" || version.length > 100 || typeof features !== "object" || features === null) return null;
  if (!FEATURES.every((f) => typeof features[f] === "boolean") || Object.keys(features).length !== FEATURES.length) return null;
  return { version, features: { ...features } };
}

/** Run the helpers: the facts, or why bwrap cannot even say its version. */
function readFacts(binary: string): HelperFacts | string {
  const version = Bun.spawnSync([binary, "--version"], { env: {} });
  if (!version.success) return `${binary} --version failed: ${version.stderr.toString().trim()}`;
  const help = Bun.spawnSync([binary, "--help"], { env: {} }).stdout.toString();
  return {
    version: version.stdout.toString().trim().replace(/^bubblewrap\s*/, ""),
    features: { disableUserns: help.includes("--disable-userns"), tmpfsSize: help.includes("--size"), blockFd: help.includes("--block-fd"), seccomp: help.includes("--seccomp") },
  };
}

function identityKey(binary: string, st: BigIntStats): string {
  return JSON.stringify({ binary, dev: `${st.dev}`, ino: `${st.ino}`, size: `${st.size}`, mtime: `${st.mtimeNs}`, ctime: `${st.ctimeNs}`, kernel: release() });
}

export interface ProbeOptions {
  /** The probe cache directory; null: always run the helpers. Default: src/probe-cache.ts's. */
  cacheDir?: string | null;
}

/** Locate bwrap, read its version and features (cached per binary), resolve setpriv and prlimit. */
export function probeBwrap(binaryOption?: string, options: ProbeOptions = {}): ProviderProbe {
  const binary = findExecutable(binaryOption ?? "bwrap");
  const none = (reason: string): ProviderProbe => ({ available: false, binary, version: null, features: {}, reason });
  if (!binary) return none(`bwrap not found${binaryOption ? ` at ${binaryOption}` : " on PATH"} (Debian: apt-get install bubblewrap)`);
  const st = statSync(binary, { bigint: true });
  const facts = cachedProbe<HelperFacts | string>({
    // One entry per binary path; the name only spreads them out (the key inside is what is checked). No node:crypto: ~10 ms of a CLI start.
    name: `bwrap-${Bun.hash(binary).toString(16)}`,
    key: identityKey(binary, st),
    accept: acceptFacts,
    compute: () => {
      const value = readFacts(binary);
      return { value, cache: typeof value !== "string" };
    },
    ...(options.cacheDir !== undefined ? { dir: options.cacheDir } : {}),
  });
  if (typeof facts === "string") return none(facts);
  // Only where this bwrap has no --block-fd: prlimit then runs inside the sandbox, so only one under the bound /usr will do.
  const prlimit = findExecutable("prlimit", "/usr/bin");
  const setpriv = findExecutable("setpriv", "/usr/bin:/bin");
  return {
    available: true,
    binary,
    version: facts.version,
    features: {
      ...facts.features,
      // Not cached: a setuid bwrap started without no_new_privs would run privileged, so such a host keeps setpriv --no-new-privs.
      setuid: (Number(st.mode) & 0o4000) !== 0,
    },
    tools: { ...(prlimit ? { prlimit } : {}), ...(setpriv ? { setpriv } : {}) },
  };
}

/**
 * The deployment files (deploy/, Dockerfile): every Kubernetes manifest is a valid object of
 * its kind (the Kubernetes OpenAPI schemas, through kubernetes-models), and the manifests,
 * the image and the systemd unit agree with each other and with `cordon serve`'s contract:
 * probes on the served port, the token Secret where --token-file points, no
 * --insecure-loopback, only capabilities with a stated reason, a drain that finishes before
 * the kill, configs that cordon's own validation accepts.
 */
import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix, relative } from "node:path";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import type { IVolume } from "kubernetes-models/v1/Volume";
import { parseConfig } from "../src/config.ts";
import { parseServeFile, type ServeSettings } from "../src/serve/config.ts";
import { loadTokens, TokenConfigError } from "../src/serve/auth.ts";

const ROOT = join(import.meta.dir, "..");
const K8S_DIR = join(ROOT, "deploy", "kubernetes");
const UNIT_FILE = join(ROOT, "deploy", "systemd", "cordon-serve.service");
const UNIT_CONFIG = join(ROOT, "deploy", "systemd", "config.json");
const DOCKERFILE = join(ROOT, "Dockerfile");
const DOCKERIGNORE = join(ROOT, ".dockerignore");

/**
 * The capabilities the supervisor may be given, each with the reason it needs it. A capability
 * added to the Deployment or to the unit's bounding set without an entry here fails the tests:
 * adding one is a decision to write down, not a way to make an error go away.
 */
const CAPABILITY_REASONS: Record<string, string> = {
  SYS_ADMIN: "mount(2) of each run's scratch tmpfs, and of the container's cgroup fs read-write",
  SETUID: "drop each run to its own host uid",
  SETGID: "drop each run to its own host gid, supplementary groups cleared",
  KILL: "signal a run's processes (another uid) at its wall-clock limit and at drain",
  CHOWN: "hand a run's staged input files to its uid",
  DAC_OVERRIDE: "read, walk and remove what belongs to a run's uid",
  // Network allowlists only (the rootless provider):
  NET_ADMIN: "nftables rules in a run's network namespace",
  SYS_PTRACE: "open /proc/PID/ns/* of a run's launcher, which runs as another uid",
  SETPCAP: "slirp4netns --enable-sandbox drops its own capabilities",
  NET_BIND_SERVICE: "the capability slirp4netns keeps after its sandbox drop",
};

/** Settings that would turn the container into (close to) the host itself. */
const NEVER_IN_POD = ["hostNetwork", "hostPID", "hostIPC"] as const;

// ---------------------------------------------------------------------------------------
// Loading

type Doc = { file: string; index: number; body: Record<string, unknown> };

/** Each YAML document of a file: split on `---` lines, comment-only documents dropped. */
export function yamlDocuments(text: string): unknown[] {
  return text
    .split(/^---[ \t]*$/m)
    .filter((part) => part.split("\n").some((line) => line.trim() !== "" && !line.trim().startsWith("#")))
    .map((part) => Bun.YAML.parse(part));
}

function loadManifests(dir: string): Doc[] {
  const files = readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
  return files.flatMap((file) =>
    yamlDocuments(readFileSync(join(dir, file), "utf8")).map((body, index) => {
      if (body === null || typeof body !== "object" || Array.isArray(body)) throw new Error(`${file} document ${index}: not a mapping`);
      return { file, index, body: body as Record<string, unknown> };
    }),
  );
}

/** apiVersion/kind -> the model that validates it. A kind missing here is an error, not a pass. */
const MODELS: Record<string, (doc: unknown) => { validate(): void }> = {
  "v1/Namespace": (d) => new Namespace(d as ConstructorParameters<typeof Namespace>[0]),
  "v1/ConfigMap": (d) => new ConfigMap(d as ConstructorParameters<typeof ConfigMap>[0]),
  "v1/Secret": (d) => new Secret(d as ConstructorParameters<typeof Secret>[0]),
  "v1/Service": (d) => new Service(d as ConstructorParameters<typeof Service>[0]),
  "apps/v1/Deployment": (d) => new Deployment(d as ConstructorParameters<typeof Deployment>[0]),
  "autoscaling/v2/HorizontalPodAutoscaler": (d) => new HorizontalPodAutoscaler(d as ConstructorParameters<typeof HorizontalPodAutoscaler>[0]),
  "policy/v1/PodDisruptionBudget": (d) => new PodDisruptionBudget(d as ConstructorParameters<typeof PodDisruptionBudget>[0]),
};

/** Validate one document against the schema of its apiVersion/kind; throws naming the file. */
export function validateManifest(doc: Doc): void {
  const key = `${String(doc.body.apiVersion)}/${String(doc.body.kind)}`;
  const model = MODELS[key];
  if (!model) throw new Error(`${doc.file} document ${doc.index}: unknown apiVersion/kind ${key} (add its model to the test, or fix the typo)`);
  try {
    model(doc.body).validate();
  } catch (e) {
    throw new Error(`${doc.file} document ${doc.index} (${key}): ${(e as Error).message}`);
  }
}

const docs = loadManifests(K8S_DIR);

function only(kind: string): Doc {
  const found = docs.filter((d) => d.body.kind === kind);
  if (found.length !== 1) throw new Error(`expected exactly one ${kind} in deploy/kubernetes, found ${found.length}`);
  return found[0]!;
}

// Typed views of the documents the assertions read (after validation, the shapes hold).
const deployment = () => only("Deployment").body as unknown as InstanceType<typeof Deployment>;
const service = () => only("Service").body as unknown as InstanceType<typeof Service>;
const hpa = () => only("HorizontalPodAutoscaler").body as unknown as InstanceType<typeof HorizontalPodAutoscaler>;
const pdb = () => only("PodDisruptionBudget").body as unknown as InstanceType<typeof PodDisruptionBudget>;
const configMap = () => only("ConfigMap").body as unknown as InstanceType<typeof ConfigMap>;
const secret = () => only("Secret").body as unknown as InstanceType<typeof Secret>;

function podSpec(): IPodSpec {
  const spec = deployment().spec?.template.spec;
  if (!spec) throw new Error("the Deployment has no pod spec");
  return spec;
}

/** The container that runs serve: the one whose command line (image entrypoint + args) is serve's flags. */
function serveContainer(): IContainer {
  const cs = podSpec().containers.filter((c) => (c.args ?? []).includes("--token-file") || (c.args ?? []).includes("--listen"));
  if (cs.length !== 1) throw new Error(`expected one container with serve's flags, found ${cs.length}`);
  return cs[0]!;
}

/** The value following `flag` in argv (flags are separate words); undefined when absent. */
function flagValue(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** A probe's or Service's port (a number or a port name) as the container port number it means. */
function resolvePort(container: IContainer, port: number | string | undefined): number | undefined {
  if (typeof port === "number") return container.ports?.some((p) => p.containerPort === port) ? port : undefined;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/**
 * Where a file the container reads comes from: the volume mount that holds `path`, and within
 * that volume the ConfigMap or Secret key projected at the remaining path.
 */
function fileSource(container: IContainer, path: string): { kind: "configMap" | "secret"; name: string; key: string } | null {
  const mount = (container.volumeMounts ?? [])
    .filter((m) => path === m.mountPath || path.startsWith(m.mountPath.replace(/\/?$/, "/")))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) return null;
  const volume = (podSpec().volumes ?? []).find((v) => v.name === mount.name);
  if (!volume) return null;
  const rest = mount.subPath ? mount.subPath : posix.relative(mount.mountPath, path);
  return keyAt(volume, rest);
}

function keyAt(volume: IVolume, rest: string): { kind: "configMap" | "secret"; name: string; key: string } | null {
  type Src = { kind: "configMap" | "secret"; name: string; items?: { key: string; path: string }[] };
  const sources: Src[] = [];
  if (volume.configMap?.name) sources.push({ kind: "configMap", name: volume.configMap.name, items: volume.configMap.items });
  if (volume.secret?.secretName) sources.push({ kind: "secret", name: volume.secret.secretName, items: volume.secret.items });
  for (const s of volume.projected?.sources ?? []) {
    if (s.configMap?.name) sources.push({ kind: "configMap", name: s.configMap.name, items: s.configMap.items });
    if (s.secret?.name) sources.push({ kind: "secret", name: s.secret.name, items: s.secret.items });
  }
  for (const s of sources) {
    const item = s.items?.find((i) => i.path === rest);
    if (item) return { kind: s.kind, name: s.name, key: item.key };
    // Without items every key appears as a file of its own name.
    if (!s.items) return { kind: s.kind, name: s.name, key: rest };
  }
  return null;
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels?.[k] === v);
}

/**
 * A config file as `cordon serve --config` reads it: the service's schema (src/serve/config.ts)
 * over the whole file, then the cordon config part with cordon's defaults, as Cordon sees it.
 */
function checkConfig(text: string, where: string): { drainMs: number; config: ReturnType<typeof parseConfig>; serve: ServeSettings } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: not JSON: ${(e as Error).message}`);
  }
  try {
    const { serve, config } = parseServeFile(json);
    return { drainMs: serve.drainMs, config: parseConfig(config), serve };
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
}

/** How many requests a token file lets through: 0 when serve would refuse it or find no token. */
function tokensAccepted(text: string): number {
  const dir = mkdtempSync(join(tmpdir(), "cordon-tokens-"));
  try {
    const file = join(dir, "tokens");
    writeFileSync(file, text, { mode: 0o600 });
    try {
      return loadTokens(file, undefined).count;
    } catch (e) {
      if (e instanceof TokenConfigError) return 0;
      throw e;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function configMapConfig() {
  const text = configMap().data?.["config.json"];
  if (text === undefined) throw new Error("the ConfigMap has no config.json");
  return checkConfig(text, "configmap.yaml config.json");
}

// ---------------------------------------------------------------------------------------
// systemd unit and Dockerfile parsing

/** A unit file as section -> key -> values (a key may repeat); continuation lines joined. */
export function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | null = null;
  const lines = text.replace(/\\\n/g, " ").split("\n");
  for (const raw of lines) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = sections.get(header[1]!) ?? new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf("=");
    if (!current || eq < 0) throw new Error(`unit line outside a section or without '=': ${line}`);
    const key = line.slice(0, eq).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

/** systemd's time span syntax ("45", "45s", "1min 30s", "2m") in seconds. */
export function timeSpanSeconds(value: string): number {
  const units: Record<string, number> = { "": 1, s: 1, sec: 1, second: 1, seconds: 1, m: 60, min: 60, minute: 60, minutes: 60, h: 3600, hr: 3600, hour: 3600, hours: 3600, ms: 0.001, msec: 0.001 };
  let total = 0;
  const parts = value.trim().match(/(\d+(?:\.\d+)?)\s*([a-z]*)/g);
  if (!parts || parts.join("").replace(/\s/g, "") !== value.replace(/\s/g, "")) throw new Error(`not a time span: ${value}`);
  for (const p of parts) {
    const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(p)!;
    const factor = units[m[2]!];
    if (factor === undefined) throw new Error(`unknown time unit in ${value}`);
    total += Number(m[1]) * factor;
  }
  return total;
}

type Stage = { from: string; lines: string[] };

/** A Dockerfile as its stages, each with its instructions (continuations joined, comments dropped). */
export function dockerStages(text: string): Stage[] {
  const joined = text
    .split("\n")
    .filter((l) => !l.trim().startsWith("#"))
    .join("\n")
    .replace(/\\\n/g, " ");
  const stages: Stage[] = [];
  for (const raw of joined.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const from = /^FROM\s+(\S+)/i.exec(line);
    if (from) stages.push({ from: from[1]!, lines: [] });
    else if (stages.length) stages.at(-1)!.lines.push(line);
    else if (!/^ARG\s/i.test(line)) throw new Error(`instruction before FROM: ${line}`);
  }
  return stages;
}

function instruction(stage: Stage, name: string): string[] {
  return stage.lines.filter((l) => l.toUpperCase().startsWith(`${name} `)).map((l) => l.slice(name.length).trim());
}

/** The Bun version the project pins: scripts/setup's `bun@X` if it pins one, else the lockfile's bun-types. */
function pinnedBunVersion(): string {
  const setup = readFileSync(join(ROOT, "scripts", "setup"), "utf8");
  const fromSetup = /\bbun@(\d+\.\d+\.\d+)\b/.exec(setup)?.[1];
  if (fromSetup) return fromSetup;
  const lock = readFileSync(join(ROOT, "bun.lock"), "utf8");
  const fromLock = /"bun-types@(\d+\.\d+\.\d+)"/.exec(lock)?.[1];
  if (!fromLock) throw new Error("no Bun version pinned in scripts/setup or bun.lock");
  return fromLock;
}

// ---------------------------------------------------------------------------------------

describe("Kubernetes manifests", () => {
  test("every document is a valid object of a known apiVersion/kind", () => {
    expect(docs.length).toBeGreaterThan(0);
    for (const doc of docs) validateManifest(doc);
  });

  test("the validation fails on a broken manifest and on an unknown kind", () => {
    const broken = structuredClone(only("Deployment"));
    (broken.body.spec as Record<string, unknown>).replicas = "two";
    expect(() => validateManifest(broken)).toThrow(/replicas/);
    const noSelector = structuredClone(only("Deployment"));
    delete (noSelector.body.spec as Record<string, unknown>).selector;
    expect(() => validateManifest(noSelector)).toThrow(/selector/);
    const unknownKind = structuredClone(only("Service"));
    unknownKind.body.kind = "Servce";
    expect(() => validateManifest(unknownKind)).toThrow(/unknown apiVersion\/kind v1\/Servce/);
  });

  test("documents split on --- lines; comment-only documents are not objects", () => {
    expect(yamlDocuments("# head\n---\na: 1\n---\n# only a comment\n---\nb: [2]\n")).toEqual([{ a: 1 }, { b: [2] }]);
  });

  test("one of each kind the service needs, all in the Namespace of namespace.yaml", () => {
    const ns = only("Namespace").body as { metadata: { name: string } };
    for (const kind of ["ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]) {
      const doc = only(kind).body as { metadata?: { namespace?: string } };
      expect(`${kind} in ${doc.metadata?.namespace}`).toBe(`${kind} in ${ns.metadata.name}`);
    }
  });

  test("serve listens on the container port, with a token file and never --insecure-loopback", () => {
    const c = serveContainer();
    const args = c.args ?? [];
    expect(args).not.toContain("--insecure-loopback");
    expect([...(c.command ?? [])]).not.toContain("--insecure-loopback");
    const tokenFile = flagValue(args, "--token-file");
    expect(tokenFile).toBeString();
    expect(tokenFile!.startsWith("/")).toBe(true);
    const listen = flagValue(args, "--listen");
    expect(listen).toMatch(/^0\.0\.0\.0:\d+$/); // every interface: the kubelet and the Service reach the pod IP
    const port = Number(listen!.split(":")[1]);
    expect(resolvePort(c, port)).toBe(port);
    // The image's entrypoint supplies `serve`: the container must not replace it.
    expect(c.command).toBeUndefined();
  });

  test("readiness probes /v1/readiness and liveness /healthz, both on the served port", () => {
    const c = serveContainer();
    const port = Number(flagValue(c.args ?? [], "--listen")!.split(":")[1]);
    expect(c.readinessProbe?.httpGet?.path).toBe("/v1/readiness");
    expect(resolvePort(c, c.readinessProbe?.httpGet?.port)).toBe(port);
    expect(c.livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(resolvePort(c, c.livenessProbe?.httpGet?.port)).toBe(port);
    if (c.startupProbe) expect(resolvePort(c, c.startupProbe.httpGet?.port)).toBe(port);
  });

  test("the token Secret is mounted where --token-file points, and the ConfigMap where --config does", () => {
    const c = serveContainer();
    const tokens = fileSource(c, flagValue(c.args ?? [], "--token-file")!);
    expect(tokens?.kind).toBe("secret");
    expect(tokens?.name).toBe(secret().metadata!.name!);
    const s = secret();
    expect({ ...s.data, ...s.stringData }).toHaveProperty([tokens!.key]);
    const config = fileSource(c, flagValue(c.args ?? [], "--config")!);
    expect(config?.kind).toBe("configMap");
    expect(config?.name).toBe(configMap().metadata!.name!);
    expect(configMap().data).toHaveProperty([config!.key]);
    const mount = (c.volumeMounts ?? []).find((m) => flagValue(c.args ?? [], "--token-file")!.startsWith(m.mountPath));
    expect(mount?.readOnly).toBe(true);
  });

  test("the shipped Secret authorises nobody: serve's own token loader refuses its placeholder", () => {
    const s = secret();
    const text = s.stringData?.tokens ?? (s.data?.tokens ? Buffer.from(s.data.tokens, "base64").toString() : "");
    expect(text.trim()).not.toBe("");
    expect(tokensAccepted(text)).toBe(0);
    // The check tells a real token file apart: one generated token is accepted.
    expect(tokensAccepted(`# replaced\n${randomBytes(32).toString("hex")}\n`)).toBe(1);
  });

  test("not privileged; every added capability has a stated reason; everything else dropped", () => {
    const c = serveContainer();
    const sc = c.securityContext ?? {};
    expect(sc.privileged === true).toBe(false);
    expect(sc.capabilities?.drop).toContain("ALL");
    const added = sc.capabilities?.add ?? [];
    const unexplained = added.filter((cap) => !(cap in CAPABILITY_REASONS));
    expect(unexplained).toEqual([]);
    // Every container of the pod, not only serve's (an init or sidecar container counts too).
    for (const other of [...podSpec().containers, ...(podSpec().initContainers ?? [])]) {
      expect(`${other.name}: privileged=${other.securityContext?.privileged === true}`).toBe(`${other.name}: privileged=false`);
      for (const cap of other.securityContext?.capabilities?.add ?? []) expect(Object.keys(CAPABILITY_REASONS)).toContain(cap);
    }
    // The API refuses allowPrivilegeEscalation: false together with SYS_ADMIN (the schemas do not check that).
    if (added.includes("SYS_ADMIN")) expect(sc.allowPrivilegeEscalation === false).toBe(false);
  });

  test("the pod's capabilities hold over its own user namespace only, and nothing of the host is shared", () => {
    const spec = podSpec();
    expect(spec.hostUsers).toBe(false);
    for (const key of NEVER_IN_POD) expect(`${key}=${spec[key] === true}`).toBe(`${key}=false`);
    // No hostPath at all: in particular not /sys/fs/cgroup, which would hand the node's whole
    // cgroup tree to the pod; the container's own cgroup namespace is what cordon writes to.
    const hostPaths = (spec.volumes ?? []).filter((v) => v.hostPath).map((v) => v.name);
    expect(hostPaths).toEqual([]);
    // An unmasked /proc is safe only inside the pod's own user namespace.
    for (const c of spec.containers) if (c.securityContext?.procMount === "Unmasked") expect(spec.hostUsers).toBe(false);
    expect(spec.automountServiceAccountToken).toBe(false);
  });

  test("the identity range fits in the pod's user namespace (ids 0-65535)", () => {
    const { config } = configMapConfig();
    if (podSpec().hostUsers === false) expect(config.identity.base + config.identity.count - 1).toBeLessThanOrEqual(65_535);
  });

  test("the ConfigMap's config.json passes serve's and cordon's config validation", () => {
    const { config, serve } = configMapConfig();
    expect(config.provider).toBe("bwrap");
    expect(serve.concurrency.global).toBeGreaterThan(0);
  });

  test("a config cordon rejects, and a misspelt serve key, fail the check", () => {
    expect(() => checkConfig(JSON.stringify({ identity: { base: 65_000, count: 1_000 } }), "bad")).toThrow();
    expect(() => checkConfig(JSON.stringify({ cgroups: "sometimes" }), "bad")).toThrow();
    expect(() => checkConfig(JSON.stringify({ serve: { drainMS: 1 } }), "bad")).toThrow();
    expect(() => checkConfig(JSON.stringify({ serve: { drainMs: -1 } }), "bad")).toThrow();
    expect(() => checkConfig("{ not json", "bad")).toThrow(/not JSON/);
  });

  test("the pod outlives its drain: terminationGracePeriodSeconds > serve.drainMs", () => {
    const { drainMs } = configMapConfig();
    const grace = podSpec().terminationGracePeriodSeconds ?? 30; // the Kubernetes default
    expect(grace * 1000).toBeGreaterThan(drainMs);
  });

  test("the Service selects the pods and targets the served port", () => {
    const svc = service();
    expect(svc.spec?.type ?? "ClusterIP").toBe("ClusterIP");
    expect(selects(svc.spec?.selector, deployment().spec?.template.metadata?.labels)).toBe(true);
    const c = serveContainer();
    const served = Number(flagValue(c.args ?? [], "--listen")!.split(":")[1]);
    const ports = svc.spec?.ports ?? [];
    expect(ports.length).toBeGreaterThan(0);
    for (const p of ports) expect(resolvePort(c, p.targetPort ?? p.port)).toBe(served);
    expect(ports.map((p) => p.port)).toContain(8080);
  });

  test("the Deployment's selector matches its own pod template", () => {
    const d = deployment();
    expect(selects(d.spec?.selector.matchLabels, d.spec?.template.metadata?.labels)).toBe(true);
  });

  test("the HorizontalPodAutoscaler scales this Deployment on CPU, which the container requests", () => {
    const h = hpa();
    const d = deployment();
    expect(h.spec?.scaleTargetRef).toMatchObject({ apiVersion: "apps/v1", kind: "Deployment", name: d.metadata!.name! });
    const cpu = (h.spec?.metrics ?? []).find((m) => m.type === "Resource" && m.resource?.name === "cpu");
    expect(cpu?.resource?.target.type).toBe("Utilization");
    expect(cpu?.resource?.target.averageUtilization).toBeGreaterThan(0);
    // Utilisation is a share of the request: without one the HPA cannot compute it.
    expect(serveContainer().resources?.requests?.cpu).toBeDefined();
    expect(serveContainer().resources?.limits?.memory).toBeDefined();
    expect(h.spec!.minReplicas ?? 1).toBeLessThanOrEqual(h.spec!.maxReplicas);
  });

  test("the PodDisruptionBudget selects the pods and can always be met by the HPA's minimum", () => {
    const p = pdb();
    expect(selects(p.spec?.selector?.matchLabels, deployment().spec?.template.metadata?.labels)).toBe(true);
    const minAvailable = p.spec?.minAvailable;
    if (typeof minAvailable === "number") expect(minAvailable).toBeLessThan(hpa().spec!.minReplicas ?? 1);
  });
});

describe("systemd unit", () => {
  const unit = parseUnit(readFileSync(UNIT_FILE, "utf8"));
  const service = unit.get("Service") ?? new Map<string, string[]>();
  const one = (key: string) => {
    const v = service.get(key);
    if (!v || v.length !== 1) throw new Error(`[Service] ${key}= should be set once, is ${JSON.stringify(v)}`);
    return v[0]!;
  };

  test("Delegate=yes, so per-run cgroups are the service's own", () => {
    expect(one("Delegate")).toBe("yes");
  });

  test("ExecStart runs serve with a credential token file and never --insecure-loopback", () => {
    const argv = one("ExecStart").split(/\s+/);
    const bun = argv.indexOf("/usr/local/bin/bun");
    expect(bun).toBeGreaterThanOrEqual(0);
    expect(argv.slice(bun, bun + 3)).toEqual(["/usr/local/bin/bun", "/opt/cordon/bin/cordon.ts", "serve"]);
    expect(argv).not.toContain("--insecure-loopback");
    expect(flagValue(argv, "--listen")).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(flagValue(argv, "--config")).toBe("/etc/cordon/config.json");
    // --token-file %d/NAME and LoadCredential=NAME:... name the same credential.
    const tokenFile = flagValue(argv, "--token-file");
    expect(tokenFile).toMatch(/^%d\/[^/]+$/);
    const credentials = (service.get("LoadCredential") ?? []).map((v) => v.split(":")[0]);
    expect(credentials).toContain(tokenFile!.slice(3));
    // Whatever runs before bun (the cgroup leaf wrapper) ships in this repository, executable.
    for (const wrapper of argv.slice(0, bun).filter((a) => a.startsWith("/opt/cordon/"))) {
      const local = join(ROOT, relative("/opt/cordon", wrapper));
      expect(existsSync(local)).toBe(true);
      expect(statSync(local).mode & 0o111).not.toBe(0);
    }
  });

  test("TimeoutStopSec is longer than the drain, and only serve gets the SIGTERM", () => {
    const { drainMs } = checkConfig(readFileSync(UNIT_CONFIG, "utf8"), "deploy/systemd/config.json");
    expect(one("KillSignal")).toBe("SIGTERM");
    expect(one("KillMode")).toBe("mixed");
    expect(timeSpanSeconds(one("TimeoutStopSec")) * 1000).toBeGreaterThan(drainMs);
  });

  test("the time span parser reads systemd's forms and refuses others", () => {
    expect(timeSpanSeconds("45")).toBe(45);
    expect(timeSpanSeconds("1min 30s")).toBe(90);
    expect(timeSpanSeconds("2m")).toBe(120);
    expect(() => timeSpanSeconds("soon")).toThrow();
  });

  test("no hardening that breaks bwrap, and only capabilities with a stated reason", () => {
    const breaking = ["PrivateUsers", "RestrictNamespaces", "SystemCallFilter", "ProtectKernelTunables", "ProtectControlGroups", "PrivateDevices", "MemoryDenyWriteExecute", "ProtectProc"];
    for (const key of breaking) {
      const v = service.get(key);
      expect(`${key}=${v?.join(",") ?? "(unset)"}`).toBe(`${key}=(unset)`);
    }
    const bounding = one("CapabilityBoundingSet").split(/\s+/).map((c) => c.replace(/^CAP_/, ""));
    for (const cap of bounding) expect(Object.keys(CAPABILITY_REASONS)).toContain(cap);
    // The same capabilities as the Kubernetes pod: one supervisor, one list.
    expect([...bounding].sort()).toEqual([...(serveContainer().securityContext?.capabilities?.add ?? [])].sort());
  });

  test("the unit's config passes cordon's config validation, its runs' cgroups inside the unit", () => {
    const { config } = checkConfig(readFileSync(UNIT_CONFIG, "utf8"), "deploy/systemd/config.json");
    expect(config.cgroupParent.startsWith(`system.slice/${UNIT_FILE.split("/").at(-1)}/`)).toBe(true);
  });
});

describe("Dockerfile", () => {
  const stages = dockerStages(readFileSync(DOCKERFILE, "utf8"));
  const final = stages.at(-1)!;

  test("every stage is Debian 12 (bookworm)", () => {
    expect(stages.length).toBeGreaterThan(0);
    for (const s of stages) expect(s.from).toMatch(/^debian:bookworm(-slim)?(@sha256:[0-9a-f]{64})?$/);
  });

  test("the runtime image installs what the sandboxes are made of", () => {
    const installed = instruction(final, "RUN")
      .join(" ")
      .split(/\s+/);
    for (const pkg of ["bubblewrap", "slirp4netns", "nftables", "iproute2", "util-linux", "python3", "libseccomp2", "ca-certificates"]) expect(installed).toContain(pkg);
  });

  test("Bun is installed as scripts/setup does it, at the version the project pins", () => {
    const text = stages.flatMap((s) => s.lines).join("\n");
    const arg = /^ARG\s+BUN_VERSION=(\S+)/m.exec(text)?.[1];
    expect(arg).toBe(pinnedBunVersion());
    expect(text).toContain('npm install -g "bun@${BUN_VERSION}"');
    expect(readFileSync(join(ROOT, "scripts", "setup"), "utf8")).toMatch(/npm install -g bun/);
  });

  test("the entrypoint ends in `bun /app/bin/cordon.ts serve`, its scripts are copied in, and the port matches", () => {
    const entry = JSON.parse(instruction(final, "ENTRYPOINT").at(-1) ?? "null") as string[];
    expect(entry.slice(-3)).toEqual(["bun", "/app/bin/cordon.ts", "serve"]);
    const copied = stages.flatMap((s) => instruction(s, "COPY"));
    for (const script of entry.filter((a) => a.startsWith("/app/deploy/"))) {
      const local = script.slice("/app/".length);
      expect(copied.some((c) => c.split(/\s+/).includes(local))).toBe(true);
      expect(statSync(join(ROOT, local)).mode & 0o111).not.toBe(0);
    }
    expect(instruction(final, "EXPOSE")).toEqual([String(resolvePort(serveContainer(), "http"))]);
    const cmd = JSON.parse(instruction(final, "CMD").at(-1) ?? "[]") as string[];
    expect(cmd).not.toContain("--insecure-loopback");
  });

  test("what COPY takes from the context exists and is not excluded by .dockerignore", () => {
    const ignored = readFileSync(DOCKERIGNORE, "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    const sources = stages
      .flatMap((s) => instruction(s, "COPY"))
      .filter((c) => !c.startsWith("--from"))
      .flatMap((c) => c.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(0);
    for (const src of sources) {
      expect(`${src} exists: ${existsSync(join(ROOT, src))}`).toBe(`${src} exists: true`);
      const excludedBy = ignored.filter((pattern) => !pattern.includes("*") && (src === pattern || src.startsWith(`${pattern}/`)));
      expect(`${src} excluded by ${excludedBy.join(",")}`).toBe(`${src} excluded by `);
    }
  });

  test("the image's default config passes cordon's config validation", () => {
    const copy = instruction(final, "COPY").find((c) => c.endsWith(" /etc/cordon/config.json"));
    expect(copy).toBeDefined();
    checkConfig(readFileSync(join(ROOT, copy!.split(/\s+/)[0]!), "utf8"), copy!);
  });
});

describe("entrypoint scripts", () => {
  const scripts = [join(ROOT, "deploy", "cgroup-leaf.sh"), join(ROOT, "deploy", "container", "entrypoint.sh")];

  test("parse as POSIX sh (dash)", () => {
    for (const file of scripts) {
      const r = Bun.spawnSync(["sh", "-n", file], { stderr: "pipe" });
      expect(`${file}: ${r.exitCode} ${r.stderr.toString()}`).toBe(`${file}: 0 `);
    }
  });

  /** A cgroup2 mount of the host, if there is one (pure v2, or hybrid's unified). */
  function cgroup2Mount(): string | null {
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const [pre, post] = line.split(" - ");
      if (post?.startsWith("cgroup2 ")) return pre!.split(" ")[4]!;
    }
    return null;
  }
  const host = cgroup2Mount();
  const isRoot = process.getuid?.() === 0;

  // Needs root and a cgroup2 hierarchy (every host cordon's cgroup tests run on has one).
  test.skipIf(!isRoot || host === null)("cgroup-leaf.sh empties a read-only-mounted namespaced cgroup into supervisor/ and execs the command", () => {
    const name = `cordon-leaf-test-${process.pid}`;
    const cg = join(host!, name);
    const mnt = mkdtempSync(join(tmpdir(), "cordon-leaf-"));
    Bun.spawnSync(["mkdir", cg]);
    try {
      // As a runtime does it: a cgroup namespace rooted at the container's cgroup, mounted
      // read-only; then what entrypoint.sh does: a bind remount read-write, then the leaf.
      const script = [
        `echo $$ > ${cg}/cgroup.procs`,
        `exec unshare -C -m --propagation private sh -c '` +
          `mount -t cgroup2 -o ro none ${mnt} && ` +
          `[ ! -w ${mnt} ] && mount -o remount,bind,rw ${mnt} && ` +
          `CORDON_CGROUP_MOUNT=${mnt} ${scripts[0]} sh -c "grep ^0:: /proc/self/cgroup; wc -l < ${mnt}/cgroup.procs"'`,
      ].join("\n");
      const r = Bun.spawnSync(["sh", "-c", script], { stdout: "pipe", stderr: "pipe" });
      const out = r.stdout.toString().trim().split("\n");
      expect(`${r.exitCode} ${r.stderr.toString()}`).toBe("0 ");
      expect(out[0]).toBe("0::/supervisor");
      expect(out[1]?.trim()).toBe("0"); // the namespace's root cgroup holds no process any more
    } finally {
      Bun.spawnSync(["rmdir", join(cg, "supervisor"), cg]);
      rmdirSync(mnt);
    }
  });

  test("cgroup-leaf.sh refuses to run without a command", () => {
    const r = Bun.spawnSync([scripts[0]!], { stderr: "pipe", env: { ...process.env, CORDON_CGROUP_MOUNT: dirname(scripts[0]!) } });
    expect(r.exitCode).toBe(2);
  });
});

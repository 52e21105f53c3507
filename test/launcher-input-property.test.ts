/**
 * Property test of the launcher-input boundary: hostile strings (NUL-separated bwrap options,
 * newline/CR/ESC, values that look like options, quotes and backslashes that would close a
 * text-config string, very long values and values just over each schema cap) go into EVERY
 * string field of a RunRequest, a policy (through the request and through the config), the
 * Cordon config and a script collector's config. For each (field, value, provider):
 *
 * - either a typed error is thrown (a CordonError; for the collector's stored config also the
 *   collector's VersionedDataError) and nothing was spawned or created (the run root stays
 *   empty, Bun.spawn was not called);
 * - or the run proceeds and what the launcher is given has EXACTLY the options the plan made
 *   for the same request with a benign value: bwrap's `--args` bytes are split on NUL the
 *   way bwrap splits them and parsed with bwrap's own option arities (read from
 *   `bwrap --help`); nsjail's text config is tokenized as protobuf text format. The sequence
 *   of option (field) names must equal the baseline's, and every value must be the
 *   baseline's value with the benign value replaced by the hostile one. The outer argv
 *   (setpriv / bwrap / prlimit / command, or nsjail / timeout / command) has the same shape.
 *
 * Planning goes through the public entry point (`Cordon.run`, the collector's request
 * builder): the provider is wrapped so that the plan the run would execute is recorded and
 * the run stops there, before the run directory is created (fast, nothing spawned). A few
 * real bwrap runs of `true` then check the bytes really written for bwrap's fd 5.
 */
import { afterAll, beforeAll, describe, expect, spyOn, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { BwrapProvider, builtinProviders, builtinRunners, RootlessProvider } from "../plugins/index.ts";
import { buildRunRequest } from "../plugins/collector-script/index.ts";
import { scriptConfig } from "../plugins/collector-script/config.ts";
import { NsjailProvider } from "../plugins/provider-nsjail/index.ts";
import { Cordon, CordonError, KiB, MiB, VersionedDataError, type CordonConfigInput, type PolicyOverride, type Provider, type RunRequest } from "../src/api/index.ts";
import { LAUNCHER_ARGS_FD, SECCOMP_FD, type Capabilities, type EffectiveSandboxReport, type HostFacts, type ProviderProbe, type RenderContext, type Rendering, type SandboxSpec } from "../src/api/plugin.ts";
import { freshRunRoot, removeTempDirs, runRootEntries, tempDir } from "./support.ts";
import { hostFacts } from "../src/host.ts";

afterAll(() => removeTempDirs());

// ---------------------------------------------------------------------------------------
// How the launchers read their input
// ---------------------------------------------------------------------------------------

/** bwrap's options and how many arguments each takes, from this bwrap's own --help. */
function bwrapArities(): Map<string, number> {
  const help = Bun.spawnSync(["bwrap", "--help"], { env: {} });
  const arities = new Map<string, number>();
  for (const line of help.stdout.toString().split("\n")) {
    const m = /^\s+(--[a-z0-9-]+)((?: [A-Z][A-Z0-9_]*)*)\s{2,}\S/.exec(line);
    if (m) arities.set(m[1]!, m[2]!.trim() === "" ? 0 : m[2]!.trim().split(" ").length);
  }
  return arities;
}
const ARITY = bwrapArities();

/** What bwrap makes of the bytes of its `--args` file: option names (in order) and their values. */
interface ParsedArgs {
  names: string[];
  values: string[];
}

/** bwrap reads `--args FD` as NUL-terminated strings: the exact bytes cordon writes, split the same way. */
function bwrapArgsFile(launcherArgs: readonly string[]): string[] {
  const bytes = launcherArgs.map((a) => `${a}\0`).join("");
  const parts = bytes.split("\0");
  parts.pop(); // after the last terminator
  return parts;
}

/** Option parsing as bwrap does it: an option consumes its arity; the first non-option starts the command. */
function parseBwrapOptions(tokens: readonly string[]): ParsedArgs {
  const names: string[] = [];
  const values: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!;
    const arity = ARITY.get(tok);
    if (tok === "--") {
      names.push("--", `<command of ${tokens.length - i - 1} words>`);
      values.push(...tokens.slice(i + 1));
      break;
    }
    if (arity === undefined) {
      names.push(tok.startsWith("-") ? `<unknown option ${JSON.stringify(tok.slice(0, 40))}>` : `<command of ${tokens.length - i} words>`);
      values.push(...tokens.slice(i));
      break;
    }
    names.push(tok);
    if (i + arity >= tokens.length) names.push("<missing value>");
    values.push(...tokens.slice(i + 1, i + 1 + arity));
    i += arity;
  }
  return { names, values };
}

type TextToken = { kind: "ident" | "punct" | "number"; text: string } | { kind: "string"; text: string };

/** Protobuf text format tokens: identifiers, `{ } :`, numbers, quoted strings with backslash escapes, `#` comments. */
function tokenizeTextProto(text: string): TextToken[] {
  const out: TextToken[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      i++;
    } else if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (c === "{" || c === "}" || c === ":" || c === "<" || c === ">" || c === ";" || c === ",") {
      out.push({ kind: "punct", text: c });
      i++;
    } else if (c === '"' || c === "'") {
      const bytes: number[] = [];
      i++;
      for (;;) {
        if (i >= text.length) throw new Error("unterminated string literal");
        const d = text[i]!;
        if (d === "\n") throw new Error("a raw newline inside a string literal");
        if (d === c) {
          i++;
          break;
        }
        if (d === "\\") {
          const e = text[i + 1];
          const simple: Record<string, number> = { n: 10, t: 9, r: 13, '"': 34, "'": 39, "\\": 92, a: 7, b: 8, f: 12, v: 11, "?": 63 };
          if (e !== undefined && e in simple) {
            bytes.push(simple[e]!);
            i += 2;
          } else if (e !== undefined && /[0-7]/.test(e)) {
            const m = /^[0-7]{1,3}/.exec(text.slice(i + 1))![0];
            bytes.push(parseInt(m, 8));
            i += 1 + m.length;
          } else if (e === "x") {
            const m = /^[0-9a-fA-F]{1,2}/.exec(text.slice(i + 2))?.[0];
            if (!m) throw new Error("bad \\x escape");
            bytes.push(parseInt(m, 16));
            i += 2 + m.length;
          } else {
            throw new Error(`unknown escape \\${e}`);
          }
        } else {
          bytes.push(...Buffer.from(d, "utf8"));
          i++;
        }
      }
      out.push({ kind: "string", text: Buffer.from(bytes).toString("utf8") });
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))![0];
      out.push({ kind: "ident", text: m });
      i += m.length;
    } else if (/[-+0-9.]/.test(c)) {
      const m = /^[-+]?[0-9.][0-9A-Za-z.+-]*/.exec(text.slice(i))![0];
      out.push({ kind: "number", text: m });
      i += m.length;
    } else {
      throw new Error(`unexpected character ${JSON.stringify(c)} at ${i}`);
    }
  }
  return out;
}

/** The fields of a text config, in order (`mount.dst`, `mount{`, `}` …) and their values. */
function parseTextProto(text: string): ParsedArgs {
  const tokens = tokenizeTextProto(text);
  const names: string[] = [];
  const values: string[] = [];
  const path: string[] = [];
  let i = 0;
  const at = () => tokens[i];
  while (i < tokens.length) {
    const t = at()!;
    if (t.kind === "punct" && t.text === "}") {
      if (!path.length) throw new Error("unbalanced }");
      names.push(`${path.join(".")}}`);
      path.pop();
      i++;
      continue;
    }
    if (t.kind !== "ident") throw new Error(`expected a field name, got ${t.kind} ${JSON.stringify(t.text.slice(0, 60))}`);
    i++;
    const full = [...path, t.text].join(".");
    if (at()?.kind === "punct" && at()!.text === ":") i++;
    const v = at();
    if (v?.kind === "punct" && v.text === "{") {
      names.push(`${full}{`);
      path.push(t.text);
      i++;
    } else if (v && v.kind !== "punct") {
      names.push(full);
      values.push(v.text);
      i++;
    } else {
      throw new Error(`field ${full} has no value`);
    }
  }
  if (path.length) throw new Error("unbalanced {");
  return { names, values };
}

// ---------------------------------------------------------------------------------------
// A provider that plans like a real one (nsjail with a faked probe where it is not installed)
// ---------------------------------------------------------------------------------------

const FAKE_NSJAIL_PROBE: ProviderProbe = { available: true, binary: "/bin/false", version: "t", features: {}, tools: { timeout: "/usr/bin/timeout" } };

/** A provider that plans exactly like `inner`, with the same name and a given (possibly faked) probe. */
class Recording implements Provider {
  readonly name: string;
  readonly description = "plans like the provider it wraps";
  readonly isolating = true;
  readonly textConfig: boolean;
  constructor(
    private readonly inner: Provider,
    private readonly probed: ProviderProbe,
  ) {
    this.name = inner.name;
    this.textConfig = inner.textConfig === true;
  }
  probe(): ProviderProbe {
    return this.probed;
  }
  capabilities(probe: ProviderProbe, host: HostFacts): Capabilities {
    return this.inner.capabilities(probe, host);
  }
  render(spec: SandboxSpec, context: RenderContext): Rendering {
    return this.inner.render(spec, context);
  }
}

type Launcher = "bwrap" | "nsjail";
interface Target {
  name: string;
  launcher: Launcher;
  provider: Recording;
}
let TARGETS: Target[] = [];
/** One set of runners for every attempt (the python runner asks its interpreter once per instance). */
const RUNNERS = builtinRunners();

beforeAll(async () => {
  const bwrap = new BwrapProvider();
  const rootless = new RootlessProvider();
  const bwrapProbe = await bwrap.probe();
  const rootlessProbe = await rootless.probe(hostFacts());
  if (!bwrapProbe.available) throw new Error(`bwrap is needed for this test: ${bwrapProbe.reason}`);
  TARGETS = [
    { name: "bwrap", launcher: "bwrap", provider: new Recording(bwrap, bwrapProbe) },
    ...(rootlessProbe.available ? [{ name: "rootless", launcher: "bwrap" as const, provider: new Recording(rootless, rootlessProbe) }] : []),
    // Pure: nsjail's planner with a fake available probe (nsjail need not be installed).
    { name: "nsjail", launcher: "nsjail", provider: new Recording(new NsjailProvider(), FAKE_NSJAIL_PROBE) },
  ];
  if (!rootlessProbe.available) console.warn(`launcher-input property: rootless not planned: ${rootlessProbe.reason}`);
});

// ---------------------------------------------------------------------------------------
// Hostile values and the fields they go into
// ---------------------------------------------------------------------------------------

const HOSTILE: Record<string, string> = {
  "NUL-separated options": "a\0--bind\0/\0/x\0--share-net",
  newline: "a\n--share-net",
  "carriage return": "a\r--share-net",
  ESC: "a\u001b[2J--share-net",
  "--share-net": "--share-net",
  "--bind": "--bind",
  "--": "--",
  "a double quote": '"',
  "a text-config breakout": '\\"} exec_bin { path: "/bin/sh" } #',
  "a text-config breakout with a newline": 'x"\nexec_bin { path: "/bin/sh" }\n#',
  "100 KiB": "x".repeat(100 * KiB),
};

/** One way into the product: the config, the request or the collector's stored config. */
interface Scenario {
  config?: CordonConfigInput;
  request?: RunRequest;
  /** A script collector's stored config (v2 data): validated, then turned into the request. */
  collector?: Record<string, unknown>;
  /** The run root this scenario uses (for the runRoot field); else the test's shared one. */
  runRoot?: string;
}

interface Field {
  name: string;
  benign: string;
  /** Where the field takes a path, also try each hostile value made absolute. */
  path?: boolean;
  /** Lengths just over the field's schema caps: "x" strings (or "/x…" for paths). */
  over?: number[];
  /** The value as the launcher is meant to get it, where the product rewrites it (default: unchanged). */
  renders?: (value: string) => string;
  /** Extra candidate values derived from a hostile one (e.g. a real file whose name it is). */
  derive?: (hostile: string) => string[];
  scenario(value: string, target: Target): Scenario;
}

const DEGRADE: PolicyOverride = { onUnavailable: "degrade" };
const request = (extra: Partial<RunRequest> = {}, policy: PolicyOverride = {}): RunRequest => ({
  runner: "shell",
  script: { source: "true" },
  args: [],
  ...extra,
  policy: { ...DEGRADE, ...policy },
});
const policyField = (name: string, benign: string, policy: (v: string) => PolicyOverride, opts: Partial<Field> = {}): Field[] => [
  { name: `policy ${name} (RunRequest.policy)`, benign, ...opts, scenario: (v) => ({ request: request({}, policy(v)) }) },
  { name: `policy ${name} (Config.policy)`, benign, ...opts, scenario: (v) => ({ config: { policy: policy(v) }, request: request() }) },
];
const collector = (data: Record<string, unknown>) => ({ collector: { timeoutMs: 10_000, ...data, policy: { ...DEGRADE, ...(data.policy as object | undefined) } } });

/** The python runner keeps the script's name for tracebacks, made a safe file name (plugins/runner-python). */
const pythonFileName = (name: string) => {
  const safe = basename(name).replace(/[^A-Za-z0-9._-]/g, "_") || "script";
  return safe.endsWith(".py") ? safe : `${safe}.py`;
};

let FILES_DIR = "";
/** A real script file named by the hostile value (when the file system allows that name). */
function scriptFileNamed(hostile: string): string[] {
  if (hostile.includes("\0") || hostile.length > 200) return [];
  const path = join(FILES_DIR, `f-${Buffer.from(hostile).toString("hex").slice(0, 16)}`, hostile);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, "true\n");
  return [path];
}
let RUNROOT_PARENT = "";
const underRunRootParent = (hostile: string) => (hostile.includes("\0") || hostile.length > 4000 ? [] : [join(RUNROOT_PARENT, hostile)]);

const FIELDS: Field[] = [
  // RunRequest
  { name: "RunRequest.script.source", benign: "true # benign-value", over: [1 * MiB + 1], scenario: (v) => ({ request: request({ script: { source: v } }) }) },
  { name: "RunRequest.script.name (shell)", benign: "benign-value.sh", over: [256], scenario: (v) => ({ request: request({ script: { source: "true", name: v } }) }) },
  { name: "RunRequest.script.name (python)", benign: "benign-value.py", over: [256], renders: pythonFileName, scenario: (v) => ({ request: request({ runner: "python", script: { source: "pass", name: v } }) }) },
  {
    name: "RunRequest.script.file",
    benign: "BENIGN-FILE",
    over: [4097],
    derive: scriptFileNamed,
    scenario: (v) => ({ request: request({ script: { file: v === "BENIGN-FILE" ? scriptFileNamed("benign-value.sh")[0]! : v } }) }),
  },
  { name: "RunRequest.args[i]", benign: "benign-value", over: [128 * KiB + 1], scenario: (v) => ({ request: request({ args: ["first", v, "last"] }) }) },
  { name: "RunRequest.env name", benign: "BENIGN_VALUE", scenario: (v) => ({ request: request({ env: { A: "1", [v]: "1" } }) }) },
  { name: "RunRequest.env value", benign: "benign-value", over: [128 * KiB + 1], scenario: (v) => ({ request: request({ env: { A: "1", X: v } }) }) },
  { name: "RunRequest.secretEnv name", benign: "BENIGN_VALUE", scenario: (v) => ({ request: request({ secretEnv: { [v]: "s3cret-value" } }) }) },
  { name: "RunRequest.secretEnv value", benign: "benign-value", over: [128 * KiB + 1], scenario: (v) => ({ request: request({ secretEnv: { S: v } }) }) },
  { name: "RunRequest.files[].path", benign: "benign-value.txt", over: [4097], scenario: (v) => ({ request: request({ files: [{ path: v, content: "x" }] }) }) },
  { name: "RunRequest.runner", benign: "shell", over: [129], scenario: (v) => ({ request: request({ runner: v }) }) },
  { name: "RunRequest.provider", benign: "PROVIDER", over: [129], scenario: (v, t) => ({ request: request({ provider: v === "PROVIDER" ? t.name : v }) }) },
  // Policy, through the request and through the config
  ...policyField("filesystem.readOnlyBinds[].source", "/benign-value", (v) => ({ filesystem: { readOnlyBinds: [{ source: v, target: "/opt/target" }] } }), { path: true, over: [4097] }),
  ...policyField("filesystem.readOnlyBinds[].target", "/opt/benign-value", (v) => ({ filesystem: { readOnlyBinds: [{ source: "/usr/share", target: v }] } }), { path: true, over: [4097] }),
  ...policyField("filesystem.readOnlyBinds[] (one path)", "/benign-value", (v) => ({ filesystem: { readOnlyBinds: [v] } }), { path: true, over: [4097] }),
  ...policyField("env.allow[]", "BENIGN_VALUE", (v) => ({ env: { allow: [v] } })),
  ...policyField("env.set name", "BENIGN_VALUE", (v) => ({ env: { set: { [v]: "1" } } })),
  ...policyField("env.set value", "benign-value", (v) => ({ env: { set: { X: v } } }), { over: [128 * KiB + 1] }),
  ...policyField("network.allow[]", "192.0.2.1:443", (v) => ({ network: { mode: "allowlist", allow: [v] } })),
  // Config
  { name: "Config.provider", benign: "PROVIDER", over: [129], scenario: (v, t) => ({ config: { provider: v === "PROVIDER" ? t.name : v }, request: request() }) },
  { name: "Config.providerOrder[]", benign: "PROVIDER", scenario: (v, t) => ({ config: { providerOrder: [v === "PROVIDER" ? t.name : v] }, request: request() }) },
  { name: "Config.staticHosts name", benign: "benign-value.example", over: [254], scenario: (v) => ({ config: { staticHosts: { [v]: ["192.0.2.7"] } }, request: request() }) },
  { name: "Config.staticHosts address", benign: "192.0.2.7", scenario: (v) => ({ config: { staticHosts: { "db.example": [v] } }, request: request() }) },
  { name: "Config.cgroupParent", benign: "benign-value", over: [5000], scenario: (v) => ({ config: { cgroupParent: v }, request: request() }) },
  {
    name: "Config.runRoot",
    benign: "BENIGN-ROOT",
    path: true,
    over: [4097],
    derive: underRunRootParent,
    scenario: (v) => ({ runRoot: v === "BENIGN-ROOT" ? join(RUNROOT_PARENT, "benign-value") : v, request: request() }),
  },
  // Script collector config
  { name: "collector script", benign: "true # benign-value", scenario: (v) => collector({ script: v }) },
  { name: "collector file", benign: "BENIGN-FILE", over: [4097], derive: scriptFileNamed, scenario: (v) => collector({ file: v === "BENIGN-FILE" ? scriptFileNamed("benign-value.sh")[0]! : v }) },
  { name: "collector args[]", benign: "benign-value", over: [128 * KiB + 1], scenario: (v) => collector({ script: "true", args: ["first", v] }) },
  { name: "collector env name", benign: "BENIGN_VALUE", scenario: (v) => collector({ script: "true", env: { [v]: "1" } }) },
  { name: "collector env value", benign: "benign-value", over: [128 * KiB + 1], scenario: (v) => collector({ script: "true", env: { X: v } }) },
  { name: "collector secretEnv name", benign: "BENIGN_VALUE", scenario: (v) => collector({ script: "true", secretEnv: { [v]: "s3cret-value" } }) },
  { name: "collector secretEnv value", benign: "benign-value", over: [128 * KiB + 1], scenario: (v) => collector({ script: "true", secretEnv: { S: v } }) },
  { name: "collector provider", benign: "PROVIDER", scenario: (v, t) => collector({ script: "true", provider: v === "PROVIDER" ? t.name : v }) },
  { name: "collector policy env.set value", benign: "benign-value", over: [128 * KiB + 1], scenario: (v) => collector({ script: "true", policy: { env: { set: { X: v } } } }) },
  { name: "collector policy readOnlyBinds[]", benign: "/benign-value", path: true, over: [4097], scenario: (v) => collector({ script: "true", policy: { filesystem: { readOnlyBinds: [v] } } }) },
];

/** Every (label, value) a field gets. */
function candidates(field: Field): [string, string][] {
  const out: [string, string][] = [];
  for (const [label, v] of Object.entries(HOSTILE)) {
    out.push([label, v]);
    if (field.path) out.push([`/${label}`, `/${v}`]);
    for (const d of field.derive?.(v) ?? []) out.push([`${label} (${d.length > 80 ? `${d.slice(0, 80)}…` : d})`, d]);
  }
  for (const n of field.over ?? []) out.push([`${n} chars (over the cap)`, field.path ? `/${"x".repeat(n - 1)}` : "x".repeat(n)]);
  return out;
}

// ---------------------------------------------------------------------------------------
// One attempt: refused (typed, nothing created or spawned) or planned
// ---------------------------------------------------------------------------------------

type Attempt = { kind: "refused"; error: Error } | { kind: "planned"; report: EffectiveSandboxReport; runRoot: string } | { kind: "broken"; problem: string };

let SHARED_RUN_ROOT = "";
let spawnCalls = 0;

async function attempt(target: Target, scenario: Scenario): Promise<Attempt> {
  const runRoot = scenario.runRoot ?? SHARED_RUN_ROOT;
  const existedBefore = existsSync(runRoot);
  const spawnsBefore = spawnCalls;
  const result = await (async (): Promise<Attempt> => {
    let cordon: Cordon;
    let req: RunRequest;
    try {
      cordon = new Cordon({ provider: target.name, ...scenario.config, runRoot, cgroups: "off" }, { providers: [target.provider], runners: RUNNERS });
    } catch (e) {
      return e instanceof CordonError ? { kind: "refused", error: e } : { kind: "broken", problem: `the config threw an untyped ${String(e)}` };
    }
    if (scenario.collector) {
      try {
        const config = scriptConfig.validate(scenario.collector);
        req = buildRunRequest("shell", config, config.secretEnv);
      } catch (e) {
        return e instanceof VersionedDataError || e instanceof CordonError ? { kind: "refused", error: e } : { kind: "broken", problem: `the collector config threw an untyped ${String(e)}` };
      }
    } else {
      req = scenario.request!;
    }
    try {
      // Cordon.plan is the first half of Cordon.run: everything decided before the run dir
      // exists, reported as the run's report would carry it (launcher argv and arguments).
      return { kind: "planned", report: await cordon.plan(req), runRoot };
    } catch (e) {
      if (e instanceof CordonError) return { kind: "refused", error: e };
      return { kind: "broken", problem: `the run threw an untyped ${e instanceof Error ? `${e.name}: ${e.message.slice(0, 300)}` : String(e)}` };
    }
  })();
  // Nothing spawned, nothing created: whatever the outcome (a plan is recorded before the run dir exists).
  if (spawnCalls !== spawnsBefore) return { kind: "broken", problem: `Bun.spawn was called ${spawnCalls - spawnsBefore} time(s)` };
  const left = existsSync(runRoot) && !existedBefore ? ["(the run root itself was created)"] : runRootEntries(runRoot);
  if (left.length) return { kind: "broken", problem: `left in the run root ${JSON.stringify(runRoot.slice(0, 200))}: ${left.join(", ")}` };
  return result;
}

/** What the launcher is given, comparable between runs: the run dir's path replaced by <RUN>. */
interface Rendered {
  outer: string[];
  inner: ParsedArgs;
}

/**
 * What the report says the launcher got: `[...argv, "<fd 5:", ...launcher args, ">"]` for
 * bwrap, `[...argv, "<nsjail.cfg:", config, ">"]` for nsjail (read from the end: a hostile
 * argument may look like a marker). The run dir's path becomes <RUN>.
 */
function render(target: Target, report: EffectiveSandboxReport, runRoot: string): Rendered {
  const runDir = new RegExp(`${runRoot.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/run-\\d+-[0-9a-f]+`, "g");
  const norm = (s: string) => s.replace(runDir, "<RUN>");
  // The syscall filter's BPF program (SECCOMP_FD) is summarised last, after the launcher arguments.
  const argv = report.argv.at(-1)?.startsWith(`<fd ${SECCOMP_FD}:`) ? report.argv.slice(0, -1) : report.argv;
  if (target.launcher === "bwrap") {
    const open = argv.indexOf(`<fd ${LAUNCHER_ARGS_FD}:`);
    if (open < 0 || argv.at(-1) !== ">") throw new Error("bwrap report without its launcher arguments");
    const inner = parseBwrapOptions(bwrapArgsFile(argv.slice(open + 1, -1)));
    return { outer: argv.slice(0, open).map(norm), inner: { names: inner.names, values: inner.values.map(norm) } };
  }
  if (argv.at(-3) !== "<nsjail.cfg:" || argv.at(-1) !== ">") throw new Error("nsjail report without nsjail.cfg");
  const inner = parseTextProto(argv.at(-2)!);
  return { outer: argv.slice(0, -3).map(norm), inner: { names: inner.names, values: inner.values.map(norm) } };
}

/** `h` is `b` with the benign value (if it appears) replaced by the hostile one. */
const sameValue = (b: string, h: string, benign: string, hostile: string) => h === b || h === b.split(benign).join(hostile);

const short = (s: string) => JSON.stringify(s.length > 120 ? `${s.slice(0, 120)}…(${s.length} chars)` : s);

/** Every way `got` differs from what the baseline plan made (empty: exactly the same options). */
function compare(base: Rendered, got: Rendered, benign: string, hostile: string): string[] {
  const problems: string[] = [];
  // Outer argv: what execve gets (a NUL would cut a word short), word for word.
  const nul = got.outer.findIndex((w) => w.includes("\0"));
  if (nul >= 0) problems.push(`outer argv word ${nul} holds a NUL (execve cuts it): ${short(got.outer[nul]!)}`);
  if (got.outer.length !== base.outer.length) problems.push(`outer argv has ${got.outer.length} words, the plan made ${base.outer.length}`);
  else got.outer.forEach((w, i) => sameValue(base.outer[i]!, w, benign, hostile) || problems.push(`outer argv word ${i}: ${short(w)}, the plan made ${short(base.outer[i]!)}`));
  // Launcher options: names exactly the plan's; values only where the plan put values.
  const names = got.inner.names.join(" ");
  if (names !== base.inner.names.join(" ")) {
    const i = got.inner.names.findIndex((n, k) => n !== base.inner.names[k]);
    problems.push(`launcher options differ from the plan's at #${i}: got ${short(got.inner.names.slice(Math.max(0, i - 2), i + 6).join(" "))}, the plan made ${short(base.inner.names.slice(Math.max(0, i - 2), i + 6).join(" "))}`);
  } else if (got.inner.values.length !== base.inner.values.length) {
    problems.push(`launcher values: ${got.inner.values.length}, the plan made ${base.inner.values.length}`);
  } else {
    got.inner.values.forEach((v, i) => sameValue(base.inner.values[i]!, v, benign, hostile) || problems.push(`launcher value ${i}: ${short(v)}, the plan made ${short(base.inner.values[i]!)}`));
  }
  return problems;
}

// ---------------------------------------------------------------------------------------

let spawnSpy: ReturnType<typeof spyOn> | null = null;
/** Called with every Bun.spawn's arguments just before the real spawn (the real-run tests read fd 5's file there). */
let onSpawn: ((args: Parameters<typeof Bun.spawn>) => void) | null = null;
beforeAll(() => {
  SHARED_RUN_ROOT = freshRunRoot("prop");
  FILES_DIR = tempDir("prop-files", 0o755);
  RUNROOT_PARENT = tempDir("prop-roots", 0o711);
  const original = Bun.spawn;
  spawnSpy = spyOn(Bun, "spawn").mockImplementation(((...args: Parameters<typeof Bun.spawn>) => {
    spawnCalls++;
    onSpawn?.(args);
    return original.apply(Bun, args);
  }) as typeof Bun.spawn);
});
afterAll(() => spawnSpy?.mockRestore());

/** Cases the product gets wrong today, as `field|label|provider`: none known. */
const KNOWN_LEAKS = new Set<string>();

describe("launcher input: every string field, every hostile value, every launcher (planned through Cordon.run)", () => {
  const tally = { refused: 0, planned: 0 };
  afterAll(() => console.log(`launcher-input property: ${tally.refused} refused with a typed error, ${tally.planned} planned with exactly the baseline's options`));

  for (const field of FIELDS) {
    test(field.name, async () => {
      const problems: string[] = [];
      for (const target of TARGETS) {
        const base = await attempt(target, field.scenario(field.benign, target));
        if (base.kind !== "planned") {
          problems.push(`[${target.name}] the benign value ${short(field.benign)} did not plan: ${base.kind === "refused" ? base.error.message : base.problem}`);
          continue;
        }
        const baseline = render(target, base.report, base.runRoot);
        for (const [label, value] of candidates(field)) {
          const where = `[${target.name}] ${field.name} = ${label}`;
          const got = await attempt(target, field.scenario(value, target));
          if (got.kind === "broken") {
            problems.push(`${where}: ${got.problem}`);
          } else if (got.kind === "refused") {
            tally.refused++;
          } else {
            tally.planned++;
            let rendered: Rendered;
            try {
              rendered = render(target, got.report, got.runRoot);
            } catch (e) {
              problems.push(`${where}: the launcher input does not parse: ${e instanceof Error ? e.message : String(e)}`);
              continue;
            }
            const diff = compare(baseline, rendered, field.renders?.(field.benign) ?? field.benign, field.renders?.(value) ?? value);
            if (diff.length) problems.push(`${where}: ${KNOWN_LEAKS.has(`${field.name}|${label}|${target.name}`) ? "KNOWN " : ""}LAUNCHER INPUT CHANGED: ${diff.slice(0, 4).join("; ")}`);
          }
        }
      }
      expect(problems).toEqual([]);
    });
  }
});

// ---------------------------------------------------------------------------------------
// The parsers themselves, and the real bytes a real bwrap run is given
// ---------------------------------------------------------------------------------------

describe("the test's own launcher parsers", () => {
  test("bwrap arities come from bwrap --help", () => {
    expect([ARITY.get("--bind"), ARITY.get("--setenv"), ARITY.get("--unshare-net"), ARITY.get("--size"), ARITY.get("--args"), ARITY.get("--share-net")]).toEqual([2, 2, 0, 1, 1, 0]);
  });

  test("a NUL inside a value becomes bwrap options; the comparison sees it", () => {
    const benign = parseBwrapOptions(bwrapArgsFile(["--unshare-net", "--setenv", "X", "v", "--chdir", "/scratch"]));
    const hostile = "a\0--bind\0/\0/x\0--share-net";
    const got = parseBwrapOptions(bwrapArgsFile(["--unshare-net", "--setenv", "X", hostile, "--chdir", "/scratch"]));
    expect(got.names).toEqual(["--unshare-net", "--setenv", "--bind", "--share-net", "--chdir"]);
    expect(compare({ outer: [], inner: benign }, { outer: [], inner: got }, "v", hostile).join("\n")).toContain("launcher options differ");
  });

  test("a text-config string that is not escaped changes nsjail's fields; an escaped one does not", () => {
    const evil = '\\"} exec_bin { path: "/bin/sh" } #';
    const escaped = `envar: "X=${evil.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"\nmount { dst: "/tmp" }\n`;
    const raw = `envar: "X=${evil}"\nmount { dst: "/tmp" }\n`;
    expect(parseTextProto(escaped)).toEqual({ names: ["envar", "mount{", "mount.dst", "mount}"], values: [`X=${evil}`, "/tmp"] });
    expect(() => parseTextProto(raw)).toThrow();
    expect(() => parseTextProto('envar: "a\nb"')).toThrow("newline");
  });
});

describe("real bwrap runs of `true`: the bytes written for fd 5 hold exactly the plan's options", () => {
  /** The launcher-args file of the run being spawned, read at the moment bwrap is started. */
  async function realRun(runRoot: string, req: RunRequest): Promise<{ outcome: string; rendered: Rendered | null; spawned: number; error?: unknown }> {
    const cordon = new Cordon({ runRoot }, { providers: builtinProviders(), runners: builtinRunners() });
    let rendered: Rendered | null = null;
    let spawned = 0;
    onSpawn = (args) => {
      spawned++;
      const argv = (Array.isArray(args[0]) ? args[0] : (args[0] as { cmd: string[] }).cmd) as string[];
      const dirs = runRootEntries(runRoot);
      const root = dirs.length === 1 ? join(runRoot, dirs[0]!) : null;
      if (root && argv.includes("--args") && existsSync(join(root, "launcher-args"))) {
        const norm = (s: string) => s.split(root).join("<RUN>").split(basename(root)).join("<RUNID>");
        const tokens = readFileSync(join(root, "launcher-args"), "latin1").split("\0");
        tokens.pop();
        const inner = parseBwrapOptions(tokens.map((t) => Buffer.from(t, "latin1").toString("utf8")));
        rendered = { outer: argv.map(norm), inner: { names: inner.names, values: inner.values.map(norm) } };
      }
    };
    try {
      const r = await cordon.run(req);
      return { outcome: r.outcome, rendered, spawned };
    } catch (e) {
      return { outcome: "thrown", rendered, spawned, error: e };
    } finally {
      onSpawn = null;
    }
  }

  const real = (extra: Partial<RunRequest> = {}, policy: PolicyOverride = {}): RunRequest => ({ runner: "shell", script: { source: "true" }, args: [], ...extra, policy: { ...DEGRADE, ...policy } });

  test("env, secretEnv, args and a bind path with hostile values; a NUL is refused before anything exists", async () => {
    const runRoot = freshRunRoot("prop-real");
    const bindParent = tempDir("prop-bind", 0o755, existsSync("/var/tmp") ? "/var/tmp" : undefined);
    const cases: { name: string; benign: string; hostile: string; make: (v: string) => RunRequest }[] = [
      { name: "env value", benign: "benign-value", hostile: "--share-net", make: (v) => real({ env: { X: v } }) },
      { name: "env value", benign: "benign-value", hostile: '\\"} exec_bin { path: "/bin/sh" } #', make: (v) => real({ env: { X: v } }) },
      { name: "env value", benign: "benign-value", hostile: "a\n--share-net\r\u001b", make: (v) => real({ env: { X: v } }) },
      { name: "env value", benign: "benign-value", hostile: "y".repeat(100 * KiB), make: (v) => real({ env: { X: v } }) },
      // At least MIN_SECRET_BYTES: a shorter secret is refused before planning.
      { name: "secretEnv value", benign: "benign-value", hostile: "--share-net", make: (v) => real({ secretEnv: { S: v } }) },
      { name: "args", benign: "benign-value", hostile: "--", make: (v) => real({ args: [v, "--share-net", "--bind"] }) },
      {
        name: "readOnlyBinds",
        benign: "benign-value",
        hostile: "--bind",
        make: (v) => {
          mkdirSync(join(bindParent, v), { recursive: true });
          return real({}, { filesystem: { readOnlyBinds: [{ source: join(bindParent, v), target: `/opt/${v}` }] } });
        },
      },
    ];
    const problems: string[] = [];
    for (const c of cases) {
      const [base, got] = [await realRun(runRoot, c.make(c.benign)), await realRun(runRoot, c.make(c.hostile))];
      if (base.outcome !== "ok" || !base.rendered) {
        problems.push(`${c.name} benign: ${base.outcome} ${String(base.error ?? "")}`);
        continue;
      }
      if (got.outcome !== "ok" || !got.rendered) {
        problems.push(`${c.name} = ${short(c.hostile)}: ${got.outcome} ${String(got.error ?? "")}`);
        continue;
      }
      const diff = compare(base.rendered, got.rendered, c.benign, c.hostile);
      if (diff.length) problems.push(`${c.name} = ${short(c.hostile)}: LAUNCHER INPUT CHANGED: ${diff.join("; ")}`);
    }
    expect(problems).toEqual([]);
    expect(runRootEntries(runRoot)).toEqual([]);

    // A NUL anywhere is refused with a typed error before the run dir exists or anything is spawned.
    for (const req of [real({ env: { X: HOSTILE["NUL-separated options"]! } }), real({ args: [HOSTILE["NUL-separated options"]!] }), real({}, { env: { set: { X: HOSTILE["NUL-separated options"]! } } })]) {
      const r = await realRun(runRoot, req);
      expect(r.outcome).toBe("thrown");
      expect(r.error).toBeInstanceOf(CordonError);
      expect(r.spawned).toBe(0);
      expect(runRootEntries(runRoot)).toEqual([]);
    }
  });

  test("a run root whose path holds `--share-net` and `--bind` components runs as planned", async () => {
    const parent = tempDir("prop-rr", 0o711);
    const benignRoot = join(parent, "benign-value", "runs");
    const hostileRoot = join(parent, "--share-net", "runs");
    for (const d of [dirname(benignRoot), dirname(hostileRoot)]) mkdirSync(d, { mode: 0o711 });
    const [base, got] = [await realRun(benignRoot, real()), await realRun(hostileRoot, real())];
    expect([base.outcome, got.outcome]).toEqual(["ok", "ok"]);
    expect(compare(base.rendered!, got.rendered!, "benign-value", "--share-net")).toEqual([]);
    expect(readdirSync(hostileRoot)).toEqual([]);
  });
});

/**
 * `cordon serve`: read the config and tokens, refuse to start open to the network without a
 * token, start the service, and drain it on SIGTERM or SIGINT. Resolves with the exit status
 * once the service has stopped.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import pino from "pino";
import { Cordon, type Plugins } from "../cordon.ts";
import { CordonError } from "../errors.ts";
import { loadTokens, TokenConfigError, type Tokens } from "./auth.ts";
import { ListenAddress, parseServeFile } from "./config.ts";
import { isLoopbackName } from "./loopback-guard.ts";
import { startService } from "./service.ts";

export const SERVE_USAGE = `cordon serve [--config FILE.json] [--listen HOST:PORT] [--token-file FILE] [--insecure-loopback]
    the sandbox as an HTTP service (POST /v1/runs, GET /v1/readiness, /healthz, /metrics,
    /v1/openapi.json); bearer tokens from --token-file (one a line) or CORDON_TOKENS
    (comma-separated); without a token it starts only on loopback with --insecure-loopback`;

export interface ServeIO {
  stdout: (data: string) => void;
  stderr: (data: string) => void;
  env: Record<string, string | undefined>;
}

/** Exit status for a serve that cannot start (bad config, flags or tokens). */
const CANNOT_START = 2;

function splitListen(address: string): { hostname: string; port: number } {
  const parsed = ListenAddress.safeParse(address);
  if (!parsed.success) throw new CordonError("invalid-config", `--listen ${address}: expected HOST:PORT or [IPv6]:PORT`);
  const colon = address.lastIndexOf(":");
  return { hostname: address.slice(0, colon).replace(/^\[|\]$/g, ""), port: Number(address.slice(colon + 1)) };
}

function readConfigFile(path: string | undefined): unknown {
  if (path === undefined) return {};
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new CordonError("invalid-config", `cannot read config file ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CordonError("invalid-config", `config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

export async function serveCommand(argv: string[], plugins: Plugins, io: ServeIO): Promise<number> {
  let started: ReturnType<typeof startService>;
  const log = pino({ base: { pid: process.pid } }, pino.destination({ dest: 1, sync: true }));
  try {
    const { values } = parseArgs({
      args: argv,
      options: { config: { type: "string" }, listen: { type: "string" }, "token-file": { type: "string" }, "insecure-loopback": { type: "boolean" }, help: { type: "boolean" } },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      io.stdout(`usage: ${SERVE_USAGE}\n`);
      return 0;
    }
    const { serve, config } = parseServeFile(readConfigFile(values.config));
    const listen = splitListen(values.listen ?? serve.listen);
    let tokens: Tokens | null = loadTokens(values["token-file"], io.env.CORDON_TOKENS);
    if (tokens.count === 0) {
      if (!values["insecure-loopback"] || !isLoopbackName(listen.hostname)) {
        throw new CordonError("invalid-config", `no token configured (--token-file FILE or CORDON_TOKENS): serve refuses to start unauthenticated${values["insecure-loopback"] ? ` on ${listen.hostname}, which is not loopback` : " (--insecure-loopback allows it on a loopback address only)"}`);
      }
      tokens = null;
      log.warn({ listen: listen.hostname }, "no token: every local user of this host can run scripts (--insecure-loopback)");
    }
    const cordon = new Cordon(config, plugins);
    const version = (await import("../../package.json")).version;
    started = startService({ cordon, serve, ...listen, tokens, log, version });
  } catch (e) {
    const message = e instanceof TokenConfigError || e instanceof CordonError || e instanceof TypeError ? e.message : String(e);
    io.stderr(`cordon serve: ${message}\nusage: ${SERVE_USAGE}\n`);
    return CANNOT_START;
  }
  log.info({ url: started.url }, "listening");
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      // A second signal while draining kills the runs now, and the shutdown still cleans up after
      // them. (Unhandled, it ended the process mid-drain: run directories, scratch mounts and
      // cgroups were left behind.)
      if (stopping) {
        log.info({ signal }, "stopping now");
        void started.shutdown();
        return;
      }
      stopping = true;
      log.info({ signal }, "stopping");
      started.shutdown().then(
        () => resolve(0),
        (e) => {
          log.error({ err: String(e) }, "shutdown failed");
          resolve(1);
        },
      );
    };
    const onTerm = () => stop("SIGTERM");
    const onInt = () => stop("SIGINT");
    process.on("SIGTERM", onTerm);
    process.on("SIGINT", onInt);
  });
}

/**
 * The HTTP service on Bun.serve: routes, authentication, admission, one log line per request,
 * metrics, and the drain on shutdown. Every run goes through the library's Cordon.run with the
 * client's connection as its cancellation: a client that goes away kills its run's tree.
 */
import type { Server } from "bun";
import type { Logger } from "pino";
import type { Cordon, PolicyCheck, RunRequest } from "../cordon.ts";
import { CordonError, IdentityPoolExhaustedError } from "../errors.ts";
import type { ReadinessReport } from "../readiness/types.ts";
import { resultFromError, type RunResult } from "../result.ts";
import { Admission } from "./admission.ts";
import type { Caller, Tokens } from "./auth.ts";
import { readCappedBody } from "./body.ts";
import type { ServeSettings } from "./config.ts";
import { ServeError } from "./http-error.ts";
import { ServeMetrics } from "./metrics.ts";
import { refuseBrowsers } from "./loopback-guard.ts";
import { openApiDocument } from "./openapi.ts";
import { maxJsonValues, parseRunBody, toRunRequest, type RequestLimits } from "./request.ts";
import type { RunBody } from "./api.ts";
import { runResultBody } from "./result-body.ts";

export interface ServiceOptions {
  cordon: Cordon;
  serve: ServeSettings;
  hostname: string;
  port: number;
  /** null: no authentication (only ever on loopback with --insecure-loopback; the CLI enforces that). */
  tokens: Tokens | null;
  log: Logger;
  version: string;
}

export interface RunningService {
  url: string;
  server: Server<undefined>;
  /** Stop accepting, let runs under way finish up to serve.drainMs, kill the rest, close the pool. */
  shutdown(): Promise<void>;
}

/** What each request's log line carries besides method, path, status and time. */
type LogFields = Record<string, string | number | boolean | null | undefined>;

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Bun's idle timeout (s) for every connection: one that sends nothing for this long is closed.
 * Turned off (0) it let anyone, no token needed, keep any number of keep-alive sockets open
 * forever until the process ran out of file descriptors, and with them every run. A run's own
 * request turns it off for itself once its body is in (see runRoute), and puts it back before
 * its answer goes out, so that socket cannot idle forever afterwards either.
 */
const IDLE_TIMEOUT_SECONDS = 30;
const ANONYMOUS: Caller = { id: "anonymous" };

/** Errors the caller made (the request is wrong), as opposed to a run's own ending. */
const CLIENT_ERROR_CODES = new Set(["invalid-policy", "invalid-config", "invalid-job", "unknown-provider", "unknown-runner"]);

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

function errorResponse(e: ServeError, requestId: string): Response {
  const headers: Record<string, string> = { "x-request-id": requestId };
  if (e.extra.retryAfterSeconds !== undefined) headers["retry-after"] = String(e.extra.retryAfterSeconds);
  if (e.status === 401) headers["www-authenticate"] = 'Bearer realm="cordon"';
  return json(e.status, { requestId, error: { code: e.code, message: e.message, ...(e.extra.fields ? { fields: e.extra.fields } : {}) } }, headers);
}

export function startService(options: ServiceOptions): RunningService {
  const { cordon, serve, log } = options;
  const admission = new Admission({ global: serve.concurrency.global, perToken: serve.concurrency.perToken, queueMax: serve.queue.max, maxWaitMs: serve.queue.maxWaitMs });
  let readiness: { reports: ReadinessReport[]; check: PolicyCheck } | null = null;
  const metrics = new ServeMetrics({ inFlight: () => admission.inFlight, queued: () => admission.queued, pool: () => cordon.poolStats(), readiness: () => readiness?.reports ?? null });
  const limits: RequestLimits = { serve, config: cordon.config, ceiling: cordon.policy, provider: cordon.config.provider };
  const shutdownSignal = new AbortController();
  const runsUnderWay = new Set<Promise<unknown>>();
  let draining = false;
  /** The shutdown under way (SIGTERM), if any. */
  let stopping: Promise<void> | null = null;
  const openapi = JSON.stringify(openApiDocument(options.version));

  // Readiness is proven once, in the background: /v1/readiness answers 503 until it is.
  const proven = Promise.all([cordon.readiness(), cordon.check()])
    .then(([reports, check]) => {
      readiness = { reports, check };
      if (!check.ready) log.warn({ reasons: check.reasons }, "the configured policy cannot run on this host");
    })
    .catch((e) => log.error({ err: String(e) }, "readiness failed"));

  /** Requests whose idle timeout a run turned off: it is put back before their answer (see fetch). */
  const untimed = new WeakSet<Request>();

  async function runRoute(request: Request, requestId: string, fields: LogFields): Promise<Response> {
    if (draining) throw new ServeError(503, "shutting-down", "the service is shutting down");
    const caller = options.tokens ? options.tokens.authenticate(request.headers.get("authorization")) : ANONYMOUS;
    if (!caller) throw new ServeError(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer TOKEN)");
    fields.token = caller.id;
    // The body waits like a queued request: it counts against the token while it is read.
    const unhold = admission.hold(caller.id);
    let body: RunBody;
    let runRequest: RunRequest;
    try {
      body = parseRunBody(await readCappedBody(request, serve.caps.bodyBytes), maxJsonValues(cordon.config));
      runRequest = toRunRequest(body, limits);
    } finally {
      unhold(); // given back right before enter, nothing awaited in between: enter takes over the count
    }
    fields.runner = body.runner;
    // A queued or running request is quiet for as long as the run takes: no idle timeout for it
    // (Bun keeps that for the socket's later requests too: fetch puts it back before the answer).
    server.timeout(request, 0);
    untimed.add(request);
    const queuedAt = performance.now();
    const release = await admission.enter(caller.id, request.signal);
    fields.queuedMs = Math.round(performance.now() - queuedAt);
    if (draining) {
      release(); // admitted while the drain began: it never starts
      throw new ServeError(503, "shutting-down", "the service is shutting down");
    }
    const cancel = AbortSignal.any([request.signal, shutdownSignal.signal]);
    const started = performance.now();
    const run = cordon.run({ ...runRequest, signal: cancel });
    runsUnderWay.add(run);
    let result: RunResult;
    try {
      result = await run;
    } catch (e) {
      if (e instanceof CordonError && CLIENT_ERROR_CODES.has(e.code)) throw new ServeError(400, "bad-request", e.message);
      if (e instanceof IdentityPoolExhaustedError) throw new ServeError(429, "busy", e.message, { retryAfterSeconds: 1 });
      result = resultFromError(e);
    } finally {
      runsUnderWay.delete(run);
      release();
    }
    const runner = result.sandbox?.runner.name ?? body.runner ?? "unknown";
    metrics.ran(result, runner, (performance.now() - started) / 1000);
    Object.assign(fields, { runner, provider: result.sandbox?.provider.name, outcome: result.outcome, limitHit: result.limitHit, cancelled: result.cancelled });
    if (result.cancelled && shutdownSignal.signal.aborted) throw new ServeError(503, "shutting-down", "the service stopped before the run finished: its tree was killed");
    const status = result.outcome === "error" ? 500 : 200;
    return json(status, runResultBody(result, requestId), { "x-request-id": requestId });
  }

  async function route(request: Request, url: URL, requestId: string, fields: LogFields): Promise<Response> {
    const path = url.pathname;
    if (!options.tokens) refuseBrowsers(request);
    if (path === "/v1/runs") {
      if (request.method !== "POST") throw new ServeError(405, "method-not-allowed", "use POST");
      return runRoute(request, requestId, fields);
    }
    if (request.method !== "GET") throw new ServeError(path in GET_ROUTES ? 405 : 404, path in GET_ROUTES ? "method-not-allowed" : "not-found", `${request.method} ${path}`);
    switch (path) {
      case "/healthz":
        return new Response("ok\n", { headers: { "content-type": "text/plain" } });
      case "/metrics":
        return new Response(await metrics.text(), { headers: { "content-type": metrics.registry.contentType } });
      case "/v1/openapi.json":
        return new Response(openapi, { headers: { "content-type": "application/json" } });
      case "/v1/readiness": {
        const ready = !draining && readiness !== null && readiness.check.ready;
        const body = readiness ? { ready, draining, check: readiness.check, providers: readiness.reports } : { ready: false, draining, pending: "readiness is being proven" };
        return json(ready ? 200 : 503, body);
      }
      default:
        throw new ServeError(404, "not-found", `no route ${path}`);
    }
  }

  const server = Bun.serve({
    hostname: options.hostname,
    port: options.port,
    // The cap is readCappedBody's (a declared length is refused unread, a streamed body at the
    // cap, with a 413 that names it); Bun's own limit would answer an empty 413 first.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    // Runs may take serve's longest wall clock: runRoute turns the timeout off for a run's request alone.
    idleTimeout: IDLE_TIMEOUT_SECONDS,
    // Never Bun's development error page: it answers a thrown error with the service's source
    // lines and working directory, to anyone, no token needed.
    development: false,
    error(e) {
      log.error({ err: String(e) }, "unhandled error");
      return json(500, { error: { code: "internal", message: "internal error" } });
    },
    async fetch(request) {
      const started = performance.now();
      // Without a Host header (HTTP/1.0) request.url is only the path, and new URL threw
      // outside any catch: Bun's error page went out. Only the path is used here.
      const url = URL.parse(request.url) ?? URL.parse(request.url, "http://host.invalid") ?? new URL("http://host.invalid/");
      const given = request.headers.get("x-request-id");
      const requestId = given && REQUEST_ID.test(given) ? given : crypto.randomUUID();
      const fields: LogFields = {};
      let response: Response;
      try {
        response = await route(request, url, requestId, fields);
      } catch (e) {
        const error = e instanceof ServeError ? e : new ServeError(500, "internal", "internal error");
        if (!(e instanceof ServeError)) fields.error = String(e);
        response = errorResponse(error, requestId);
      }
      const routeName = url.pathname in GET_ROUTES || url.pathname === "/v1/runs" ? url.pathname : "other";
      // Nobody reads the answer of a client that went away: logged and counted as nginx's 499.
      if (request.signal.aborted) response = new Response(null, { status: 499 });
      // The run is over: its keep-alive connection idles under the usual timeout again (left at
      // 0 it stayed open for good). Not "Connection: close": keep-alive clients lost answers.
      if (untimed.has(request) && !request.signal.aborted) server.timeout(request, IDLE_TIMEOUT_SECONDS);
      metrics.request(routeName, response.status);
      log.info({ reqId: requestId, method: request.method, path: routeName, status: response.status, ms: Math.round(performance.now() - started), ...fields }, "request");
      return response;
    },
  });

  return {
    url: `http://${server.hostname?.includes(":") ? `[${server.hostname}]` : server.hostname}:${server.port}`,
    server,
    shutdown() {
      // Asked again while draining (a second SIGTERM): no more waiting, the runs under way are
      // killed now, and the rest of the shutdown (their cleanup, the pool) still happens.
      if (stopping) {
        if (!shutdownSignal.signal.aborted) log.warn({ killed: runsUnderWay.size }, "asked again to stop: killing the runs still under way");
        shutdownSignal.abort();
        return stopping;
      }
      stopping = drainAndStop();
      return stopping;
    },
  };

  /** Stop accepting, let runs under way finish up to serve.drainMs (or until asked again), kill the rest, close the pool. */
  async function drainAndStop(): Promise<void> {
    draining = true;
    void server.stop(false); // stop accepting; requests under way finish
    admission.refuseWaiting(new ServeError(503, "shutting-down", "the service is shutting down"));
    log.info({ inFlight: runsUnderWay.size, drainMs: serve.drainMs }, "draining");
    const drained = Promise.allSettled([...runsUnderWay]);
    const deadline = new Promise<"deadline">((resolve) => setTimeout(resolve, serve.drainMs, "deadline").unref());
    const hurried = new Promise<"hurried">((resolve) => shutdownSignal.signal.addEventListener("abort", () => resolve("hurried"), { once: true }));
    const ended = await Promise.race([drained, deadline, hurried]);
    if (ended === "hurried") await Promise.allSettled([...runsUnderWay]);
    if (ended === "deadline") {
      log.warn({ killed: runsUnderWay.size }, "drain deadline: killing the runs still under way");
      shutdownSignal.abort();
      await Promise.allSettled([...runsUnderWay]);
    }
    await proven;
    await cordon.close();
    await server.stop(true);
    log.info("stopped");
  }
}

const GET_ROUTES: Record<string, true> = { "/healthz": true, "/metrics": true, "/v1/openapi.json": true, "/v1/readiness": true };

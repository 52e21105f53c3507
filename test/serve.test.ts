/**
 * `cordon serve` as an operator runs it: a real child on 127.0.0.1 (test/support/serve.ts),
 * real bwrap runs behind it. Authentication, every limit (429, 413), the operator's policy as
 * a ceiling (400 naming the field), a client that goes away (its run's tree is killed),
 * SIGTERM (runs under way finish, nothing is left), metrics that move, readiness, OpenAPI.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Ajv2020 from "ajv/dist/2020";
import { processesWithMarker, provenReadiness, removeTempDirs, sleepMarker, startServe, stopServes, token, waitFor, type ServeChild, jsonBody, metricSample, shellRun } from "./support.ts";

afterAll(async () => {
  await stopServes("serve.test");
  removeTempDirs();
});


function expectClean(child: ServeChild): void {
  expect(child.leftovers()).toEqual({ runDirs: [], cgroups: [], mounts: [], processes: [] });
}

describe("a shared service (auth, bad input, caps, metrics, OpenAPI)", () => {
  let serve: ServeChild;
  const other = token("other");
  beforeAll(async () => {
    serve = await startServe({
      label: "serve-main",
      tokens: [token("tok"), other],
      config: { pool: { size: 1 }, maxScriptBytes: 4096, inputFiles: { maxCount: 2, maxTotalBytes: 2048 }, serve: { caps: { bodyBytes: 64 * 1024, stdinBytes: 1024 } } },
    });
    // Readiness is proven in the background; the metrics and readiness tests read its result.
    expect((await provenReadiness(serve)).status).toBe(200);
  });
  afterAll(async () => {
    if (serve && !serve.exited()) {
      expect(await serve.stop()).toBe(0);
      expectClean(serve);
    }
  });

  test("no token, a wrong one, or a malformed header: 401 with WWW-Authenticate; nothing runs", async () => {
    const mark = token("noauth");
    const requests: Record<string, string | undefined> = { missing: undefined, wrong: `Bearer ${token("tok")}`, basic: `Basic ${btoa(`x:${serve.token}`)}`, spaced: `Bearer  ${serve.token}`, prefix: `Bearer ${serve.token.slice(0, -1)}` };
    for (const [name, authorization] of Object.entries(requests)) {
      const response = await fetch(`${serve.url}/v1/runs`, { method: "POST", headers: authorization ? { authorization } : {}, body: JSON.stringify(shellRun(`echo ${mark}`)) });
      expect({ name, status: response.status }).toEqual({ name, status: 401 });
      expect(response.headers.get("www-authenticate")).toContain("Bearer");
      expect(JSON.stringify(await jsonBody(response))).not.toContain(mark);
    }
  });

  test("the right token (either of two) runs the script; the token is in no log line and no result", async () => {
    for (const t of [serve.token, other]) {
      const response = await serve.run(shellRun("echo hello; env"), t);
      const body = await jsonBody(response);
      expect(response.status).toBe(200);
      expect(body.outcome).toBe("ok");
      expect(body.stdout).toStartWith("hello\n");
      expect(body.sandbox.provider.name).toBe("bwrap");
      expect(JSON.stringify(body)).not.toContain(t);
    }
    await Bun.sleep(50);
    const lines = serve.lines().join("\n");
    for (const t of serve.tokens) expect(lines).not.toContain(t);
    // Each token is logged by a short id of its own.
    const ids = new Set(serve.logs().filter((l) => l.path === "/v1/runs" && l.status === 200).map((l) => l.token));
    expect(ids.size).toBe(2);
  });

  test("the request id is in the result, the x-request-id header and the log line", async () => {
    const response = await serve.fetch("/v1/runs", { method: "POST", headers: { "x-request-id": "check-42.a" }, body: JSON.stringify(shellRun("true")) });
    expect(response.headers.get("x-request-id")).toBe("check-42.a");
    expect((await jsonBody(response)).requestId).toBe("check-42.a");
    expect(await serve.waitForLog((l) => l.reqId === "check-42.a" && l.status === 200 && l.outcome === "ok")).not.toBeNull();
    // A request id that could forge a log field is replaced by a fresh one.
    const forged = await serve.fetch("/v1/runs", { method: "POST", headers: { "x-request-id": 'x","status":200' }, body: JSON.stringify(shellRun("true")) });
    expect(forged.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("stdin, args, env, base64 script and files go in; output files come back in base64", async () => {
    const script = Buffer.from('printf "%s|" "$@"; cat; echo "|$GREETING"; cat in.txt; printf "\\377" > out.bin');
    const response = await serve.run({
      runner: "shell",
      script: { base64: script.toString("base64"), name: "s.sh" },
      args: ["a b", "--flag"],
      stdin: "from-stdin",
      env: { GREETING: "hi" },
      files: [{ path: "in.txt", base64: Buffer.from("file-content").toString("base64") }],
    });
    const body = await jsonBody(response);
    expect(response.status).toBe(200);
    expect(body.stdout).toBe("a b|--flag|from-stdin|hi\nfile-content");
    const out = body.files.find((f: { path: string }) => f.path === "out.bin");
    expect(Buffer.from(out.contentBase64, "base64")).toEqual(Buffer.from([0xff]));
  });

  test("secretEnv values are masked in what comes back", async () => {
    const secret = token("secret");
    const body = await jsonBody(await serve.run(shellRun('echo "v=$API_KEY"; echo "$API_KEY" >&2', { secretEnv: { API_KEY: secret } })));
    expect(body.stdout).toBe("v=****\n");
    expect(JSON.stringify(body)).not.toContain(secret);
  });

  test("bad input is a 400 naming the field, and nothing runs", async () => {
    const mark = token("bad");
    const cases: [string, unknown, string][] = [
      ["a server file as the script", { runner: "shell", script: { file: "/etc/shadow" } }, "script"],
      ["an unknown field", { ...shellRun(`echo ${mark}`), scriptFileAccess: "caller" }, "scriptFileAccess"],
      ["a NUL in an env value", shellRun(`echo ${mark}`, { env: { A: "x\u0000--bind / /" } }), "env.A"],
      ["a bad variable name", shellRun(`echo ${mark}`, { env: { "A=B": "x" } }), "env"],
      ["bad base64", { runner: "shell", script: { base64: "%%%" } }, "script"],
      ["an unknown runner", shellRun(`echo ${mark}`, { runner: "cobol" }), "cobol"],
      ["a weak secret", shellRun(`echo ${mark}`, { secretEnv: { K: "short" } }), "secretEnv"],
      ["a file path out of scratch", shellRun(`echo ${mark}`, { files: [{ path: "../x", base64: "" }] }), "../x"],
    ];
    for (const [name, request, field] of cases) {
      const response = await serve.run(request);
      const body = await jsonBody(response);
      expect({ name, status: response.status }).toEqual({ name, status: 400 });
      expect({ name, message: body.error.message.includes(field) }).toEqual({ name, message: true });
    }
    const notJson = await serve.fetch("/v1/runs", { method: "POST", body: "{not json" });
    expect(notJson.status).toBe(400);
    expect(processesWithMarker(mark)).toEqual([]);
    expect(serve.logs().some((l) => l.outcome !== undefined && JSON.stringify(l).includes(mark))).toBe(false);
  });

  test("a policy override may tighten the operator's policy, never loosen it: 400 naming each field", async () => {
    const tightened = await jsonBody(await serve.run(shellRun("sleep 5", { policy: { resources: { wallMs: 300 } } })));
    expect(tightened.outcome).toBe("timeout");
    const loosening: [Record<string, unknown>, string][] = [
      [{ resources: { wallMs: 86_400_000 } }, "policy.resources.wallMs"],
      [{ resources: { memoryBytes: 1024 ** 3 * 64 } }, "policy.resources.memoryBytes"],
      [{ onUnavailable: "degrade" }, "policy.onUnavailable"],
      [{ network: { mode: "unrestricted" } }, "policy.network.mode"],
      [{ filesystem: { mode: "off" } }, "policy.filesystem.mode"],
      [{ filesystem: { readOnlyBinds: ["/root"] } }, "policy.filesystem.readOnlyBinds"],
      [{ privilege: { seccomp: false } }, "policy.privilege.seccomp"],
      [{ privilege: { uid: 4242 } }, "policy.privilege.uid"],
      [{ env: { allow: ["HOME"] } }, "policy.env.allow"],
    ];
    for (const [policy, field] of loosening) {
      const response = await serve.run(shellRun("echo ran", { policy }));
      const body = await jsonBody(response);
      expect({ field, status: response.status }).toEqual({ field, status: 400 });
      expect(body.error.fields.map((f: { path: string }) => f.path)).toContain(field);
      expect(body.error.message).toContain(field);
    }
    const provider = await serve.run(shellRun("echo ran", { provider: "unsafe" }));
    expect(provider.status).toBe(400);
    expect((await jsonBody(provider)).error.message).toContain("provider");
  });

  test("each byte cap is a 413 saying which, before anything runs", async () => {
    const mark = token("big");
    const cases: [string, unknown, string][] = [
      ["body", shellRun(`echo ${mark}`, { env: { PAD: "x".repeat(70 * 1024) } }), "request body"],
      ["script", shellRun(`echo ${mark}; #${"x".repeat(5000)}`), "script"],
      ["stdin", shellRun(`echo ${mark}`, { stdin: "x".repeat(2000) }), "stdin"],
      ["files bytes", shellRun(`echo ${mark}`, { files: [{ path: "a", base64: Buffer.alloc(3000).toString("base64") }] }), "files"],
      ["files count", shellRun(`echo ${mark}`, { files: ["a", "b", "c"].map((path) => ({ path, base64: "" })) }), "files"],
    ];
    for (const [name, request, what] of cases) {
      const response = await serve.run(request);
      expect({ name, status: response.status }).toEqual({ name, status: 413 });
      expect((await jsonBody(response)).error.message).toContain(what);
    }
    expect(processesWithMarker(mark)).toEqual([]);
  });

  test("metrics move as runs happen", async () => {
    const before = await (await serve.fetch("/metrics")).text();
    const series = 'cordon_runs_total{provider="bwrap",runner="shell",outcome="exit-nonzero",limit_hit="none"}';
    await serve.run(shellRun("exit 3"));
    await serve.run(shellRun("exit 4"));
    const after = await (await serve.fetch("/metrics")).text();
    expect(metricSample(after, series) - metricSample(before, series)).toBe(2);
    expect(metricSample(after, 'cordon_http_requests_total{route="/v1/runs",status="200"}')).toBeGreaterThan(metricSample(before, 'cordon_http_requests_total{route="/v1/runs",status="200"}'));
    expect(metricSample(after, 'cordon_run_duration_seconds_count{runner="shell",outcome="exit-nonzero"}')).toBeGreaterThanOrEqual(2);
    expect(metricSample(after, 'cordon_readiness_cell{provider="bwrap",cell="filesystem",status="proven"}')).toBe(1);
    expect(after).toContain("cordon_pool_hits_total");
    // In flight while a run is under way.
    const marker = sleepMarker(20);
    const running = serve.run(shellRun(`sleep ${marker}`, { policy: { resources: { wallMs: 1500 } } }));
    expect(await waitFor(() => processesWithMarker(marker).length > 0, 5000)).toBe(true);
    expect(metricSample(await (await serve.fetch("/metrics")).text(), "cordon_runs_in_flight")).toBe(1);
    expect((await jsonBody(await running)).outcome).toBe("timeout");
    expect(metricSample(await (await serve.fetch("/metrics")).text(), "cordon_runs_in_flight")).toBe(0);
  });

  test("a client that goes away cancels its run: the tree is killed, the log says 499", async () => {
    const marker = sleepMarker(30);
    const client = new AbortController();
    const response = serve.fetch("/v1/runs", { method: "POST", headers: { "x-request-id": "gone-1" }, body: JSON.stringify(shellRun(`sleep ${marker} & sleep ${marker}; wait`)), signal: client.signal }).catch((e) => e);
    expect(await waitFor(() => processesWithMarker(marker).length >= 2, 5000)).toBe(true);
    client.abort();
    await response;
    expect(await waitFor(() => processesWithMarker(marker).length === 0, 5000)).toBe(true);
    const line = await serve.waitForLog((l) => l.reqId === "gone-1");
    expect(line).toMatchObject({ status: 499, outcome: "killed", cancelled: true });
  });

  test("/healthz, /v1/readiness, /v1/openapi.json need no token; unknown routes are 404", async () => {
    expect((await fetch(`${serve.url}/healthz`)).status).toBe(200);
    const readiness = await fetch(`${serve.url}/v1/readiness`);
    expect(readiness.status).toBe(200);
    expect(await readiness.json()).toMatchObject({ ready: true, check: { provider: "bwrap", ready: true } });
    expect((await fetch(`${serve.url}/nope`)).status).toBe(404);
    expect((await fetch(`${serve.url}/v1/runs`)).status).toBe(405);
  });

  test("the OpenAPI document describes the bodies the service really takes and gives", async () => {
    const doc = (await (await fetch(`${serve.url}/v1/openapi.json`)).json()) as Record<string, any>;
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/v1/runs", "/v1/readiness", "/healthz", "/metrics"]));
    const ajv = new Ajv2020({ strict: false });
    const request = shellRun("echo x", { args: ["1"], policy: { resources: { wallMs: 1000 } } });
    expect(ajv.validate(doc.components.schemas.RunRequest, request)).toBe(true);
    expect(ajv.validate(doc.components.schemas.RunRequest, { runner: "shell", script: { file: "/etc/passwd" } })).toBe(false);
    const result = await jsonBody(await serve.run(request));
    expect(ajv.validate(doc.components.schemas.RunResult, result), JSON.stringify(ajv.errors)).toBe(true);
    const error = await jsonBody(await serve.run({}));
    expect(ajv.validate(doc.components.schemas.Error, error), JSON.stringify(ajv.errors)).toBe(true);
  });
});

describe("admission: 429 with Retry-After past the limits", () => {
  test("global concurrency 1 and no queue: a second run at once is a 429; after the first, runs go again", async () => {
    const serve = await startServe({ label: "serve-busy", config: { pool: { size: 0 }, serve: { concurrency: { global: 1, perToken: 4 }, queue: { max: 0 } } } });
    const marker = sleepMarker(2);
    const first = serve.run(shellRun(`sleep ${marker}`));
    expect(await waitFor(() => processesWithMarker(marker).length > 0, 5000)).toBe(true);
    const second = await serve.run(shellRun("echo second"));
    expect(second.status).toBe(429);
    expect(Number(second.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await jsonBody(second)).error.code).toBe("busy");
    expect((await jsonBody(await first)).outcome).toBe("ok");
    expect((await serve.run(shellRun("echo third"))).status).toBe(200);
    expect(await serve.stop()).toBe(0);
    expectClean(serve);
  });

  test("a queue holds what the slots cannot take, up to its bound and wait", async () => {
    const serve = await startServe({ label: "serve-queue", config: { pool: { size: 0 }, serve: { concurrency: { global: 1, perToken: 8 }, queue: { max: 1, maxWaitMs: 4000 } } } });
    const marker = sleepMarker(1);
    const first = serve.run(shellRun(`sleep ${marker}; echo first`));
    expect(await waitFor(() => processesWithMarker(marker).length > 0, 5000)).toBe(true);
    const queued = serve.run(shellRun("echo queued"));
    await Bun.sleep(100);
    const metrics = await (await serve.fetch("/metrics")).text();
    expect(metricSample(metrics, "cordon_queue_depth")).toBe(1);
    const overflow = await serve.run(shellRun("echo overflow"));
    expect(overflow.status).toBe(429);
    expect((await jsonBody(await first)).stdout).toBe("first\n");
    expect((await jsonBody(await queued)).stdout).toBe("queued\n");
    const line = await serve.waitForLog((l) => l.outcome === "ok" && typeof l.queuedMs === "number" && (l.queuedMs as number) > 100);
    expect(line).not.toBeNull();
    expect(await serve.stop()).toBe(0);
  });

  test("per-token concurrency: a token at its limit gets 429 while another token still runs", async () => {
    const tokens = [token("tok"), token("tok")];
    const serve = await startServe({ label: "serve-pertoken", tokens, config: { pool: { size: 0 }, serve: { concurrency: { global: 4, perToken: 1 }, queue: { max: 4 } } } });
    const marker = sleepMarker(2);
    const first = serve.run(shellRun(`sleep ${marker}`), tokens[0]);
    expect(await waitFor(() => processesWithMarker(marker).length > 0, 5000)).toBe(true);
    expect((await serve.run(shellRun("true"), tokens[0])).status).toBe(429);
    expect((await serve.run(shellRun("true"), tokens[1])).status).toBe(200);
    expect((await first).status).toBe(200);
    expect(await serve.stop()).toBe(0);
  });
});

describe("starting and stopping", () => {
  test("no token: serve refuses to start, unless --insecure-loopback on a loopback address", async () => {
    const refused = await startServe({ label: "serve-notoken", tokens: [] }).catch((e) => e);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("no token");
    const wide = await startServe({ label: "serve-wide", tokens: [], listen: "0.0.0.0:0", args: ["--insecure-loopback"] }).catch((e) => e);
    expect(wide.code).toBe(2);
    expect(wide.stderr).toContain("not loopback");
    const weak = await startServe({ label: "serve-weak", tokens: ["short"] }).catch((e) => e);
    expect(weak.code).toBe(2);
    expect(weak.stderr).toContain("16");
    const open = await startServe({ label: "serve-open", tokens: [], config: { pool: { size: 0 } }, args: ["--insecure-loopback"] });
    const response = await fetch(`${open.url}/v1/runs`, { method: "POST", body: JSON.stringify(shellRun("echo open")) });
    expect((await jsonBody(response)).stdout).toBe("open\n");
    expect(await open.stop()).toBe(0);
  });

  test("tokens from CORDON_TOKENS work; the sandbox never sees them", async () => {
    const tokens = [token("env"), token("env")];
    const serve = await startServe({ label: "serve-envtok", tokens, tokensVia: "env", config: { pool: { size: 0 } } });
    const body = await jsonBody(await serve.run(shellRun("env; cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'"), tokens[1]));
    expect(body.outcome).toBe("ok");
    for (const t of tokens) expect(body.stdout).not.toContain(t);
    expect(body.stdout).not.toContain("CORDON_TOKENS");
    expect(await serve.stop()).toBe(0);
  });

  test("SIGTERM: new requests are refused, runs under way finish, nothing is left", async () => {
    const serve = await startServe({ label: "serve-drain", config: { pool: { size: 2 }, serve: { drainMs: 20_000 } } });
    await serve.run(shellRun("true")); // the pool starts for this shape
    const marker = sleepMarker(1);
    const running = serve.run(shellRun(`sleep ${marker}; echo finished`));
    expect(await waitFor(() => processesWithMarker(marker).length > 0, 5000)).toBe(true);
    const stopped = serve.stop();
    expect(await serve.waitForLog((l) => l.msg === "draining")).not.toBeNull();
    const late = await serve.run(shellRun("echo late")).then((r) => r.status, () => "refused");
    expect([503, "refused"]).toContain(late);
    const response = await running;
    expect(response.status).toBe(200);
    expect((await jsonBody(response)).stdout).toBe("finished\n");
    expect(await stopped).toBe(0);
    expectClean(serve);
  });

  test("SIGTERM past the drain deadline: the run is killed with its tree, its client told 503", async () => {
    const serve = await startServe({ label: "serve-deadline", config: { pool: { size: 0 }, serve: { drainMs: 300 } } });
    const marker = sleepMarker(30);
    const running = serve.run(shellRun(`sleep ${marker} & sleep ${marker}; wait`));
    expect(await waitFor(() => processesWithMarker(marker).length >= 2, 5000)).toBe(true);
    const code = await serve.stop({ timeoutMs: 15_000 });
    const response = await running;
    expect(response.status).toBe(503);
    expect((await jsonBody(response)).error.code).toBe("shutting-down");
    expect(code).toBe(0);
    expect(processesWithMarker(marker)).toEqual([]);
    expectClean(serve);
  });

  test("readiness is 503 when the configured policy cannot run here", async () => {
    // Filtered egress needs the rootless provider: bwrap under fail cannot run this policy.
    const serve = await startServe({ label: "serve-notready", config: { pool: { size: 0 }, policy: { network: { mode: "allowlist", allow: ["192.0.2.1:9"] } } } });
    const { status, body } = (await provenReadiness(serve)) as { status: number; body: Record<string, any> };
    expect(status).toBe(503);
    expect(body.ready).toBe(false);
    expect(body.check.reasons.join(" ")).toContain("allowlist");
    expect(await serve.stop()).toBe(0);
  });
});

/**
 * A bounded HTTP load of POST /v1/runs (autocannon on loopback): `amount` requests over
 * `connections` keep-alive connections, every response body checked as it comes, stopped at
 * `deadlineMs` if it has not finished by then (what was answered is still returned, so the
 * caller sees the shortfall). The latencies are the client's, from autocannon's per-response
 * event. No bun:test import here: bench/serve.ts drives the service with this too.
 */
import autocannon from "autocannon";

export interface RunLoadOptions {
  url: string;
  token: string;
  /** The POST /v1/runs body, the same for every request. */
  body: unknown;
  amount: number;
  connections: number;
  /** Per-request timeout, seconds (autocannon counts a timeout as an error). */
  timeoutSeconds?: number;
  /** The whole load's bound: stopped past it. */
  deadlineMs: number;
  /** Why a response is wrong (status, body text, headers with lower-cased names), or null when it is right. */
  check: (status: number, body: string, headers: Record<string, string>) => string | null;
  /** Called after each response is checked, with how many came so far. */
  onResponse?: (count: number) => void;
}

export interface RunLoad {
  /** Responses received (every status). */
  responses: number;
  /** Responses by status code. */
  statuses: Record<number, number>;
  /** Responses `check` found wrong, and the first few reasons. */
  wrong: number;
  firstWrong: string[];
  /** autocannon's connection errors (timeouts included) and timeouts. */
  errors: number;
  timeouts: number;
  /** Stopped by the deadline before `amount` responses. */
  stoppedAtDeadline: boolean;
  /** From the start to the last response (autocannon itself returns up to a second later). */
  seconds: number;
  /** Responses per second over the whole load. */
  perSecond: number;
  /** Client-side latency, ms, of the 200 responses only (a 429 answers at once). */
  latencies200: number[];
  result: autocannon.Result;
}

/** autocannon's headers: an object, or a flat [name, value, …] list; names lower-cased. */
function headerMap(raw: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(raw)) for (let i = 0; i + 1 < raw.length; i += 2) out[String(raw[i]).toLowerCase()] = String(raw[i + 1]);
  else if (raw && typeof raw === "object") for (const [k, v] of Object.entries(raw)) out[k.toLowerCase()] = String(v);
  return out;
}

export function runLoad(opts: RunLoadOptions): Promise<RunLoad> {
  const out = { responses: 0, statuses: {} as Record<number, number>, wrong: 0, firstWrong: [] as string[], latencies200: [] as number[] };
  const started = performance.now();
  let lastResponseAt = started;
  let stoppedAtDeadline = false;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: opts.url,
        connections: opts.connections,
        amount: opts.amount,
        timeout: opts.timeoutSeconds ?? 60,
        requests: [
          {
            method: "POST",
            path: "/v1/runs",
            headers: { "content-type": "application/json", authorization: `Bearer ${opts.token}` },
            body: JSON.stringify(opts.body),
            onResponse(status: number, body: string, _context: object, headers: unknown) {
              out.responses++;
              lastResponseAt = performance.now();
              out.statuses[status] = (out.statuses[status] ?? 0) + 1;
              let why: string | null;
              try {
                why = opts.check(status, body, headerMap(headers));
              } catch (e) {
                why = `check threw: ${e instanceof Error ? e.message : String(e)}`;
              }
              if (why !== null) {
                out.wrong++;
                if (out.firstWrong.length < 5) out.firstWrong.push(`${status}: ${why}`);
              }
              opts.onResponse?.(out.responses);
            },
          },
        ],
      },
      (err: unknown, result: autocannon.Result) => {
        clearTimeout(timer);
        if (err) return reject(err instanceof Error ? err : new Error(String(err)));
        // autocannon ends on its next one-second tick after the last response: not part of the load.
        const seconds = (lastResponseAt - started) / 1000;
        resolve({ ...out, errors: result.errors, timeouts: result.timeouts, stoppedAtDeadline, seconds, perSecond: out.responses / seconds, result });
      },
    );
    instance.on("response", (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      if (statusCode === 200) out.latencies200.push(responseTime);
    });
    const timer = setTimeout(() => {
      stoppedAtDeadline = true;
      instance.stop();
    }, opts.deadlineMs);
  });
}

/**
 * The cordon transport: a collector's `client.exec(request)` is a sandboxed run.
 * Cordon.run throws for input it rejects and for refusals under
 * `onUnavailable: fail`; a health check must report those, not crash, so every
 * throw becomes a RunResult (`refused`, or `error` with the error's code).
 */
import type { Cordon, RunRequest } from "../cordon.ts";
import { resultFromError, type RunResult } from "../result.ts";
import { maskRunResult, secretValues } from "../secrets.ts";
import type { TransportClient } from "./strategy.ts";

export type CordonClient = TransportClient<RunRequest, RunResult>;

export function cordonClient(cordon: Cordon): CordonClient {
  return {
    async exec(request) {
      try {
        return await cordon.run(request);
      } catch (err) {
        // Cordon masks what a run returns, not what it throws: mask the error here.
        return maskRunResult(resultFromError(err), secretValues(request.secretEnv));
      }
    },
  };
}

/** Waiting on the host: sleeps, polls, and a thrown error caught as a value. */

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll `check` every `everyMs` until it returns true or `timeoutMs` passes. Returns whether it did. */
export async function waitFor(check: () => boolean, timeoutMs: number, everyMs = 10): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (performance.now() > deadline) return false;
    await sleep(everyMs);
  }
}

/** Capture a thrown error (sync or async). */
export async function caught(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected the call to throw, it returned");
}

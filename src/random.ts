/**
 * `n` random bytes as hex, like node:crypto's `randomBytes(n).toString("hex")` from the same
 * CSPRNG (Web Crypto's getRandomValues), without loading node:crypto (~10 ms of a CLI start).
 */
export function randomHex(n: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(n))).toString("hex");
}

/**
 * Bearer tokens: loaded once at start (a file, one a line, or CORDON_TOKENS, comma-separated),
 * held only as SHA-256 digests, and compared in constant time against every one (no early
 * exit, digests of equal length), so neither timing nor length says how close a guess was.
 * A token is never logged: the log and metrics name a token by a short digest prefix.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";

export const MIN_TOKEN_LENGTH = 16;
const MAX_TOKEN_LENGTH = 4096;

export class TokenConfigError extends Error {
  override name = "TokenConfigError";
}

const digest = (token: string) => createHash("sha256").update(token).digest();

export interface Caller {
  /** A short, stable name for the token (a digest prefix): safe for logs and limits. */
  id: string;
}

export class Tokens {
  private readonly digests: Buffer[];

  constructor(tokens: readonly string[]) {
    for (const [i, t] of tokens.entries()) {
      if (t.length < MIN_TOKEN_LENGTH || t.length > MAX_TOKEN_LENGTH || /[\s\0,]/.test(t)) {
        throw new TokenConfigError(`token ${i + 1}: a token must be ${MIN_TOKEN_LENGTH}–${MAX_TOKEN_LENGTH} characters without spaces, commas or control characters (use e.g. \`openssl rand -hex 32\`)`);
      }
    }
    this.digests = [...new Set(tokens)].map(digest);
  }

  get count(): number {
    return this.digests.length;
  }

  /** The caller for an Authorization header, or null: missing, not Bearer, or no token matches. */
  authenticate(header: string | null): Caller | null {
    const match = header === null ? null : /^Bearer ([^\s]+)$/i.exec(header);
    const presented = digest(match?.[1] ?? "");
    let found: Buffer | null = null;
    for (const d of this.digests) if (timingSafeEqual(d, presented)) found = d;
    return match && found ? { id: found.subarray(0, 4).toString("hex") } : null;
  }
}

/** The tokens from --token-file (one a line; blank lines and `#` comments skipped) and CORDON_TOKENS. */
export function loadTokens(tokenFile: string | undefined, envValue: string | undefined): Tokens {
  const tokens: string[] = [];
  if (tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(tokenFile, "utf8");
    } catch (e) {
      throw new TokenConfigError(`cannot read the token file ${tokenFile}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    tokens.push(...text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#")));
  }
  if (envValue) tokens.push(...envValue.split(",").map((t) => t.trim()).filter((t) => t !== ""));
  return new Tokens(tokens);
}

/**
 * Loopback names, and the guard of a service without tokens (--insecure-loopback): only
 * loopback clients, never a browser page that reached it through another name or origin.
 */
import ipaddr from "ipaddr.js";
import { ServeError } from "./http-error.ts";

/** A Host or Origin host that is this machine's loopback by any name a page cannot rebind. */
export function isLoopbackName(host: string): boolean {
  const name = host.toLowerCase();
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  const bare = name.replace(/^\[|\]$/g, "");
  return ipaddr.isValid(bare) && ipaddr.process(bare).range() === "loopback";
}

/** The host part of a Host header value or an origin's authority (port dropped); null if unparsable. */
function hostOf(authority: string): string | null {
  const url = URL.parse(`http://${authority}`);
  return url ? url.hostname : null;
}

/**
 * Without a token (--insecure-loopback) "on loopback" is the only guard, and a browser on this
 * host is on loopback too: any page can POST a simple cross-origin request (text/plain, no
 * preflight) and run a script, and with DNS rebinding (its own name resolving to 127.0.0.1)
 * read every answer. Browsers always send Host and, on such requests, Origin; local tools send
 * a loopback Host and no Origin. So: a Host that is not a loopback name, or an Origin whose
 * host is not one (or "null"), is a 403. With tokens none of this applies: a page cannot
 * attach the token.
 */
export function refuseBrowsers(request: Request): void {
  const host = request.headers.get("host");
  const hostName = host === null ? null : hostOf(host);
  if (host !== null && (hostName === null || !isLoopbackName(hostName))) {
    throw new ServeError(403, "forbidden", "without a token (--insecure-loopback) only a loopback Host is served (a browser page reached this through another name)");
  }
  const origin = request.headers.get("origin");
  if (origin !== null) {
    const originHost = URL.parse(origin)?.hostname ?? null;
    if (originHost === null || !isLoopbackName(originHost)) throw new ServeError(403, "forbidden", "without a token (--insecure-loopback) a request from a web page of another origin is refused");
  }
}

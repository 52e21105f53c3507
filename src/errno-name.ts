/** errno numbers as names ("EPERM", "ESRCH", …) for the bun:ffi syscall modules' errors. */
import { constants } from "node:os";

/** errno → name; the first name wins where two share a number (EAGAIN before EWOULDBLOCK). */
const NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(constants.errno)) if (!NAMES.has(n)) NAMES.set(n, name);

export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `errno ${errno}`;
}

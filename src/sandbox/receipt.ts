/**
 * Per-run receipt (`verify: true`): what the sandboxed process itself saw, written by a
 * tiny shell prologue as the FIRST line of the result channel before it execs the
 * script — so the script cannot have written before it — and tagged with a per-run nonce.
 */
import { randomHex } from "../random.ts";
import { lstatSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { ChannelBytes } from "../protocol/result-channel.ts";
import type { Job, Layout } from "./spec.ts";

export interface Receipt {
  /** The host uid of the sandboxed process: the owner, seen from the host, of a file it created. */
  hostUid: number | null;
  uidInside: number;
  capEff: string;
  noNewPrivs: boolean;
  /** 0 none, 1 strict, 2 filter. */
  seccomp: number;
  interfaces: string[];
  /** The cgroup lines as the process saw them (within its cgroup namespace). */
  cgroup: string[];
}

const Line = z.object({
  cordonReceipt: z.string(),
  uid: z.string().regex(/^\d+$/),
  capEff: z.string().regex(/^[0-9a-f]{16}$/),
  noNewPrivs: z.enum(["0", "1"]),
  seccomp: z.string().regex(/^\d$/),
  interfaces: z.string(),
  cgroup: z.string(),
});

const MARKER = ".cordon-receipt";

/** Wrap the job: the prologue reports, then execs the real command (same pid, same fds). */
export function withReceipt(job: Job, layout: Layout): { job: Job; nonce: string } {
  const nonce = randomHex(12);
  const clean = "tr -cd 'A-Za-z0-9_,./:=-'";
  const prologue = [
    `s() { sed -n "s/^$1:[[:space:]]*//p" /proc/self/status | ${clean}; }`,
    `: > ${layout.scratchDir}/${MARKER} 2>/dev/null`,
    `i=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ',' | ${clean})`,
    `c=$(tr '\\n' ';' < /proc/self/cgroup | tr -cd 'A-Za-z0-9_,./:;=-')`,
    `printf '{"cordonReceipt":"${nonce}","uid":"%s","capEff":"%s","noNewPrivs":"%s","seccomp":"%s","interfaces":"%s","cgroup":"%s"}\\n' "$(id -u)" "$(s CapEff)" "$(s NoNewPrivs)" "$(s Seccomp)" "$i" "$c" >&4`,
    'exec "$@"',
  ].join("\n");
  return { job: { ...job, argv: ["/bin/sh", "-c", prologue, "cordon-receipt", ...job.argv] }, nonce };
}

/**
 * The marker's host owner, then remove it (it is not an output of the script). The
 * script had scratch to itself: whatever it left under that name (a directory, a
 * symlink, a FIFO) is not the marker, proves nothing and stays as the script's own.
 */
function takeMarker(path: string): number | null {
  try {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st?.isFile()) return null;
    unlinkSync(path);
    return st.uid;
  } catch {
    return null; // swapped meanwhile: no proof, and never a failed run
  }
}

/** Split the channel: the receipt (first line, right nonce) and what the script wrote after it. */
export function takeReceipt(channel: ChannelBytes, nonce: string, scratchDir: string): { receipt: Receipt | null; rest: ChannelBytes } {
  const text = Buffer.from(channel.bytes).toString("latin1");
  const end = text.indexOf("\n");
  const first = end === -1 ? text : text.slice(0, end);
  let parsed: z.infer<typeof Line> | null = null;
  try {
    const candidate = Line.safeParse(JSON.parse(first));
    parsed = candidate.success && candidate.data.cordonReceipt === nonce ? candidate.data : null;
  } catch {
    parsed = null;
  }
  if (!parsed) return { receipt: null, rest: channel };
  const owner = takeMarker(join(scratchDir, MARKER));
  return {
    receipt: {
      hostUid: owner,
      uidInside: Number(parsed.uid),
      capEff: parsed.capEff,
      noNewPrivs: parsed.noNewPrivs === "1",
      seccomp: Number(parsed.seccomp),
      interfaces: parsed.interfaces.split(",").filter(Boolean),
      cgroup: parsed.cgroup.split(";").filter(Boolean),
    },
    rest: { bytes: channel.bytes.subarray(end === -1 ? channel.bytes.length : end + 1), truncated: channel.truncated },
  };
}

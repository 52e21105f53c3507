/**
 * The seccomp cell: proven only when every attack of the syscall probe (probes.ts,
 * syscall-attacks.py) failed inside the real sandbox. Where the supervisor can see for
 * itself it does not take the probe's word: the key's payload must never appear in the
 * run's output and the key must still hold it afterwards (read back by the supervisor);
 * the ABI attack is judged by the wait status of the child that made it.
 */
import type { RunResult } from "../result.ts";
import type { ReadinessVerdict } from "./types.ts";

export interface SyscallObservations {
  run: RunResult;
  /** The probe's NAME=RESULT lines. */
  probe: Record<string, string>;
  /** The planted key: its payload, whether it was in the spawning thread's session keyring and is unchanged after the run; or why none was planted. */
  key: { payload: string; placementError: string | null; intact: boolean } | { problem: string };
  /** /dev/vsock exists on the host: AF_VSOCK leads to the hypervisor there. */
  vsockDevice: boolean;
}

interface Attack {
  succeeded: boolean;
  evidence: string;
}

/** The call went through: `ok`, `ok:…` or a child's `returned:ok…`. */
const got = (v: string | undefined) => v !== undefined && /^(returned:)?ok/.test(v);
const shown = (v: string) => v.replace(/^returned:/, "");
/** A key attack's result without what it read (the payload is judged by the supervisor, not echoed). */
const keyShown = (v: string) => (got(v) ? "ok" : shown(v));

const plain = (label: string, v: string): Attack => ({ succeeded: got(v), evidence: `${label} ${shown(v)}` });

function keyAttack(p: Record<string, string>, obs: SyscallObservations): Attack {
  if ("problem" in obs.key) return { succeeded: false, evidence: `keyctl not attacked: ${obs.key.problem}` };
  const seen = `${obs.run.stdout}\n${obs.run.stderr}`.includes(obs.key.payload);
  const searches = ["key_search_s", "key_search_u", "key_search_us"].filter((k) => got(p[k]));
  const succeeded = seen || !obs.key.intact || got(p.key_read) || got(p.key_update) || searches.length > 0;
  const how = `read by serial ${keyShown(p.key_read!)}, update ${keyShown(p.key_update!)}, search of @s ${keyShown(p.key_search_s!)}`;
  const supervisor = `${seen ? "the payload appeared in the run's output" : "the payload never appeared"}, ${obs.key.intact ? "the key is unchanged" : "the key was changed or removed"}`;
  return { succeeded, evidence: `keyctl on a key in the supervisor's session keyring: ${how}${searches.length ? ` (found through ${searches.join(", ")})` : ""}; ${supervisor}` };
}

function packetAttack(v: string): Attack {
  const why = v === "EAFNOSUPPORT" ? " (the family filter)" : v === "EPERM" ? " (for want of CAP_NET_RAW: the family filter did not answer)" : "";
  return { succeeded: got(v), evidence: `AF_PACKET socket ${shown(v)}${why}` };
}

function x32Attack(v: string): Attack {
  return v === "killed:SIGSYS"
    ? { succeeded: false, evidence: "an x32 syscall killed its process (SIGSYS: the ABI check)" }
    : { succeeded: true, evidence: `an x32 syscall was not killed (${shown(v)}): no ABI check` };
}

/** i386 through int 0x80: where the host itself refuses it (SIGSEGV) it proves nothing about the filter, and says so. */
function i386Attack(v: string): Attack {
  if (v === "killed:SIGSEGV") return { succeeded: false, evidence: "i386 int 0x80 refused by the host (SIGSEGV), not by the filter" };
  if (v === "killed:SIGSYS") return { succeeded: false, evidence: "an i386 syscall (int 0x80) killed its process (SIGSYS: the ABI check)" };
  return { succeeded: !v.startsWith("killed:"), evidence: `an i386 syscall (int 0x80) ${v.startsWith("killed:") ? `was ${v.replace(":", " by ")}` : `returned ${shown(v)}: no ABI check`}` };
}

const REPORTED = ["io_uring", "userfaultfd", "perf_event_open", "vsock", "packet", "x32", "i386", "unshare_user"] as const;
const KEY_REPORTED = ["key_read", "key_update", "key_search_s", "key_search_u", "key_search_us"] as const;

export function seccompCell(obs: SyscallObservations): ReadinessVerdict {
  const { run, probe: p } = obs;
  if (process.arch !== "x64") return { status: "unknown", detail: `the syscall attacks use x86_64 syscall numbers; this host is ${process.arch}` };
  if (p.python3 === "missing") return { status: "unknown", detail: "python3 not found inside the sandbox: the syscall attacks are made from Python (ctypes); install python3 under /usr" };
  if (run.outcome === "error" || run.outcome === "refused" || run.outcome === "timeout")
    return { status: "unknown", detail: `the syscall probe did not run: ${run.error?.message ?? `outcome ${run.outcome}`}` };
  if (!("problem" in obs.key) && obs.key.placementError) return { status: "unknown", detail: `the canary key could not be placed in the supervisor's session keyring: ${obs.key.placementError}` };
  const expected = [...REPORTED, ...("problem" in obs.key ? [] : KEY_REPORTED)];
  const missing = expected.filter((k) => p[k] === undefined || p[k]!.startsWith("error:"));
  if (missing.length)
    return { status: "unknown", detail: `the syscall probe did not make ${missing.map((k) => `${k} (${p[k] ?? "no report"})`).join(", ")} (outcome ${run.outcome}, exit ${run.exitCode}${run.signal ? `, ${run.signal}` : ""})` };

  const attacks: Attack[] = [
    plain("io_uring_setup", p.io_uring!),
    plain("userfaultfd", p.userfaultfd!),
    plain("perf_event_open", p.perf_event_open!),
    keyAttack(p, obs),
    plain(`AF_VSOCK socket (/dev/vsock ${obs.vsockDevice ? "present" : "absent"} on the host)`, p.vsock!),
    packetAttack(p.packet!),
    x32Attack(p.x32!),
    i386Attack(p.i386!),
    plain("unshare(CLONE_NEWUSER)", p.unshare_user!),
  ];
  const through = attacks.filter((a) => a.succeeded);
  if (through.length) {
    const held = attacks.filter((a) => !a.succeeded);
    return { status: "not-enforced", detail: `syscall attacks that succeeded: ${through.map((a) => a.evidence).join("; ")}${held.length ? `; held: ${held.map((a) => a.evidence).join("; ")}` : ""}` };
  }
  return { status: "proven", detail: `every syscall attack failed: ${attacks.map((a) => a.evidence).join("; ")}` };
}

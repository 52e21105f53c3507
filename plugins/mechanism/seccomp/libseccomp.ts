/**
 * The syscall policy rendered to a classic BPF program by the system's libseccomp
 * (libseccomp2, on every Debian machine) through bun:ffi: the same compiler flatpak,
 * systemd and bwrap's own users rely on, so cordon writes no BPF by hand. Compiled once
 * per process and policy (a few hundred microseconds), then only written to each run's
 * launcher (bwrap --seccomp FD).
 */
import { closeSync, readSync } from "node:fs";
import { dlopen, FFIType, ptr, read, type Pointer } from "bun:ffi";
import { ERRNO, type ArgTest, type SyscallRule } from "../../../src/api/plugin.ts";

const SCMP_ACT_ALLOW = 0x7fff0000;
const SCMP_ACT_KILL_PROCESS = 0x80000000;
const SCMP_ACT_ERRNO = (errno: number) => 0x00050000 | (errno & 0xffff);
const SCMP_FLTATR_ACT_BADARCH = 2;
/** libseccomp's resolver says "no such name" with this; other negatives are calls absent on this architecture. */
const NR_SCMP_ERROR = -1;
const CMP: Record<ArgTest["op"], number> = { ne: 1, ge: 5, eq: 4, "masked-eq": 7 };
const MFD_CLOEXEC = 1;

const SYMBOLS = {
  seccomp_init: { args: [FFIType.u32], returns: FFIType.ptr },
  seccomp_release: { args: [FFIType.ptr], returns: FFIType.void },
  seccomp_attr_set: { args: [FFIType.ptr, FFIType.i32, FFIType.u32], returns: FFIType.i32 },
  seccomp_syscall_resolve_name: { args: [FFIType.cstring], returns: FFIType.i32 },
  seccomp_rule_add_array: { args: [FFIType.ptr, FFIType.u32, FFIType.i32, FFIType.u32, FFIType.ptr], returns: FFIType.i32 },
  seccomp_export_bpf: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  seccomp_version: { args: [], returns: FFIType.ptr },
} as const;

type Libseccomp = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];
let loaded: { lib: Libseccomp; version: string } | { problem: string } | undefined;
let libc: { symbols: { memfd_create: (name: Buffer, flags: number) => number } } | undefined;

/** libseccomp, opened once; the version (e.g. "2.5.4") or why it cannot be used. */
export function libseccomp(): { lib: Libseccomp; version: string } | { problem: string } {
  if (loaded) return loaded;
  try {
    const { symbols } = dlopen("libseccomp.so.2", SYMBOLS);
    const v = symbols.seccomp_version();
    const version = v ? `${read.u32(v, 0)}.${read.u32(v, 4)}.${read.u32(v, 8)}` : "unknown";
    loaded = { lib: symbols, version };
  } catch (e) {
    loaded = { problem: `libseccomp.so.2 cannot be loaded (${e instanceof Error ? e.message : String(e)}); Debian: apt-get install libseccomp2` };
  }
  return loaded;
}

const cString = (s: string) => Buffer.from(`${s}\0`);

/**
 * A syscall's number on this (the native) architecture, as libseccomp knows it: the one
 * table both filters are built from, so the kafel text for nsjail never depends on
 * kafel's own, older name table. null: the call does not exist on this architecture
 * (nothing to deny); an unknown name throws (a typo in the policy).
 */
export function syscallNumber(name: string): number | null {
  const loadedLib = libseccomp();
  if ("problem" in loadedLib) throw new Error(loadedLib.problem);
  const nr = loadedLib.lib.seccomp_syscall_resolve_name(cString(name));
  if (nr === NR_SCMP_ERROR) throw new Error(`libseccomp does not know the syscall "${name}"`);
  return nr < 0 ? null : nr;
}

/** struct scmp_arg_cmp[] { u32 arg; u32 op; u64 datum_a; u64 datum_b } for one rule. */
function argArray(tests: readonly ArgTest[]): BigUint64Array {
  const words = new BigUint64Array(tests.length * 3);
  const view = new DataView(words.buffer);
  tests.forEach((t, i) => {
    view.setUint32(i * 24, t.arg, true);
    view.setUint32(i * 24 + 4, CMP[t.op], true);
    // masked-eq: datum_a is the mask, datum_b the value; the others compare with datum_a.
    words[i * 3 + 1] = BigInt(t.op === "masked-eq" ? t.mask : t.value);
    words[i * 3 + 2] = BigInt(t.op === "masked-eq" ? t.value : 0);
  });
  return words;
}

function check(rc: number, what: string): void {
  if (rc < 0) throw new Error(`libseccomp: ${what} failed (errno ${-rc})`);
}

/** Read everything libseccomp wrote into an anonymous memory file. */
function exportBpf(lib: Libseccomp, ctx: Pointer): Uint8Array {
  libc ??= dlopen("libc.so.6", { memfd_create: { args: [FFIType.cstring, FFIType.u32], returns: FFIType.i32 } }) as unknown as typeof libc;
  const fd = libc!.symbols.memfd_create(cString("cordon-seccomp"), MFD_CLOEXEC);
  if (fd < 0) throw new Error("memfd_create failed");
  try {
    check(lib.seccomp_export_bpf(ctx, fd), "seccomp_export_bpf");
    const chunks: Buffer[] = [];
    for (let pos = 0; ; ) {
      const chunk = Buffer.alloc(16 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, pos);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      pos += n;
    }
    return new Uint8Array(Buffer.concat(chunks));
  } finally {
    closeSync(fd);
  }
}

/**
 * The rules as a BPF program for the native architecture only: every other ABI (i386
 * through int 0x80, x32) kills the process; a call a rule matches fails with its errno;
 * everything else is allowed. A name libseccomp does not know is an error (a typo in the
 * policy); a call this architecture does not have is skipped (nothing to deny).
 */
export function compileBpf(rules: readonly SyscallRule[]): Uint8Array {
  const loadedLib = libseccomp();
  if ("problem" in loadedLib) throw new Error(loadedLib.problem);
  const { lib } = loadedLib;
  const ctx = lib.seccomp_init(SCMP_ACT_ALLOW) as Pointer | null;
  if (!ctx) throw new Error("libseccomp: seccomp_init failed");
  try {
    check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "setting the bad-architecture action");
    for (const rule of rules) {
      const nr = syscallNumber(rule.syscall);
      if (nr === null) continue;
      const tests = rule.when ?? [];
      check(lib.seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(ERRNO[rule.errno]), nr, tests.length, tests.length ? ptr(argArray(tests)) : null), `adding the rule for ${rule.syscall}`);
    }
    return exportBpf(lib, ctx);
  } finally {
    lib.seccomp_release(ctx);
  }
}

const compiled = new WeakMap<readonly SyscallRule[], Uint8Array>();

/** compileBpf, once per process for each rule list. */
export function cachedBpf(rules: readonly SyscallRule[]): Uint8Array {
  let bpf = compiled.get(rules);
  if (!bpf) compiled.set(rules, (bpf = compileBpf(rules)));
  return bpf;
}

/**
 * Whether a launcher taking a BPF program can get one on this host: libseccomp loads and
 * compiles the policy (once per process). The mechanism's wording for the report, or why not.
 */
export function bpfFilterSupport(rules: readonly SyscallRule[], launcherOption: string): { mechanism: string } | { problem: string } {
  const lib = libseccomp();
  if ("problem" in lib) return { problem: lib.problem };
  try {
    const bpf = cachedBpf(rules);
    return { mechanism: `${launcherOption}: a ${bpf.length / 8}-instruction BPF program compiled by libseccomp ${lib.version}; a call through another ABI (i386, x32) kills the process` };
  } catch (e) {
    return { problem: `the syscall policy does not compile: ${e instanceof Error ? e.message : String(e)}` };
  }
}


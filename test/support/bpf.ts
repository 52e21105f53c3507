/**
 * A classic-BPF interpreter for seccomp programs, so two filters built by different
 * compilers (libseccomp for bwrap, kafel inside nsjail) can be compared on the same inputs
 * without trusting either compiler's own view of what it emitted. It runs the instruction
 * set the kernel's seccomp verifier accepts (loads of seccomp_data, scratch memory, ALU,
 * jumps, returns) and throws on anything else.
 */

/** AUDIT_ARCH_* values of the ABIs an x86_64 kernel can enter (x32 shares x86_64's, with nr | 0x40000000). */
export const AUDIT_ARCH = Object.freeze({ X86_64: 0xc000003e, I386: 0x40000003 } as const);
export const X32_SYSCALL_BIT = 0x40000000;

export interface SeccompData {
  nr: number;
  arch: number;
  /** Six 64-bit arguments (missing ones are 0). */
  args: readonly bigint[];
}

/** What a seccomp return value means, by the kernel's action mask. */
export type SeccompAction = { action: "allow" } | { action: "errno"; errno: number } | { action: "kill-thread" } | { action: "kill-process" } | { action: "other"; value: number };

export function decodeAction(ret: number): SeccompAction {
  const full = ret >>> 0;
  const action = (full & 0xffff0000) >>> 0;
  if (action === 0x7fff0000) return { action: "allow" };
  if (action === 0x00050000) return { action: "errno", errno: full & 0xffff };
  if (action === 0x80000000) return { action: "kill-process" };
  if (action === 0x00000000) return { action: "kill-thread" };
  return { action: "other", value: full };
}

export const actionText = (a: SeccompAction) => (a.action === "errno" ? `errno ${a.errno}` : a.action === "other" ? `0x${a.value.toString(16)}` : a.action);

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** struct sock_filter[] (8 bytes each, little-endian) as instructions. */
export function parseProgram(bytes: Uint8Array): Insn[] {
  if (bytes.length % 8 !== 0 || bytes.length === 0) throw new Error(`not a BPF program: ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Insn[] = [];
  for (let i = 0; i < bytes.length; i += 8) out.push({ code: view.getUint16(i, true), jt: view.getUint8(i + 2), jf: view.getUint8(i + 3), k: view.getUint32(i + 4, true) });
  return out;
}

/** The 32-bit word of struct seccomp_data at byte offset `off` (x86_64: little-endian). */
function dataWord(d: SeccompData, off: number): number {
  if (off === 0) return d.nr >>> 0;
  if (off === 4) return d.arch >>> 0;
  if (off === 8 || off === 12) return 0; // instruction pointer: no filter here reads it
  const arg = (off - 16) >> 3;
  if (off < 16 || off > 60 || off % 4 !== 0) throw new Error(`load at invalid seccomp_data offset ${off}`);
  const v = BigInt.asUintN(64, d.args[arg] ?? 0n);
  return Number((off - 16) % 8 === 0 ? v & 0xffffffffn : v >> 32n);
}

/** Run the program on one input; the seccomp return value. */
export function runFilter(program: readonly Insn[], d: SeccompData): number {
  let a = 0;
  let x = 0;
  const mem = new Uint32Array(16);
  for (let pc = 0; pc < program.length; pc++) {
    const { code, jt, jf, k } = program[pc]!;
    const cls = code & 0x07;
    switch (cls) {
      case 0x00: // LD
      case 0x01: {
        // LDX
        const mode = code & 0xe0;
        let v: number;
        if (mode === 0x20) v = dataWord(d, k); // ABS (W only in seccomp)
        else if (mode === 0x00) v = k >>> 0; // IMM
        else if (mode === 0x60) v = mem[k]!; // MEM
        else if (mode === 0x80) v = 64; // LEN: sizeof(struct seccomp_data)
        else throw new Error(`unsupported load mode 0x${code.toString(16)} at ${pc}`);
        if (cls === 0x00) a = v;
        else x = v;
        break;
      }
      case 0x02: // ST
        mem[k] = a;
        break;
      case 0x03: // STX
        mem[k] = x;
        break;
      case 0x04: {
        // ALU
        const src = code & 0x08 ? x : k >>> 0;
        const op = code & 0xf0;
        if (op === 0x00) a = (a + src) >>> 0;
        else if (op === 0x10) a = (a - src) >>> 0;
        else if (op === 0x20) a = Math.imul(a, src) >>> 0;
        else if (op === 0x30) a = src === 0 ? 0 : Math.floor(a / src) >>> 0;
        else if (op === 0x40) a = (a | src) >>> 0;
        else if (op === 0x50) a = (a & src) >>> 0;
        else if (op === 0x60) a = src >= 32 ? 0 : (a << src) >>> 0;
        else if (op === 0x70) a = src >= 32 ? 0 : a >>> src;
        else if (op === 0x80) a = -a >>> 0;
        else if (op === 0xa0) a = (a ^ src) >>> 0;
        else throw new Error(`unsupported ALU op 0x${code.toString(16)} at ${pc}`);
        break;
      }
      case 0x05: {
        // JMP
        const op = code & 0xf0;
        if (op === 0x00) {
          pc += k;
          break;
        }
        const src = code & 0x08 ? x : k >>> 0;
        let taken: boolean;
        if (op === 0x10) taken = a === src;
        else if (op === 0x20) taken = a > src;
        else if (op === 0x30) taken = a >= src;
        else if (op === 0x40) taken = (a & src) !== 0;
        else throw new Error(`unsupported jump 0x${code.toString(16)} at ${pc}`);
        pc += taken ? jt : jf;
        break;
      }
      case 0x06: // RET
        return (code & 0x18) === 0x10 ? a : k >>> 0;
      case 0x07: // MISC: TAX / TXA
        if (code & 0x80) a = x;
        else x = a;
        break;
    }
  }
  throw new Error("the program ran off its end");
}

/** One input two filters answered differently. */
export interface FilterDifference {
  input: SeccompData;
  a: SeccompAction;
  b: SeccompAction;
}

export interface PolicyCall {
  nr: number;
  /** The argument tests of every rule on this call (empty: unconditional rules only). */
  tests: readonly { arg: number; op: string; value: number; mask?: number }[];
}

const U64 = (1n << 64n) - 1n;

/** Argument values around every boundary the tests draw: each value and mask, ±1, with high bits set, and the extremes. */
function valuesFor(tests: PolicyCall["tests"], arg: number): bigint[] {
  const out = new Set<bigint>([0n, 1n, U64, 1n << 32n, 1n << 63n, 0xffffffffn]);
  for (const t of tests.filter((x) => x.arg === arg)) {
    for (const n of [t.value, ...(t.mask !== undefined ? [t.mask] : [])]) {
      const v = BigInt(n);
      for (const w of [v, v + 1n, v - 1n, v | (1n << 32n), v | (1n << 63n), v | 0xffffffff00000000n]) if (w >= 0n && w <= U64) out.add(w);
    }
  }
  return [...out];
}

/** Every argument vector over the arguments the tests read (others 0), as a cartesian product. */
function argVectors(tests: PolicyCall["tests"]): bigint[][] {
  const used = [...new Set(tests.map((t) => t.arg))].sort();
  let vectors: bigint[][] = [[0n, 0n, 0n, 0n, 0n, 0n]];
  for (const arg of used) {
    const next: bigint[][] = [];
    for (const v of vectors) for (const value of valuesFor(tests, arg)) next.push(v.map((x, i) => (i === arg ? value : x)));
    vectors = next;
  }
  return vectors;
}

/**
 * Run both programs on every input that matters for these calls: each call through the
 * native ABI with arguments around every boundary its rules draw, the same numbers through
 * i386, every x32 number up to `x32Span` beyond, a few other calls (allowed ones, numbers
 * past the native table, -1), and list where the answers differ.
 */
export function compareFilters(a: readonly Insn[], b: readonly Insn[], calls: readonly PolicyCall[], x32Span: number): { inputs: number; differences: FilterDifference[] } {
  const differences: FilterDifference[] = [];
  let inputs = 0;
  const check = (d: SeccompData) => {
    inputs++;
    const ra = decodeAction(runFilter(a, d));
    const rb = decodeAction(runFilter(b, d));
    if (actionText(ra) !== actionText(rb)) differences.push({ input: d, a: ra, b: rb });
  };
  const zero = [0n, 0n, 0n, 0n, 0n, 0n];
  const others = [0, 1, 2, 3, 39, 57, 59, 60, 231, 334, 547, 1000, 0x3fffffff, 0xffffffff];
  for (const call of calls) for (const args of argVectors(call.tests)) check({ nr: call.nr, arch: AUDIT_ARCH.X86_64, args });
  for (const nr of others) check({ nr, arch: AUDIT_ARCH.X86_64, args: zero });
  for (const nr of [...calls.map((c) => c.nr), ...others]) check({ nr, arch: AUDIT_ARCH.I386, args: zero });
  for (let i = 0; i < x32Span + 16; i++) check({ nr: X32_SYSCALL_BIT + i, arch: AUDIT_ARCH.X86_64, args: zero });
  for (const nr of [0x7fffffff, 0x80000000, 0xfffffffe]) check({ nr, arch: AUDIT_ARCH.X86_64, args: zero });
  return { inputs, differences };
}

/**
 * A classic-BPF interpreter for seccomp programs, enough to ask "what does this filter do
 * with this call" without the kernel: the instructions libseccomp emits (ld abs, jeq/jgt/
 * jge/jset k, and/or k, ret k, tax/txa, st/ld mem). Tests use it to check the compiled
 * filter rule by rule, including inputs a kernel test cannot make (another architecture).
 */
export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const AUDIT_ARCH_I386 = 0x40000003;

export interface SeccompData {
  nr: number;
  arch?: number;
  args?: (number | bigint)[];
}

/** The action word a seccomp filter returns for one call (SECCOMP_RET_*). */
export function runSeccompBpf(program: Uint8Array, call: SeccompData): number {
  const data = Buffer.alloc(64);
  data.writeInt32LE(call.nr, 0);
  data.writeUInt32LE(call.arch ?? AUDIT_ARCH_X86_64, 4);
  (call.args ?? []).forEach((a, i) => data.writeBigUInt64LE(BigInt.asUintN(64, BigInt(a)), 16 + i * 8));
  const view = new DataView(program.buffer, program.byteOffset, program.byteLength);
  const mem = new Uint32Array(16);
  let [a, x] = [0, 0];
  for (let pc = 0; pc * 8 < program.length; pc++) {
    const code = view.getUint16(pc * 8, true);
    const jt = view.getUint8(pc * 8 + 2);
    const jf = view.getUint8(pc * 8 + 3);
    const k = view.getUint32(pc * 8 + 4, true);
    const src = code & 0x08 ? x : k;
    switch (code) {
      case 0x20: a = data.readUInt32LE(k); break; // ld [k]
      case 0x00: a = k; break; // ld #k
      case 0x60: a = mem[k]!; break; // ld M[k]
      case 0x61: x = mem[k]!; break; // ldx M[k]
      case 0x02: mem[k] = a; break; // st M[k]
      case 0x03: mem[k] = x; break; // stx M[k]
      case 0x07: x = a; break; // tax
      case 0x87: a = x; break; // txa
      case 0x54: case 0x5c: a = (a & src) >>> 0; break; // and
      case 0x44: case 0x4c: a = (a | src) >>> 0; break; // or
      case 0x05: pc += k; break; // ja
      case 0x15: case 0x1d: pc += a === src ? jt : jf; break; // jeq
      case 0x25: case 0x2d: pc += a > src ? jt : jf; break; // jgt
      case 0x35: case 0x3d: pc += a >= src ? jt : jf; break; // jge
      case 0x45: case 0x4d: pc += (a & src) !== 0 ? jt : jf; break; // jset
      case 0x06: return k; // ret #k
      case 0x16: return a; // ret a
      default: throw new Error(`BPF instruction 0x${code.toString(16)} at ${pc} is not interpreted`);
    }
  }
  throw new Error("the BPF program fell off its end");
}

export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_ERRNO = (errno: number) => 0x00050000 | errno;

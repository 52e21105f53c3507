/**
 * The syscall policy rendered as kafel text (google/kafel, the policy language nsjail
 * compiles into its seccomp filter), so nsjail enforces exactly the list bwrap gets from
 * libseccomp. What kafel does on its own, read in its source (codegen.c, range_rules.c,
 * syscalls/amd64_syscalls.c) and checked against the filter nsjail installs:
 *
 * - Names: kafel has its own, older syscall table (umount2 is `umount` there; new calls are
 *   missing). Every call is therefore given by NUMBER, resolved by libseccomp (the table the
 *   BPF for bwrap is built from) and bound to its usual name with `#define`: kafel looks a
 *   name up among the constants before its table, so its table is never consulted.
 * - Arguments: kafel's table gives `int` arguments 4 bytes and then compares only the low
 *   word; libseccomp compares all 64 bits. Every rule declares its own arguments
 *   (`socket(a0, a1, a2)`), which kafel makes 8 bytes: the comparisons are libseccomp's.
 * - Order: for one call, the first matching rule in the text wins (libseccomp has no order);
 *   the rules keep the policy's order, and the policy never gives one call two errnos under
 *   overlapping conditions, so both agree.
 * - Other ABIs: the program checks `arch == AUDIT_ARCH_<native>` first and answers anything
 *   else with SECCOMP_RET_KILL_THREAD (kafel's fixed choice; libseccomp's program kills the
 *   process): an i386 call through `int 0x80` kills the calling thread, which for a
 *   single-threaded process is the process. x32 calls carry the native arch with
 *   nr | 0x40000000 and would pass that check and every rule (none names such a number),
 *   then the DEFAULT ALLOW: kafel itself does NOT stop them. A KILL_PROCESS block of the
 *   x32 numbers closes that (adjacent numbers with one action compile to one range check).
 */

import type { ArgTest, ErrnoName, SyscallRule } from "../../../src/api/plugin.ts";
import { ERRNO } from "../../../src/api/plugin.ts";
import { libseccomp, syscallNumber } from "./libseccomp.ts";

/** __X32_SYSCALL_BIT: x32 calls are the native arch with this bit set in nr. */
export const X32_SYSCALL_BIT = 0x40000000;
/**
 * How many x32 numbers the KILL_PROCESS block covers: the kernel dispatches x32 numbers
 * below X32_NR_syscalls (548 in Linux 6.x: the common table plus the x32-only 512–547) and
 * answers every higher one with ENOSYS, reaching no handler. 1024 leaves room for new calls.
 */
export const X32_KILL_SPAN = 1024;

export interface KafelOptions {
  /** Kill the x32 numbers (x86_64 hosts: the only ABI that shares the native arch value). */
  killX32: boolean;
}

interface FilterGroup {
  syscall: string;
  nr: number;
  errno: ErrnoName;
  /** An unconditional rule: every call. */
  always: boolean;
  /** Otherwise any of these conjunctions. */
  conditions: (readonly ArgTest[])[];
}

function literal(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`kafel: ${n} is not a non-negative integer argument value`);
  return n > 255 ? `0x${n.toString(16)}` : String(n);
}

function test(t: ArgTest): string {
  const arg = `a${t.arg}`;
  switch (t.op) {
    case "eq":
      return `${arg} == ${literal(t.value)}`;
    case "ne":
      return `${arg} != ${literal(t.value)}`;
    case "ge":
      return `${arg} >= ${literal(t.value)}`;
    case "masked-eq":
      return `(${arg} & ${literal(t.mask)}) == ${literal(t.value)}`;
  }
}

/** One filter of an action block: the bare name, or the name with its own 64-bit arguments and a condition. */
function filter(g: FilterGroup): string {
  if (g.always) return g.syscall;
  const highest = Math.max(...g.conditions.flat().map((t) => t.arg));
  const args = Array.from({ length: highest + 1 }, (_, i) => `a${i}`).join(", ");
  const disjuncts = g.conditions.map((c) => (c.length === 1 ? test(c[0]!) : `(${c.map(test).join(" && ")})`));
  return `${g.syscall}(${args}) { ${disjuncts.join(" || ")} }`;
}

/** Rules grouped by (call, errno) in the order each pair first appears. */
function groups(rules: readonly SyscallRule[], numberOf: (name: string) => number | null): FilterGroup[] {
  const out = new Map<string, FilterGroup>();
  for (const rule of rules) {
    if (!/^[a-z][a-z0-9_]*$/.test(rule.syscall)) throw new Error(`kafel: not a syscall name: ${JSON.stringify(rule.syscall)}`);
    const nr = numberOf(rule.syscall);
    if (nr === null) continue; // absent on this architecture: nothing to deny (as in the BPF for bwrap)
    for (const t of rule.when ?? []) if (!Number.isInteger(t.arg) || t.arg < 0 || t.arg > 5) throw new Error(`kafel: argument ${t.arg} of ${rule.syscall} is not 0-5`);
    const key = `${rule.syscall}/${rule.errno}`;
    const g = out.get(key) ?? { syscall: rule.syscall, nr, errno: rule.errno, always: false, conditions: [] };
    if (!rule.when?.length) g.always = true;
    else g.conditions.push(rule.when);
    out.set(key, g);
  }
  return [...out.values()];
}

/**
 * The rules as kafel statements, one per line (nsjail joins its seccomp_string entries with
 * newlines): the `#define`s of every call's number, the ERRNO blocks in the policy's order,
 * the x32 block, `DEFAULT ALLOW`. Pure: `numberOf` resolves a name on the target
 * architecture (null: the call does not exist there).
 */
export function renderKafel(rules: readonly SyscallRule[], numberOf: (name: string) => number | null, options: KafelOptions): string[] {
  const gs = groups(rules, numberOf);
  const defines = [...new Map(gs.map((g) => [g.syscall, g.nr])).entries()].map(([name, nr]) => `#define ${name} ${nr}`);
  // Neighbouring groups with one errno share a block; the order of the groups is kept.
  const runs: { errno: ErrnoName; filters: string[] }[] = [];
  for (const g of gs) {
    const last = runs.at(-1);
    if (last?.errno === g.errno) last.filters.push(filter(g));
    else runs.push({ errno: g.errno, filters: [filter(g)] });
  }
  const blocks = runs.map((r) => `ERRNO(${ERRNO[r.errno]}) { ${r.filters.join(", ")} }`);
  const x32 = options.killX32 ? [`KILL_PROCESS { ${Array.from({ length: X32_KILL_SPAN }, (_, i) => `SYSCALL[0x${(X32_SYSCALL_BIT + i).toString(16)}]`).join(", ")} }`] : [];
  return [...defines, ...blocks, ...x32, "DEFAULT ALLOW"];
}

/** The line of renderKafel's output that is the x32 block, for a report that shows it in one phrase. */
export function isX32Block(line: string): boolean {
  return line.startsWith(`KILL_PROCESS { SYSCALL[0x${X32_SYSCALL_BIT.toString(16)}]`);
}

const rendered = new WeakMap<readonly SyscallRule[], string[]>();

/** renderKafel for this host (numbers from libseccomp, x32 killed on x86_64), once per process for each rule list. */
export function kafelPolicy(rules: readonly SyscallRule[]): string[] {
  let lines = rendered.get(rules);
  if (!lines) rendered.set(rules, (lines = renderKafel(rules, syscallNumber, { killX32: process.arch === "x64" })));
  return lines;
}

/**
 * How a launcher that compiles kafel (nsjail's seccomp_string) gets the policy on this host,
 * in the report's words, or why it cannot: the numbers come from libseccomp, so without it
 * there is no text to give.
 */
export function kafelFilterSupport(rules: readonly SyscallRule[], launcherOption: string): { mechanism: string } | { problem: string } {
  const lib = libseccomp();
  if ("problem" in lib) return { problem: lib.problem };
  try {
    kafelPolicy(rules);
  } catch (e) {
    return { problem: `the syscall policy does not render as kafel: ${e instanceof Error ? e.message : String(e)}` };
  }
  const x64 = process.arch === "x64";
  const last = `0x${(X32_SYSCALL_BIT + X32_KILL_SPAN - 1).toString(16)}`;
  const x32 = x64 ? `; x32 calls (nr 0x${X32_SYSCALL_BIT.toString(16)}–${last}) kill the process (an explicit KILL_PROCESS block: kafel alone lets x32 through), higher x32 numbers have no kernel handler (ENOSYS)` : "";
  return {
    mechanism: `${launcherOption}: kafel text rendered from the same policy (call numbers from libseccomp ${lib.version}, 64-bit argument tests), compiled by nsjail; ${x64 ? "an i386 call" : "a call through another ABI"} kills the calling thread (kafel's architecture check; a single-threaded process dies with it)${x32}`,
  };
}

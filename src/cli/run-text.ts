/**
 * What `cordon run` writes on stderr for people, after the script's own output: the
 * one-line summary, the receipt (`--verify`), and a refusal or error. Every line is
 * escaped here (a script chose the result message; a file name may hold anything) and
 * kept within the CLI's width, except an error message, which stays one line so it can be
 * searched for whole.
 */
import { escapeControls } from "../escape.ts";
import type { RunResult } from "../result.ts";
import type { Receipt } from "../sandbox/receipt.ts";
import { summarizeReport } from "../sandbox/report.ts";
import { displayWidth, padTo, TEXT_WIDTH, truncateTo, wrapText } from "../text-layout.ts";

/**
 * The script's result message and cordon's resultError are cut to what is left of the
 * summary line, but never to fewer columns than this; --json has them whole.
 */
const MIN_MESSAGE_WIDTH = 40;

/**
 * The one line after a run: the sandbox (what was not enforced, by name or count: `--report`
 * says why), how the run ended, and the structured result, cut to fit the CLI's width.
 */
export function describeRun(r: RunResult, width = TEXT_WIDTH): string {
  if (r.outcome === "refused" || r.outcome === "error") return escapeControls(`cordon: ${r.outcome}: ${r.error?.message ?? "unknown error"}`);
  const how = [r.outcome, r.limitHit ? `limit=${r.limitHit}` : "", r.signal ? `signal=${r.signal}` : `exit=${r.exitCode}`, `${r.durationMs}ms`]
    .concat(r.stdoutTruncated || r.stderrTruncated ? ["output truncated"] : [])
    .filter(Boolean)
    .join(" ");
  let line = `${r.sandbox ? escapeControls(summarizeReport(r.sandbox)) : "cordon:"} | ${how}`;
  /** `label` and `text` (its first line) appended, the text cut to what the line has left. */
  const add = (label: string, text: string) => {
    const head = `${line} | ${label}`;
    const room = Math.max(MIN_MESSAGE_WIDTH, width - displayWidth(head));
    line = `${head}${truncateTo(escapeControls(text.split("\n")[0]!), room)}`;
  };
  if (r.result && r.resultSource === "channel") {
    if (r.result.message) add(`result=${r.result.status}: `, r.result.message);
    else line += ` | result=${r.result.status}`;
  }
  // An unreadable report is already `crit` with the reason as its message: said once.
  if (r.resultError && !(r.resultSource === "channel" && r.result?.message?.includes(r.resultError))) add("resultError: ", r.resultError);
  return line;
}

/**
 * A run that never started. A refusal lists each reason on its own line (there can be a
 * dozen, each a sentence); any other error is its message, on one line.
 */
export function describeFailure(r: RunResult, width = TEXT_WIDTH): string[] {
  const message = r.error?.message ?? "unknown error";
  const reasons = r.error?.reasons ?? [];
  const joined = `: ${reasons.join("; ")}`;
  if (r.outcome !== "refused" || reasons.length === 0 || !message.endsWith(joined)) return [describeRun(r)];
  return [
    ...wrapText(escapeControls(`cordon: refused: ${message.slice(0, -joined.length)}:`), width, { hang: "  " }),
    ...reasons.flatMap((reason) => wrapText(escapeControls(reason), width, { indent: "  - ", hang: "    " })),
  ];
}

/** `--verify` without `--json`: the receipt, a line per fact, values as the sandboxed process reported them. */
export function describeReceipt(receipt: Receipt | null | undefined, width = TEXT_WIDTH): string[] {
  if (!receipt) return ["cordon: receipt: none (the sandboxed process did not report one before the script started)"];
  const seccomp = ["disabled", "strict", "filter"][receipt.seccomp] ?? "unknown";
  const facts: [string, string][] = [
    ["uid", `${receipt.uidInside} inside, ${receipt.hostUid === null ? "host uid unknown" : `${receipt.hostUid} on the host`}`],
    ["capabilities", `CapEff ${receipt.capEff}${/^0+$/.test(receipt.capEff) ? " (none)" : ""}`],
    ["no_new_privs", receipt.noNewPrivs ? "set" : "NOT set"],
    ["seccomp", `mode ${receipt.seccomp} (${seccomp})`],
    ["interfaces", receipt.interfaces.join(" ") || "none"],
    ["cgroup", receipt.cgroup.join(" ") || "none"],
  ];
  const nameWidth = Math.max(...facts.map(([name]) => displayWidth(name)));
  return [
    "cordon: receipt (what the sandboxed process saw before the script started):",
    ...facts.flatMap(([name, value]) => {
      const head = `  ${padTo(name, nameWidth)}  `;
      return wrapText(escapeControls(value), width, { indent: head, hang: " ".repeat(displayWidth(head)) });
    }),
  ];
}

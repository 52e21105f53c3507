/**
 * Text cordon writes itself (summary, report, notes, readiness table, banner, errors) quotes
 * things a script or a host controls: result messages, file names, launcher errors. On a
 * terminal, a control character in them can move the cursor, erase or recolour the line, set
 * the window title or reorder what is shown, so a script could forge cordon's own verdict.
 * These helpers make every such character visible instead. The script's own stdout and
 * stderr are never passed through them.
 */

/**
 * C0 (newline and tab included), DEL, C1, and the Unicode characters that break or reorder
 * a line: line/paragraph separators, bidi embeddings, overrides, isolates and marks.
 */
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** What JSON.stringify leaves raw (it escapes C0 in strings itself; C0 outside strings is its own whitespace). */
const RAW_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function visible(c: string): string {
  const code = c.charCodeAt(0);
  return NAMED[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`);
}

/** One line as cordon writes it: every control character (newlines too) shown as an escape. */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, visible);
}

/** Several lines cordon composed itself: each escaped, the separating newlines kept. */
export function escapeLines(lines: string | readonly string[]): string {
  return (typeof lines === "string" ? lines.split("\n") : lines).map(escapeControls).join("\n");
}

/**
 * JSON for a terminal or a pipe: JSON.stringify already escapes C0, but leaves DEL, C1 and
 * the Unicode separators and bidi controls raw. Those can only occur inside strings, where
 * `\uXXXX` is the same value: the document parses to exactly the same data.
 */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(RAW_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

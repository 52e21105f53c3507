/**
 * Laying out the text cordon prints for people (the readiness table, the effective-sandbox
 * report, the CLI's notes) in a fixed number of terminal columns: wrapped, never cut, so
 * nothing a reader needs is lost at the edge of the screen.
 *
 * Widths are display columns (Bun.stringWidth), not string lengths: "✓" takes one column, a
 * CJK character two, a combining accent none. Escape control characters first
 * (./escape.ts): an escape is wider than the character it shows.
 */

/** The width cordon's human-readable text keeps to: it reads in a 100-column terminal. */
export const TEXT_WIDTH = 100;

export function displayWidth(text: string): number {
  return Bun.stringWidth(text);
}

/** `text` padded with spaces on the right to `width` columns (unchanged when already as wide). */
export function padTo(text: string, width: number): string {
  const gap = width - displayWidth(text);
  return gap > 0 ? text + " ".repeat(gap) : text;
}

/** The longest prefix of `text` that fits in `width` columns, and the rest. */
function splitAt(text: string, width: number): [string, string] {
  let used = 0;
  let end = 0;
  for (const ch of text) {
    const w = displayWidth(ch);
    if (used + w > width && end > 0) break;
    used += w;
    end += ch.length;
  }
  return [text.slice(0, end), text.slice(end)];
}

/** `text` in at most `width` columns: cut with "…" when wider (for labels whose full form is printed elsewhere). */
export function truncateTo(text: string, width: number): string {
  if (displayWidth(text) <= width) return text;
  return `${splitAt(text, Math.max(1, width - 1))[0]}…`;
}

export interface WrapOptions {
  /** Put before the first line. */
  indent?: string;
  /** Put before every following line (default: as many spaces as `indent` is wide). */
  hang?: string;
}

/**
 * One paragraph as lines of at most `width` columns, broken at spaces; a word wider than a
 * whole line (a path, a URL) is broken inside. Runs of spaces inside a line are kept.
 */
export function wrapText(text: string, width: number, options: WrapOptions = {}): string[] {
  const indent = options.indent ?? "";
  const hang = options.hang ?? " ".repeat(displayWidth(indent));
  const lines: string[] = [];
  let line = indent;
  let start = displayWidth(indent); // the columns an empty line already takes
  let used = start;
  let spaces = ""; // between the line's last word and the next one
  const newLine = () => {
    lines.push(line.trimEnd());
    line = hang;
    start = used = displayWidth(hang);
  };
  for (const token of text.split(/( +)/)) {
    if (token === "") continue;
    if (token.startsWith(" ")) {
      spaces = used > start ? token : ""; // spaces that would open a line are dropped
      continue;
    }
    if (used > start && used + spaces.length + displayWidth(token) > width) newLine();
    else {
      line += spaces;
      used += spaces.length;
    }
    spaces = "";
    let word = token;
    // Wider than what is left of the line even on its own: break it inside.
    while (word !== "" && used + displayWidth(word) > width) {
      const [head, rest] = splitAt(word, Math.max(1, width - used));
      line += head;
      word = rest;
      if (word !== "") newLine();
      else used += displayWidth(head);
    }
    line += word;
    used += displayWidth(word);
  }
  lines.push(line.trimEnd());
  return lines;
}

/**
 * A list as lines of at most `width` columns, broken only between items (the separator ends
 * the line it breaks); an item wider than a whole line is wrapped on its own.
 */
export function wrapItems(items: readonly string[], width: number, options: WrapOptions & { separator?: string } = {}): string[] {
  const separator = options.separator ?? " · ";
  const ending = separator.trimEnd(); // what ends a line broken after an item: " ·"
  const gap = separator.slice(ending.length); // what follows it inside a line: " "
  const indent = options.indent ?? "";
  const hang = options.hang ?? " ".repeat(displayWidth(indent));
  const lines: string[] = [];
  let line: string | null = null; // the line being filled, its indent included
  items.forEach((item, i) => {
    const piece = i < items.length - 1 ? `${item}${ending}` : item;
    if (line !== null && displayWidth(`${line}${gap}${piece}`) <= width) {
      line = `${line}${gap}${piece}`;
      return;
    }
    if (line !== null) lines.push(line);
    const wrapped = wrapText(piece, width, { indent: lines.length === 0 ? indent : hang, hang });
    lines.push(...wrapped.slice(0, -1));
    line = wrapped.at(-1)!;
  });
  lines.push(line ?? indent.trimEnd());
  return lines;
}

/**
 * Rows of cells as aligned text: each column as wide as its widest cell, `gaps[i]` spaces
 * before column i (i > 0; default 2). Trailing spaces are dropped. Callers keep the result
 * within their width (see `tableWidth`).
 */
export function alignColumns(rows: readonly (readonly string[])[], gaps: readonly number[] = []): string[] {
  const widths = columnWidths(rows);
  return rows.map((row) => row.map((c, i) => (i === 0 ? "" : " ".repeat(gaps[i] ?? 2)) + padTo(c, widths[i]!)).join("").trimEnd());
}

function columnWidths(rows: readonly (readonly string[])[]): number[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, displayWidth(c))));
  return widths;
}

/** How wide `alignColumns(rows, gaps)` comes out. */
export function tableWidth(rows: readonly (readonly string[])[], gaps: readonly number[] = []): number {
  return columnWidths(rows).reduce((sum, w, i) => sum + w + (i === 0 ? 0 : (gaps[i] ?? 2)), 0);
}

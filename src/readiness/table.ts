/**
 * The readiness reports as text for people, within a fixed width (100 columns by default):
 * a table of marks (providers as rows, one column per cell), a legend, then every cell that
 * is not proven with its whole detail, wrapped, and the sample policies each provider runs.
 * Nothing is cut: a cell holds only its mark, the details follow the table.
 *
 * The cells are whatever the reports hold, in READINESS_CELLS order (a cell the reports
 * carry beyond that list comes after it), so new cells need nothing here. When the cell
 * names do not fit as column heads, short heads are used and spelled out in the legend;
 * when even those do not fit, the columns are split over several tables.
 */
import { READINESS_CELLS, type ReadinessReport, type ReadinessStatus, type ReadinessVerdict } from "./types.ts";
import { escapeControls } from "../escape.ts";
import { alignColumns, displayWidth, TEXT_WIDTH, tableWidth, truncateTo, wrapItems, wrapText } from "../text-layout.ts";

const MARK: Record<ReadinessStatus, string> = { proven: "✓", "not-enforced": "✗", unknown: "?" };

/** Short column heads for the cell names that are long; any other long name is shortened by `shortHead`. */
const SHORT_HEADS: Readonly<Record<string, string>> = {
  filesystem: "fs",
  network: "net",
  memory: "mem",
  output: "out",
  privilege: "priv",
  seccomp: "sec",
  identity: "id",
  keyring: "key",
};

/** Labels are capped so one odd name or version string cannot widen the whole table; the notes name them in full. */
const MAX_PROVIDER_LABEL = 24;
const MAX_VERSION = 12;
/** Spaces between the provider, version and policy columns; the mark columns sit one space apart. */
const TEXT_GAP = 2;
const MARK_GAP = 1;

export interface ReadinessTableOptions {
  /** The widest a line may be, in terminal columns (default 100). */
  width?: number;
}

/** Providers as rows, cells as columns: ✓ proven, ✗ not enforced, ? unknown; why, below the table. */
export function readinessTable(reports: readonly ReadinessReport[], options: ReadinessTableOptions = {}): string {
  const width = options.width ?? TEXT_WIDTH;
  const cells = cellsOf(reports);
  const heads = columnHeads(reports, cells, width);
  return [
    ...markTables(reports, cells, heads, width),
    "",
    ...legend(cells, heads, width),
    ...notProven(reports, cells, width),
    "",
    ...policyFits(reports, width),
  ].join("\n");
}

/** The cells the reports hold: READINESS_CELLS first, in order, then any others as first seen. */
function cellsOf(reports: readonly ReadinessReport[]): string[] {
  const seen = new Set<string>(READINESS_CELLS.filter((c) => reports.some((r) => c in r.cells)));
  for (const r of reports) for (const c of Object.keys(r.cells)) seen.add(c);
  return [...seen];
}

function verdictOf(report: ReadinessReport, cell: string): ReadinessVerdict | undefined {
  return (report.cells as Partial<Record<string, ReadinessVerdict>>)[cell];
}

/** One column head per cell: the full names when the table fits with them, else short ones. */
function columnHeads(reports: readonly ReadinessReport[], cells: readonly string[], width: number): string[] {
  const full = cells.map(escapeControls);
  if (fullTableWidth(reports, cells, full) <= width) return full;
  const taken = new Set<string>();
  return cells.map((c) => {
    const head = shortHead(c, taken);
    taken.add(head);
    return head;
  });
}

/** A short head for `cell` that no other column has: the usual abbreviation, else its first letters. */
function shortHead(cell: string, taken: ReadonlySet<string>): string {
  const name = escapeControls(cell);
  const preferred = SHORT_HEADS[cell];
  if (preferred !== undefined && !taken.has(preferred)) return preferred;
  if (displayWidth(name) <= 5 && !taken.has(name)) return name;
  const chars = [...name];
  for (let n = 3; n < chars.length; n++) {
    const head = chars.slice(0, n).join("");
    if (!taken.has(head)) return head;
  }
  return name;
}

function rowsOf(reports: readonly ReadinessReport[], cells: readonly string[], heads: readonly string[], last: boolean): string[][] {
  const lead = (r: ReadinessReport) => [
    truncateTo(escapeControls(r.isolating ? r.provider : `${r.provider} (NO ISOLATION)`), MAX_PROVIDER_LABEL),
    r.available ? truncateTo(escapeControls(r.version ?? "-"), MAX_VERSION) : "missing",
  ];
  const head = ["provider", "version", ...heads, ...(last ? ["default"] : [])];
  const rows = reports.map((r) => [
    ...lead(r),
    ...cells.map((c) => {
      const v = verdictOf(r, c);
      return v ? MARK[v.status] : "-";
    }),
    ...(last ? [r.runsDefaultPolicy ? "runs" : "refused"] : []),
  ]);
  return [head, ...rows];
}

function gapsFor(markCount: number, last: boolean): number[] {
  return [0, TEXT_GAP, ...Array.from({ length: markCount }, (_, i) => (i === 0 ? TEXT_GAP : MARK_GAP)), ...(last ? [TEXT_GAP] : [])];
}

function fullTableWidth(reports: readonly ReadinessReport[], cells: readonly string[], heads: readonly string[]): number {
  return tableWidth(rowsOf(reports, cells, heads, true), gapsFor(heads.length, true));
}

/**
 * The mark table, split into as few tables as it takes for each to fit `width` (one, unless
 * the cells are many), the cells shared out evenly between them.
 */
function markTables(reports: readonly ReadinessReport[], cells: readonly string[], heads: readonly string[], width: number): string[] {
  const band = (from: number, to: number) => {
    const last = to === cells.length;
    const rows = rowsOf(reports, cells.slice(from, to), heads.slice(from, to), last);
    const gaps = gapsFor(to - from, last);
    return { rows, gaps, width: tableWidth(rows, gaps) };
  };
  const split = (size: number) => Array.from({ length: Math.ceil(cells.length / size) }, (_, i) => band(i * size, Math.min(cells.length, (i + 1) * size)));
  // The fewest tables whose columns, shared out evenly, all fit; one column each when nothing fits better.
  let bands = [band(0, cells.length)];
  for (let count = 1; count <= cells.length; count++) {
    bands = split(Math.ceil(cells.length / count));
    if (bands.every((b) => b.width <= width)) break;
  }
  return bands.flatMap((b, i) => {
    const [head, ...body] = alignColumns(b.rows, b.gaps);
    return [...(i > 0 ? [""] : []), head!, "-".repeat(Math.min(width, b.width)), ...body];
  });
}

function legend(cells: readonly string[], heads: readonly string[], width: number): string[] {
  const shortened = cells.map((c, i) => [heads[i]!, escapeControls(c)] as const).filter(([head, name]) => head !== name);
  return [
    ...wrapItems([`${MARK.proven} proven (the probe's attack failed)`, `${MARK["not-enforced"]} not enforced`, `${MARK.unknown} unknown (the probe could not run)`], width),
    ...(shortened.length ? wrapItems(shortened.map(([head, name]) => `${head} ${name}`), width) : []),
    ...wrapText("default: runs the default policy under onUnavailable=fail, or is refused", width),
  ];
}

/** Each cell that is not proven, with its whole detail; cells of a provider with the same verdict share a line. */
function notProven(reports: readonly ReadinessReport[], cells: readonly string[], width: number): string[] {
  const lines: string[] = [];
  for (const r of reports) {
    const groups = new Map<string, { verdict: ReadinessVerdict; cells: string[] }>();
    for (const c of cells) {
      const v = verdictOf(r, c);
      if (!v || v.status === "proven") continue;
      const key = `${v.status}\n${v.detail}`;
      const group = groups.get(key) ?? { verdict: v, cells: [] };
      group.cells.push(c);
      groups.set(key, group);
    }
    const provider = escapeControls(r.provider);
    for (const { verdict, cells: same } of groups.values()) {
      const which =
        same.length === 1 ? `${provider}.${escapeControls(same[0]!)}` : same.length === cells.length ? `${provider}, every cell` : `${provider}.{${same.map(escapeControls).join(",")}}`;
      lines.push(...wrapText(`${which}: ${escapeControls(verdict.detail)}`, width, { indent: `  ${MARK[verdict.status]} `, hang: "      " }));
    }
  }
  return lines.length ? ["", "not proven:", ...lines] : [];
}

function policyFits(reports: readonly ReadinessReport[], width: number): string[] {
  return [
    "policies each provider runs under onUnavailable=fail:",
    ...reports.flatMap((r) =>
      wrapItems(
        r.policies.map((p) => `${p.runsUnderFail ? MARK.proven : MARK["not-enforced"]} ${escapeControls(p.name)}`),
        width,
        { indent: `  ${escapeControls(r.provider)}: `, hang: "      ", separator: "; " },
      ),
    ),
  ];
}

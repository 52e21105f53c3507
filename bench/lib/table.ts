/** Markdown tables and the number formats every measurement prints. */

/** One markdown table with a title line above it (the title says what was measured, and how often). */
export function table(title: string, header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  return [`\n${title}`, line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

export function ms(x: number): string {
  return Number.isFinite(x) ? x.toFixed(x < 10 ? 2 : 1) : "-";
}

export function ratio(measured: number, baseline: number): string {
  return Number.isFinite(measured / baseline) ? `${(measured / baseline).toFixed(2)}x` : "-";
}

export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** "met" / "missed" next to a goal, so a reader sees at once where it stands. */
export function goal(met: boolean, text: string): string {
  return `${text} (${met ? "met" : "missed"})`;
}

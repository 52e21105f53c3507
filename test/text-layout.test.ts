/** Wrapping for people's text: measured in display columns, broken at spaces, never cut. */
import { describe, expect, test } from "bun:test";
import { alignColumns, truncateTo, wrapItems, wrapText } from "../src/text-layout.ts";

const width = (line: string) => Bun.stringWidth(line);

describe("wrapText", () => {
  test("breaks at spaces, indents the first line and hangs the rest, keeps every word", () => {
    const text = "one two three four five six seven eight nine ten";
    const lines = wrapText(text, 20, { indent: "- ", hang: "    " });
    expect(lines).toEqual(["- one two three four", "    five six seven", "    eight nine ten"]);
    expect(lines.join(" ").replace(/\s+/g, " ").replace(/^- /, "")).toBe(text);
  });

  test("a word wider than a line is broken inside it, and nothing is lost", () => {
    const word = "x".repeat(45);
    const lines = wrapText(`see ${word} end`, 20);
    for (const l of lines) expect(width(l)).toBeLessThanOrEqual(20);
    expect(lines.join("").replace(/\s+/g, "")).toBe(`see${word}end`);
  });

  test("wide characters count two columns", () => {
    const lines = wrapText("漢字漢字漢字 漢字漢字漢字", 12);
    expect(lines).toEqual(["漢字漢字漢字", "漢字漢字漢字"]);
  });

  test("empty text is one empty line", () => {
    expect(wrapText("", 10)).toEqual([""]);
  });
});

describe("wrapItems", () => {
  test("breaks only between items, the separator ending the broken line", () => {
    expect(wrapItems(["fs filesystem", "net network", "mem memory"], 29)).toEqual(["fs filesystem · net network ·", "mem memory"]);
    expect(wrapItems(["a", "b"], 29, { indent: "  x: ", hang: "    ", separator: "; " })).toEqual(["  x: a; b"]);
  });
});

describe("truncateTo and alignColumns", () => {
  test("a label is cut with … to its width in columns", () => {
    expect(truncateTo("abcdefgh", 5)).toBe("abcd…");
    expect(truncateTo("abc", 5)).toBe("abc");
    expect(width(truncateTo("漢字漢字漢字", 5))).toBeLessThanOrEqual(5);
  });

  test("columns are padded to their widest cell in display columns", () => {
    expect(alignColumns([["a", "✓", "x"], ["漢字", "✗", "y"]], [0, 1, 2])).toEqual(["a    ✓  x", "漢字 ✗  y"]);
  });
});

/**
 * What every committed text must hold to: a clone is self-contained (no path
 * that climbs out of the repository into a sibling `shared` folder), and the project
 * speaks of the product and its documentation (docs/design.md), never of the
 * working notes it was bootstrapped from ("the seed"). Reads `git ls-files`,
 * so it checks exactly what a clone gets.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SELF = "protocol/test/repo-hygiene.test.ts";

/** Each rule: what it forbids and why, so a failure explains itself. */
const RULES: { name: string; pattern: RegExp }[] = [
  { name: "a path outside the repository", pattern: /\.\.\/shared\/|\/work\/shared\b/ },
  // The specification lives in docs/ (design.md, protocol.md, client.md); there is no DESIGN.md.
  { name: "the old design file (DESIGN.md) instead of docs/", pattern: /\bDESIGN\.md\b/ },
  // A whole word only: identifiers such as `seedPulse` and "seeded" do not match,
  // and a random generator's seed is a different word.
  { name: "the bootstrap notes' vocabulary ('seed')", pattern: /(?<!random )\bseed(?:s|'s|s')?\b/i },
];

const TRACKED = execFileSync("git", ["ls-files", "-z"], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 })
  .split("\0")
  .filter((f) => f !== "");

function trackedTextFiles(): { file: string; text: string }[] {
  const out: { file: string; text: string }[] = [];
  for (const file of TRACKED) {
    if (file === SELF) continue;
    let bytes: Buffer;
    try {
      bytes = readFileSync(path.join(ROOT, file));
    } catch {
      continue; // deleted in the work tree, not yet committed
    }
    if (bytes.subarray(0, 8000).includes(0)) continue; // binary (wasm, png)
    out.push({ file, text: bytes.toString("utf8") });
  }
  return out;
}

/** GitHub's anchors for a markdown file's headings: lowercased, punctuation dropped, spaces to hyphens. */
function headingSlugs(markdown: string): Set<string> {
  const slugs = new Set<string>();
  for (const [, heading] of markdown.matchAll(/^#{1,6} +(.+)$/gm)) {
    slugs.add(
      heading!
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, "")
        .replace(/ /g, "-"),
    );
  }
  return slugs;
}

describe("repository hygiene", () => {
  const files = trackedTextFiles();

  it("reads the tracked files", () => {
    expect(files.length).toBeGreaterThan(100);
    expect(files.some((f) => f.file === "README.md")).toBe(true);
  });

  for (const rule of RULES) {
    it(`no tracked text file mentions ${rule.name}`, () => {
      const hits: string[] = [];
      for (const { file, text } of files) {
        text.split("\n").forEach((line, i) => {
          if (rule.pattern.test(line)) hits.push(`${file}:${i + 1}: ${line.trim().slice(0, 120)}`);
        });
      }
      expect(hits, `${rule.name}:\n${hits.join("\n")}`).toEqual([]);
    });
  }

  it("every link into the documentation reaches a file and a heading", () => {
    const byFile = new Map(files.map((f) => [f.file, f.text]));
    const broken: string[] = [];
    const check = (from: string, target: string) => {
      const [file, anchor] = target.split("#") as [string, string | undefined];
      const text = byFile.get(file);
      const tracked = TRACKED.some((t) => t === file || t.startsWith(`${file}/`));
      if (!tracked) broken.push(`${from} → ${target}: no such tracked file`);
      else if (anchor && text !== undefined && file.endsWith(".md") && !headingSlugs(text).has(anchor))
        broken.push(`${from} → ${target}: no such heading`);
    };
    for (const { file, text } of files) {
      // Comments and docs name the specification as docs/<file>.md#<heading>.
      for (const [ref] of text.matchAll(/\bdocs\/[a-z-]+\.md(?:#[\w-]+)?/g)) check(file, ref);
      // Relative markdown links.
      if (!file.endsWith(".md")) continue;
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!) || target!.startsWith("#")) continue;
        check(file, path.posix.normalize(path.posix.join(path.posix.dirname(file), target!)).replace(/\/$/, ""));
      }
    }
    expect(broken, broken.join("\n")).toEqual([]);
  });

  it("the rules catch what they are meant to", () => {
    const [outside, design, vocabulary] = RULES.map((r) => r.pattern) as [RegExp, RegExp, RegExp];
    // Joined, so that a plain grep of the repository for the path finds nothing here either.
    expect(outside.test(`see ${["..", "shared", "DESIGN.md"].join("/")}`)).toBe(true);
    expect(design.test('(DESIGN.md, "Pulses and auth")')).toBe(true);
    expect(design.test("docs/design.md#the-gate-decision")).toBe(false);
    expect(vocabulary.test("as the seed's table says")).toBe(true);
    expect(vocabulary.test("rules (seed 003, layered)")).toBe(true);
    expect(vocabulary.test("the seeds describe")).toBe(true);
    expect(vocabulary.test("seedPulse({})")).toBe(false);
    expect(vocabulary.test("30 seeded entries")).toBe(false);
    expect(vocabulary.test("a random seed")).toBe(false);
  });
});

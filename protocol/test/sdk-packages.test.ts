/**
 * The SDKs as published (@waitstate/sdk, @waitstate/edge): zero runtime
 * dependencies, the protocol modules they use compiled into their tarball,
 * every import of a built file resolving inside it, and no protocol source
 * copied into their src (their builds compile protocol/src into dist instead).
 */
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const PACKAGES = [
  { dir: "sdk-node", modules: ["constants", "gate", "histogram", "policy"] },
  { dir: "sdk-edge", modules: ["constants", "policy"] },
];

/** `from "x"`, `import("x")` and `import "x"` specifiers of a JS or .d.ts file (comments stripped). */
function specifiers(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  return [...code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)"([^"]+)"/g)].map((m) => m[1]!);
}

describe.each(PACKAGES)("$dir as packed", ({ dir, modules }) => {
  const PKG = path.join(ROOT, dir);
  const manifest = JSON.parse(readFileSync(path.join(PKG, "package.json"), "utf8")) as Record<string, unknown>;
  const packed = JSON.parse(
    execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: PKG, encoding: "utf8" }),
  ) as Array<{
    files: Array<{ path: string }>;
  }>;
  const files = new Set(packed[0]!.files.map((f) => f.path));

  it("has no runtime dependencies", () => {
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.peerDependencies).toBeUndefined();
  });

  it("ships the protocol modules it uses, compiled, and not the zod schemas", () => {
    for (const name of modules) {
      expect(files.has(`dist/protocol/src/${name}.js`), name).toBe(true);
      expect(files.has(`dist/protocol/src/${name}.d.ts`), name).toBe(true);
    }
    expect([...files].filter((f) => f.includes("schemas"))).toEqual([]);
  });

  it("every import of a shipped .js or .d.ts is node: or a file in the tarball", () => {
    const problems: string[] = [];
    let checked = 0;
    for (const file of files) {
      if (!file.endsWith(".js") && !file.endsWith(".d.ts")) continue;
      for (const spec of specifiers(readFileSync(path.join(PKG, file), "utf8"))) {
        checked++;
        if (spec.startsWith("node:")) continue;
        if (!spec.startsWith(".")) {
          problems.push(`${file}: imports the package "${spec}"`);
          continue;
        }
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
        const candidates = file.endsWith(".d.ts") ? [target.replace(/\.js$/, ".d.ts"), target] : [target];
        if (!candidates.some((c) => files.has(c))) problems.push(`${file}: "${spec}" is not in the tarball`);
      }
    }
    expect(checked).toBeGreaterThan(10);
    expect(problems).toEqual([]);
  });

  it("every entry point, export and the bin are in the tarball", () => {
    const targets: string[] = [String(manifest.main), String(manifest.types)];
    for (const entry of Object.values(manifest.exports as Record<string, string | Record<string, string>>)) {
      targets.push(...(typeof entry === "string" ? [entry] : Object.values(entry)));
    }
    targets.push(...Object.values((manifest.bin ?? {}) as Record<string, string>));
    for (const t of targets) expect(files.has(t.replace(/^\.\//, "")), t).toBe(true);
  });

  it(`${dir}/src holds no copy of a protocol/src file`, () => {
    const protocolSources = readdirSync(path.join(ROOT, "protocol/src")).map((f) =>
      readFileSync(path.join(ROOT, "protocol/src", f), "utf8"),
    );
    const tracked = execFileSync("git", ["ls-files", `${dir}/src`], { cwd: ROOT, encoding: "utf8" })
      .split("\n")
      .filter(Boolean);
    expect(tracked.length).toBeGreaterThan(0);
    const copies = tracked.filter((f) => {
      const text = readFileSync(path.join(ROOT, f), "utf8");
      // A verbatim copy, or one with a header line added.
      return protocolSources.some((source) => text === source || text.endsWith(source));
    });
    expect(copies).toEqual([]);
  });
});

/**
 * Every published package (each workspace not marked private) ships its own
 * README and the project's LICENSE. npm takes both from the package's root
 * folder, so each package keeps a committed copy of the root LICENSE; this
 * test asks npm itself what the tarball holds and keeps the copies identical.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

interface Manifest {
  name: string;
  private?: boolean;
  license?: string;
}

const readJson = <T>(file: string): T => JSON.parse(readFileSync(path.join(ROOT, file), "utf8")) as T;

const workspaces = readJson<{ workspaces: string[] }>("package.json").workspaces;
const published = workspaces
  .map((dir) => ({ dir, manifest: readJson<Manifest>(`${dir}/package.json`) }))
  .filter(({ manifest }) => manifest.private !== true);

/** What `npm pack` would put in each tarball, without building or writing one. */
function packedFiles(): Map<string, string[]> {
  const args = ["pack", "--dry-run", "--json", "--ignore-scripts", ...published.flatMap(({ dir }) => ["-w", dir])];
  const out = execFileSync("npm", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const packs = JSON.parse(out) as Array<{ name: string; files: Array<{ path: string }> }>;
  return new Map(packs.map((p) => [p.name, p.files.map((f) => f.path)]));
}

describe("published packages", () => {
  it("are the four the project publishes", () => {
    expect(published.map(({ manifest }) => manifest.name).sort()).toEqual([
      "@waitstate/cli",
      "@waitstate/edge",
      "@waitstate/protocol",
      "@waitstate/sdk",
    ]);
  });

  it("each says Apache-2.0, as the root LICENSE does", () => {
    expect(readFileSync(path.join(ROOT, "LICENSE"), "utf8")).toMatch(/^\s+Apache License\s+Version 2\.0, January 2004/);
    for (const { manifest } of published) expect(manifest.license, manifest.name).toBe("Apache-2.0");
  });

  it("each keeps a LICENSE identical to the root one", () => {
    const root = readFileSync(path.join(ROOT, "LICENSE"));
    for (const { dir } of published) {
      const copy = path.join(ROOT, dir, "LICENSE");
      expect(existsSync(copy), `${dir}/LICENSE is missing (cp LICENSE ${dir}/)`).toBe(true);
      expect(readFileSync(copy).equals(root), `${dir}/LICENSE differs from the root LICENSE (cp LICENSE ${dir}/)`).toBe(true);
    }
  });

  it("each tarball holds its README.md and LICENSE", { timeout: 60_000 }, () => {
    const files = packedFiles();
    for (const { manifest } of published) {
      const packed = files.get(manifest.name);
      expect(packed, `npm pack did not list ${manifest.name}`).toBeDefined();
      expect(packed, manifest.name).toContain("README.md");
      expect(packed, manifest.name).toContain("LICENSE");
    }
  });

  it("each README names its package and links no path outside the repository", () => {
    for (const { dir, manifest } of published) {
      const readme = readFileSync(path.join(ROOT, dir, "README.md"), "utf8");
      expect(readme.split("\n")[0], `${dir}/README.md`).toBe(`# ${manifest.name}`);
      for (const [, target] of readme.matchAll(/\]\(([^)#\s]+)[^)]*\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue; // an absolute URL
        const resolved = path.resolve(ROOT, dir, target!);
        expect(resolved.startsWith(ROOT + path.sep), `${dir}/README.md links ${target}`).toBe(true);
        expect(existsSync(resolved), `${dir}/README.md links ${target}, which does not exist`).toBe(true);
      }
    }
  });
});

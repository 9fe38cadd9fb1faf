import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { describe, expect, it } from "vitest";

const root = path.resolve(fileURLToPath(new URL("../..", import.meta.url)));
const deno = path.join(root, "node_modules", ".bin", "deno");

describe("@waitstate/edge in Deno", () => {
  it("passes every gate and HMAC vector through the deno entry", () => {
    const out = execFileSync(deno, ["run", "--no-prompt", `--allow-read=${root}`, path.join(root, "sdk-edge/test/deno-vectors.mjs")], {
      encoding: "utf8",
      env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
      timeout: 60_000,
    });
    const report = JSON.parse(out.trim().split("\n").pop()!) as { runtime: string; passed: number; failed: number; failures: string[] };
    expect(report.runtime).toMatch(/^deno 2\./);
    expect(report.failures).toEqual([]);
    expect(report.passed).toBeGreaterThanOrEqual(200);
  }, 90_000);
});

import { execFile, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { FakeControlPlane } from "./fake-control-plane.js";

const root = path.resolve(fileURLToPath(new URL("../..", import.meta.url)));
const deno = path.join(root, "node_modules", ".bin", "deno");
const env = { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };

describe("@waitstate/edge in Deno", () => {
  it("fails on a deliberately broken policy vector", () => {
    const out = execFileSync(
      deno,
      ["run", "--no-prompt", `--allow-read=${root}`, path.join(root, "sdk-edge/test/deno-vectors.mjs"), "--broken"],
      {
        encoding: "utf8",
        env,
        timeout: 60_000,
      },
    );
    const report = JSON.parse(out.trim().split("\n").pop()!) as { failed: number; failures: string[] };
    expect(report.failures).toEqual([expect.stringMatching(/^policy an empty object/)]);
  }, 90_000);

  it("passes every gate, HMAC and policy vector through the deno entry", () => {
    const out = execFileSync(deno, ["run", "--no-prompt", `--allow-read=${root}`, path.join(root, "sdk-edge/test/deno-vectors.mjs")], {
      encoding: "utf8",
      env,
      timeout: 60_000,
    });
    const report = JSON.parse(out.trim().split("\n").pop()!) as { runtime: string; passed: number; failed: number; failures: string[] };
    expect(report.runtime).toMatch(/^deno 2\./);
    expect(report.failures).toEqual([]);
    expect(report.passed).toBeGreaterThanOrEqual(200);
  }, 90_000);

  it("sendPulse keeps its pulse through a 500, a hang, a dropped connection and a lost answer: every call counted once", async () => {
    // Asynchronous spawn: the control plane answers from this process's event loop.
    const cp = await new FakeControlPlane().start();
    try {
      cp.reset(["500", "hang", "drop", "count-then-drop"]); // then "ok"
      const host = new URL(cp.url).host;
      const { stdout } = await promisify(execFile)(
        deno,
        ["run", "--no-prompt", `--allow-read=${root}`, `--allow-net=${host}`, path.join(root, "sdk-edge/test/deno-pulses.mjs"), cp.url],
        { encoding: "utf8", env, timeout: 60_000 },
      );
      const report = JSON.parse(stdout.trim().split("\n").pop()!) as {
        calls: number;
        results: Array<{ ok: boolean; ms: number }>;
        errors: Array<{ code: string; message: string }>;
        pending: number;
        etag: string | null;
      };
      // Deno's fetch may itself retry a POST whose reused connection was closed (the lost answer):
      // which round ends how can vary, the invariants cannot.
      expect(report.results[0]!.ok).toBe(false); // the 500
      expect(report.results[1]!.ok).toBe(false); // the hang, cut at timeoutMs
      expect(report.results[1]!.ms).toBeGreaterThanOrEqual(290);
      expect(report.results[1]!.ms).toBeLessThan(3_000);
      expect(report.results.at(-1)!.ok).toBe(true);
      expect(report.errors.slice(0, 2).map((e) => e.message)).toEqual([
        expect.stringMatching(/answered 500.*kept/),
        expect.stringMatching(/no answer within 300 ms/),
      ]);
      expect([report.pending, report.etag]).toEqual([0, '"policy-7"']);
      const { seen, counted } = cp.state;
      expect(seen.slice(0, 4).map((s) => s.step)).toEqual(["500", "hang", "drop", "count-then-drop"]);
      expect(seen.every((s) => s.signatureValid && s.schemaProblems.length === 0)).toBe(true);
      expect(new Set(seen.slice(0, 4).map((s) => s.body)).size).toBe(1); // one pulse, re-sent byte for byte
      expect(counted).toBe(report.calls);
    } finally {
      await cp.stop();
    }
  }, 90_000);
});

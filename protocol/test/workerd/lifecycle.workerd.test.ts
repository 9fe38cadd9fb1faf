import { describe, expect, it } from "vitest";
import { CLIENT_CASES, FUNCTION_CASES, TOKEN_CASES, runClientCase, runFunctionCase, runTokenCase } from "../lifecycle-vectors.js";

// The edge client runs these rules in workerd: the same vectors, in the same runtime.
describe("lifecycle rules in workerd", () => {
  it("runs inside workerd", () => {
    expect(navigator.userAgent).toBe("Cloudflare-Workers");
  });

  it("every lifecycle.json case", () => {
    const mismatches = [
      ...FUNCTION_CASES.flatMap((c) => runFunctionCase(c).map((m) => `${c.name}: ${m}`)),
      ...CLIENT_CASES.flatMap((c) => runClientCase(c).map((m) => `${c.name}: ${m}`)),
      ...TOKEN_CASES.flatMap((c) => runTokenCase(c).map((m) => `${c.name}: ${m}`)),
    ];
    expect(mismatches).toEqual([]);
  });

  it("fails on a deliberately broken vector", () => {
    const c = structuredClone(CLIENT_CASES[0]!);
    const last = c.steps.at(-1) as { expect: Record<string, unknown> };
    last.expect.pulse = !last.expect.pulse;
    expect(runClientCase(c)).toHaveLength(1);
  });
});

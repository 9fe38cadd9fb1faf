import { describe, expect, it } from "vitest";
import { gate } from "../src/gate.js";
import { GATE_REASONS } from "../src/constants.js";
import { GATE_CASES, brokenCopy, decideFactory, localGateFactory, runGateCase, type GateFactory } from "./vectors.js";

describe("gate.json conformance vectors", () => {
  it("has at least 60 cases covering every step of the decision order", () => {
    expect(GATE_CASES.length).toBeGreaterThanOrEqual(60);
    const steps = new Set(GATE_CASES.map((c) => c.step));
    expect([...steps].sort()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const reasons = new Set(GATE_CASES.flatMap((c) => c.calls.map((call) => call.expect.reason)));
    expect([...reasons].sort()).toEqual([...GATE_REASONS].sort());
    const strategies = new Set(GATE_CASES.map((c) => c.config?.safeModeStrategy ?? "open"));
    expect([...strategies].sort()).toEqual(["fixed_rps", "last_policy", "open"]);
  });

  for (const [label, factory] of [
    ["decide()", decideFactory],
    ["LocalGate", localGateFactory],
  ] as const) {
    describe(label, () => {
      it.each(GATE_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
        expect(runGateCase(c, factory)).toEqual([]);
      });

      it("fails on a deliberately broken vector", () => {
        const mismatches = runGateCase(brokenCopy(GATE_CASES[0]!), factory);
        expect(mismatches).toHaveLength(1);
      });
    });
  }

  describe("pure gate(policy, tag, weight)", () => {
    // Outside the lease and safe mode, the pure check must agree with decide() right after a sync.
    const synced = GATE_CASES.filter((c) => c.policy !== null && c.lastSyncAt !== null && c.step >= 3);
    it.each(synced.map((c) => [c.name, c] as const))("%s", (_name, c) => {
      const pureFactory: GateFactory = (vector) => ({ call: (_now, tag, weight) => gate(vector.policy, tag, weight) });
      const normal = { ...c, calls: c.calls.filter((call) => call.expect.reason !== "lease_expired") };
      expect(runGateCase(normal, pureFactory)).toEqual([]);
    });
  });
});

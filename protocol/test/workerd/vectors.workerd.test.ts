import { describe, expect, it } from "vitest";
import { LocalGate, decide, newGateState } from "../../src/gate.js";
import { LatencyHistogram } from "../../src/histogram.js";
import { GATE_CASES, HISTOGRAM_CASES, brokenCopy, closeTo, runGateCase, vectorNumber, type GateFactory } from "../vectors.js";

const decideFactory: GateFactory = (c) => {
  const state = newGateState({ ...c.config, lastSyncAt: c.lastSyncAt });
  return { call: (now, tag, weight) => decide(c.policy, state, now, tag, weight) };
};

const localGateFactory: GateFactory = (c) => {
  const local = new LocalGate(c.config);
  if (c.policy !== null && c.lastSyncAt !== null) local.update(c.policy, c.lastSyncAt);
  return { call: (now, tag, weight) => local.gate(tag, weight, now) };
};

describe("TypeScript gate in workerd", () => {
  it("runs inside workerd", () => {
    expect(navigator.userAgent).toBe("Cloudflare-Workers");
  });

  it.each(GATE_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    expect(runGateCase(c, decideFactory)).toEqual([]);
    expect(runGateCase(c, localGateFactory)).toEqual([]);
  });

  it("fails on a deliberately broken vector", () => {
    expect(runGateCase(brokenCopy(GATE_CASES[5]!), localGateFactory)).toHaveLength(1);
  });
});

describe("histogram in workerd", () => {
  const recorded = HISTOGRAM_CASES.filter((c) => c.kind === "record" || c.kind === "merge");
  it.each(recorded.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const values = (c.kind === "record" ? (c.values as Array<number | string>) : [...(c.a as number[]), ...(c.b as number[])]).map(vectorNumber);
    const h = LatencyHistogram.fromValues(values);
    expect(h.encode().b).toEqual((c.expect as { b: number[] }).b);
    for (const [q, expected] of c.quantiles as Array<[number, number | null]>) expect(closeTo(h.quantile(q), expected)).toBe(true);
  });
});

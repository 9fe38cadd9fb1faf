import { describe, expect, it } from "vitest";
import { evaluateReflexes, mergeWindow, readMetric } from "../src/reflex.js";
import { LatencyHistogram } from "../src/histogram.js";
import { REFLEX_CASES, runReflexCase } from "./vectors.js";

describe("reflex.json conformance vectors", () => {
  it.each(REFLEX_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    expect(runReflexCase(c)).toEqual([]);
  });

  it("fails on a deliberately broken vector", () => {
    const c = structuredClone(REFLEX_CASES[0]!);
    c.steps[1]!.expect.tagMaxWeights = { free: 4 };
    expect(runReflexCase(c)).toHaveLength(1);
  });
});

const T = 1_740_000_000_000;

describe("reflex engine details", () => {
  it("records each fire with the rule id and the values that fired it", () => {
    const stats = mergeWindow([{ instanceId: "a", usageDelta: 10, metrics: { latency: 1200, errors: 0 }, ts: T }], T);
    const out = evaluateReflexes({
      rules: [{ id: "r1", tagName: "free", metric: "latency", operator: "gt", threshold: 1000, action: "block", enabled: true, priority: 1 }],
      stats,
      now: T,
    });
    expect(out.events).toEqual([
      { kind: "fired", ruleId: "r1", at: T, tagName: "free", metric: "latency", metricTag: null, value: 1200, operator: "gt", threshold: 1000 },
    ]);
    expect(out.states.r1).toEqual({ active: true, lastMatchedAt: T, firedAt: T });
  });

  it("clears a rule that was deleted while active", () => {
    const stats = mergeWindow([], T);
    const out = evaluateReflexes({ rules: [], stats, states: { gone: { active: true, lastMatchedAt: T, firedAt: T } }, now: T + 1 });
    expect(out.events.map((e) => [e.kind, e.ruleId])).toEqual([["cleared", "gone"]]);
    expect(out.states).toEqual({});
  });

  it("merges histograms and averages into one latency view", () => {
    const h = LatencyHistogram.fromValues([10, 10, 10, 10]).encode();
    const stats = mergeWindow(
      [
        { instanceId: "a", usageDelta: 4, metrics: { latency: 10, latencyHistogram: h }, ts: T },
        { instanceId: "b", usageDelta: 4, metrics: { latency: 30 }, ts: T },
      ],
      T,
    );
    expect(readMetric(stats.site, "latency", 30)).toBe(20);
    expect(stats.site.histogram.count).toBe(8);
    // The average-only pulse counts as four observations of 30 ms: p99 is in that bucket (≤ 5 % off).
    expect(Math.abs(readMetric(stats.site, "p99_latency", 30)! - 30) / 30).toBeLessThanOrEqual(0.05);
  });
});

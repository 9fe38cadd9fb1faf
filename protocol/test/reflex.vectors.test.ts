import { describe, expect, it } from "vitest";
import { WindowAccumulator, evaluateReflexes, mergeWindow, readMetric, windowNeeds } from "../src/reflex.js";
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

describe("WindowAccumulator (the Durable Object's window)", () => {
  const viaAccumulator = (
    pulses: Parameters<typeof mergeWindow>[0],
    now: number,
    w: number | undefined,
    rules: Parameters<typeof windowNeeds>[0],
  ) => {
    const acc = new WindowAccumulator();
    for (const p of pulses) acc.add(p, p.ts);
    return acc.stats(now, w, windowNeeds(rules));
  };

  it.each(REFLEX_CASES.map((c) => [c.name, c] as const))("reproduces %s", (_name, c) => {
    expect(runReflexCase(c, viaAccumulator)).toEqual([]);
  });

  it("merges per-second buckets to the same stats as mergeWindow", () => {
    const pulses = Array.from({ length: 40 }, (_, i) => ({
      instanceId: `i${i % 3}`,
      usageDelta: 10 + i,
      metrics: { latency: 5 + i, errors: i % 4, latencyHistogram: LatencyHistogram.fromValues([5 + i, 6 + i, 50 + i]).encode() },
      tagMetrics: [
        {
          tag: "free",
          count: 3 + i,
          errors: 1,
          latency: 7,
          customMetrics: { queue_depth: { min: i, max: i + 2, sum: 2 * i + 2, count: 2 } },
        },
      ],
      ts: T + i * 1000,
    }));
    const acc = new WindowAccumulator();
    for (const p of pulses) acc.add(p, p.ts);
    const now = T + 39_000;
    const a = acc.stats(now, 30);
    const b = mergeWindow(pulses, now, 30);
    expect(a.pulses).toBe(b.pulses);
    for (const metric of ["latency", "p50_latency", "p95_latency", "p99_latency", "errors", "error_rate", "rps", "queue_depth"]) {
      expect(readMetric(a.site, metric, 30), metric).toBeCloseTo(readMetric(b.site, metric, 30)!, 9);
      expect(readMetric(a.tags.get("free"), metric, 30), metric).toBeCloseTo(readMetric(b.tags.get("free"), metric, 30)!, 9);
    }
    acc.prune(now, 30);
    expect(acc.size).toBe(30);
  });

  it("merges only the tags the rules read", () => {
    const acc = new WindowAccumulator();
    acc.add(
      {
        instanceId: "a",
        usageDelta: 2,
        metrics: {},
        tagMetrics: [
          { tag: "x", count: 1 },
          { tag: "y", count: 1 },
        ],
        ts: T,
      },
      T,
    );
    const stats = acc.stats(T, 30, windowNeeds([{ metricTag: "y", enabled: true }]));
    expect([...stats.tags.keys()]).toEqual(["y"]);
    expect(stats.site.calls).toBe(2);
  });
});

describe("reflex engine details", () => {
  it("records each fire with the rule id and the values that fired it", () => {
    const stats = mergeWindow([{ instanceId: "a", usageDelta: 10, metrics: { latency: 1200, errors: 0 }, ts: T }], T);
    const out = evaluateReflexes({
      rules: [
        { id: "r1", tagName: "free", metric: "latency", operator: "gt", threshold: 1000, action: "block", enabled: true, priority: 1 },
      ],
      stats,
      now: T,
    });
    expect(out.events).toEqual([
      {
        kind: "fired",
        ruleId: "r1",
        at: T,
        tagName: "free",
        metric: "latency",
        metricTag: null,
        value: 1200,
        operator: "gt",
        threshold: 1000,
      },
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

import { describe, expect, it } from "vitest";
import {
  HISTOGRAM_BOUNDED_BUCKETS,
  HISTOGRAM_UPPER_BOUNDS,
  LatencyHistogram,
  bucketIndex,
  bucketRepresentative,
  type HistogramEncoding,
} from "../src/histogram.js";
import { HISTOGRAM_CASES, closeTo, vectorNumber } from "./vectors.js";

type Quantiles = Array<[number, number | null]>;

function byKind(kind: string) {
  return HISTOGRAM_CASES.filter((c) => c.kind === kind).map((c) => [c.name, c] as const);
}

function fromVectorValues(values: Array<number | string>): LatencyHistogram {
  const h = new LatencyHistogram();
  for (const v of values) h.record(vectorNumber(v));
  return h;
}

function expectEncoding(actual: HistogramEncoding, expected: HistogramEncoding) {
  expect(actual.n).toBe(expected.n);
  expect(actual.b).toEqual(expected.b);
  expect(actual.lo).toBe(expected.lo);
  expect(actual.hi).toBe(expected.hi);
  expect(closeTo(actual.s, expected.s)).toBe(true);
}

function expectQuantiles(h: LatencyHistogram, quantiles: Quantiles) {
  for (const [q, expected] of quantiles) {
    const actual = h.quantile(q);
    expect(closeTo(actual, expected), `q=${q}: got ${actual}, expected ${expected}`).toBe(true);
  }
}

describe("histogram.json conformance vectors", () => {
  it.each(byKind("index"))("%s", (_name, c) => {
    expect(bucketIndex(c.value as number)).toBe(c.expectIndex);
  });

  it.each(byKind("bounds"))("%s", (_name, c) => {
    expect(HISTOGRAM_UPPER_BOUNDS[0]).toBe(c.first);
    expect(HISTOGRAM_UPPER_BOUNDS[10]).toBe(c.tenth);
    expect(HISTOGRAM_UPPER_BOUNDS[HISTOGRAM_BOUNDED_BUCKETS - 1]).toBe(c.last);
    expect(HISTOGRAM_UPPER_BOUNDS.length).toBe(c.count);
  });

  it.each(byKind("record"))("record: %s", (_name, c) => {
    const h = fromVectorValues(c.values as Array<number | string>);
    expectEncoding(h.encode(), c.expect as HistogramEncoding);
    expectQuantiles(h, c.quantiles as Quantiles);
  });

  it.each(byKind("merge"))("merge: %s", (_name, c) => {
    const merged = fromVectorValues(c.a as number[]).merge(fromVectorValues(c.b as number[]));
    expectEncoding(merged.encode(), c.expect as HistogramEncoding);
    expectQuantiles(merged, c.quantiles as Quantiles);
    // Encoding round-trips through the wire form and merges the same way.
    const decoded = LatencyHistogram.decode(JSON.parse(JSON.stringify(merged.encode())));
    expect(decoded.ok).toBe(true);
    if (decoded.ok) expectQuantiles(decoded.value, c.quantiles as Quantiles);
  });

  it.each(byKind("decode_error"))("refuses to decode: %s", (_name, c) => {
    const decoded = LatencyHistogram.decode(c.encoded);
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.error).toContain(c.error as string);
  });
});

describe("histogram accuracy", () => {
  it("keeps every representative within 5 % of any value in its bucket, 0.1 ms to 10 min", () => {
    let worst = 0;
    for (let v = 0.1; v <= 600_000; v *= 1.0007) {
      const rep = bucketRepresentative(bucketIndex(v));
      worst = Math.max(worst, Math.abs(rep - v) / v);
    }
    expect(worst).toBeLessThanOrEqual(0.05);
    expect(worst).toBeGreaterThan(0.04); // the bound is tight: 0.1 / 2.1
  });

  it("computes a true fleet p95, not an average of per-instance p95s", () => {
    const fast = LatencyHistogram.fromValues(Array.from({ length: 900 }, () => 20));
    const slow = LatencyHistogram.fromValues(Array.from({ length: 100 }, () => 1000));
    const fleet = new LatencyHistogram().merge(fast).merge(slow);
    // 10 % of the fleet's calls are slow, so the fleet p95 is in the slow mode.
    expect(Math.abs(fleet.quantile(0.95)! - 1000) / 1000).toBeLessThanOrEqual(0.05);
    expect(fleet.quantile(0.5)).toBeCloseTo(20, 0);
  });

  it("mergeEncoded adds in place, and changes nothing when the encoding is bad", () => {
    const h = LatencyHistogram.fromValues([5, 50]);
    const before = h.encode();
    expect(h.mergeEncoded({ n: 2, s: 3, lo: 1, hi: 2, b: [26, 1, 300, 1] })).toMatch(/out of range/);
    expect(h.encode()).toEqual(before);
    expect(h.mergeEncoded(LatencyHistogram.fromValues([500]).encode())).toBeNull();
    expect(h.count).toBe(3);
    expect(h.max).toBe(500);
  });

  it("refuses non-finite and negative values without changing anything", () => {
    const h = new LatencyHistogram();
    for (const bad of [Number.NaN, -1, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) expect(h.record(bad)).toBe(false);
    expect(h.record(5, 0)).toBe(false);
    expect(h.record(5, 1.5)).toBe(false);
    expect(h.encode()).toEqual({ n: 0, s: 0, lo: 0, hi: 0, b: [] });
  });
});

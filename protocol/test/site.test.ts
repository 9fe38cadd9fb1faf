import { describe, expect, it } from "vitest";
import {
  PLAN_LIMITS,
  SiteSettingsSchema,
  WindowAccumulator,
  minPulseIntervalMs,
  siteTiming,
  timingProblem,
  windowBucketMs,
} from "../src/index.js";

describe("site timing", () => {
  it("defaults to the plan and applies each override alone", () => {
    expect(siteTiming("pro")).toEqual({ pulseIntervalMs: PLAN_LIMITS.pro.pulseIntervalMs, leaseDurationSeconds: 120, windowSeconds: 30 });
    expect(siteTiming("enterprise", { pulseIntervalMs: 250, leaseDurationSeconds: null, windowSeconds: 1 })).toEqual({
      pulseIntervalMs: 250,
      leaseDurationSeconds: 60,
      windowSeconds: 1,
    });
  });

  it("names the problem: interval under the plan, window under one interval, lease under three", () => {
    expect(minPulseIntervalMs("enterprise")).toBe(250);
    expect(minPulseIntervalMs("hobby")).toBe(30_000);
    expect(timingProblem("hobby", siteTiming("hobby", { pulseIntervalMs: 1000, leaseDurationSeconds: null, windowSeconds: null }))).toMatch(
      /^pulseIntervalMs/,
    );
    expect(timingProblem("enterprise", { pulseIntervalMs: 1000, leaseDurationSeconds: 60, windowSeconds: 0.5 })).toMatch(/^windowSeconds/);
    expect(timingProblem("enterprise", { pulseIntervalMs: 1000, leaseDurationSeconds: 2.9, windowSeconds: 1 })).toMatch(
      /^leaseDurationSeconds/,
    );
    expect(timingProblem("enterprise", { pulseIntervalMs: 1000, leaseDurationSeconds: 3, windowSeconds: 1 })).toBeNull();
    for (const plan of ["hobby", "pro", "enterprise"] as const) expect(timingProblem(plan, siteTiming(plan))).toBeNull();
  });

  it("validates bodies strictly", () => {
    expect(SiteSettingsSchema.safeParse({ pulseIntervalMs: 250, windowSeconds: 0.25, leaseDurationSeconds: null }).success).toBe(true);
    expect(SiteSettingsSchema.safeParse({ pulseIntervalMs: 249 }).success).toBe(false);
    expect(SiteSettingsSchema.safeParse({ leaseDurationSeconds: 10.5 }).success).toBe(false);
    expect(SiteSettingsSchema.safeParse({ windowSeconds: 0.2 }).success).toBe(false);
    expect(SiteSettingsSchema.safeParse({ window: 1 }).success).toBe(false);
  });

  it("sizes window buckets at a tenth of the window, 25 ms to 1 s", () => {
    expect(windowBucketMs(0.25)).toBe(25);
    expect(windowBucketMs(1)).toBe(100);
    expect(windowBucketMs(5)).toBe(500);
    expect(windowBucketMs(30)).toBe(1000);
  });
});

describe("WindowAccumulator with narrow buckets", () => {
  const pulse = (latency: number) => ({
    instanceId: "a",
    ts: 0,
    usageDelta: 10,
    bouncedUnits: 0,
    metrics: { latency, errors: 0 },
    tagMetrics: [],
  });

  it("a 1 s window of 100 ms buckets drops what arrived more than a second ago", () => {
    const acc = new WindowAccumulator(100);
    acc.add(pulse(900), 10_000);
    acc.add(pulse(100), 10_950);
    expect(acc.stats(10_960, 1).site.calls).toBe(20);
    const later = acc.stats(11_050, 1);
    expect(later.site.calls).toBe(10);
    expect(later.site.latencySumMs / later.site.latencyObservations).toBe(100);
    acc.prune(11_050, 1);
    expect(acc.size).toBe(1);
  });

  it("refuses a bucket width under 1 ms", () => {
    expect(() => new WindowAccumulator(0)).toThrow(RangeError);
  });
});

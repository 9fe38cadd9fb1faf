import { describe, expect, it } from "vitest";
import { ErrorBodySchema, PolicySchema, PulseSchema, ReflexRuleSchema, parseWith } from "../src/schemas.js";
import { isValidCustomMetricName } from "../src/constants.js";
import { LatencyHistogram } from "../src/histogram.js";

const documentedPulse = {
  instanceId: "web-01",
  siteId: "site-prod",
  usageDelta: 967,
  bouncedUnits: 47,
  metrics: { latency: 142, errors: 0 },
  tagMetrics: [
    { tag: "free", latency: 0, count: 847 },
    { tag: "pro", latency: 0, count: 120, customMetrics: { queue_depth: { min: 3, max: 87, sum: 450, count: 10 } } },
  ],
  ts: 1740000060000,
};

function issuesOf(result: ReturnType<typeof parseWith>) {
  expect(result.ok).toBe(false);
  return result.ok ? [] : result.issues;
}

describe("PulseSchema", () => {
  it("accepts the documented pulse and fills per-tag errors", () => {
    const parsed = parseWith(PulseSchema, documentedPulse);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect(parsed.value.tagMetrics[0]!.errors).toBe(0);
  });

  it("accepts per-tag errors and latency histograms", () => {
    const histogram = LatencyHistogram.fromValues([12, 80, 950]).encode();
    const parsed = parseWith(PulseSchema, {
      ...documentedPulse,
      metrics: { latency: 347, errors: 3, latencyHistogram: histogram },
      tagMetrics: [{ tag: "free", latency: 347, count: 3, errors: 1, latencyHistogram: histogram }],
    });
    expect(parsed.ok).toBe(true);
  });

  it.each([
    ["a negative count", { tagMetrics: [{ tag: "free", latency: 0, count: -1 }] }, "tagMetrics[0].count"],
    ["a fractional usageDelta", { usageDelta: 1.5 }, "usageDelta"],
    ["a string where a number belongs", { usageDelta: "967" }, "usageDelta"],
    ["a missing instanceId", { instanceId: undefined }, "instanceId"],
    ["an empty tag", { tagMetrics: [{ tag: "", count: 1 }] }, "tagMetrics[0].tag"],
    ["a huge tagMetrics array", { tagMetrics: Array.from({ length: 10_000 }, (_, i) => ({ tag: `t${i}`, count: 1 })) }, "tagMetrics"],
    [
      "a duplicate tag",
      {
        tagMetrics: [
          { tag: "a", count: 1 },
          { tag: "a", count: 2 },
        ],
      },
      "tagMetrics[1].tag",
    ],
    ["bounced above usage", { usageDelta: 1, bouncedUnits: 2 }, "bouncedUnits"],
    ["NaN latency smuggled as null", { metrics: { latency: null, errors: 0 } }, "metrics.latency"],
    [
      "a reserved custom metric name",
      { tagMetrics: [{ tag: "a", count: 1, customMetrics: { latency: { min: 1, max: 1, sum: 1, count: 1 } } }] },
      "tagMetrics[0].customMetrics.latency",
    ],
    [
      "an invalid custom metric name",
      { tagMetrics: [{ tag: "a", count: 1, customMetrics: { "Queue-Depth": { min: 1, max: 1, sum: 1, count: 1 } } }] },
      "tagMetrics[0].customMetrics.Queue-Depth",
    ],
    [
      "a custom metric with min above max",
      { tagMetrics: [{ tag: "a", count: 1, customMetrics: { depth: { min: 5, max: 1, sum: 1, count: 1 } } }] },
      "tagMetrics[0].customMetrics.depth",
    ],
    [
      "an inconsistent histogram",
      { metrics: { latency: 1, errors: 0, latencyHistogram: { n: 5, s: 1, lo: 1, hi: 1, b: [3, 1] } } },
      "metrics.latencyHistogram",
    ],
    [
      "a histogram with a huge bucket array",
      { metrics: { latency: 1, errors: 0, latencyHistogram: { n: 1, s: 1, lo: 1, hi: 1, b: Array(100_000).fill(1) } } },
      "metrics.latencyHistogram.b",
    ],
    ["a negative timestamp", { ts: -1 }, "ts"],
    ["an instanceId with spaces", { instanceId: "web 01" }, "instanceId"],
  ])("rejects %s with a readable path", (_label, patch, path) => {
    const issues = issuesOf(parseWith(PulseSchema, { ...documentedPulse, ...patch }));
    expect(issues.map((i) => i.path)).toContain(path);
    expect(issues.every((i) => i.message.length > 0)).toBe(true);
  });

  it("names the path in its one-line message", () => {
    const result = parseWith(PulseSchema, { ...documentedPulse, tagMetrics: [{ tag: "free", latency: 0, count: -1 }] });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toMatch(/^tagMetrics\[0\]\.count: /);
  });

  it("rejects things that are not objects at the root", () => {
    for (const bad of [null, 42, "pulse", [documentedPulse]]) {
      expect(issuesOf(parseWith(PulseSchema, bad))[0]!.path).toBe("(root)");
    }
  });
});

describe("PolicySchema", () => {
  it("accepts the wire policy of docs/protocol.md", () => {
    const wire = {
      version: 42,
      globalMaxWeight: null,
      tagMaxWeights: { free: 0, pro: 5 },
      killSignal: false,
      status: "ok",
      pulseInterval: 2000,
      leaseDurationSeconds: 120,
      issuedAt: 1740000060000,
    };
    expect(parseWith(PolicySchema, wire)).toEqual({ ok: true, value: wire });
  });

  it("fills defaults for a shorter policy", () => {
    const parsed = parseWith(PolicySchema, {
      globalMaxWeight: 5,
      tagMaxWeights: { free: 0, pro: 3 },
      pulseInterval: 2000,
      leaseDurationSeconds: 120,
      status: "ok",
    });
    expect(parsed.ok && parsed.value.killSignal === false && parsed.value.version === 0).toBe(true);
  });

  it.each([
    ["a negative tag limit", { tagMaxWeights: { free: -1 } }, "tagMaxWeights.free"],
    ["an unknown status", { status: "paused" }, "status"],
    ["a string limit", { globalMaxWeight: "5" }, "globalMaxWeight"],
    ["a zero lease", { leaseDurationSeconds: 0 }, "leaseDurationSeconds"],
    ["a pulse interval below 100 ms", { pulseInterval: 10 }, "pulseInterval"],
    ["a non-boolean kill signal", { killSignal: "yes" }, "killSignal"],
  ])("rejects %s", (_label, policy, path) => {
    expect(issuesOf(parseWith(PolicySchema, policy)).map((i) => i.path)).toContain(path);
  });
});

describe("ReflexRuleSchema", () => {
  it("accepts the documented three layered rules", () => {
    for (const rule of [
      { tagName: "free", metric: "latency", operator: "gt", threshold: 1000, action: "block", priority: 1 },
      { tagName: "free", metric: "latency", operator: "gt", threshold: 500, action: "throttle", actionValue: 0.5, priority: 2 },
      { tagName: "pro", metric: "errors", operator: "gt", threshold: 50, action: "throttle", actionValue: 0.7, priority: 3 },
    ]) {
      expect(parseWith(ReflexRuleSchema, rule).ok).toBe(true);
    }
  });

  it.each([
    ["throttle without actionValue", { action: "throttle" }, "actionValue"],
    ["an unknown operator", { operator: "eq" }, "operator"],
    ["a metric name with capitals", { metric: "P95" }, "metric"],
    ["an actionValue above 1", { action: "throttle", actionValue: 2 }, "actionValue"],
  ])("rejects %s", (_label, patch, path) => {
    const base = { tagName: null, metric: "p95_latency", operator: "gt", threshold: 500, action: "block", priority: 1 };
    expect(issuesOf(parseWith(ReflexRuleSchema, { ...base, ...patch })).map((i) => i.path)).toContain(path);
  });
});

describe("ErrorBodySchema and metric names", () => {
  it("requires SNAKE_CASE codes", () => {
    expect(parseWith(ErrorBodySchema, { error: { code: "INVALID_SIGNATURE", message: "bad signature" } }).ok).toBe(true);
    expect(parseWith(ErrorBodySchema, { error: { code: "invalidSignature", message: "x" } }).ok).toBe(false);
  });

  it.each([
    ["queue_depth", true],
    ["a", true],
    ["a".repeat(63), true],
    ["a".repeat(64), false],
    ["1abc", false],
    ["Queue", false],
    ["queue-depth", false],
    ["p95_latency", false],
    ["rps", false],
  ])("custom metric name %s valid: %s", (name, valid) => {
    expect(isValidCustomMetricName(name)).toBe(valid);
  });
});

/**
 * A site's timing (pulse interval, lease, window): created ahead of the first
 * pulse or changed later, validated against the plan, and applied by the
 * aggregator to the very next policy and to the window its rules read.
 */
import { describe, expect, it } from "vitest";
import { call, createOrg, expectError } from "./helpers.js";
import { insertRule, orgWithKey, seedPulse, sendPulse } from "./pulse-helpers.js";

describe("POST /v1/sites", () => {
  it("creates a site before its first pulse, with the plan's timing or the given one", async () => {
    const { token } = await createOrg("Timing Co", "enterprise");
    const plain = await call("POST", "/v1/sites", { token, body: { siteId: "plain" } });
    expect(plain.status, plain.text).toBe(201);
    expect(plain.json).toMatchObject({
      siteId: "plain",
      killSwitch: false,
      settings: { pulseIntervalMs: null, leaseDurationSeconds: null, windowSeconds: null },
      timing: { pulseIntervalMs: 1000, leaseDurationSeconds: 60, windowSeconds: 30 },
      lastPulseAt: null,
    });
    const fast = await call("POST", "/v1/sites", {
      token,
      body: { siteId: "fast", pulseIntervalMs: 250, leaseDurationSeconds: 5, windowSeconds: 0.5 },
    });
    expect(fast.status, fast.text).toBe(201);
    expect(fast.json.timing).toEqual({ pulseIntervalMs: 250, leaseDurationSeconds: 5, windowSeconds: 0.5 });
    expect((await call("GET", "/v1/sites/fast", { token })).json).toEqual(fast.json);
    expect((await call("GET", "/v1/sites", { token })).json.sites.map((s: { siteId: string }) => s.siteId)).toEqual(["fast", "plain"]);
  });

  it("refuses a second site of that name (409) and a site beyond the plan's cap (403)", async () => {
    const { token } = await createOrg("Hobby Co", "hobby");
    expect((await call("POST", "/v1/sites", { token, body: { siteId: "one" } })).status).toBe(201);
    expectError(await call("POST", "/v1/sites", { token, body: { siteId: "one" } }), 409, "CONFLICT");
    expectError(await call("POST", "/v1/sites", { token, body: { siteId: "two" } }), 403, "PLAN_LIMIT_REACHED");
  });

  it.each([
    ["a bad siteId", { siteId: "no spaces" }, "siteId", "VALIDATION_FAILED"],
    ["an unknown field", { siteId: "x", pulseInterval: 1000 }, "pulseInterval", "UNKNOWN_FIELD"],
    ["a fractional interval", { siteId: "x", pulseIntervalMs: 500.5 }, "pulseIntervalMs", "VALIDATION_FAILED"],
    ["an interval under 250 ms", { siteId: "x", pulseIntervalMs: 100 }, "pulseIntervalMs", "VALIDATION_FAILED"],
    ["a window shorter than the interval", { siteId: "x", pulseIntervalMs: 2000, windowSeconds: 1 }, "windowSeconds", "VALIDATION_FAILED"],
    [
      "a lease under three intervals",
      { siteId: "x", pulseIntervalMs: 2000, leaseDurationSeconds: 5 },
      "leaseDurationSeconds",
      "VALIDATION_FAILED",
    ],
    ["a window over 300 s", { siteId: "x", windowSeconds: 301 }, "windowSeconds", "VALIDATION_FAILED"],
  ])("refuses %s: 400 naming the field, nothing created", async (_case, body, field, code) => {
    const { token } = await createOrg("Bad Timing Co", "enterprise");
    const res = await call("POST", "/v1/sites", { token, body });
    expectError(res, 400, code);
    expect(res.json.error.message).toContain(field);
    expect((await call("GET", "/v1/sites", { token })).json.sites).toEqual([]);
  });

  it("holds each plan to its own fastest interval", async () => {
    const { token } = await createOrg("Pro Co", "pro");
    const res = await call("POST", "/v1/sites", { token, body: { siteId: "x", pulseIntervalMs: 1000 } });
    expectError(res, 400, "VALIDATION_FAILED");
    expect(res.json.error.message).toContain("pro plan pulses at most every 2000 ms");
  });
});

describe("PATCH /v1/sites/:id", () => {
  it("changes the timing of the next policy at once; null returns a field to the plan's value", async () => {
    const keys = await orgWithKey("Patch Co", "enterprise");
    const first = await sendPulse(keys, seedPulse({ siteId: "web" }));
    expect(first.json).toMatchObject({ pulseInterval: 1000, leaseDurationSeconds: 60 });

    const patched = await call("PATCH", "/v1/sites/web", { token: keys.token, body: { pulseIntervalMs: 500, leaseDurationSeconds: 10 } });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.json.timing).toEqual({ pulseIntervalMs: 500, leaseDurationSeconds: 10, windowSeconds: 30 });
    const second = await sendPulse(keys, seedPulse({ siteId: "web", ts: Date.now() + 1 }));
    expect(second.json).toMatchObject({ pulseInterval: 500, leaseDurationSeconds: 10 });
    expect(second.json.version).toBeGreaterThan(first.json.version);

    const back = await call("PATCH", "/v1/sites/web", { token: keys.token, body: { pulseIntervalMs: null } });
    expect(back.json.settings).toEqual({ pulseIntervalMs: null, leaseDurationSeconds: 10, windowSeconds: null });
    expect(back.json.timing.pulseIntervalMs).toBe(1000);
  });

  it("checks the merged timing: a window shorter than an existing interval is refused and nothing changes", async () => {
    const { token } = await createOrg("Merge Co", "enterprise");
    await call("POST", "/v1/sites", { token, body: { siteId: "web", pulseIntervalMs: 2000 } });
    const res = await call("PATCH", "/v1/sites/web", { token, body: { windowSeconds: 1 } });
    expectError(res, 400, "VALIDATION_FAILED");
    expect((await call("GET", "/v1/sites/web", { token })).json.settings).toEqual({
      pulseIntervalMs: 2000,
      leaseDurationSeconds: null,
      windowSeconds: null,
    });
  });

  it("answers 404 for another org's site and for an unknown one", async () => {
    const a = await createOrg("A");
    const b = await createOrg("B");
    await call("POST", "/v1/sites", { token: a.token, body: { siteId: "mine" } });
    expectError(await call("PATCH", "/v1/sites/mine", { token: b.token, body: { windowSeconds: 10 } }), 404, "NOT_FOUND");
    expectError(await call("GET", "/v1/sites/mine/status", { token: b.token }), 404, "NOT_FOUND");
    expectError(await call("PATCH", "/v1/sites/nope", { token: a.token, body: { windowSeconds: 10 } }), 404, "NOT_FOUND");
  });
});

describe("the window follows the site's windowSeconds", () => {
  it("a short window forgets a latency spike that a 30 s window still holds", async () => {
    const keys = await orgWithKey("Window Co", "enterprise");
    await call("POST", "/v1/sites", { token: keys.token, body: { siteId: "short", windowSeconds: 1 } });
    await call("POST", "/v1/sites", { token: keys.token, body: { siteId: "long" } });
    await insertRule(keys.orgId, {
      tagName: "free",
      metric: "latency",
      operator: "gt",
      threshold: 500,
      action: "block",
      priority: 1,
      cooldownSeconds: 0,
    });
    const spike = (siteId: string, latency: number, ts: number, count = 100) =>
      sendPulse(
        keys,
        seedPulse({
          siteId,
          ts,
          usageDelta: count,
          bouncedUnits: 0,
          metrics: { latency, errors: 0 },
          tagMetrics: [{ tag: "free", latency, count }],
        }),
      );

    const t0 = Date.now();
    for (const site of ["short", "long"]) {
      const fired = await spike(site, 900, t0);
      expect(fired.json.tagMaxWeights, site).toMatchObject({ free: 0 });
    }
    await new Promise((r) => setTimeout(r, 1300));
    // a healthy pulse: the 1 s window holds only it; the 30 s window still averages in the spike
    const short = await spike("short", 50, t0 + 1, 10);
    const long = await spike("long", 50, t0 + 1, 10);
    expect(short.json.tagMaxWeights.free).toBeUndefined();
    expect(long.json.tagMaxWeights).toMatchObject({ free: 0 });
  });
});

describe("GET /v1/sites/:id/status", () => {
  it("shows the policy, the timing, the window's fleet-wide numbers per tag and each rule's state", async () => {
    const keys = await orgWithKey("Status Co", "enterprise");
    await call("POST", "/v1/sites", { token: keys.token, body: { siteId: "web", windowSeconds: 10 } });
    const ruleId = await insertRule(
      keys.orgId,
      { tagName: "free", metric: "p95_latency", operator: "gt", threshold: 500, action: "block", priority: 1 },
      "web",
    );
    const idle = await call("GET", "/v1/sites/web/status", { token: keys.token });
    expect(idle.status, idle.text).toBe(200);
    expect(idle.json).toMatchObject({ siteId: "web", window: { seconds: 10, calls: 0, pulses: 0, instances: 0, p95: null }, tags: {} });
    expect(idle.json.rules).toEqual([expect.objectContaining({ id: ruleId, active: false, applied: false, firedAt: null, value: 0 })]);

    // one slow instance among three: the merged p95 is the slow one's, while the mean is not
    const now = Date.now();
    for (const [i, latency] of [900, 50, 50].entries()) {
      const res = await sendPulse(
        keys,
        seedPulse({
          siteId: "web",
          instanceId: `web-0${i}`,
          ts: now,
          usageDelta: 100,
          bouncedUnits: 0,
          metrics: { latency, errors: i },
          tagMetrics: [{ tag: "free", latency, count: 100, errors: i }],
        }),
      );
      expect(res.status, res.text).toBe(200);
    }
    const busy = await call("GET", "/v1/sites/web/status", { token: keys.token });
    expect(busy.json.window).toMatchObject({ calls: 300, rps: 30, errors: 3, errorRate: 0.01, pulses: 3, instances: 3 });
    expect(busy.json.window.latency).toBeCloseTo(1000 / 3, 0);
    expect(busy.json.window.p95).toBeGreaterThan(800);
    expect(busy.json.tags.free).toMatchObject({ calls: 300, errors: 3 });
    expect(busy.json.rules[0]).toMatchObject({ id: ruleId, active: true, applied: true });
    expect(busy.json.rules[0].value).toBeGreaterThan(800);
    expect(busy.json.rules[0].firedAt).toBeGreaterThanOrEqual(now);
    expect(busy.json.policy.tagMaxWeights).toMatchObject({ free: 0 });
    expect(busy.json.events[0]).toMatchObject({ kind: "fired", ruleId });
  });
});

/** The documented advanced exports, each on its own, and their agreement with the protocol package. */
import { readFileSync } from "node:fs";
import { createHmac } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { PolicySchema, PulseSchema } from "@waitstate/protocol";
import {
  AuthManager,
  LatencyHistogram,
  MAX_SDK_TAGS,
  PolicyCache,
  TelemetryCollector,
  WaitStateError,
  buildPulses,
  createSignedHeaders,
  createTokenExchangeHeaders,
  gate,
  parsePolicy,
  signPulse,
  signTokenExchange,
} from "../src/index.js";
import { POLICY_CASES, brokenPolicyCase, policyMismatch, type PolicyOutcome } from "../../protocol/test/vectors.js";
import { startControlPlane, type FakeControlPlane } from "./support/control-plane.js";
import { eventually } from "./support/client.js";

const HMAC = JSON.parse(readFileSync(new URL("../../protocol/vectors/hmac.json", import.meta.url), "utf8")) as {
  cases: Array<{ name: string; body: string; timestamp: string; secretKey: string; expect: string }>;
};

describe("gate(policy, tag?, weight?)", () => {
  it("decides on the policy it is given, as if just synced", () => {
    const policy = { globalMaxWeight: 10, tagMaxWeights: { free: 0, pro: 5, vip: null } };
    expect(gate(policy, "free")).toEqual({ allowed: false, reason: "tag_blocked" });
    expect(gate(policy, "pro", 5)).toEqual({ allowed: true, reason: "allowed" });
    expect(gate(policy, "pro", 6)).toEqual({ allowed: false, reason: "over_weight" });
    expect(gate(policy, "vip", 1e9)).toEqual({ allowed: true, reason: "allowed" });
    expect(gate(policy, undefined, 11)).toEqual({ allowed: false, reason: "over_weight" });
    expect(gate({ globalMaxWeight: 0 }, "x")).toEqual({ allowed: false, reason: "global_block" });
    expect(gate({ killSignal: true }, "x")).toEqual({ allowed: false, reason: "kill_signal" });
    expect(gate({ status: "cap_exceeded", globalMaxWeight: 0 }, "x")).toEqual({ allowed: true, reason: "cap_exceeded" });
    expect(gate(null, "x", 1e9)).toEqual({ allowed: true, reason: "allowed" });
  });
});

describe("PolicyCache", () => {
  it("get / update / reset, with the ETag", () => {
    const cache = new PolicyCache();
    expect(cache.get()).toBeNull();
    const parsed = parsePolicy({ version: 7, tagMaxWeights: { free: 0 } });
    if (!parsed.ok) throw new Error(parsed.message);
    cache.update(parsed.policy, '"k3-7"');
    expect(cache.get()?.version).toBe(7);
    expect(cache.etag).toBe('"k3-7"');
    cache.reset();
    expect(cache.get()).toBeNull();
    expect(cache.etag).toBeNull();
  });
});

describe("parsePolicy agrees with the protocol's PolicySchema", () => {
  const inputs: unknown[] = [
    {},
    {
      version: 3,
      globalMaxWeight: null,
      tagMaxWeights: { free: 0, pro: 2.5, vip: null },
      killSignal: true,
      status: "over_limit",
      pulseInterval: 2000,
      leaseDurationSeconds: 120,
      issuedAt: 1740000060000,
    },
    { status: "suspended", retryAfterSeconds: 60 },
    { status: "cap_exceeded", pulseInterval: 300000 },
    null,
    [],
    "policy",
    { version: -1 },
    { version: 1.5 },
    { globalMaxWeight: -1 },
    { globalMaxWeight: "10" },
    { globalMaxWeight: Infinity },
    { tagMaxWeights: { free: -2 } },
    { tagMaxWeights: { "": 1 } },
    { tagMaxWeights: { ["x".repeat(129)]: 1 } },
    { tagMaxWeights: [] },
    { killSignal: "yes" },
    { status: "maybe" },
    { pulseInterval: 99 },
    { pulseInterval: 3_600_001 },
    { leaseDurationSeconds: 0 },
    { leaseDurationSeconds: 86_401 },
    { issuedAt: -5 },
    { retryAfterSeconds: 0 },
    { retryAfterSeconds: 31 * 86_400 + 1 },
  ];
  it.each(inputs.map((i) => [JSON.stringify(i) ?? String(i), i]))("%s", (_label, input) => {
    const mine = parsePolicy(input);
    const theirs = PolicySchema.safeParse(input);
    expect(mine.ok).toBe(theirs.success);
    if (mine.ok && theirs.success) expect(mine.policy).toEqual(theirs.data);
    if (!mine.ok) expect(mine.message).toMatch(/: /);
  });
});

describe("parsePolicy: policy.json vectors", () => {
  const run = (input: unknown): PolicyOutcome => {
    const parsed = parsePolicy(input);
    return parsed.ok ? { valid: true, policy: parsed.policy } : { valid: false, path: parsed.path };
  };
  it.each(POLICY_CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    expect(policyMismatch(c, run(c.input))).toBeNull();
  });
  it("fails on deliberately broken vectors", () => {
    for (const c of POLICY_CASES) {
      expect(policyMismatch(brokenPolicyCase(c), run(c.input)), c.name).not.toBeNull();
      expect(policyMismatch(brokenPolicyCase(c, true), run(c.input)), c.name).not.toBeNull();
    }
  });
});

describe("signPulse / createSignedHeaders", () => {
  it.each(HMAC.cases.map((c) => [c.name, c]))("hmac vector: %s", (_name, c) => {
    expect(signPulse(c.body, c.timestamp, c.secretKey)).toBe(c.expect);
  });

  it("signs body + '.' + timestamp and names the key", () => {
    const headers = createSignedHeaders('{"a":1}', "pk_1", "sk_1", 1740000060000.7);
    expect(headers).toEqual({
      "content-type": "application/json",
      "x-waitstate-id": "pk_1",
      "x-waitstate-timestamp": "1740000060000",
      "x-waitstate-signature": createHmac("sha256", "sk_1").update('{"a":1}.1740000060000').digest("hex"),
    });
    const now = Number(createSignedHeaders("{}", "pk", "sk")["x-waitstate-timestamp"]);
    expect(Math.abs(now - Date.now())).toBeLessThan(1000);
  });
});

const EXCHANGE = JSON.parse(readFileSync(new URL("../../protocol/vectors/token-exchange.json", import.meta.url), "utf8")) as {
  cases: Array<{ name: string; body: string; timestamp: string; secretKey: string; expect: string }>;
};

describe("signTokenExchange / createTokenExchangeHeaders", () => {
  it.each(EXCHANGE.cases.map((c) => [c.name, c]))("token-exchange vector: %s", (_name, c) => {
    expect(signTokenExchange(c.timestamp, c.secretKey, c.body)).toBe(c.expect);
  });

  it("carries the publish key, the timestamp and the signature, never the secret", () => {
    const headers = createTokenExchangeHeaders("pk_1", "sk_1", 1740000060000);
    expect(headers).toEqual({
      "x-waitstate-id": "pk_1",
      "x-waitstate-timestamp": "1740000060000",
      "x-waitstate-signature": createHmac("sha256", "sk_1").update("POST\n/v1/auth/token\n.1740000060000").digest("hex"),
    });
    expect(JSON.stringify(headers)).not.toContain("sk_1");
  });
});

describe("AuthManager", () => {
  let cp: FakeControlPlane;
  afterEach(async () => cp?.stop());

  it("exchanges the keys, refreshes on invalidate, and stops", async () => {
    cp = await startControlPlane();
    const errors: WaitStateError[] = [];
    const auth = new AuthManager({ baseUrl: cp.url, publishKey: cp.publishKey, secretKey: cp.secretKey, onError: (e) => errors.push(e) });
    expect(await auth.authenticate()).toBe(true);
    expect(auth.orgId).toBe("org_test");
    expect(auth.validToken()).toBe(cp.tokensIssued[0]);
    expect(auth.expiresAt).toBeGreaterThan(Date.now() + 14 * 60_000);
    auth.invalidate();
    expect(auth.validToken()).toBeNull();
    // The fake server records the token before the client has read its answer: wait for the client's own state.
    await eventually(() => auth.validToken() !== null, 10_000, "the client to hold a new token");
    expect(cp.tokensIssued).toHaveLength(2);
    expect(auth.validToken()).toBe(cp.tokensIssued[1]);
    auth.stop();
    expect(errors).toEqual([]);
  }, 20_000);

  it("a wrong secret is AUTH_FAILED with the server's status and code", async () => {
    cp = await startControlPlane();
    const errors: WaitStateError[] = [];
    const auth = new AuthManager({ baseUrl: cp.url, publishKey: cp.publishKey, secretKey: "wrong", onError: (e) => errors.push(e) });
    expect(await auth.authenticate()).toBe(false);
    auth.stop();
    expect(errors[0]).toBeInstanceOf(WaitStateError);
    expect(errors[0]).toMatchObject({ code: "AUTH_FAILED", status: 401 });
    expect(errors[0]!.message).toMatch(/INVALID_SIGNATURE/);
  });

  it("an unreachable control plane is AUTH_FAILED with status 0", async () => {
    cp = await startControlPlane();
    const url = cp.url;
    await cp.stop();
    const errors: WaitStateError[] = [];
    const auth = new AuthManager({ baseUrl: url, publishKey: "pk", secretKey: "sk", timeoutMs: 500, onError: (e) => errors.push(e) });
    expect(await auth.authenticate()).toBe(false);
    auth.stop();
    expect(errors[0]).toMatchObject({ code: "AUTH_FAILED", status: 0 });
    expect(errors[0]!.message).toContain(`connection refused by 127.0.0.1:${new URL(url).port}`);
  });
});

describe("TelemetryCollector", () => {
  it("take() hands over what was collected and starts afresh", () => {
    const t = new TelemetryCollector();
    t.reportLatency(5, "a");
    t.reportError("a");
    t.report("queue_depth", 3, "a");
    const taken = t.take();
    expect(taken.get("a")!.histogram.count).toBe(1);
    expect(taken.get("a")!.errors).toBe(1);
    expect(taken.get("a")!.custom.get("queue_depth")).toEqual({ min: 3, max: 3, sum: 3, count: 1 });
    expect(t.take().size).toBe(0);
  });

  it("bounds its tags: past the cap, and for over-long tags, values go to __other__", () => {
    const t = new TelemetryCollector();
    for (let i = 0; i < 1000; i++) t.reportLatency(1, `tag${i}`);
    t.reportError("y".repeat(200));
    const taken = t.take();
    expect(taken.size).toBe(MAX_SDK_TAGS + 1);
    expect(taken.get("__other__")!.histogram.count).toBe(1000 - MAX_SDK_TAGS);
    expect(taken.get("__other__")!.errors).toBe(1);
  });
});

describe("buildPulses", () => {
  const meta = { instanceId: "web-01", siteId: "prod", ts: 1_740_000_060_000 };

  it("one interval → one body the real PulseSchema accepts, with site metrics merged from every tag", () => {
    const t = new TelemetryCollector();
    t.reportLatency(10, "free");
    t.reportLatency(1000, "pro");
    t.reportError("pro");
    const [pulse, ...rest] = buildPulses(
      {
        usageDelta: 5,
        bouncedUnits: 2,
        tags: [
          { tag: "free", count: 3, bounced: 2 },
          { tag: "pro", count: 2, bounced: 0 },
        ],
      },
      t.take(),
      meta,
    );
    expect(rest).toEqual([]);
    const parsed = PulseSchema.safeParse(JSON.parse(pulse!.body));
    expect(parsed.success).toBe(true);
    const body = parsed.data!;
    expect(body).toMatchObject({ instanceId: "web-01", siteId: "prod", usageDelta: 5, bouncedUnits: 2, ts: meta.ts });
    expect(body.metrics.errors).toBe(1);
    expect(body.metrics.latencyHistogram!.n).toBe(2);
    const site = LatencyHistogram.decode(body.metrics.latencyHistogram);
    const p100 = site.ok ? site.value.quantile(1)! : 0;
    expect(Math.abs(p100 - 1000) / 1000).toBeLessThan(0.05); // the histogram's bucket error
    expect(site.ok && site.value.quantile(0.25)).toBeLessThan(11);
  });

  it("splits what would pass the byte budget into bodies with consecutive ts, each within it, calls summing up", () => {
    const t = new TelemetryCollector();
    const tags = Array.from({ length: 200 }, (_, i) => ({ tag: `tenant-${i}`, count: i + 1, bounced: i % 2 }));
    for (const { tag } of tags) for (let v = 1; v < 2000; v *= 1.3) t.reportLatency(v, tag);
    const usageDelta = tags.reduce((n, x) => n + x.count, 0);
    const bouncedUnits = tags.reduce((n, x) => n + x.bounced, 0);
    const pulses = buildPulses({ usageDelta, bouncedUnits, tags }, t.take(), meta, 8 * 1024);
    expect(pulses.length).toBeGreaterThan(3);
    pulses.forEach((p, i) => {
      expect(Buffer.byteLength(p.body)).toBeLessThanOrEqual(8 * 1024);
      expect(p.ts).toBe(meta.ts + i);
      const parsed = PulseSchema.safeParse(JSON.parse(p.body));
      expect(parsed.success).toBe(true);
      expect(parsed.data!.usageDelta).toBe(p.usageDelta);
    });
    expect(pulses.reduce((n, p) => n + p.usageDelta, 0)).toBe(usageDelta);
    expect(pulses.reduce((n, p) => n + p.bouncedUnits, 0)).toBe(bouncedUnits);
    const bodies = pulses.map((p) => JSON.parse(p.body) as { metrics: { latencyHistogram?: unknown }; tagMetrics: unknown[] });
    expect(bodies[0]!.metrics.latencyHistogram).toBeDefined();
    expect(bodies.slice(1).every((b) => b.metrics.latencyHistogram === undefined)).toBe(true);
    expect(bodies.reduce((n, b) => n + b.tagMetrics.length, 0)).toBe(200);
  });
});

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { WaitState, WaitStateError, type WaitStateOptions } from "../src/index.js";
import { clockRunning } from "../src/clock.js";
import { startControlPlane, type FakeControlPlane } from "./support/control-plane.js";
import { clientOf, eventually, sleep, type TestClient } from "./support/client.js";

let cp: FakeControlPlane;
const clients: TestClient[] = [];
function client(extra: Partial<WaitStateOptions> = {}): TestClient {
  const c = clientOf(cp, extra);
  clients.push(c);
  return c;
}

beforeEach(async () => {
  cp = await startControlPlane({ pulseInterval: 100 });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.ws.shutdown()));
  await cp.stop();
});

describe("options", () => {
  const base = { publishKey: "pk", secretKey: "sk", baseUrl: "http://127.0.0.1:1" };
  beforeEach(() => {
    vi.stubEnv("WAITSTATE_BASE_URL", undefined);
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ["no baseUrl and no WAITSTATE_BASE_URL", { publishKey: "pk", secretKey: "sk" }, /baseUrl is required.*WAITSTATE_BASE_URL/],
    ["no publishKey", { secretKey: "sk" }, /publishKey is required/],
    ["empty secretKey", { publishKey: "pk", secretKey: " " }, /secretKey is required/],
    ["siteId with a space", { ...base, siteId: "site prod" }, /siteId must be/],
    ["instanceId too long", { ...base, instanceId: "i".repeat(129) }, /instanceId must be/],
    ["pulseInterval below 100", { ...base, pulseInterval: 50 }, /pulseInterval must be an integer/],
    ["pulseInterval not an integer", { ...base, pulseInterval: 1000.5 }, /pulseInterval/],
    ["baseUrl not a URL", { ...base, baseUrl: "api.waitstate.io" }, /baseUrl must be an http\(s\) URL/],
    ["baseUrl ftp", { ...base, baseUrl: "ftp://x" }, /baseUrl/],
    ["unknown strategy", { ...base, safeModeStrategy: "closed" }, /safeModeStrategy must be one of open, fixed_rps, last_policy/],
    ["negative safeModeMaxRps", { ...base, safeModeMaxRps: -1 }, /safeModeMaxRps/],
    ["NaN safeModeMaxRps", { ...base, safeModeMaxRps: Number.NaN }, /safeModeMaxRps/],
    ["onError not a function", { ...base, onError: "log" }, /onError must be a function/],
    ["a typo", { ...base, pulseIntervall: 1000 }, /unknown option "pulseIntervall"/],
    ["requestTimeoutMs zero", { ...base, requestTimeoutMs: 0 }, /requestTimeoutMs/],
  ];
  it.each(bad)("%s → WaitStateError INVALID_OPTIONS", (_name, options, message) => {
    let thrown: unknown;
    try {
      new WaitState(options as unknown as WaitStateOptions);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(WaitStateError);
    expect((thrown as WaitStateError).code).toBe("INVALID_OPTIONS");
    expect((thrown as WaitStateError).message).toMatch(message);
  });

  it("reads baseUrl from WAITSTATE_BASE_URL when the option is absent; the option wins", async () => {
    vi.stubEnv("WAITSTATE_BASE_URL", `${cp.url}/`);
    const fromEnv = new WaitState({ publishKey: cp.publishKey, secretKey: cp.secretKey, onError: () => {} });
    clients.push({ ws: fromEnv, errors: [] } as unknown as TestClient);
    expect(await fromEnv.ready(5000)).toBe(true);
    vi.stubEnv("WAITSTATE_BASE_URL", "not a url");
    expect(() => new WaitState({ publishKey: "pk", secretKey: "sk" })).toThrow(
      /WAITSTATE_BASE_URL \(no baseUrl option given\) must be an http\(s\) URL/,
    );
    const explicit = new WaitState({ publishKey: cp.publishKey, secretKey: cp.secretKey, baseUrl: cp.url, onError: () => {} });
    clients.push({ ws: explicit, errors: [] } as unknown as TestClient);
    expect(await explicit.ready(5000)).toBe(true);
  });

  it("a missing options object is a WaitStateError too", () => {
    expect(() => new WaitState(undefined as unknown as WaitStateOptions)).toThrow(WaitStateError);
  });

  it("defaults: random instanceId, no siteId on the wire, the given baseUrl without trailing slash", async () => {
    const { ws } = client({ baseUrl: `${cp.url}/` });
    expect(ws.instanceId).toMatch(/^[0-9a-f-]{36}$/);
    expect(ws.siteId).toBeUndefined();
    await cp.nextPulses(1);
    expect(cp.pulses[0]!.body.instanceId).toBe(ws.instanceId);
    expect("siteId" in cp.pulses[0]!.body).toBe(false);
    expect(cp.requests).toContain("POST /v1/pulse");
  });

  it("siteId and instanceId reach the pulse", async () => {
    client({ siteId: "site-prod", instanceId: "web-01" });
    await cp.nextPulses(1);
    expect(cp.pulses[0]!.body).toMatchObject({ siteId: "site-prod", instanceId: "web-01" });
  });

  it("without onError, failures become a console warning at most once a minute per code", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const ws = new WaitState({ publishKey: cp.publishKey, secretKey: cp.secretKey, baseUrl: cp.url, pulseInterval: 100 });
      clients.push({ ws, errors: [] });
      ws.report("Bad Name", 1);
      ws.report("Bad Name", 1);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toMatch(/\[waitstate\] INVALID_METRIC_NAME/);
    } finally {
      warn.mockRestore();
    }
  });

  it("an onError that throws does not break the client", async () => {
    const { ws } = client({
      onError: () => {
        throw new Error("user bug");
      },
    });
    ws.reportLatency(-1);
    expect(await ws.ready(2000)).toBe(true);
  });
});

describe("gate and lifecycle", () => {
  it("the constructor returns at once and allows everything until the first sync (bootstrap)", () => {
    cp.setPolicy({ globalMaxWeight: 0 });
    const { ws } = client();
    expect(ws.status().synced).toBe(false);
    expect(ws.gate("free", 100)).toEqual({ allowed: true, reason: "allowed" });
  });

  it("the pulse answer installs the policy; a change reaches the gate on a later pulse", async () => {
    const { ws } = client();
    expect(await ws.ready(2000)).toBe(true);
    expect(ws.gate("free")).toEqual({ allowed: true, reason: "allowed" });
    cp.setPolicy({ tagMaxWeights: { free: 0, pro: 5 }, globalMaxWeight: 10 });
    await eventually(() => ws.gate("free").reason === "tag_blocked", 2000, "free blocked");
    expect(ws.gate("pro", 5)).toEqual({ allowed: true, reason: "allowed" });
    expect(ws.gate("pro", 6)).toEqual({ allowed: false, reason: "over_weight" });
    expect(ws.gate("other", 11)).toEqual({ allowed: false, reason: "over_weight" });
    expect(ws.gate()).toEqual({ allowed: true, reason: "allowed" });
    expect(ws.policy?.version).toBe(cp.policy.version);
    expect(ws.status().policyVersion).toBe(cp.policy.version);
    cp.setPolicy({ killSignal: true });
    await eventually(() => ws.gate("pro", 1).reason === "kill_signal", 2000, "kill");
    cp.setPolicy({ killSignal: false, globalMaxWeight: 0, tagMaxWeights: {} });
    await eventually(() => ws.gate("x").reason === "global_block", 2000, "global block");
  });

  it("never throws and keeps bad arguments harmless", async () => {
    const { ws } = client();
    await ws.ready(2000);
    cp.setPolicy({ globalMaxWeight: 1 });
    await eventually(() => ws.gate("a", 2).reason === "over_weight", 2000);
    const odd: unknown[] = [null, 42, {}, Symbol("s"), "", "x".repeat(500)];
    for (const tag of odd) {
      expect(() => ws.gate(tag as string, Number.NaN)).not.toThrow();
      expect(ws.gate(tag as string, Number.NaN).allowed).toBe(true); // NaN weight counts as 1
    }
    expect(ws.gate("a", -5)).toEqual({ allowed: true, reason: "allowed" }); // negative → 0
  });

  it("results are shared frozen objects", async () => {
    const { ws } = client();
    const a = ws.gate("x");
    const b = ws.gate("y");
    expect(a).toBe(b);
    expect(Object.isFrozen(a)).toBe(true);
  });

  it("counts every call per tag: usageDelta and bouncedUnits equal the calls made", async () => {
    const { ws } = client();
    await ws.ready(2000);
    cp.setPolicy({ tagMaxWeights: { free: 0 } });
    await eventually(() => ws.gate("free").reason === "tag_blocked", 2000);
    for (let i = 0; i < 500; i++) ws.gate(i % 2 ? "free" : "pro");
    await ws.shutdown();
    const calls = cp.countedUsage();
    // 500 plus the polling calls made while waiting for the block
    const polling = calls - 500;
    expect(polling).toBeGreaterThan(0);
    const perTag = new Map<string, { count: number; bounced: number }>();
    for (const p of cp.pulses) {
      for (const t of (p.body.tagMetrics as Array<{ tag: string; count: number; bounced: number }>) ?? []) {
        const prev = perTag.get(t.tag) ?? { count: 0, bounced: 0 };
        perTag.set(t.tag, { count: prev.count + t.count, bounced: prev.bounced + t.bounced });
      }
    }
    expect(perTag.get("pro")).toEqual({ count: 250, bounced: 0 });
    expect(perTag.get("free")!.count).toBe(250 + polling);
    expect(cp.countedBounced()).toBe(perTag.get("free")!.bounced);
  });

  it("tags named like Object.prototype members are ordinary tags: policy entries, gate, pulses and telemetry", async () => {
    const { ws } = client();
    await ws.ready(2000);
    // As the control plane sends it: JSON, where "__proto__" is an own key.
    cp.setPolicy({
      globalMaxWeight: 0,
      tagMaxWeights: JSON.parse('{"__proto__": 0, "toString": 0, "valueOf": null, "constructor": 5}') as Record<string, number | null>,
    });
    await eventually(() => ws.gate("__proto__").reason === "tag_blocked", 2000);
    const tags = ws.policy!.tagMaxWeights;
    expect(Object.getPrototypeOf(tags)).toBeNull();
    expect(Object.keys(tags).sort()).toEqual(["__proto__", "constructor", "toString", "valueOf"]);
    expect(tags.hasOwnProperty).toBeUndefined();
    expect(ws.gate("toString")).toEqual({ allowed: false, reason: "tag_blocked" });
    expect(ws.gate("valueOf", 1e6)).toEqual({ allowed: true, reason: "allowed" });
    expect(ws.gate("constructor", 6)).toEqual({ allowed: false, reason: "over_weight" });
    expect(ws.gate("hasOwnProperty")).toEqual({ allowed: false, reason: "global_block" });
    ws.reportLatency(12, "__proto__");
    ws.reportError("constructor");
    ws.report("depth", 3, "toString");
    await ws.shutdown();
    const seen = new Map<string, { count: number; errors: number; custom?: unknown }>();
    for (const p of cp.pulses) {
      for (const t of (p.body.tagMetrics as Array<{ tag: string; count: number; errors: number; customMetrics?: unknown }>) ?? []) {
        const prev = seen.get(t.tag);
        seen.set(t.tag, {
          count: (prev?.count ?? 0) + t.count,
          errors: (prev?.errors ?? 0) + t.errors,
          custom: t.customMetrics ?? prev?.custom,
        });
      }
    }
    expect(seen.get("toString")).toMatchObject({ count: 1, custom: { depth: { min: 3, max: 3, sum: 3, count: 1 } } });
    expect(seen.get("valueOf")?.count).toBe(1);
    expect(seen.get("constructor")).toMatchObject({ count: 1, errors: 1 });
    expect(seen.get("hasOwnProperty")?.count).toBe(1);
    expect(seen.get("__proto__")!.count).toBeGreaterThanOrEqual(1);
  });

  it("ts strictly increases per instance and every pulse is signed (the server verifies and counts each)", async () => {
    client();
    await cp.nextPulses(6, 3000);
    const ts = cp.pulses.map((p) => p.body.ts);
    for (let i = 1; i < ts.length; i++) expect(ts[i]).toBeGreaterThan(ts[i - 1]!);
    expect(cp.pulses.every((p) => p.counted)).toBe(true);
  });

  it("each pulse names the ts of the one before it (prevTs); a first pulse has none", async () => {
    client();
    await cp.nextPulses(3, 3000);
    const [first, ...rest] = cp.pulses.map((p) => p.body);
    expect(first!.prevTs).toBeUndefined();
    rest.forEach((body, i) => expect(body.prevTs).toBe(cp.pulses[i]!.body.ts));
  });

  it("an answer saying another process shares the instanceId goes to onError as DUPLICATE_INSTANCE; the pulse counts as sent", async () => {
    cp.duplicateInstance = true;
    const { ws, errors } = client({ instanceId: "shared" });
    await ws.ready(2000);
    await eventually(() => errors.some((e) => e.code === "DUPLICATE_INSTANCE"), 2000, "DUPLICATE_INSTANCE");
    const error = errors.find((e) => e.code === "DUPLICATE_INSTANCE")!;
    expect(error).toBeInstanceOf(WaitStateError);
    expect(error.status).toBe(200);
    expect(error.message).toContain('"shared"');
    expect(errors.filter((e) => e.code !== "DUPLICATE_INSTANCE")).toEqual([]);
    expect(ws.status().synced).toBe(true);
  });

  it("follows the server's pulse interval (with jitter)", async () => {
    cp.setPolicy({ pulseInterval: 300 });
    const { ws } = client({ pulseInterval: 5000 });
    await ws.ready(2000);
    expect(ws.status().pulseIntervalMs).toBe(300);
    const start = cp.pulses.length;
    await sleep(1500);
    const n = cp.pulses.length - start;
    // 1.5 s at 300 ms ± 10 %: about 5; never the constructor's 5 s
    expect(n).toBeGreaterThanOrEqual(3);
    expect(n).toBeLessThanOrEqual(7);
  });

  it("cap_exceeded: fails open with reason cap_exceeded and pulses every 5 minutes; the lease outlasts the gap", async () => {
    cp.setPolicy({ status: "cap_exceeded", globalMaxWeight: 0, leaseDurationSeconds: 1 });
    const { ws } = client();
    await eventually(() => ws.status().policyStatus === "cap_exceeded", 2000);
    expect(ws.gate("free", 100)).toEqual({ allowed: true, reason: "cap_exceeded" });
    expect(ws.status().pulseIntervalMs).toBe(300_000);
    const before = cp.pulses.length;
    await sleep(1300);
    expect(cp.pulses.length).toBe(before);
    expect(ws.gate("free", 100)).toEqual({ allowed: true, reason: "cap_exceeded" }); // not lease_expired
  });

  it("suspended: stops pulsing and fails open, then resumes after retryAfterSeconds", async () => {
    // 2 s of stand-down leaves the 700 ms check below a wide margin on a loaded machine.
    cp.setPolicy({ status: "suspended", retryAfterSeconds: 2, leaseDurationSeconds: 1, globalMaxWeight: 0 });
    const { ws } = client();
    await eventually(() => ws.status().suspendedUntil !== null, 2000);
    expect(ws.gate("x", 50)).toEqual({ allowed: true, reason: "suspended" });
    const before = cp.requests.length;
    cp.setPolicy({ status: "ok", globalMaxWeight: 0 });
    await sleep(700);
    // Nothing while standing down: no pulse, read or token exchange. A subscribe sent just before the
    // stand-down may reach the server after it; the socket is closed at once and not reopened.
    expect(cp.requests.slice(before).filter((r) => !r.startsWith("UPGRADE"))).toEqual([]);
    expect(ws.status().pushConnected).toBe(false);
    expect(ws.gate("x").reason).toBe("suspended");
    await eventually(() => ws.gate("x").reason === "global_block", 4000, "resume");
    expect(ws.status().suspendedUntil).toBeNull();
  }, 15_000);

  it("a policy that fails the schema is ignored and reported; the last good one stays", async () => {
    const { ws, errors } = client();
    await ws.ready(2000);
    cp.setPolicy({ tagMaxWeights: { free: 0 } });
    await eventually(() => ws.gate("free").reason === "tag_blocked", 2000);
    cp.fault = "bad_policy";
    await eventually(() => errors.some((e) => e.code === "INVALID_POLICY"), 2000, "INVALID_POLICY");
    expect(errors.find((e) => e.code === "INVALID_POLICY")!.message).toMatch(/globalMaxWeight|pulseInterval/);
    expect(ws.gate("free").reason).toBe("tag_blocked");
    expect(ws.policy?.tagMaxWeights).toEqual({ free: 0 });
  });

  it("a policy it cannot install (4097 tags) still honours the kill switch, says so, and a valid policy lifts it", async () => {
    const { ws, errors } = client();
    await ws.ready(2000);
    expect(ws.gate("free")).toEqual({ allowed: true, reason: "allowed" });
    const tooMany = Object.fromEntries(Array.from({ length: 4097 }, (_, i) => [`t${i}`, null]));
    cp.setPolicy({ tagMaxWeights: tooMany, killSignal: true });
    await eventually(() => ws.gate("free").reason === "kill_signal", 3000, "kill_signal");
    for (const tag of ["t1", "__proto__", "toString", undefined]) expect(ws.gate(tag)).toEqual({ allowed: false, reason: "kill_signal" });
    const reports = errors.filter((e) => e.code === "INVALID_POLICY");
    expect(reports.length).toBeGreaterThan(0);
    expect(reports[0]!.message).toMatch(/tagMaxWeights: at most 4096 tag entries.*carries the kill switch, which is honoured/);
    expect(ws.policy?.killSignal).toBe(true);
    expect(ws.status().safeMode).toBe(false);
    cp.setPolicy({ tagMaxWeights: { free: 0 }, killSignal: false });
    await eventually(() => ws.gate("pro").reason === "allowed", 3000, "kill switch lifted");
    expect(ws.gate("free")).toEqual({ allowed: false, reason: "tag_blocked" });
  });
});

describe("auth and policy reads", () => {
  it("reads the policy with the JWT while pulses fail: a change arrives as 200, then 304s keep the lease", async () => {
    cp.setPolicy({ pulseInterval: 500, leaseDurationSeconds: 2 });
    const { ws, errors } = client({ pulseInterval: 500 });
    await ws.ready(2000);
    cp.pulseFailStatus = 503;
    cp.setPolicy({ pulseInterval: 500, leaseDurationSeconds: 2, tagMaxWeights: { free: 0 } });
    await eventually(() => ws.gate("free").reason === "tag_blocked", 5000, "policy read");
    await eventually(() => cp.policyReadStatuses.includes(304), 5000, "a 304");
    await sleep(2500); // longer than the lease: only reads keep it
    expect(ws.status().safeMode).toBe(false);
    expect(ws.gate("free").reason).toBe("tag_blocked");
    expect(cp.policyReadStatuses.filter((s) => s === 304).length).toBeGreaterThanOrEqual(2);
    expect(errors.some((e) => e.code === "PULSE_FAILED" && e.status === 503)).toBe(true);
    cp.pulseFailStatus = null;
  });

  it("refreshes the token 2 minutes before it expires", async () => {
    cp.tokenTtlMs = 120_000 + 300; // refresh due in 300 ms → at least 1 s
    client();
    await eventually(() => cp.tokensIssued.length >= 2, 4000, "second token");
    expect(cp.requests.filter((r) => r === "POST /v1/auth/token").length).toBeGreaterThanOrEqual(2);
  });

  it("a failed key exchange goes to onError and pulses go on", async () => {
    cp.tokenStatus = 401;
    const { ws, errors } = client();
    expect(await ws.ready(2000)).toBe(true);
    await eventually(() => errors.some((e) => e.code === "AUTH_FAILED"), 2000);
    const authError = errors.find((e) => e.code === "AUTH_FAILED")!;
    expect(authError.status).toBe(401);
    expect(authError).toBeInstanceOf(WaitStateError);
    await cp.nextPulses(2);
  });
});

describe("telemetry", () => {
  it("latency, errors, timers and custom metrics reach the pulse per tag and site-wide", async () => {
    const { ws } = client();
    await ws.ready(2000);
    await cp.nextPulses(1);
    const from = cp.pulses.length;
    ws.reportLatency(10, "search");
    ws.reportLatency(30, "search");
    ws.reportLatency(500);
    ws.reportError("search");
    ws.reportError();
    ws.report("queue_depth", 87, "search");
    ws.report("queue_depth", 13, "search");
    ws.report("active_connections", 142);
    const stop = ws.startTimer("timed");
    await sleep(20);
    const elapsed = stop();
    expect(elapsed).toBeGreaterThanOrEqual(15);
    expect(stop()).toBe(elapsed); // once only
    await cp.nextPulses(2);
    const bodies = cp.pulses.slice(from).map(
      (p) =>
        p.body as unknown as {
          metrics: { latency: number; errors: number; latencyHistogram?: { n: number } };
          tagMetrics: Array<{
            tag: string;
            latency: number;
            errors: number;
            latencyHistogram?: { n: number; s: number };
            customMetrics?: Record<string, unknown>;
          }>;
        },
    );
    const withData = bodies.find((b) => b.tagMetrics.some((t) => t.tag === "search"))!;
    const search = withData.tagMetrics.find((t) => t.tag === "search")!;
    expect(search.latency).toBe(20);
    expect(search.errors).toBe(1);
    expect(search.latencyHistogram).toMatchObject({ n: 2, s: 40 });
    expect(search.customMetrics).toEqual({ queue_depth: { min: 13, max: 87, sum: 100, count: 2 } });
    const def = withData.tagMetrics.find((t) => t.tag === "__default__")!;
    expect(def.customMetrics).toEqual({ active_connections: { min: 142, max: 142, sum: 142, count: 1 } });
    expect(def.errors).toBe(1);
    expect(withData.tagMetrics.find((t) => t.tag === "timed")!.latencyHistogram!.n).toBe(1);
    expect(withData.metrics.errors).toBe(2);
    expect(withData.metrics.latencyHistogram!.n).toBe(4); // merged from every tag
  });

  const badCalls: Array<[string, (ws: WaitState) => void, string]> = [
    ["reportLatency(NaN)", (ws) => ws.reportLatency(Number.NaN), "INVALID_VALUE"],
    ["reportLatency(-1)", (ws) => ws.reportLatency(-1), "INVALID_VALUE"],
    ["reportLatency(Infinity)", (ws) => ws.reportLatency(Infinity), "INVALID_VALUE"],
    ["reportLatency('5')", (ws) => ws.reportLatency("5" as unknown as number), "INVALID_VALUE"],
    ["report with uppercase", (ws) => ws.report("QueueDepth", 1), "INVALID_METRIC_NAME"],
    ["report starting with a digit", (ws) => ws.report("1queue", 1), "INVALID_METRIC_NAME"],
    ["report with a dash", (ws) => ws.report("queue-depth", 1), "INVALID_METRIC_NAME"],
    ["report of 64 characters", (ws) => ws.report("a".repeat(64), 1), "INVALID_METRIC_NAME"],
    ["report of a reserved name", (ws) => ws.report("p95_latency", 1), "INVALID_METRIC_NAME"],
    ["report of latency", (ws) => ws.report("latency", 1), "INVALID_METRIC_NAME"],
    ["report of errors", (ws) => ws.report("errors", 1), "INVALID_METRIC_NAME"],
    ["report of NaN", (ws) => ws.report("queue_depth", Number.NaN), "INVALID_VALUE"],
  ];
  it.each(badCalls)("%s goes to onError, never throws", (_name, call, code) => {
    const { ws, errors } = client();
    expect(() => call(ws)).not.toThrow();
    expect(errors.map((e) => e.code)).toEqual([code]);
  });

  it("accepts the longest valid name (63) and a tag's 64 metric names; the 65th is dropped with TOO_MANY_METRICS", () => {
    const { ws, errors } = client();
    ws.report("a".repeat(63), 1);
    for (let i = 1; i < 64; i++) ws.report(`m${i}`, i);
    expect(errors).toEqual([]);
    ws.report("one_too_many", 1);
    expect(errors.map((e) => e.code)).toEqual(["TOO_MANY_METRICS"]);
  });
});

describe("shutdown", () => {
  it("sends one final pulse with what is pending, is safe twice, and stops every timer", async () => {
    const { ws } = client({ pulseInterval: 60_000 });
    cp.setPolicy({ pulseInterval: 60_000 });
    await ws.ready(2000);
    for (let i = 0; i < 7; i++) ws.gate("late");
    ws.reportLatency(5, "late");
    const before = cp.pulses.length;
    const first = ws.shutdown();
    expect(ws.shutdown()).toBe(first);
    await first;
    expect(cp.pulses.length).toBe(before + 1);
    expect(cp.pulses.at(-1)!.body.usageDelta).toBe(7);
    expect(ws.status().shutDown).toBe(true);
    const requests = cp.requests.length;
    await sleep(300);
    expect(cp.requests.length).toBe(requests);
    expect(ws.gate("late").allowed).toBe(true); // still answers
    clients.splice(0); // already shut down
    expect(clockRunning()).toBe(false);
    expect(await ws.ready(10)).toBe(true);
  });

  it("a final pulse that cannot be delivered is reported", async () => {
    const { ws, errors } = client();
    await ws.ready(2000);
    ws.gate("x");
    await cp.stop();
    await ws.shutdown();
    expect(errors.some((e) => e.code === "SHUTDOWN_FLUSH_FAILED")).toBe(true);
    await cp.start();
  });

  it("ready() answers false at shutdown when never synced", async () => {
    await cp.stop();
    const { ws } = client();
    const ready = ws.ready(5000);
    await ws.shutdown();
    expect(await ready).toBe(false);
    await cp.start();
  });
});

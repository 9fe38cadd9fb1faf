/**
 * The edge client (`WaitState` from @waitstate/edge) in Node, against the
 * Node SDK's stand-in control plane (a real node:http server that verifies
 * signatures, counts pulses once per (instanceId, ts) and answers policy
 * reads with ETags): construction, the options contract, what sync() does
 * and when, the wire format, the lifecycle's statuses. Twice: with the wasm
 * engine (the default entries) and with the TypeScript one
 * (`@waitstate/edge/fastly`, for runtimes without WebAssembly).
 */
import { createHmac } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { WaitState as WasmWaitState, WaitStateError, type WaitStateOptions } from "@waitstate/edge";
import { WaitState as FastlyWaitState } from "@waitstate/edge/fastly";
import { startControlPlane, type FakeControlPlane } from "../../sdk-node/test/support/control-plane.js";

let cp: FakeControlPlane;

beforeAll(async () => {
  cp = await startControlPlane({ pulseInterval: 1000, leaseDurationSeconds: 60 });
});
afterAll(() => cp.stop());
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  cp.fault = "none";
  cp.pulseFailStatus = null;
  cp.tokenStatus = 200;
  cp.duplicateInstance = false;
});

const ENGINES = [
  ["wasm", WasmWaitState],
  ["typescript", FastlyWaitState],
] as const;

describe.each(ENGINES)("the %s engine", (engine, WaitState) => {
  function clientOf(extra: Partial<WaitStateOptions> = {}) {
    const errors: WaitStateError[] = [];
    const ws = new WaitState({
      publishKey: cp.publishKey,
      secretKey: cp.secretKey,
      baseUrl: cp.url,
      requestTimeoutMs: 1000,
      onError: (e) => errors.push(e),
      ...extra,
      // One control plane for both engines: their instances must not share ids.
      ...(extra.instanceId === undefined ? {} : { instanceId: `${extra.instanceId}-${engine}` }),
    });
    return { ws, errors };
  }

  const pulsesOf = (instanceId: string) => cp.pulses.filter((p) => p.body.instanceId === `${instanceId}-${engine}`);

  describe("construction", () => {
    const base = () => ({ publishKey: "pk", secretKey: "sk", baseUrl: "https://cp.example" });

    it.each<[string, Record<string, unknown>, RegExp]>([
      ["publishKey missing", { publishKey: undefined }, /publishKey is required/],
      ["secretKey blank", { secretKey: "  " }, /secretKey is required/],
      ["baseUrl missing", { baseUrl: undefined }, /baseUrl is required/],
      ["baseUrl not http(s)", { baseUrl: "ftp://x" }, /baseUrl must be an http\(s\) URL/],
      ["baseUrl not a URL", { baseUrl: "cp.example" }, /baseUrl must be an http\(s\) URL/],
      ["an unknown option (a typo)", { safeModeStategy: "open" }, /unknown option "safeModeStategy"/],
      ["siteId with a space", { siteId: "my site" }, /siteId must be/],
      ["instanceId too long", { instanceId: "x".repeat(129) }, /instanceId must be/],
      ["safeModeStrategy unknown", { safeModeStrategy: "closed" }, /safeModeStrategy must be one of open, fixed_rps, last_policy/],
      ["safeModeMaxRps negative", { safeModeMaxRps: -1 }, /safeModeMaxRps must be/],
      ["onError not a function", { onError: "log" }, /onError must be a function/],
      ["pulseInterval out of range", { pulseInterval: 5 }, /pulseInterval must be an integer/],
      ["requestTimeoutMs not an integer", { requestTimeoutMs: 1.5 }, /requestTimeoutMs must be an integer/],
    ])("%s: a WaitStateError INVALID_OPTIONS naming the option", (_name, patch, message) => {
      let thrown: unknown;
      try {
        new WaitState({ ...base(), ...patch } as WaitStateOptions);
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(WaitStateError);
      expect((thrown as WaitStateError).code).toBe("INVALID_OPTIONS");
      expect((thrown as WaitStateError).message).toMatch(message);
    });

    it("does nothing at construction: no request, no random id, no timer", () => {
      const fetchSpy = vi.spyOn(globalThis, "fetch");
      const uuid = vi.spyOn(crypto, "randomUUID");
      const random = vi.spyOn(Math, "random");
      const timers = vi.spyOn(globalThis, "setTimeout");
      const ws = new WaitState(base());
      expect(ws.instanceId).toBeNull();
      expect(ws.status()).toMatchObject({ instanceId: null, synced: false, pendingPulses: 0, nextSyncAt: null });
      expect(ws.gate("free", 1)).toEqual({ allowed: true, reason: "allowed" });
      ws.reportLatency(12, "free");
      ws.report("queue_depth", 3);
      expect(fetchSpy).not.toHaveBeenCalled();
      expect(uuid).not.toHaveBeenCalled();
      expect(random).not.toHaveBeenCalled();
      expect(timers).not.toHaveBeenCalled();
    });

    it("gate() never throws, whatever it is given", () => {
      const { ws } = clientOf();
      for (const [tag, weight] of [
        [null, "x"],
        [42, Number.NaN],
        [{}, -1],
        ["", Number.POSITIVE_INFINITY],
        ["t", 10n],
      ] as const) {
        expect(() => ws.gate(tag as unknown as string, weight as unknown as number)).not.toThrow();
      }
    });

    it("telemetry with bad values goes to onError, typed as in the Node SDK", () => {
      const { ws, errors } = clientOf();
      ws.reportLatency(Number.NaN);
      ws.reportLatency(-1, "free");
      ws.report("Bad-Name", 1);
      ws.report("p95_latency", 1);
      ws.report("queue_depth", Number.POSITIVE_INFINITY);
      expect(errors.map((e) => e.code)).toEqual([
        "INVALID_VALUE",
        "INVALID_VALUE",
        "INVALID_METRIC_NAME",
        "INVALID_METRIC_NAME",
        "INVALID_VALUE",
      ]);
    });
  });

  describe("sync()", () => {
    it("the first sync exchanges the keys and pulses; the answer's policy gates from then on", async () => {
      const { ws, errors } = clientOf({ instanceId: "edge-first" });
      cp.setPolicy({ tagMaxWeights: { free: 0, pro: 5 }, globalMaxWeight: 10 });
      expect(ws.gate("free")).toEqual({ allowed: true, reason: "allowed" });
      const before = cp.requests.length;
      await ws.sync();
      expect(cp.requests.slice(before).sort()).toEqual(["POST /v1/auth/token", "POST /v1/pulse"]);
      expect(errors).toEqual([]);
      expect(ws.status()).toMatchObject({ synced: true, authenticated: true, policyVersion: cp.policy.version, pendingPulses: 0 });
      expect(ws.gate("free")).toEqual({ allowed: false, reason: "tag_blocked" });
      expect(ws.gate("pro", 6)).toEqual({ allowed: false, reason: "over_weight" });
      expect(ws.gate("other", 10)).toEqual({ allowed: true, reason: "allowed" });
      expect(pulsesOf("edge-first")[0]!.body).toMatchObject({ usageDelta: 1, bouncedUnits: 0, tagMetrics: [{ tag: "free", count: 1 }] });
    });

    it("does nothing when nothing is due: no request, the same settled promise", async () => {
      const { ws } = clientOf();
      await ws.sync();
      const before = cp.requests.length;
      const a = ws.sync();
      const b = ws.sync();
      expect(a).toBe(b);
      await a;
      expect(cp.requests.length).toBe(before);
      expect(ws.status().nextSyncAt).toBeGreaterThan(Date.now());
    });

    it("a call while a sync runs joins it rather than sending twice", async () => {
      const { ws } = clientOf();
      const before = cp.requests.length;
      const a = ws.sync();
      expect(ws.sync()).toBe(a);
      await a;
      expect(cp.requests.slice(before).filter((r) => r === "POST /v1/pulse")).toHaveLength(1);
    });

    it("makes its instance id at the first sync, once, and pulses with increasing ts and prevTs", async () => {
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
      const { ws } = clientOf();
      await ws.sync();
      const id = ws.instanceId!;
      expect(id).toMatch(/^edge-[0-9a-f-]{36}$/);
      vi.setSystemTime(Date.now() + 1200);
      await ws.sync();
      expect(ws.instanceId).toBe(id);
      const [p1, p2] = cp.pulses.filter((p) => p.body.instanceId === id);
      expect(p2!.body.ts).toBeGreaterThan(p1!.body.ts);
      expect(p1!.body).not.toHaveProperty("prevTs");
      expect(p2!.body.prevTs).toBe(p1!.body.ts);
    });

    it("pulses the Node SDK's wire format: per-tag counts, errors, mergeable histograms, custom metrics", async () => {
      const { ws } = clientOf({ instanceId: "edge-wire", siteId: "shop" });
      cp.setPolicy({ tagMaxWeights: { free: 0 }, globalMaxWeight: null });
      await ws.sync(); // the policy, so that "free" is denied below
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 1200 });
      ws.gate("free");
      ws.gate("pro", 2);
      ws.gate("pro", 2);
      for (const ms of [10, 20, 400]) ws.reportLatency(ms, "pro");
      ws.reportLatency(5, "free");
      ws.reportError("pro");
      ws.report("queue_depth", 7, "pro");
      ws.report("queue_depth", 3, "pro");
      ws.report("cache_hits", 1);
      await ws.sync();
      const body = pulsesOf("edge-wire").at(-1)!.body as Record<string, unknown>;
      expect(body).toMatchObject({ instanceId: `edge-wire-${engine}`, siteId: "shop", usageDelta: 3, bouncedUnits: 1 });
      const tags = Object.fromEntries((body.tagMetrics as Array<Record<string, unknown>>).map((t) => [t.tag, t]));
      expect(tags.pro).toMatchObject({
        count: 2,
        bounced: 0,
        errors: 1,
        latency: 430 / 3,
        customMetrics: { queue_depth: { min: 3, max: 7, sum: 10, count: 2 } },
      });
      expect(tags.pro!.latencyHistogram).toMatchObject({ n: 3, s: 430, lo: 10, hi: 400 });
      expect(tags.free).toMatchObject({ count: 1, bounced: 1, latencyHistogram: { n: 1 } });
      expect(tags.__default__).toMatchObject({ count: 0, customMetrics: { cache_hits: { count: 1 } } });
      expect(body.metrics).toMatchObject({ errors: 1, latency: 435 / 4, latencyHistogram: { n: 4, s: 435, lo: 5, hi: 400 } });
      // The site histogram is the merge of the tags' (same buckets), as the Node SDK sends it.
      const site = (body.metrics as { latencyHistogram: { b: number[] } }).latencyHistogram.b;
      expect(site.filter((_, i) => i % 2 === 1).reduce((a, b) => a + b, 0)).toBe(4);
      // The next pulse starts afresh.
      vi.setSystemTime(Date.now() + 1200);
      await ws.sync();
      expect(pulsesOf("edge-wire").at(-1)!.body).toMatchObject({ usageDelta: 0, tagMetrics: [], metrics: { latency: 0, errors: 0 } });
    });

    it("reads the policy with the JWT and If-None-Match when due: 304 confirms, 200 installs", async () => {
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
      const { ws, errors } = clientOf({ instanceId: "edge-poll" });
      await ws.sync();
      const reads = cp.policyReadStatuses.length;
      // Pulses fail from now on: only policy reads keep the client in sync.
      cp.pulseFailStatus = 503;
      // The first read is due one read delay after the start: 2 × the option's 5 s interval, ± 10 %.
      vi.setSystemTime(Date.now() + 11_000);
      await ws.sync();
      expect(cp.policyReadStatuses.slice(reads)).toEqual([304]);
      const synced = ws.status().lastSyncAt!;
      expect(synced).toBe(Date.now());
      const next = cp.setPolicy({ tagMaxWeights: { free: 0 } });
      vi.setSystemTime(Date.now() + 2500); // then every 2 × the policy's 1 s interval, ± 10 %
      await ws.sync();
      expect(cp.policyReadStatuses.slice(reads)).toEqual([304, 200]);
      expect(ws.status().policyVersion).toBe(next.version);
      expect(ws.gate("free").reason).toBe("tag_blocked");
      expect(errors.map((e) => e.code)).toContain("PULSE_FAILED");
    });

    it("signs the key exchange over the protocol's string, never sending the secret", async () => {
      const seen: Array<{ url: string; headers: Record<string, string>; body: unknown }> = [];
      const real = globalThis.fetch;
      vi.spyOn(globalThis, "fetch").mockImplementation((input, init) => {
        seen.push({ url: String(input), headers: init?.headers as Record<string, string>, body: init?.body });
        return real(input, init);
      });
      const { ws } = clientOf();
      await ws.sync();
      const exchange = seen.find((s) => s.url.endsWith("/v1/auth/token"))!;
      const ts = exchange.headers["x-waitstate-timestamp"]!;
      const expected = createHmac("sha256", cp.secretKey).update(`POST\n/v1/auth/token\n.${ts}`).digest("hex");
      expect(exchange.headers["x-waitstate-signature"]).toBe(expected);
      expect(exchange.body).toBeUndefined();
      expect(JSON.stringify(seen)).not.toContain(cp.secretKey);
    });

    it("suspended: fails open and makes no request until retryAfterSeconds, then pulses what was counted", async () => {
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
      const { ws } = clientOf({ instanceId: "edge-suspended" });
      cp.setPolicy({ status: "suspended", retryAfterSeconds: 600, tagMaxWeights: { free: 0 } });
      await ws.sync();
      expect(ws.gate("free")).toEqual({ allowed: true, reason: "suspended" });
      const before = cp.requests.length;
      for (const step of [60_000, 300_000, 590_000]) {
        vi.setSystemTime(ws.status().lastSyncAt! + step);
        ws.gate("free");
        await ws.sync();
      }
      expect(cp.requests.length).toBe(before);
      cp.setPolicy({ status: "ok" });
      vi.setSystemTime(ws.status().suspendedUntil!);
      await ws.sync();
      expect(cp.requests.length).toBeGreaterThan(before);
      expect(pulsesOf("edge-suspended").at(-1)!.body.usageDelta).toBe(4);
      expect(ws.status()).toMatchObject({ suspendedUntil: null, policyStatus: "ok" });
    });

    it("cap_exceeded: fails open, the next pulse five minutes later, the lease outlasting it", async () => {
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
      const { ws } = clientOf({ instanceId: "edge-cap", safeModeStrategy: "last_policy" });
      cp.setPolicy({ status: "cap_exceeded", tagMaxWeights: { free: 0 } });
      await ws.sync();
      expect(ws.gate("pro")).toEqual({ allowed: true, reason: "cap_exceeded" });
      expect(ws.status().pulseIntervalMs).toBe(300_000);
      const pulses = pulsesOf("edge-cap").length;
      vi.setSystemTime(Date.now() + 120_000); // past the policy's own 60 s lease; poll only
      await ws.sync();
      expect(pulsesOf("edge-cap").length).toBe(pulses);
      expect(ws.gate("pro").reason).toBe("cap_exceeded");
      cp.setPolicy({ status: "ok" });
      vi.setSystemTime(Date.now() + 240_000);
      await ws.sync();
      expect(pulsesOf("edge-cap").length).toBe(pulses + 1);
    });

    it.runIf(engine === "wasm")(
      "a valid policy the gate's full tag table cannot take: the policy in force stays, reported, the lease restarted",
      async () => {
        vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
        const { ws, errors } = clientOf({ instanceId: "edge-full" });
        const first = cp.setPolicy({ tagMaxWeights: { free: 0 }, status: "ok" });
        await ws.sync();
        for (let i = 0; i < 4096; i++) ws.gate(`t${i}`);
        cp.setPolicy({ tagMaxWeights: { free: 0, fresh: 0 } });
        vi.setSystemTime(Date.now() + 1200);
        await ws.sync();
        expect(errors.map((e) => e.code)).toContain("INVALID_POLICY");
        expect(errors.find((e) => e.code === "INVALID_POLICY")!.message).toMatch(/tag table full.*the last good policy stays/);
        expect(ws.status()).toMatchObject({ policyVersion: first.version, lastSyncAt: Date.now() });
        expect(ws.gate("free").reason).toBe("tag_blocked");
      },
    );

    // The TypeScript gate has no fixed tag table: past 4096 tags the calls are counted under __other__, the policy still installs.
    it.runIf(engine === "typescript")("4096 tags seen: a new policy still installs and decides its tags", async () => {
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
      const { ws, errors } = clientOf({ instanceId: "edge-full" });
      cp.setPolicy({ tagMaxWeights: { free: 0 }, status: "ok" });
      await ws.sync();
      for (let i = 0; i < 4096; i++) ws.gate(`t${i}`);
      const next = cp.setPolicy({ tagMaxWeights: { free: 0, fresh: 0 } });
      vi.setSystemTime(Date.now() + 1200);
      await ws.sync();
      expect(errors).toEqual([]);
      expect(ws.status()).toMatchObject({ policyVersion: next.version, lastSyncAt: Date.now() });
      expect(ws.gate("fresh").reason).toBe("tag_blocked");
    });

    it("without AbortSignal (Fastly Compute), a hung control plane still ends the sync by its deadline", async () => {
      vi.stubGlobal("AbortSignal", undefined);
      cp.fault = "hang";
      const { ws, errors } = clientOf({ requestTimeoutMs: 300 });
      await ws.sync();
      vi.unstubAllGlobals();
      expect(errors.map((e) => e.message).join("\n")).toMatch(/no answer from 127\.0\.0\.1:\d+ within 300 ms/);
      expect(ws.status()).toMatchObject({ synced: false, pendingPulses: 1 });
    });

    it("reports DUPLICATE_INSTANCE when the control plane says another isolate shares the id", async () => {
      const { ws, errors } = clientOf({ instanceId: "edge-dup" });
      cp.duplicateInstance = true;
      await ws.sync();
      expect(errors.map((e) => e.code)).toEqual(["DUPLICATE_INSTANCE"]);
    });

    it("ready(): resolves true once a policy is in, false within its timeout when the control plane hangs", async () => {
      const { ws } = clientOf();
      await expect(ws.ready(2000)).resolves.toBe(true);
      await expect(ws.ready(0)).resolves.toBe(true);
      cp.fault = "hang";
      const cold = clientOf({ requestTimeoutMs: 1500 }).ws;
      const waiting = cold.ready(100);
      const sync = cold.sync(); // joins the sync ready() started
      let syncEnded = false;
      void sync.then(() => {
        syncEnded = true;
      });
      await expect(waiting).resolves.toBe(false);
      expect(syncEnded).toBe(false);
      expect(cold.gate("x")).toEqual({ allowed: true, reason: "allowed" });
      await sync; // ends by its own deadline
      expect(cold.status()).toMatchObject({ synced: false, pendingPulses: 1 });
    });
  });
});

describe("both engines", () => {
  it("send the same pulse for the same calls: counts, errors, histograms, custom metrics", async () => {
    cp.setPolicy({ tagMaxWeights: { free: 0 }, globalMaxWeight: 5 });
    const bodies: Array<Record<string, unknown>> = [];
    for (const [name, Client] of ENGINES) {
      const ws = new Client({ publishKey: cp.publishKey, secretKey: cp.secretKey, baseUrl: cp.url, instanceId: `edge-same-${name}` });
      await ws.sync();
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 1200 });
      for (const [tag, weight] of [
        ["free", 1],
        ["pro", 2],
        ["pro", 7],
        ["x".repeat(130), 1],
      ] as const)
        ws.gate(tag, weight);
      for (const ms of [0.05, 0.1, 3, 42.5, 999, 61_000]) ws.reportLatency(ms, "pro");
      ws.reportLatency(7, "free");
      ws.reportError("free");
      ws.report("queue_depth", 4, "pro");
      await ws.sync();
      vi.useRealTimers();
      const {
        instanceId: _id,
        ts: _ts,
        prevTs: _prev,
        ...body
      } = cp.pulses.filter((p) => p.body.instanceId === `edge-same-${name}`).at(-1)!.body as Record<string, unknown>;
      bodies.push(body);
    }
    expect(bodies[0]).toMatchObject({ usageDelta: 4, bouncedUnits: 2 });
    expect((bodies[0]!.metrics as { latencyHistogram: { n: number } }).latencyHistogram.n).toBe(7);
    expect(bodies[1]).toEqual(bodies[0]);
  });
});

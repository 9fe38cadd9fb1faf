import type { Server } from "node:http";
import express, { type Express, type Request, type Response } from "express";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createMiddleware, type ExpressGateOptions } from "../src/middleware/express.js";
import { baseUrlOf, closeServer, sleep, startHarness, type GateHarness } from "./support/middleware-harness.js";

let h: GateHarness;
let servers: Server[] = [];
let handlerCalls = 0;

beforeEach(async () => {
  h = await startHarness();
  handlerCalls = 0;
});

afterEach(async () => {
  await Promise.all(servers.map(closeServer));
  servers = [];
  await h.close();
  // The middleware never hands the client a value it refuses (a NaN or negative latency…).
  expect(h.clientErrors.map((e) => `${e.code}: ${e.message}`)).toEqual([]);
});

/** An Express app gated by the middleware, with routes for every outcome; listening on 127.0.0.1. */
async function serve(options: Partial<ExpressGateOptions<Request, Response>> = {}): Promise<string> {
  const app: Express = express();
  app.use(createMiddleware<Request, Response>({ waitstate: h.ws, ...options }));
  app.get("/ok", (_req, res) => {
    handlerCalls++;
    res.json({ ok: true });
  });
  app.get("/decision", (_req, res) => {
    handlerCalls++;
    res.json(res.locals.waitstate);
  });
  app.get("/slow", async (_req, res) => {
    handlerCalls++;
    await sleep(30);
    res.json({ ok: true });
  });
  app.get("/fail", (_req, res) => {
    handlerCalls++;
    res.status(503).json({ ok: false });
  });
  app.get("/throw", () => {
    handlerCalls++;
    throw new Error("handler exploded");
  });
  app.get("/reject", async () => {
    handlerCalls++;
    await sleep(1);
    throw new Error("async handler exploded");
  });
  // Express's default error handler logs to stderr; keep test output quiet.
  app.use((_error: unknown, _req: Request, res: Response, _next: () => void) => {
    res.status(500).json({ error: "internal" });
  });
  const server = app.listen(0, "127.0.0.1");
  servers.push(server);
  return baseUrlOf(server);
}

function get(url: string, headers: Record<string, string> = {}): Promise<globalThis.Response> {
  return fetch(url, { headers });
}

describe("express createMiddleware: allowed requests", () => {
  it("passes an allowed request through to the handler", async () => {
    const base = await serve();
    const res = await get(`${base}/ok`, { "x-waitstate-tag": "pro" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect(handlerCalls).toBe(1);
  });

  it("hands the handler its GateResult in res.locals.waitstate", async () => {
    const base = await serve();
    const res = await get(`${base}/decision`, { "x-waitstate-tag": "pro" });
    expect(await res.json()).toEqual({ allowed: true, reason: "allowed" });
  });

  it("reports the latency of a finished request under its tag", async () => {
    const base = await serve();
    const res = await get(`${base}/slow`, { "x-waitstate-tag": "pro" });
    expect(res.status).toBe(200);
    const totals = await h.waitForTag("pro", (t) => t.count >= 1 && t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, bounced: 0, errors: 0, latencies: 1 });
    expect(totals.minLatencyMs).toBeGreaterThanOrEqual(29);
    expect(totals.maxLatencyMs).toBeLessThan(2000);
  });

  it("counts a request without the tag header under __default__", async () => {
    const base = await serve();
    expect((await get(`${base}/ok`)).status).toBe(200);
    const totals = await h.waitForTag("__default__", (t) => t.count >= 1 && t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, latencies: 1, errors: 0 });
  });

  it("counts a 5xx response as an error, with its latency", async () => {
    const base = await serve();
    expect((await get(`${base}/fail`, { "x-waitstate-tag": "search" })).status).toBe(503);
    const totals = await h.waitForTag("search", (t) => t.latencies >= 1 && t.errors >= 1);
    expect(totals).toMatchObject({ count: 1, errors: 1, latencies: 1 });
  });

  it("counts a throwing handler (sync and async) as an error and leaves the 500 to Express", async () => {
    const base = await serve();
    const sync = await get(`${base}/throw`, { "x-waitstate-tag": "search" });
    const async_ = await get(`${base}/reject`, { "x-waitstate-tag": "search" });
    expect([sync.status, async_.status]).toEqual([500, 500]);
    expect(await sync.json()).toEqual({ error: "internal" });
    const totals = await h.waitForTag("search", (t) => t.latencies >= 2 && t.errors >= 2);
    expect(totals).toMatchObject({ count: 2, errors: 2, latencies: 2 });
  });

  it("does not count a 4xx response as an error", async () => {
    const base = await serve();
    expect((await get(`${base}/missing`, { "x-waitstate-tag": "pro" })).status).toBe(404);
    const totals = await h.waitForTag("pro", (t) => t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, errors: 0 });
  });
});

describe("express createMiddleware: denied requests", () => {
  it("answers a tag blocked by policy with 429, Retry-After and the reason; the handler never runs", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const base = await serve();
    const res = await get(`${base}/ok`, { "x-waitstate-tag": "free" });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("60");
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await res.json()) as { error: { code: string; message: string; reason: string } };
    expect(body.error).toEqual({ code: "RATE_LIMITED", message: expect.stringContaining("tag_blocked"), reason: "tag_blocked" });
    expect(body.error.message).toMatch(/blocked by policy/);
    expect(handlerCalls).toBe(0);
    // Another tag is not affected.
    expect((await get(`${base}/ok`, { "x-waitstate-tag": "pro" })).status).toBe(200);
    const totals = await h.waitForTag("free", (t) => t.bounced >= 1);
    expect(totals).toMatchObject({ count: 1, bounced: 1, latencies: 0 });
  });

  it("uses the retryAfter option, rounded up to whole seconds", async () => {
    await h.setPolicy({ killSignal: true });
    const base = await serve({ retryAfter: 4.2 });
    const res = await get(`${base}/ok`);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("5");
    expect(((await res.json()) as { error: { reason: string } }).error.reason).toBe("kill_signal");
  });

  it("denies a weight over the limit and lets a lighter one through (weight from a header)", async () => {
    await h.setPolicy({ globalMaxWeight: 5 });
    const base = await serve({ weightFrom: "X-Cost" });
    const heavy = await get(`${base}/ok`, { "x-cost": "8" });
    expect(heavy.status).toBe(429);
    expect(((await heavy.json()) as { error: { reason: string } }).error.reason).toBe("over_weight");
    expect((await get(`${base}/ok`, { "x-cost": "3" })).status).toBe(200);
    expect((await get(`${base}/ok`, { "x-cost": "5" })).status).toBe(200);
    expect(handlerCalls).toBe(2);
  });

  it("treats a weight header that is not a finite number as weight 1", async () => {
    await h.setPolicy({ globalMaxWeight: 1 });
    const base = await serve({ weightFrom: "x-cost" });
    for (const value of ["lots", "", "Infinity", "1e999"]) {
      expect((await get(`${base}/ok`, { "x-cost": value })).status, `x-cost: ${JSON.stringify(value)}`).toBe(200);
    }
    expect((await get(`${base}/ok`, { "x-cost": "1.5" })).status).toBe(429);
  });
});

describe("express createMiddleware: tagFrom and weightFrom", () => {
  it("reads the tag from a custom header", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const base = await serve({ tagFrom: "x-plan" });
    expect((await get(`${base}/ok`, { "x-plan": "free" })).status).toBe(429);
    expect((await get(`${base}/ok`, { "x-waitstate-tag": "free" })).status).toBe(200);
  });

  it("takes tag and weight from functions of the request", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 2 } });
    const base = await serve({
      tagFrom: (req) => (req.path === "/ok" ? "free" : "pro"),
      weightFrom: (req) => Number(req.query.cost ?? 1),
    });
    expect((await get(`${base}/ok?cost=3`)).status).toBe(429);
    expect((await get(`${base}/ok?cost=2`)).status).toBe(200);
    expect((await get(`${base}/slow?cost=3`)).status).toBe(200);
    const totals = await h.waitForTag("free", (t) => t.count >= 2);
    expect(totals).toMatchObject({ count: 2, bounced: 1 });
  });

  it("falls back to the default tag and weight 1 when the functions throw", async () => {
    await h.setPolicy({ globalMaxWeight: 1 });
    const base = await serve({
      tagFrom: () => {
        throw new Error("no tag");
      },
      weightFrom: () => {
        throw new Error("no weight");
      },
    });
    expect((await get(`${base}/ok`)).status).toBe(200);
    const totals = await h.waitForTag("__default__", (t) => t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, bounced: 0 });
  });
});

describe("express createMiddleware: onDenied", () => {
  it("lets a custom handler answer a denied request", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const base = await serve({
      onDenied: (_req, res, result) => {
        res.status(503).set("x-denied", result.reason).json({ busy: true });
      },
    });
    const res = await get(`${base}/ok`, { "x-waitstate-tag": "free" });
    expect(res.status).toBe(503);
    expect(res.headers.get("x-denied")).toBe("tag_blocked");
    expect(res.headers.get("retry-after")).toBeNull();
    expect(await res.json()).toEqual({ busy: true });
    expect(handlerCalls).toBe(0);
  });

  it("sends a rejected async onDenied to Express's error handling", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const base = await serve({
      onDenied: async () => {
        throw new Error("deny handler broke");
      },
    });
    const res = await get(`${base}/ok`, { "x-waitstate-tag": "free" });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: "internal" });
    expect(handlerCalls).toBe(0);
  });
});

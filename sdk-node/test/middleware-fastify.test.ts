import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPlugin, type FastifyGateOptions } from "../src/middleware/fastify.js";
import { sleep, startHarness, type GateHarness } from "./support/middleware-harness.js";

let h: GateHarness;
let apps: FastifyInstance[] = [];
let handlerCalls = 0;

beforeEach(async () => {
  h = await startHarness();
  handlerCalls = 0;
});

afterEach(async () => {
  await Promise.all(apps.map((app) => app.close()));
  apps = [];
  await h.close();
  // The middleware never hands the client a value it refuses (a NaN or negative latency…).
  expect(h.clientErrors.map((e) => `${e.code}: ${e.message}`)).toEqual([]);
});

type Options = Partial<FastifyGateOptions<FastifyRequest, FastifyReply>>;

/**
 * A Fastify app with routes for every outcome, gated by the plugin, listening
 * on 127.0.0.1. `mount` says how the plugin is installed.
 */
async function serve(options: Options = {}, mount: "call" | "register" = "call"): Promise<string> {
  const app = Fastify({ logger: false });
  apps.push(app);
  const plugin = createPlugin<FastifyRequest, FastifyReply>({ waitstate: h.ws, ...options });
  if (mount === "call") plugin(app);
  else await app.register(plugin);
  app.get("/ok", async () => {
    handlerCalls++;
    return { ok: true };
  });
  app.get("/slow", async () => {
    handlerCalls++;
    await sleep(30);
    return { ok: true };
  });
  app.get("/fail", async (_request, reply) => {
    handlerCalls++;
    return reply.code(502).send({ ok: false });
  });
  app.get("/throw", async () => {
    handlerCalls++;
    throw new Error("handler exploded");
  });
  return app.listen({ port: 0, host: "127.0.0.1" });
}

function get(url: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { headers });
}

describe("fastify createPlugin: allowed requests", () => {
  it("passes an allowed request through to the handler", async () => {
    const base = await serve();
    const res = await get(`${base}/ok`, { "x-waitstate-tag": "pro" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect(handlerCalls).toBe(1);
  });

  it("reports the latency of a finished request under its tag", async () => {
    const base = await serve();
    expect((await get(`${base}/slow`, { "x-waitstate-tag": "pro" })).status).toBe(200);
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

  it("counts a 5xx reply and a throwing handler as errors, with their latency", async () => {
    const base = await serve();
    expect((await get(`${base}/fail`, { "x-waitstate-tag": "search" })).status).toBe(502);
    const thrown = await get(`${base}/throw`, { "x-waitstate-tag": "search" });
    expect(thrown.status).toBe(500);
    expect(((await thrown.json()) as { message: string }).message).toBe("handler exploded");
    const totals = await h.waitForTag("search", (t) => t.latencies >= 2 && t.errors >= 2);
    expect(totals).toMatchObject({ count: 2, errors: 2, latencies: 2 });
  });

  it("does not count a 404 as an error", async () => {
    const base = await serve();
    expect((await get(`${base}/missing`, { "x-waitstate-tag": "pro" })).status).toBe(404);
    const totals = await h.waitForTag("pro", (t) => t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, errors: 0 });
  });

  it("applies to every route when installed with app.register (no encapsulation)", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const base = await serve({}, "register");
    expect((await get(`${base}/ok`, { "x-waitstate-tag": "free" })).status).toBe(429);
    expect((await get(`${base}/slow`, { "x-waitstate-tag": "pro" })).status).toBe(200);
    const totals = await h.waitForTag("pro", (t) => t.latencies >= 1);
    expect(totals.minLatencyMs).toBeGreaterThanOrEqual(29);
  });
});

describe("fastify createPlugin: denied requests", () => {
  it("answers a tag blocked by policy with 429, Retry-After and the reason; the handler never runs", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const base = await serve();
    const res = await get(`${base}/ok`, { "x-waitstate-tag": "free" });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("60");
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await res.json()) as { error: { code: string; message: string; reason: string } };
    expect(body.error).toEqual({ code: "RATE_LIMITED", message: expect.stringContaining("tag_blocked"), reason: "tag_blocked" });
    expect(handlerCalls).toBe(0);
    expect((await get(`${base}/ok`, { "x-waitstate-tag": "pro" })).status).toBe(200);
    // A denied request is counted as bounced, and no latency is reported for it under any tag:
    // once the later allowed request's latency is in, one for the denied request would be too.
    await h.waitForTag("pro", (t) => t.latencies >= 1);
    expect(h.tagTotals("free")).toMatchObject({ count: 1, bounced: 1, latencies: 0, errors: 0 });
    expect(h.tagTotals("__default__").latencies).toBe(0);
  });

  it("uses the retryAfter option", async () => {
    await h.setPolicy({ globalMaxWeight: 0 });
    const base = await serve({ retryAfter: 7 });
    const res = await get(`${base}/ok`);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("7");
    expect(((await res.json()) as { error: { reason: string } }).error.reason).toBe("global_block");
  });

  it("denies a weight over the limit and lets a lighter one through (weight from a header)", async () => {
    await h.setPolicy({ globalMaxWeight: 5 });
    const base = await serve({ weightFrom: "x-cost" });
    const heavy = await get(`${base}/ok`, { "x-cost": "8" });
    expect(heavy.status).toBe(429);
    expect(((await heavy.json()) as { error: { reason: string } }).error.reason).toBe("over_weight");
    expect((await get(`${base}/ok`, { "x-cost": "3" })).status).toBe(200);
    expect((await get(`${base}/ok`, { "x-cost": "not-a-number" })).status).toBe(200);
    expect(handlerCalls).toBe(2);
  });
});

describe("fastify createPlugin: tagFrom and weightFrom", () => {
  it("reads the tag from a custom header", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const base = await serve({ tagFrom: "x-plan" });
    expect((await get(`${base}/ok`, { "x-plan": "free" })).status).toBe(429);
    expect((await get(`${base}/ok`, { "x-waitstate-tag": "free" })).status).toBe(200);
  });

  it("takes tag and weight from functions of the request", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 2 } });
    const base = await serve({
      tagFrom: (request) => (request.url.startsWith("/ok") ? "free" : "pro"),
      weightFrom: (request) => Number((request.query as { cost?: string }).cost ?? 1),
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

describe("fastify createPlugin: onDenied", () => {
  it("lets a custom handler answer a denied request", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const base = await serve({
      onDenied: (_request, reply, result) => {
        reply.code(503).header("x-denied", result.reason).send({ busy: true });
      },
    });
    const res = await get(`${base}/ok`, { "x-waitstate-tag": "free" });
    expect(res.status).toBe(503);
    expect(res.headers.get("x-denied")).toBe("tag_blocked");
    expect(res.headers.get("retry-after")).toBeNull();
    expect(await res.json()).toEqual({ busy: true });
    expect(handlerCalls).toBe(0);
  });

  it("turns a rejected async onDenied into the request's error", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const base = await serve({
      onDenied: async () => {
        throw new Error("deny handler broke");
      },
    });
    const res = await get(`${base}/ok`, { "x-waitstate-tag": "free" });
    expect(res.status).toBe(500);
    expect(((await res.json()) as { message: string }).message).toBe("deny handler broke");
    expect(handlerCalls).toBe(0);
  });
});

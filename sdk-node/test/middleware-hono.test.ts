import { createServer, type Server } from "node:http";
import { Hono, type Context } from "hono";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createMiddleware, type HonoGateOptions } from "../src/middleware/hono.js";
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

/** A Hono app gated by the middleware, with routes for every outcome. */
function gatedApp(options: Partial<HonoGateOptions<Context>> = {}): Hono {
  const app = new Hono();
  app.use(createMiddleware<Context>({ waitstate: h.ws, ...options }));
  app.get("/ok", (c) => {
    handlerCalls++;
    return c.json({ ok: true });
  });
  app.get("/slow", async (c) => {
    handlerCalls++;
    await sleep(30);
    return c.json({ ok: true });
  });
  app.get("/fail", (c) => {
    handlerCalls++;
    return c.json({ ok: false }, 503);
  });
  app.get("/throw", () => {
    handlerCalls++;
    throw new Error("handler exploded");
  });
  app.get("/throw-non-error", () => {
    handlerCalls++;
    // Hono's onError only catches Error instances: anything else propagates through next().
    throw "not an Error";
  });
  app.onError((error, c) => c.json({ error: error.message }, 500));
  return app;
}

/** The smallest node:http adapter for a Hono app (GET/HEAD only: these tests send no bodies). */
async function listen(app: Hono): Promise<string> {
  const server = createServer(async (req, res) => {
    const headers = new Headers();
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
    const response = await app.fetch(new Request(`http://${req.headers.host}${req.url}`, { method: req.method, headers }));
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  return baseUrlOf(server);
}

function get(app: Hono, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return Promise.resolve(app.request(path, { headers }));
}

describe("hono createMiddleware: allowed requests", () => {
  it("passes an allowed request through to the handler", async () => {
    const res = await get(gatedApp(), "/ok", { "x-waitstate-tag": "pro" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect(handlerCalls).toBe(1);
  });

  it("reports the latency of a finished request under its tag", async () => {
    expect((await get(gatedApp(), "/slow", { "x-waitstate-tag": "pro" })).status).toBe(200);
    const totals = await h.waitForTag("pro", (t) => t.count >= 1 && t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, bounced: 0, errors: 0, latencies: 1 });
    expect(totals.minLatencyMs).toBeGreaterThanOrEqual(29);
    expect(totals.maxLatencyMs).toBeLessThan(2000);
  });

  it("counts a request without the tag header under __default__", async () => {
    expect((await get(gatedApp(), "/ok")).status).toBe(200);
    const totals = await h.waitForTag("__default__", (t) => t.count >= 1 && t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, latencies: 1, errors: 0 });
  });

  it("counts a 5xx response and a throwing handler (turned into a 500 by onError) as errors", async () => {
    const app = gatedApp();
    expect((await get(app, "/fail", { "x-waitstate-tag": "search" })).status).toBe(503);
    const thrown = await get(app, "/throw", { "x-waitstate-tag": "search" });
    expect(thrown.status).toBe(500);
    expect(await thrown.json()).toEqual({ error: "handler exploded" });
    const totals = await h.waitForTag("search", (t) => t.latencies >= 2 && t.errors >= 2);
    expect(totals).toMatchObject({ count: 2, errors: 2, latencies: 2 });
  });

  it("counts an error that escapes next() and rethrows it unchanged", async () => {
    const app = gatedApp();
    await expect(app.request("/throw-non-error", { headers: { "x-waitstate-tag": "search" } })).rejects.toBe("not an Error");
    const totals = await h.waitForTag("search", (t) => t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, errors: 1, latencies: 1 });
  });

  it("does not count a 404 as an error", async () => {
    expect((await get(gatedApp(), "/missing", { "x-waitstate-tag": "pro" })).status).toBe(404);
    const totals = await h.waitForTag("pro", (t) => t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, errors: 0 });
  });
});

describe("hono createMiddleware: denied requests", () => {
  it("answers a tag blocked by policy with 429, Retry-After and the reason; the handler never runs", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const app = gatedApp();
    const res = await get(app, "/ok", { "x-waitstate-tag": "free" });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("60");
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await res.json()) as { error: { code: string; message: string; reason: string } };
    expect(body.error).toEqual({ code: "RATE_LIMITED", message: expect.stringContaining("tag_blocked"), reason: "tag_blocked" });
    expect(handlerCalls).toBe(0);
    expect((await get(app, "/ok", { "x-waitstate-tag": "pro" })).status).toBe(200);
    const totals = await h.waitForTag("free", (t) => t.bounced >= 1);
    expect(totals).toMatchObject({ count: 1, bounced: 1, latencies: 0 });
  });

  it("uses the retryAfter option", async () => {
    await h.setPolicy({ killSignal: true });
    const res = await get(gatedApp({ retryAfter: 0 }), "/ok");
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("0");
    expect(((await res.json()) as { error: { reason: string } }).error.reason).toBe("kill_signal");
  });

  it("denies a weight over the limit and lets a lighter one through (weight from a header)", async () => {
    await h.setPolicy({ globalMaxWeight: 5 });
    const app = gatedApp({ weightFrom: "X-Cost" });
    const heavy = await get(app, "/ok", { "x-cost": "8" });
    expect(heavy.status).toBe(429);
    expect(((await heavy.json()) as { error: { reason: string } }).error.reason).toBe("over_weight");
    expect((await get(app, "/ok", { "x-cost": "3" })).status).toBe(200);
    expect((await get(app, "/ok", { "x-cost": "NaN" })).status).toBe(200);
    expect(handlerCalls).toBe(2);
  });

  it("works behind a real node:http server", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const base = await listen(gatedApp());
    const denied = await fetch(`${base}/ok`, { headers: { "x-waitstate-tag": "free" } });
    expect(denied.status).toBe(429);
    expect(denied.headers.get("retry-after")).toBe("60");
    expect(((await denied.json()) as { error: { reason: string } }).error.reason).toBe("tag_blocked");
    const allowed = await fetch(`${base}/slow`, { headers: { "x-waitstate-tag": "pro" } });
    expect(allowed.status).toBe(200);
    expect(await allowed.json()).toEqual({ ok: true });
    const totals = await h.waitForTag("pro", (t) => t.latencies >= 1);
    expect(totals.minLatencyMs).toBeGreaterThanOrEqual(29);
  });
});

describe("hono createMiddleware: tagFrom and weightFrom", () => {
  it("reads the tag from a custom header", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const app = gatedApp({ tagFrom: "x-plan" });
    expect((await get(app, "/ok", { "x-plan": "free" })).status).toBe(429);
    expect((await get(app, "/ok", { "x-waitstate-tag": "free" })).status).toBe(200);
  });

  it("takes tag and weight from functions of the context", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 2 } });
    const app = gatedApp({
      tagFrom: (c) => (c.req.path === "/ok" ? "free" : "pro"),
      weightFrom: (c) => Number(c.req.query("cost") ?? 1),
    });
    expect((await get(app, "/ok?cost=3")).status).toBe(429);
    expect((await get(app, "/ok?cost=2")).status).toBe(200);
    expect((await get(app, "/slow?cost=3")).status).toBe(200);
    const totals = await h.waitForTag("free", (t) => t.count >= 2);
    expect(totals).toMatchObject({ count: 2, bounced: 1 });
  });

  it("falls back to the default tag and weight 1 when the functions throw", async () => {
    await h.setPolicy({ globalMaxWeight: 1 });
    const app = gatedApp({
      tagFrom: () => {
        throw new Error("no tag");
      },
      weightFrom: () => {
        throw new Error("no weight");
      },
    });
    expect((await get(app, "/ok")).status).toBe(200);
    const totals = await h.waitForTag("__default__", (t) => t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, bounced: 0 });
  });
});

describe("hono createMiddleware: onDenied", () => {
  it("lets a custom handler answer a denied request", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const app = gatedApp({
      onDenied: (c, result) => c.json({ busy: true }, 503, { "x-denied": result.reason }),
    });
    const res = await get(app, "/ok", { "x-waitstate-tag": "free" });
    expect(res.status).toBe(503);
    expect(res.headers.get("x-denied")).toBe("tag_blocked");
    expect(res.headers.get("retry-after")).toBeNull();
    expect(await res.json()).toEqual({ busy: true });
    expect(handlerCalls).toBe(0);
  });

  it("awaits an async custom handler", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const app = gatedApp({
      onDenied: async (_c, result) => {
        await sleep(1);
        return new Response(`denied: ${result.reason}`, { status: 429 });
      },
    });
    const res = await get(app, "/ok", { "x-waitstate-tag": "free" });
    expect(res.status).toBe(429);
    expect(await res.text()).toBe("denied: tag_blocked");
  });
});

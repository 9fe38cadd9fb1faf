import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { withGate, type NextGateOptions } from "../src/middleware/nextjs.js";
import { sleep, startHarness, type GateHarness } from "./support/middleware-harness.js";

let h: GateHarness;
let handlerCalls = 0;

beforeEach(async () => {
  h = await startHarness();
  handlerCalls = 0;
});

afterEach(async () => {
  await h.close();
  // The middleware never hands the client a value it refuses (a NaN or negative latency…).
  expect(h.clientErrors.map((e) => `${e.code}: ${e.message}`)).toEqual([]);
});

/** The second argument Next.js passes an App Router route handler. */
interface RouteContext {
  params: Promise<{ id: string }>;
}

const routeContext = (id = "42"): RouteContext => ({ params: Promise.resolve({ id }) });

function request(path: string, headers: Record<string, string> = {}): Request {
  return new Request(`http://localhost:3000${path}`, { headers });
}

/** A route handler in the shape Next.js calls it: answers per path, echoes the route param. */
async function route(req: Request, ctx: RouteContext): Promise<Response> {
  handlerCalls++;
  const { pathname } = new URL(req.url);
  const { id } = await ctx.params;
  if (pathname === "/slow") await sleep(30);
  if (pathname === "/fail") return Response.json({ ok: false }, { status: 500 });
  if (pathname === "/throw") throw new Error("handler exploded");
  if (pathname === "/redirect") throw Object.assign(new Error("NEXT_REDIRECT"), { digest: "NEXT_REDIRECT;replace;/login?a=1;b;307;" });
  if (pathname === "/not-found") throw Object.assign(new Error("NEXT_HTTP_ERROR_FALLBACK;404"), { digest: "NEXT_HTTP_ERROR_FALLBACK;404" });
  return Response.json({ ok: true, id });
}

function gated(options: Partial<NextGateOptions<Request>> = {}) {
  return withGate({ waitstate: h.ws, ...options }, route);
}

describe("nextjs withGate: allowed requests", () => {
  it("calls the handler with the request and the route context", async () => {
    const res = await gated()(request("/ok", { "x-waitstate-tag": "pro" }), routeContext("7"));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, id: "7" });
    expect(handlerCalls).toBe(1);
  });

  it("reports the latency of the handler under its tag", async () => {
    expect((await gated()(request("/slow", { "x-waitstate-tag": "pro" }), routeContext())).status).toBe(200);
    const totals = await h.waitForTag("pro", (t) => t.count >= 1 && t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, bounced: 0, errors: 0, latencies: 1 });
    expect(totals.minLatencyMs).toBeGreaterThanOrEqual(29);
    expect(totals.maxLatencyMs).toBeLessThan(2000);
  });

  it("counts a request without the tag header under __default__", async () => {
    expect((await gated()(request("/ok"), routeContext())).status).toBe(200);
    const totals = await h.waitForTag("__default__", (t) => t.count >= 1 && t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, latencies: 1, errors: 0 });
  });

  it("counts a 5xx response and a throwing handler as errors, and rethrows", async () => {
    const handler = gated();
    expect((await handler(request("/fail", { "x-waitstate-tag": "search" }), routeContext())).status).toBe(500);
    await expect(handler(request("/throw", { "x-waitstate-tag": "search" }), routeContext())).rejects.toThrow("handler exploded");
    const totals = await h.waitForTag("search", (t) => t.latencies >= 2 && t.errors >= 2);
    expect(totals).toMatchObject({ count: 2, errors: 2, latencies: 2 });
  });

  it("does not count redirect() and notFound() as errors, and rethrows them for Next.js", async () => {
    const handler = gated();
    await expect(handler(request("/redirect", { "x-waitstate-tag": "nav" }), routeContext())).rejects.toMatchObject({
      digest: expect.stringMatching(/^NEXT_REDIRECT;/),
    });
    await expect(handler(request("/not-found", { "x-waitstate-tag": "nav" }), routeContext())).rejects.toMatchObject({
      digest: "NEXT_HTTP_ERROR_FALLBACK;404",
    });
    const totals = await h.waitForTag("nav", (t) => t.latencies >= 2);
    expect(totals).toMatchObject({ count: 2, errors: 0, latencies: 2 });
  });
});

describe("nextjs withGate: denied requests", () => {
  it("answers a tag blocked by policy with 429, Retry-After and the reason; the handler never runs", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const handler = gated();
    const res = await handler(request("/ok", { "x-waitstate-tag": "free" }), routeContext());
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("60");
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = (await res.json()) as { error: { code: string; message: string; reason: string } };
    expect(body.error).toEqual({ code: "RATE_LIMITED", message: expect.stringContaining("tag_blocked"), reason: "tag_blocked" });
    expect(handlerCalls).toBe(0);
    expect((await handler(request("/ok", { "x-waitstate-tag": "pro" }), routeContext())).status).toBe(200);
    const totals = await h.waitForTag("free", (t) => t.bounced >= 1);
    expect(totals).toMatchObject({ count: 1, bounced: 1, latencies: 0 });
  });

  it("uses the retryAfter option", async () => {
    await h.setPolicy({ globalMaxWeight: 0 });
    const res = await gated({ retryAfter: 120 })(request("/ok"), routeContext());
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("120");
    expect(((await res.json()) as { error: { reason: string } }).error.reason).toBe("global_block");
  });

  it("denies a weight over the limit and lets a lighter one through (weight from a header)", async () => {
    await h.setPolicy({ globalMaxWeight: 5 });
    const handler = gated({ weightFrom: "x-cost" });
    const heavy = await handler(request("/ok", { "x-cost": "8" }), routeContext());
    expect(heavy.status).toBe(429);
    expect(((await heavy.json()) as { error: { reason: string } }).error.reason).toBe("over_weight");
    expect((await handler(request("/ok", { "x-cost": "3" }), routeContext())).status).toBe(200);
    expect((await handler(request("/ok", { "x-cost": "heavy" }), routeContext())).status).toBe(200);
    expect(handlerCalls).toBe(2);
  });
});

describe("nextjs withGate: tagFrom and weightFrom", () => {
  it("reads the tag from a custom header", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const handler = gated({ tagFrom: "x-plan" });
    expect((await handler(request("/ok", { "x-plan": "free" }), routeContext())).status).toBe(429);
    expect((await handler(request("/ok", { "x-waitstate-tag": "free" }), routeContext())).status).toBe(200);
  });

  it("takes tag and weight from functions of the request", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 2 } });
    const handler = gated({
      tagFrom: (req) => (new URL(req.url).pathname === "/ok" ? "free" : "pro"),
      weightFrom: (req) => Number(new URL(req.url).searchParams.get("cost") ?? 1),
    });
    expect((await handler(request("/ok?cost=3"), routeContext())).status).toBe(429);
    expect((await handler(request("/ok?cost=2"), routeContext())).status).toBe(200);
    expect((await handler(request("/slow?cost=3"), routeContext())).status).toBe(200);
    const totals = await h.waitForTag("free", (t) => t.count >= 2);
    expect(totals).toMatchObject({ count: 2, bounced: 1 });
  });

  it("falls back to the default tag and weight 1 when the functions throw", async () => {
    await h.setPolicy({ globalMaxWeight: 1 });
    const handler = gated({
      tagFrom: () => {
        throw new Error("no tag");
      },
      weightFrom: () => {
        throw new Error("no weight");
      },
    });
    expect((await handler(request("/ok"), routeContext())).status).toBe(200);
    const totals = await h.waitForTag("__default__", (t) => t.latencies >= 1);
    expect(totals).toMatchObject({ count: 1, bounced: 0 });
  });
});

describe("nextjs withGate: onDenied", () => {
  it("lets a custom handler answer a denied request", async () => {
    await h.setPolicy({ tagMaxWeights: { free: 0 } });
    const handler = gated({
      onDenied: async (req, result) =>
        Response.json({ busy: true, path: new URL(req.url).pathname }, { status: 503, headers: { "x-denied": result.reason } }),
    });
    const res = await handler(request("/ok", { "x-waitstate-tag": "free" }), routeContext());
    expect(res.status).toBe(503);
    expect(res.headers.get("x-denied")).toBe("tag_blocked");
    expect(res.headers.get("retry-after")).toBeNull();
    expect(await res.json()).toEqual({ busy: true, path: "/ok" });
    expect(handlerCalls).toBe(0);
  });
});

/**
 * The edge wrappers (workers, hono, nextjs) over a real EdgeGate holding a
 * policy: what they gate, the 429 they answer (byte for byte the Node
 * middlewares'), what they report, and that every request hands `sync()` to
 * `waitUntil`.
 */
import { type Context, Hono } from "hono";
import { describe, expect, it } from "vitest";
import { EdgeGate, WaitStateError } from "@waitstate/edge";
import { createMiddleware as honoEdge } from "@waitstate/edge/hono";
import { createMiddleware as nextMiddleware, withGate as nextWithGate } from "@waitstate/edge/nextjs";
import { withWaitState } from "@waitstate/edge/workers";
import { createMiddleware as honoNode } from "../../sdk-node/src/middleware/hono.js";

/** The wrappers' client: a real EdgeGate decides; reports and syncs are recorded. */
class RecordingClient {
  readonly gateImpl = new EdgeGate();
  readonly latencies: Array<[number, string | undefined]> = [];
  readonly errors: Array<string | undefined> = [];
  syncs = 0;
  constructor(policy: object) {
    this.gateImpl.update({ version: 1, ...policy });
  }
  gate(tag?: string, weight?: number) {
    return this.gateImpl.gate(tag, weight);
  }
  reportLatency(ms: number, tag?: string) {
    this.latencies.push([ms, tag]);
  }
  reportError(tag?: string) {
    this.errors.push(tag);
  }
  sync(): Promise<void> {
    this.syncs++;
    return Promise.resolve();
  }
}

const POLICY = { tagMaxWeights: { free: 5, blocked: 0 } };

class Ctx {
  readonly pending: Promise<unknown>[] = [];
  waitUntil(p: Promise<unknown>) {
    this.pending.push(p);
  }
}

const req = (headers: Record<string, string> = {}) => new Request("https://api.example.com/search", { headers });

describe("withWaitState (Workers fetch handler)", () => {
  it("gates by the tag header and answers a denial with the Node middlewares' exact 429", async () => {
    const client = new RecordingClient(POLICY);
    let ran = 0;
    const fetchHandler = withWaitState(
      async () => {
        ran++;
        return new Response("ok");
      },
      { waitstate: client, weightFrom: "x-weight" },
    );
    const ctx = new Ctx();
    const denied = await fetchHandler(req({ "x-waitstate-tag": "blocked" }), {}, ctx);
    expect(denied.status).toBe(429);
    expect(denied.headers.get("retry-after")).toBe("60");
    expect(denied.headers.get("content-type")).toBe("application/json; charset=utf-8");
    const body = await denied.text();
    expect(JSON.parse(body)).toEqual({
      error: { code: "RATE_LIMITED", message: expect.stringContaining("blocked by policy"), reason: "tag_blocked" },
    });

    // The same request through @waitstate/sdk's Hono middleware: the same bytes.
    const app = new Hono();
    app.use("*", honoNode({ waitstate: client }));
    app.get("*", (c) => c.text("ok"));
    const node = await app.request("/search", { headers: { "x-waitstate-tag": "blocked" } });
    expect([node.status, node.headers.get("retry-after"), await node.text()]).toEqual([429, "60", body]);

    const overWeight = await fetchHandler(req({ "x-waitstate-tag": "free", "x-weight": "6" }), {}, ctx);
    expect(((await overWeight.json()) as { error: { reason: string } }).error.reason).toBe("over_weight");
    const allowed = await fetchHandler(req({ "x-waitstate-tag": "free", "x-weight": "5" }), {}, ctx);
    expect([allowed.status, await allowed.text()]).toEqual([200, "ok"]);
    expect(ran).toBe(1);
    // Every request, denied or not, leaves its sync to waitUntil; only the allowed one is timed.
    expect(ctx.pending).toHaveLength(3);
    expect(client.syncs).toBe(3);
    expect(client.latencies.map(([, tag]) => tag)).toEqual(["free"]);
    expect(client.latencies[0]![0]).toBeGreaterThanOrEqual(0);
    expect(client.errors).toEqual([]);
  });

  it("reports 5xx and a throwing handler as errors of the tag, and rethrows", async () => {
    const client = new RecordingClient(POLICY);
    const failing = withWaitState(() => new Response("down", { status: 503 }), { waitstate: client });
    expect((await failing(req({ "x-waitstate-tag": "free" }), {}, new Ctx())).status).toBe(503);
    const throwing = withWaitState(
      () => {
        throw new Error("boom");
      },
      { waitstate: client },
    );
    await expect(throwing(req(), {}, new Ctx())).rejects.toThrow("boom");
    expect(client.errors).toEqual(["free", undefined]);
    expect(client.latencies.map(([, tag]) => tag)).toEqual(["free", undefined]);
    expect(client.syncs).toBe(2);
  });

  it("makes the client once from env, takes tag and weight functions and a retryAfter", async () => {
    const client = new RecordingClient({ tagMaxWeights: { gold: 2 } });
    const made: unknown[] = [];
    const fetchHandler = withWaitState(() => new Response("ok"), {
      waitstate: (env: { KEY: string }) => {
        made.push(env.KEY);
        return client;
      },
      tagFrom: (r) => new URL(r.url).searchParams.get("plan") ?? undefined,
      weightFrom: (r) => Number(r.headers.get("cost")),
      retryAfter: 1.2,
    });
    const env = { KEY: "k" };
    const r1 = await fetchHandler(new Request("https://x/?plan=gold", { headers: { cost: "3" } }), env, new Ctx());
    expect([r1.status, r1.headers.get("retry-after")]).toEqual([429, "2"]);
    const r2 = await fetchHandler(new Request("https://x/?plan=gold", { headers: { cost: "2" } }), env, new Ctx());
    expect(r2.status).toBe(200);
    expect(made).toEqual(["k"]);
  });

  it("waitForPolicyMs: a cold client's first requests wait for ready(ms); once it has a policy nothing waits", async () => {
    const client = new RecordingClient({ tagMaxWeights: { blocked: 0 } });
    const asked: number[] = [];
    let synced = false;
    let readyCalls = 0;
    const cold = Object.assign(client, {
      ready(ms?: number) {
        readyCalls++;
        asked.push(ms ?? -1);
        return Promise.resolve(synced);
      },
    });
    const fetchHandler = withWaitState(() => new Response("ok"), { waitstate: cold, waitForPolicyMs: 250 });
    await fetchHandler(req({ "x-waitstate-tag": "blocked" }), {}, new Ctx()); // ready → false: asked again next time
    synced = true;
    await fetchHandler(req(), {}, new Ctx()); // ready → true: warm from now on
    await fetchHandler(req(), {}, new Ctx());
    expect(asked).toEqual([250, 250]);
    expect(readyCalls).toBe(2);
    // Without the option, or with 0, ready() is never asked.
    const plain = withWaitState(() => new Response("ok"), { waitstate: cold });
    await plain(req(), {}, new Ctx());
    expect(readyCalls).toBe(2);
    expect(() => withWaitState(() => new Response(), { waitstate: cold, waitForPolicyMs: -1 })).toThrow(/options\.waitForPolicyMs/);
  });

  it("throws a typed error naming the bad option, at creation", () => {
    const bad: Array<[unknown, RegExp]> = [
      [undefined, /options must be an object/],
      [{}, /options\.waitstate must be/],
      [{ waitstate: { gate() {} } }, /options\.waitstate must be/],
      [{ waitstate: new RecordingClient({}), tagFrom: 3 }, /options\.tagFrom/],
      [{ waitstate: new RecordingClient({}), weightFrom: "" }, /options\.weightFrom/],
      [{ waitstate: new RecordingClient({}), retryAfter: -1 }, /options\.retryAfter/],
      [{ waitstate: new RecordingClient({}), onDenied: "429" }, /options\.onDenied/],
    ];
    for (const [options, message] of bad) {
      let thrown: unknown;
      try {
        withWaitState(() => new Response(), options as never);
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(WaitStateError);
      expect((thrown as WaitStateError).code).toBe("INVALID_OPTIONS");
      expect((thrown as WaitStateError).message).toMatch(message);
      expect((thrown as WaitStateError).message).toContain("@waitstate/edge/workers withWaitState");
    }
    expect(() => withWaitState("handler" as never, { waitstate: new RecordingClient({}) })).toThrow(/fetch handler/);
  });
});

describe("@waitstate/edge/hono", () => {
  it("gates a Hono app, reports its latency and errors, and syncs in waitUntil when there is an execution context", async () => {
    const client = new RecordingClient(POLICY);
    const app = new Hono<{ Bindings: { URL: string } }>();
    app.use("*", honoEdge<Context>({ waitstate: () => client, tagFrom: (c) => c.req.query("plan") }));
    app.get("/ok", (c) => c.text("ok"));
    app.get("/fail", (c) => c.text("no", 500));
    const ctx = new Ctx();
    const executionCtx = ctx as never;
    expect((await app.request("/ok?plan=blocked", {}, { URL: "u" }, executionCtx)).status).toBe(429);
    expect((await app.request("/ok?plan=free", {}, { URL: "u" }, executionCtx)).status).toBe(200);
    expect((await app.request("/fail?plan=free", {}, { URL: "u" }, executionCtx)).status).toBe(500);
    // Without an execution context (Deno, Bun, Node) the sync still starts.
    expect((await app.request("/ok?plan=free")).status).toBe(200);
    expect(ctx.pending).toHaveLength(3);
    expect(client.syncs).toBe(4);
    expect(client.latencies.map(([, tag]) => tag)).toEqual(["free", "free", "free"]);
    expect(client.errors).toEqual(["free"]);
  });
});

describe("@waitstate/edge/nextjs", () => {
  it("createMiddleware: 429 or continue (undefined), sync in event.waitUntil", async () => {
    const client = new RecordingClient(POLICY);
    const middleware = nextMiddleware({ waitstate: client, retryAfter: 5 });
    const event = new Ctx();
    const denied = await middleware(req({ "x-waitstate-tag": "blocked" }), event);
    expect([denied?.status, denied?.headers.get("retry-after")]).toEqual([429, "5"]);
    expect(await middleware(req({ "x-waitstate-tag": "free" }), event)).toBeUndefined();
    expect(event.pending).toHaveLength(2);
    expect(client.latencies).toEqual([]);
  });

  it("withGate: times the route handler, reports 5xx, hands sync to options.waitUntil", async () => {
    const client = new RecordingClient(POLICY);
    const kept: Promise<unknown>[] = [];
    const GET = nextWithGate({ waitstate: client, waitUntil: (p) => kept.push(p) }, async (r: Request) =>
      Response.json({ q: new URL(r.url).pathname }, { status: r.headers.get("x-fail") ? 502 : 200 }),
    );
    expect((await GET(req({ "x-waitstate-tag": "blocked" }))).status).toBe(429);
    expect((await GET(req({ "x-waitstate-tag": "free" }))).status).toBe(200);
    expect((await GET(req({ "x-waitstate-tag": "free", "x-fail": "1" }))).status).toBe(502);
    expect(kept).toHaveLength(3);
    expect(client.errors).toEqual(["free"]);
    expect(() => nextWithGate({ waitstate: client, waitUntil: 1 as never }, () => new Response())).toThrow(/options\.waitUntil/);

    // redirect() throws an error whose digest carries its status: a redirect, not a failure; any other throw is one.
    const redirecting = nextWithGate({ waitstate: client }, () => {
      throw Object.assign(new Error("NEXT_REDIRECT"), { digest: "NEXT_REDIRECT;replace;/login;307;" });
    });
    await expect(redirecting(req({ "x-waitstate-tag": "free" }))).rejects.toThrow("NEXT_REDIRECT");
    const crashing = nextWithGate({ waitstate: client }, () => {
      throw new Error("boom");
    });
    await expect(crashing(req({ "x-waitstate-tag": "pro" }))).rejects.toThrow("boom");
    expect(client.errors).toEqual(["free", "pro"]);
  });
});

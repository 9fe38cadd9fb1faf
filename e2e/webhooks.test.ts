/**
 * Webhooks end to end: the control plane under `wrangler dev` (its
 * WebhookDispatcher Durable Object, alarms, D1) delivering to a real
 * node:http receiver on 127.0.0.1. The signature is checked with the recipe
 * docs/audit-and-webhooks.md gives (node:crypto); a receiver that refuses
 * connections or answers 500 for a while gets the delivery later, exactly
 * once; a receiver that hangs does not slow pulses; a pending delivery
 * survives a restart of the control plane. Retries are sped up with
 * WEBHOOK_RETRY_BASE_MS so the schedule that spans hours in production runs
 * in seconds here.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startLocalControlPlane, type LocalControlPlane, type Tenant } from "../scripts/local-control-plane.mjs";
import { sleep, until } from "./support/wait.js";

const RETRY_BASE_MS = 200;
const ATTEMPT_TIMEOUT_MS = 6000;

let cp: LocalControlPlane;
let tenant: Tenant;
const receivers: Receiver[] = [];

const api = <T = any>(method: string, path: string, body?: unknown) => cp.api<T>(method, path, tenant.managementToken, body);

// ------------------------------------------------------------ the documented recipe

/**
 * Verifies a delivery as docs/audit-and-webhooks.md tells receivers to:
 * HMAC-SHA256 of `${timestamp}.${rawBody}` keyed with the whole secret, hex,
 * prefixed `v1=`, compared in constant time; timestamp within 5 minutes.
 */
function verifyWebhook(secret: string, headers: IncomingMessage["headers"], rawBody: string): boolean {
  const timestamp = String(headers["x-waitstate-timestamp"] ?? "");
  const signature = String(headers["x-waitstate-signature"] ?? "");
  if (!/^\d+$/.test(timestamp) || Math.abs(Date.now() - Number(timestamp)) > 5 * 60_000) return false;
  const expected = `v1=${createHmac("sha256", secret).update(`${timestamp}.${rawBody}`).digest("hex")}`;
  return signature.length === expected.length && timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
}

// ------------------------------------------------------------ a real receiver

interface Received {
  headers: IncomingMessage["headers"];
  body: string;
  at: number;
  /** What the receiver answered: a status, or "hung". */
  answer: number | "hung";
}

/** A node:http receiver on 127.0.0.1 that can answer, fail, hang, or be down (refusing connections) on a fixed port. */
class Receiver {
  readonly requests: Received[] = [];
  /** Decides each answer; `n` counts requests from 1. */
  answer: (n: number, r: Omit<Received, "answer">) => number | "hang" = () => 200;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  private constructor(readonly port: number) {}

  static async create(listening = true): Promise<Receiver> {
    const r = new Receiver(await freePort());
    receivers.push(r);
    if (listening) await r.up();
    return r;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/waitstate`;
  }

  get delivered(): Received[] {
    return this.requests.filter((r) => typeof r.answer === "number" && r.answer >= 200 && r.answer < 300);
  }

  async up(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => this.handle(req, res));
    server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.server = server;
  }

  /** Stops listening and drops every connection (hung ones too): connections are refused from now on. */
  async down(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r = { headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), at: Date.now() };
      const answer = this.answer(this.requests.length + 1, r);
      this.requests.push({ ...r, answer: answer === "hang" ? "hung" : answer });
      if (answer === "hang") return; // never answers; down() or the sender's timeout ends it
      res.writeHead(answer, { "content-type": "text/plain" }).end(answer < 300 ? "thanks" : "not now");
    });
  }
}

// ------------------------------------------------------------ pulses, signed as the SDKs sign them

async function pulse(siteId: string, latency: number, instanceId = "e2e-1") {
  const body = JSON.stringify({
    instanceId,
    siteId,
    usageDelta: 10,
    bouncedUnits: 0,
    metrics: { latency, errors: 0 },
    tagMetrics: [{ tag: "free", count: 10, latency }],
    ts: Date.now(),
  });
  const timestamp = String(Date.now());
  const signature = createHmac("sha256", tenant.secretKey).update(`${body}.${timestamp}`).digest("hex");
  const started = performance.now();
  const res = await fetch(`${cp.url}/v1/pulse`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-waitstate-id": tenant.publishKey,
      "x-waitstate-timestamp": timestamp,
      "x-waitstate-signature": signature,
    },
    body,
  });
  const policy = (await res.json()) as { tagMaxWeights: Record<string, number> };
  const ms = performance.now() - started;
  expect(res.status, JSON.stringify(policy)).toBe(200);
  return { ms, policy };
}

type Delivery = {
  id: string;
  eventId: string;
  kind: string;
  status: string;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: number | null;
  deliveredAt: number | null;
};

async function deliveries(hookId: string): Promise<Delivery[]> {
  return (await api<{ deliveries: Delivery[] }>("GET", `/v1/webhooks/${hookId}/deliveries?limit=200`)).deliveries;
}

async function createHook(url: string, events: string[]) {
  return api<{ id: string; secret: string }>("POST", "/v1/webhooks", { url, events });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

beforeAll(async () => {
  // The receivers listen on 127.0.0.1, which webhooks may reach only when the operator opts in (docs/audit-and-webhooks.md).
  cp = await startLocalControlPlane({
    vars: {
      WEBHOOK_RETRY_BASE_MS: String(RETRY_BASE_MS),
      WEBHOOK_TIMEOUT_MS: String(ATTEMPT_TIMEOUT_MS),
      WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true",
    },
  });
  tenant = await cp.tenant("Webhooks E2E", "enterprise");
});

afterAll(async () => {
  for (const r of receivers) await r.down();
  await cp?.dispose();
});

describe("webhooks against wrangler dev and a real receiver", () => {
  it("delivers a signed event that verifies with the documented recipe, and lists the delivery", async () => {
    const receiver = await Receiver.create();
    const hook = await createHook(receiver.url, ["tag.*"]);
    const tag = await api<{ id: string }>("POST", "/v1/tags", { name: "signed", maxWeight: 3 });
    const [got] = await until(() => receiver.requests.length > 0 && receiver.requests, 10_000, "the delivery");

    expect(verifyWebhook(hook.secret, got!.headers, got!.body)).toBe(true);
    expect(verifyWebhook(hook.secret, got!.headers, got!.body.replace('"maxWeight":3', '"maxWeight":9'))).toBe(false);
    expect(verifyWebhook(hook.secret.slice(0, -1) + (hook.secret.endsWith("A") ? "B" : "A"), got!.headers, got!.body)).toBe(false);
    expect(got!.headers["content-type"]).toBe("application/json");
    expect(got!.headers["x-waitstate-event"]).toBe("tag.created");

    const [entry] = (await api("GET", "/v1/audit-log?kind=tag.created")).entries;
    expect(JSON.parse(got!.body)).toEqual({ ...entry, orgId: tenant.orgId });
    expect(entry).toMatchObject({ kind: "tag.created", target: tag.id, after: { name: "signed", maxWeight: 3 } });

    const listed = await until(
      async () => {
        const [d] = await deliveries(hook.id);
        return d?.status === "delivered" && d;
      },
      10_000,
      "the delivery recorded as delivered",
    );
    expect(listed).toMatchObject({
      id: got!.headers["x-waitstate-webhook-id"],
      eventId: entry.id,
      kind: "tag.created",
      attempts: 1,
      lastStatusCode: 200,
      lastError: null,
      nextAttemptAt: null,
    });
  });

  it("a receiver that refuses connections for a while gets the delivery later, once", async () => {
    const receiver = await Receiver.create(false); // nothing listens on its port yet
    const hook = await createHook(receiver.url, ["kill.*"]);
    await api("POST", "/v1/sites", { siteId: "refused" });
    await api("POST", "/v1/sites/refused/kill", { enabled: true });

    const failing = await until(
      async () => {
        const [d] = await deliveries(hook.id);
        return d !== undefined && d.attempts >= 2 && d;
      },
      15_000,
      "two refused attempts",
    );
    expect(failing).toMatchObject({ status: "pending", lastStatusCode: null, kind: "kill.on" });
    expect(failing.lastError).toBe("connection_failed");
    expect(failing.nextAttemptAt).toBeGreaterThan(Date.now() - 1000);

    await receiver.up();
    const done = await until(
      async () => {
        const [d] = await deliveries(hook.id);
        return d?.status === "delivered" && d;
      },
      20_000,
      "the delivery after the receiver came up",
    );
    expect(done.attempts).toBeGreaterThanOrEqual(3);
    expect(receiver.requests).toHaveLength(1);
    expect(verifyWebhook(hook.secret, receiver.requests[0]!.headers, receiver.requests[0]!.body)).toBe(true);
    expect(JSON.parse(receiver.requests[0]!.body)).toMatchObject({ kind: "kill.on", siteId: "refused", after: { killSwitch: true } });
    // Longer than the next few retries would take: still exactly one.
    await sleep(RETRY_BASE_MS * 8);
    expect(receiver.requests).toHaveLength(1);
  });

  it("a receiver answering 500 gets it later; after its 2xx nothing is delivered again", async () => {
    const receiver = await Receiver.create();
    receiver.answer = (n) => (n <= 3 ? 500 : 200);
    const hook = await createHook(receiver.url, ["rule.created"]);
    await api("POST", "/v1/reflex-rules", {
      tagName: "free",
      metric: "errors",
      operator: "gt",
      threshold: 1000,
      action: "block",
      priority: 9,
      siteId: "nowhere",
    });

    const done = await until(
      async () => {
        const [d] = await deliveries(hook.id);
        return d?.status === "delivered" && d;
      },
      20_000,
      "the delivery after three 500s",
    );
    expect(done).toMatchObject({ attempts: 4, lastStatusCode: 200, lastError: null });
    expect(receiver.requests.map((r) => r.answer)).toEqual([500, 500, 500, 200]);
    // every attempt is the same delivery, the same bytes, freshly signed
    expect(new Set(receiver.requests.map((r) => r.headers["x-waitstate-webhook-id"])).size).toBe(1);
    expect(new Set(receiver.requests.map((r) => r.body)).size).toBe(1);
    for (const r of receiver.requests) expect(verifyWebhook(hook.secret, r.headers, r.body)).toBe(true);
    // the backoff doubles: gaps of about 1, 2, 4 bases
    const gaps = receiver.requests.slice(1).map((r, i) => r.at - receiver.requests[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(RETRY_BASE_MS * 0.9);
    expect(gaps[1]).toBeGreaterThanOrEqual(RETRY_BASE_MS * 1.8);
    expect(gaps[2]).toBeGreaterThanOrEqual(RETRY_BASE_MS * 3.6);
    await sleep(RETRY_BASE_MS * 16);
    expect(receiver.requests).toHaveLength(4);
    expect(receiver.delivered).toHaveLength(1);
  });

  it("a receiver that hangs does not slow pulses, even when every pulse fires or clears a rule", async () => {
    const siteId = "hang-site";
    await api("POST", "/v1/sites", { siteId, pulseIntervalMs: 250, windowSeconds: 0.3 });
    const rule = await api<{ id: string }>("POST", "/v1/reflex-rules", {
      siteId,
      tagName: "free",
      metric: "latency",
      operator: "gt",
      threshold: 500,
      action: "block",
      priority: 1,
      cooldownSeconds: 0,
    });
    /** Alternating hot and cool pulses, each past the window: every one is a transition (fire, clear, …). */
    const cycle = async (n: number) => {
      const times: number[] = [];
      for (let i = 0; i < n; i++) {
        const hot = i % 2 === 0;
        const { ms, policy } = await pulse(siteId, hot ? 900 : 20);
        expect(policy.tagMaxWeights.free, `pulse ${i}`).toBe(hot ? 0 : undefined);
        times.push(ms);
        await sleep(350);
      }
      return times;
    };
    for (let i = 0; i < 3; i++) await pulse(siteId, 20); // warm up
    await sleep(350);
    const baseline = await cycle(10);

    const receiver = await Receiver.create();
    receiver.answer = () => "hang";
    await createHook(receiver.url, ["rule.*"]);
    const withHangingReceiver = await cycle(10);
    // the receiver really was hanging on deliveries while those pulses were answered
    await until(() => receiver.requests.length >= 2, 10_000, "hung deliveries");
    const fires = (await api("GET", `/v1/audit-log?kind=rule.*&siteId=${siteId}&limit=200`)).entries.filter(
      (e: { target: string }) => e.target === rule.id,
    );
    expect(fires.length).toBeGreaterThanOrEqual(20);

    const slowest = Math.max(...withHangingReceiver);
    console.log(
      `pulse latency ms: baseline median ${median(baseline).toFixed(1)} max ${Math.max(...baseline).toFixed(1)}; hanging receiver median ${median(withHangingReceiver).toFixed(1)} max ${slowest.toFixed(1)}`,
    );
    // A pulse that waited on the receiver would take the whole attempt timeout (6 s); the margin absorbs a loaded machine.
    expect(slowest).toBeLessThan(ATTEMPT_TIMEOUT_MS / 3);
    expect(median(withHangingReceiver)).toBeLessThan(median(baseline) + 50);
    await receiver.down();
  });

  it("a pending delivery survives a restart of the control plane", async () => {
    const receiver = await Receiver.create(false);
    const hook = await createHook(receiver.url, ["tag.deleted"]);
    const tag = await api<{ id: string }>("POST", "/v1/tags", { name: "restart" });
    await api("DELETE", `/v1/tags/${tag.id}`);
    await until(async () => ((await deliveries(hook.id))[0]?.attempts ?? 0) >= 1, 10_000, "a refused attempt");
    await cp.stop();
    await receiver.up();
    await cp.start();
    const done = await until(
      async () => {
        const [d] = await deliveries(hook.id);
        return d?.status === "delivered" && d;
      },
      30_000,
      "the delivery after the restart",
    );
    expect(done.attempts).toBeGreaterThanOrEqual(2);
    expect(receiver.requests).toHaveLength(1);
    expect(JSON.parse(receiver.requests[0]!.body)).toMatchObject({ kind: "tag.deleted", target: tag.id });
  });

  it("lists deliveries newest first with a cursor", async () => {
    const receiver = await Receiver.create();
    const hook = await createHook(receiver.url, ["tag.created"]);
    for (const name of ["p1", "p2", "p3", "p4", "p5"]) await api("POST", "/v1/tags", { name });
    await until(async () => (await deliveries(hook.id)).filter((d) => d.status === "delivered").length === 5, 10_000, "five deliveries");
    const first = await api<{ deliveries: Delivery[]; nextCursor: string | null }>("GET", `/v1/webhooks/${hook.id}/deliveries?limit=2`);
    const second = await api<{ deliveries: Delivery[]; nextCursor: string | null }>(
      "GET",
      `/v1/webhooks/${hook.id}/deliveries?limit=2&cursor=${first.nextCursor}`,
    );
    const third = await api<{ deliveries: Delivery[]; nextCursor: string | null }>(
      "GET",
      `/v1/webhooks/${hook.id}/deliveries?limit=2&cursor=${second.nextCursor}`,
    );
    expect([first.deliveries.length, second.deliveries.length, third.deliveries.length, third.nextCursor]).toEqual([2, 2, 1, null]);
    const names = [...first.deliveries, ...second.deliveries, ...third.deliveries].map((d) => {
      const request = receiver.requests.find((r) => r.headers["x-waitstate-webhook-id"] === d.id)!;
      return JSON.parse(request.body).after.name as string;
    });
    expect(names).toEqual(["p5", "p4", "p3", "p2", "p1"]);
  });
});

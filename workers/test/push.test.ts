/**
 * Push (docs/protocol.md#push): `GET /v1/policy/:orgId/subscribe` in workerd,
 * real WebSockets through the Worker to the site's SiteAggregator.
 */
import { env, exports } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PolicySchema } from "@waitstate/protocol";
import { issueSdkToken, JWT_TTL_SECONDS } from "../src/lib/jwt.js";
import { call, expectError } from "./helpers.js";
import { insertRule, jwtFor, orgWithKey, seedPulse, sendPulse, stubFor, type Keys } from "./pulse-helpers.js";

function subscribeRequest(orgId: string, token: string | undefined, query = "", upgrade = true) {
  const headers: Record<string, string> = {};
  if (upgrade) headers.upgrade = "websocket";
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return exports.default.fetch(`http://waitstate.test/v1/policy/${orgId}/subscribe${query}`, { headers });
}

async function refused(orgId: string, token: string | undefined, query = "", upgrade = true) {
  const res = await subscribeRequest(orgId, token, query, upgrade);
  expect(res.webSocket).toBeNull();
  const text = await res.text();
  return { status: res.status, json: JSON.parse(text) as unknown };
}

/** The client end of a subscription: every message and the close, in order. */
class Client {
  readonly messages: unknown[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    ws.accept();
    ws.addEventListener("message", (e) => {
      this.messages.push(typeof e.data === "string" && e.data !== "pong" ? JSON.parse(e.data) : e.data);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));
  }

  /** Waits for the `n`th message (1-based). */
  async nth(n: number): Promise<unknown> {
    while (this.messages.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
    return this.messages[n - 1];
  }
}

async function subscribe(orgId: string, token: string, query = ""): Promise<Client> {
  const res = await subscribeRequest(orgId, token, query);
  expect(res.status, res.status === 101 ? "" : await res.text()).toBe(101);
  return new Client(res.webSocket!);
}

async function siteWithPulse(name: string): Promise<Keys & { jwt: string }> {
  const keys = await orgWithKey(name);
  const pulse = await sendPulse(keys, seedPulse({ siteId: "prod" }));
  expect(pulse.status).toBe(200);
  return { ...keys, jwt: await jwtFor(keys) };
}

/** Whether the site's aggregator ever did any work (it adopts its identity on its first request). */
async function aggregatorTouched(orgId: string, siteId: string): Promise<boolean> {
  return runInDurableObject(stubFor(orgId, siteId), (_instance, state) => {
    const rows = state.storage.sql.exec("SELECT 1 FROM meta WHERE key = 'identity'").toArray();
    return rows.length > 0;
  });
}

describe("GET /v1/policy/:orgId/subscribe", () => {
  it("refuses bad subscriptions with typed HTTP errors before any Durable Object work", async () => {
    const a = await orgWithKey("Push Refusals A");
    const b = await orgWithKey("Push Refusals B");
    // A site that exists (made by the management API) and whose aggregator has never been asked anything.
    expect((await call("POST", "/v1/sites", { token: a.token, body: { siteId: "prod" } })).status).toBe(201);
    const token = await jwtFor(a);
    const q = "?siteId=prod";

    expectError(await refused(a.orgId, token, q, false), 426, "UPGRADE_REQUIRED");
    expectError(await refused(a.orgId, undefined, q), 401, "UNAUTHORIZED");
    expectError(await refused(a.orgId, "not.a.jwt", q), 401, "INVALID_TOKEN");
    const expired = await issueSdkToken(env.ENCRYPTION_KEY!, "key_x", a.orgId, Date.now() - 3_600_000);
    expectError(await refused(a.orgId, expired.token, q), 401, "TOKEN_EXPIRED");
    expectError(await refused(a.orgId, await jwtFor(b), q), 403, "FORBIDDEN");
    expectError(await refused(a.orgId, token, "?siteId=%2E%2E%2Fx"), 400, "VALIDATION_FAILED");
    expectError(await refused(a.orgId, token, "?siteId=nowhere"), 404, "NOT_FOUND");

    // A site-scoped key cannot subscribe to another site.
    const scopedKey = await call("POST", "/v1/api-keys", { token: a.token, body: { name: "staging only", siteId: "staging" } });
    expect(scopedKey.status).toBe(201);
    const scoped = await jwtFor({ publishKey: scopedKey.json.publishKey, secretKey: scopedKey.json.secretKey });
    expectError(await refused(a.orgId, scoped, q), 403, "FORBIDDEN");

    // A revoked key's token.
    expect((await call("DELETE", `/v1/api-keys/${scopedKey.json.id}`, { token: a.token })).status).toBe(200);
    expectError(await refused(a.orgId, scoped, "?siteId=staging"), 401, "KEY_REVOKED");

    expect(await aggregatorTouched(a.orgId, "prod")).toBe(false);
    expect(await aggregatorTouched(a.orgId, "nowhere")).toBe(false);
    expect(await aggregatorTouched(a.orgId, "staging")).toBe(false);

    // The same site and token with everything right is accepted (so the refusals above were the checks').
    const client = await subscribe(a.orgId, token, q);
    expect(await client.nth(1)).toMatchObject({ type: "policy", version: 1 });
    expect(await aggregatorTouched(a.orgId, "prod")).toBe(true);
    client.ws.close(1000);
  });

  it("sends the current policy at once, with the ETag a policy read answers", async () => {
    const keys = await siteWithPulse("Push Initial");
    const client = await subscribe(keys.orgId, keys.jwt, "?siteId=prod");
    const first = (await client.nth(1)) as { type: string; version: number; etag: string; policy: unknown };
    expect(first.type).toBe("policy");
    const policy = PolicySchema.parse(first.policy);
    expect(first.version).toBe(policy.version);

    const read = await exports.default.fetch(`http://waitstate.test/v1/policy/${keys.orgId}?siteId=prod`, {
      headers: { authorization: `Bearer ${keys.jwt}` },
    });
    expect(read.status).toBe(200);
    expect(first.etag).toBe(read.headers.get("etag"));
    expect(first.policy).toEqual(await read.json());
    client.ws.close(1000);
  });

  it("pushes a kill switch toggled through the management API to every subscriber, versions increasing", async () => {
    const keys = await siteWithPulse("Push Kill");
    const one = await subscribe(keys.orgId, keys.jwt, "?siteId=prod");
    const two = await subscribe(keys.orgId, keys.jwt, "?siteId=prod");
    const start = ((await one.nth(1)) as { version: number }).version;
    await two.nth(1);

    const on = await call("POST", "/v1/sites/prod/kill", { token: keys.token, body: { enabled: true } });
    expect(on.status, on.text).toBe(200);
    for (const client of [one, two]) {
      expect(await client.nth(2)).toMatchObject({ type: "policy", version: start + 1, policy: { killSignal: true, version: start + 1 } });
    }
    const off = await call("POST", "/v1/sites/prod/kill", { token: keys.token, body: { enabled: false } });
    expect(off.status).toBe(200);
    expect(await one.nth(3)).toMatchObject({ version: start + 2, policy: { killSignal: false } });
    expect(await two.nth(3)).toMatchObject({ version: start + 2, policy: { killSignal: false } });

    // A client that reconnects gets the latest version first.
    one.ws.close(1000);
    const again = await subscribe(keys.orgId, keys.jwt, "?siteId=prod");
    expect(await again.nth(1)).toMatchObject({ version: start + 2, policy: { killSignal: false } });
    two.ws.close(1000);
    again.ws.close(1000);
  });

  it("answers ping with pong and closes a client that floods with 1008", async () => {
    const keys = await siteWithPulse("Push Flood");
    const client = await subscribe(keys.orgId, keys.jwt, "?siteId=prod");
    await client.nth(1);
    for (let i = 0; i < 10; i++) client.ws.send("ping");
    expect(await client.nth(11)).toBe("pong");
    expect(client.messages.slice(1)).toEqual(Array(10).fill("pong"));

    for (let i = 0; i < 20; i++) client.ws.send(`hello ${i}`);
    expect(await client.closed).toEqual({ code: 1008, reason: "FLOODING" });

    // Another subscriber of the site is unaffected.
    const other = await subscribe(keys.orgId, keys.jwt, "?siteId=prod");
    expect(await other.nth(1)).toMatchObject({ type: "policy" });
    other.ws.close(1000);
  });

  it("closes a revoked key's sockets with 4001 and leaves other keys' open", async () => {
    const keys = await siteWithPulse("Push Revoke");
    const second = await call("POST", "/v1/api-keys", { token: keys.token, body: { name: "second" } });
    expect(second.status).toBe(201);
    const revokedClient = await subscribe(keys.orgId, keys.jwt, "?siteId=prod");
    const kept = await subscribe(
      keys.orgId,
      await jwtFor({ publishKey: second.json.publishKey, secretKey: second.json.secretKey }),
      "?siteId=prod",
    );
    await revokedClient.nth(1);
    await kept.nth(1);

    const list = await call("GET", "/v1/api-keys", { token: keys.token });
    const first = (list.json.apiKeys as Array<{ id: string; publishKey: string }>).find((k) => k.publishKey === keys.publishKey)!;
    expect((await call("DELETE", `/v1/api-keys/${first.id}`, { token: keys.token })).status).toBe(200);
    expect(await revokedClient.closed).toEqual({ code: 4001, reason: "KEY_REVOKED" });

    const on = await call("POST", "/v1/sites/prod/kill", { token: keys.token, body: { enabled: true } });
    expect(on.status).toBe(200);
    expect(await kept.nth(2)).toMatchObject({ policy: { killSignal: true } });
    kept.ws.close(1000);
  });

  /** A token for the site's key that expires within two seconds. */
  async function shortToken(keys: Keys) {
    const list = await call("GET", "/v1/api-keys", { token: keys.token });
    const keyId = (list.json.apiKeys as Array<{ id: string }>)[0]!.id;
    return issueSdkToken(env.ENCRYPTION_KEY!, keyId, keys.orgId, Date.now() - (JWT_TTL_SECONDS - 2) * 1000);
  }
  const until = (at: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now()) + 50));

  it("closes a socket whose token expired with 4002 at the aggregator's sweep", async () => {
    const keys = await siteWithPulse("Push Expiry Sweep");
    const short = await shortToken(keys);
    const expiring = await subscribe(keys.orgId, short.token, "?siteId=prod");
    const fresh = await subscribe(keys.orgId, keys.jwt, "?siteId=prod");
    await Promise.all([expiring.nth(1), fresh.nth(1)]);
    await until(short.expiresAt);

    // The subscription scheduled the alarm that sweeps it.
    expect(await runDurableObjectAlarm(stubFor(keys.orgId, "prod"))).toBe(true);
    expect(await expiring.closed).toEqual({ code: 4002, reason: "TOKEN_EXPIRED" });
    expect(await stubFor(keys.orgId, "prod").subscribers()).toBe(1);
    fresh.ws.close(1000);
  });

  it("closes a socket whose token expired with 4002 instead of sending it a new policy", async () => {
    const keys = await siteWithPulse("Push Expiry Broadcast");
    const short = await shortToken(keys);
    const expiring = await subscribe(keys.orgId, short.token, "?siteId=prod");
    const fresh = await subscribe(keys.orgId, keys.jwt, "?siteId=prod");
    await Promise.all([expiring.nth(1), fresh.nth(1)]);
    await until(short.expiresAt);

    const on = await call("POST", "/v1/sites/prod/kill", { token: keys.token, body: { enabled: true } });
    expect(on.status).toBe(200);
    expect(await fresh.nth(2)).toMatchObject({ policy: { killSignal: true } });
    expect(await expiring.closed).toEqual({ code: 4002, reason: "TOKEN_EXPIRED" });
    expect(expiring.messages).toHaveLength(1);
    fresh.ws.close(1000);
  });

  it("does not count instances' sockets against anything else: a pulse still answers while subscribers are connected", async () => {
    const keys = await siteWithPulse("Push Pulse Path");
    const clients = await Promise.all(Array.from({ length: 5 }, () => subscribe(keys.orgId, keys.jwt, "?siteId=prod")));
    await Promise.all(clients.map((c) => c.nth(1)));
    expect(await stubFor(keys.orgId, "prod").subscribers()).toBe(5);
    const pulse = await sendPulse(keys, seedPulse({ siteId: "prod", ts: Date.now() + 1000 }));
    expect(pulse.status).toBe(200);
    for (const c of clients) c.ws.close(1000);
  });
});

/** Reads Server-Sent Events from a streamed response. */
class EventReader {
  readonly events: Array<{ event: string; data: unknown }> = [];
  private buffer = "";
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();

  constructor(res: Response) {
    this.reader = res.body!.getReader();
  }

  /** Waits for the first event (from the `from`th on) that `match` accepts. */
  async until(match: (e: { event: string; data: any }) => boolean, from = 0): Promise<{ event: string; data: any }> {
    for (let i = from; ; i++) {
      while (this.events.length <= i) await this.read();
      if (match(this.events[i]!)) return this.events[i]!;
    }
  }

  private async read(): Promise<void> {
    const { done, value } = await this.reader.read();
    if (done) throw new Error("the stream ended");
    this.buffer += this.decoder.decode(value, { stream: true });
    let end = this.buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = [...block.matchAll(/^data: (.*)$/gm)].map((m) => m[1]).join("\n");
      if (event !== undefined) this.events.push({ event, data: JSON.parse(data) });
      end = this.buffer.indexOf("\n\n");
    }
  }

  cancel() {
    return this.reader.cancel();
  }
}

describe("GET /v1/sites/:id/events", () => {
  it("streams the site's status, new policies and rule fires as Server-Sent Events", async () => {
    const keys = await orgWithKey("Push Events");
    expect((await call("POST", "/v1/sites", { token: keys.token, body: { siteId: "api" } })).status).toBe(201);
    await insertRule(keys.orgId, { tagName: "free", metric: "latency", operator: "gt", threshold: 500, action: "block", priority: 1 });
    const res = await exports.default.fetch("http://waitstate.test/v1/sites/api/events", {
      headers: { authorization: `Bearer ${keys.token}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const stream = new EventReader(res);
    const first = await stream.until(() => true);
    expect(first).toMatchObject({ event: "status", data: { type: "status", status: { siteId: "api", policy: { killSignal: false } } } });

    const slow = seedPulse({ siteId: "api", metrics: { latency: 900, errors: 0 } });
    expect((await sendPulse(keys, slow)).status).toBe(200);
    const fired = await stream.until((e) => e.event === "rule.fired");
    expect(fired.data).toMatchObject({ type: "rule.fired", event: { kind: "fired", tagName: "free", metric: "latency", value: 900 } });
    const policy = await stream.until((e) => e.event === "policy");
    expect(policy.data).toMatchObject({ type: "policy", policy: { tagMaxWeights: { free: 0 } } });
    const status = await stream.until((e) => e.event === "status" && e.data.status.rules[0]?.applied === true);
    expect(status.data.status.window.calls).toBeGreaterThan(0);

    const on = await call("POST", "/v1/sites/api/kill", { token: keys.token, body: { enabled: true } });
    expect(on.status).toBe(200);
    expect((await stream.until((e) => e.event === "policy" && e.data.policy.killSignal)).data.version).toBe(policy.data.version + 1);
    await stream.cancel();
  });

  it("refuses a site outside the token's scope or org, and a missing site, before opening anything", async () => {
    const a = await orgWithKey("Push Events Scope A");
    const b = await orgWithKey("Push Events Scope B");
    expect((await call("POST", "/v1/sites", { token: a.token, body: { siteId: "api" } })).status).toBe(201);
    const events = (token: string | undefined, site = "api") =>
      call("GET", `/v1/sites/${site}/events`, token === undefined ? {} : { token });
    expectError(await events(undefined), 401, "UNAUTHORIZED");
    expectError(await events(b.token), 404, "NOT_FOUND");
    expectError(await events(a.token, "nowhere"), 404, "NOT_FOUND");
    expect(await aggregatorTouched(a.orgId, "api")).toBe(false);
  });
});

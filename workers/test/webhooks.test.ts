/**
 * Webhooks in workerd: the management routes (validation, secrets shown once
 * and sealed at rest, org scoping, pagination of deliveries) and the
 * WebhookDispatcher driven by its alarm, with `fetch` stubbed to stand in for
 * the receiver: matching, the signature recipe, retries with backoff, no
 * second delivery after a 2xx, `failed` after the last attempt. The real
 * receiver on 127.0.0.1 is exercised end to end in e2e/webhooks.test.ts.
 */
import { env } from "cloudflare:workers";
import app from "../src/index.js";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { WEBHOOK_MAX_ATTEMPTS, dispatcherFor, kindMatches, retryDelayMs, signWebhook } from "@waitstate/durable-objects";
import { BASE, call, createOrg, expectError } from "./helpers.js";

const HOOK_URL = "https://hooks.example.test/waitstate";

interface Sent {
  url: string;
  headers: Record<string, string>;
  body: string;
}

const realFetch = globalThis.fetch;

/** Replaces the global fetch the dispatcher uses (tests, the Worker and its Durable Objects share one isolate). */
function stubReceiver(answer: (sent: Sent, n: number) => Response | Promise<Response>) {
  const sent: Sent[] = [];
  const spy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init);
    if (!request.url.startsWith("https://hooks.example.test/")) return realFetch(input, init);
    const s: Sent = { url: request.url, headers: Object.fromEntries(request.headers), body: await request.text() };
    sent.push(s);
    return answer(s, sent.length);
  });
  return { sent, spy };
}

async function createHook(token: string, body: Record<string, unknown> = {}) {
  const res = await call("POST", "/v1/webhooks", { token, body: { url: HOOK_URL, events: ["*"], ...body } });
  expect(res.status, res.text).toBe(201);
  return res.json as { id: string; url: string; events: string[]; enabled: boolean; createdAt: number; secret: string };
}

async function deliveries(token: string, hookId: string, query = "") {
  const res = await call("GET", `/v1/webhooks/${hookId}/deliveries${query}`, { token });
  expect(res.status, res.text).toBe(200);
  return res.json as { deliveries: Array<Record<string, any>>; nextCursor: string | null };
}

const dispatcher = (orgId: string) => dispatcherFor(env.WEBHOOK_DISPATCHER, orgId);

/**
 * Waits until the dispatcher has nothing due and has mirrored everything to D1.
 * Its alarm fires on its own (a new delivery is due at once), so tests wait for
 * the outcome rather than race the alarm.
 */
async function settle(orgId: string, timeoutMs = 5000) {
  const stub = dispatcher(orgId);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const busy = await runInDurableObject(stub, (_instance, state) => {
      const row = state.storage.sql
        .exec<{ n: number }>(
          "SELECT count(*) AS n FROM deliveries WHERE (status = 'pending' AND next_attempt_at <= ?) OR version != synced_version",
          Date.now(),
        )
        .one();
      return row.n;
    });
    if (busy === 0) return;
    if (Date.now() > deadline) throw new Error(`the dispatcher of ${orgId} did not settle`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Makes every pending delivery due now (as if its backoff had passed) and waits for the attempt. */
async function runDue(orgId: string) {
  await runInDurableObject(dispatcher(orgId), async (_instance, state) => {
    state.storage.sql.exec("UPDATE deliveries SET next_attempt_at = 0 WHERE status = 'pending'");
    await state.storage.setAlarm(Date.now());
  });
  await settle(orgId);
}

/** Hex HMAC-SHA256 of `timestamp + "." + body`, written from the docs' recipe, not the Worker's code. */
async function expectedSignature(secret: string, timestamp: string, body: string) {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(`${timestamp}.${body}`)));
  return `v1=${[...mac].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

beforeEach(() => {
  // A webhook subscribed to * also receives its own webhook.created; keep those off the network.
  stubReceiver(() => new Response(null, { status: 200 }));
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("webhook routes", () => {
  it("creates a webhook, shows the secret once and keeps it sealed at rest", async () => {
    const { org, token } = await createOrg("Hook Create Co");
    const created = await createHook(token, { events: ["rule.fired", "kill.*", "rule.fired"] });
    expect(created).toMatchObject({ url: HOOK_URL, events: ["rule.fired", "kill.*"], enabled: true });
    expect(created.id).toMatch(/^wh_[A-Za-z0-9_-]+$/);
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9_-]{43}$/);
    const list = await call("GET", "/v1/webhooks", { token });
    expect(list.json.webhooks).toEqual([
      { id: created.id, url: HOOK_URL, events: ["rule.fired", "kill.*"], enabled: true, createdAt: created.createdAt, updatedAt: null },
    ]);
    expect(list.text).not.toContain(created.secret);
    expect((await call("GET", `/v1/webhooks/${created.id}`, { token })).text).not.toContain("whsec_");
    const row = await env.DB.prepare("SELECT * FROM webhooks WHERE org_id = ?").bind(org.id).first<Record<string, unknown>>();
    expect(JSON.stringify(row)).not.toContain(created.secret);
    expect(JSON.stringify(row)).not.toContain(created.secret.slice("whsec_".length));
    // defaults: every event, enabled
    const all = await call("POST", "/v1/webhooks", { token, body: { url: "https://hooks.example.test/all" } });
    expect(all.json).toMatchObject({ events: ["*"], enabled: true });
  });

  it("refuses bad URLs and events with a typed 400 naming the problem", async () => {
    const { token } = await createOrg("Hook Validate Co");
    const bad: Array<[unknown, string]> = [
      [{ url: "ftp://example.com/x" }, "http or https"],
      [{ url: "javascript:alert(1)" }, "http or https"],
      [{ url: "/relative" }, "absolute"],
      [{ url: "https://user:pw@example.com/x" }, "credentials"],
      [{ url: "https://token@example.com/x" }, "credentials"],
      [{ url: `https://example.com/${"a".repeat(2100)}` }, "2048"],
      [{ url: "" }, "empty"],
      [{ url: 42 }, "url"],
      [{ url: HOOK_URL, events: [] }, "at least one"],
      [{ url: HOOK_URL, events: ["nope.*"] }, "no such event"],
      [{ url: HOOK_URL, events: ["rule.exploded"] }, "no such event"],
      [{ url: HOOK_URL, events: ["RULE.FIRED"] }, "events"],
      [{ url: HOOK_URL, events: "rule.fired" }, "events"],
      [{ url: HOOK_URL, events: Array.from({ length: 51 }, () => "*") }, "events"],
      [{ url: HOOK_URL, enabled: "yes" }, "enabled"],
      [{}, "url"],
    ];
    for (const [body, mentions] of bad) {
      const error = expectError(await call("POST", "/v1/webhooks", { token, body }), 400, "VALIDATION_FAILED");
      expect(error.message, JSON.stringify(body).slice(0, 80)).toContain(mentions);
    }
    const hook = await createHook(token);
    expectError(await call("PATCH", `/v1/webhooks/${hook.id}`, { token, body: {} }), 400, "VALIDATION_FAILED");
    expectError(
      await call("PATCH", `/v1/webhooks/${hook.id}`, { token, body: { url: "https://a:b@example.com" } }),
      400,
      "VALIDATION_FAILED",
    );
    expectError(await call("PATCH", `/v1/webhooks/${hook.id}`, { token, body: { events: ["bogus"] } }), 400, "VALIDATION_FAILED");
    expect((await call("GET", "/v1/webhooks", { token })).json.webhooks).toHaveLength(1);
  });

  it("updates and deletes, recording webhook.* in the audit log without the secret", async () => {
    const { token } = await createOrg("Hook Edit Co");
    const hook = await createHook(token);
    const patched = await call("PATCH", `/v1/webhooks/${hook.id}`, {
      token,
      body: { url: "https://hooks.example.test/v2", events: ["rule.*"], enabled: false },
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.json).toMatchObject({
      id: hook.id,
      url: "https://hooks.example.test/v2",
      events: ["rule.*"],
      enabled: false,
      updatedAt: expect.any(Number),
    });
    const deleted = await call("DELETE", `/v1/webhooks/${hook.id}`, { token });
    expect(deleted.json).toMatchObject({ id: hook.id });
    expectError(await call("GET", `/v1/webhooks/${hook.id}`, { token }), 404, "NOT_FOUND");
    expectError(await call("DELETE", `/v1/webhooks/${hook.id}`, { token }), 404, "NOT_FOUND");
    const audit = await call("GET", "/v1/audit-log?kind=webhook.*", { token });
    expect(audit.json.entries.map((e: { kind: string }) => e.kind)).toEqual(["webhook.deleted", "webhook.updated", "webhook.created"]);
    expect(audit.json.entries[1]).toMatchObject({
      target: hook.id,
      before: { enabled: true, events: ["*"] },
      after: { enabled: false, events: ["rule.*"] },
    });
    expect(audit.text).not.toContain(hook.secret);
  });

  it("scopes everything to the org: another org's webhook is a 404 for every verb", async () => {
    const a = await createOrg("Hook Scope A");
    const b = await createOrg("Hook Scope B");
    const hook = await createHook(a.token);
    expect((await call("GET", "/v1/webhooks", { token: b.token })).json.webhooks).toEqual([]);
    expectError(await call("GET", `/v1/webhooks/${hook.id}`, { token: b.token }), 404, "NOT_FOUND");
    expectError(await call("PATCH", `/v1/webhooks/${hook.id}`, { token: b.token, body: { enabled: false } }), 404, "NOT_FOUND");
    expectError(await call("DELETE", `/v1/webhooks/${hook.id}`, { token: b.token }), 404, "NOT_FOUND");
    expectError(await call("GET", `/v1/webhooks/${hook.id}/deliveries`, { token: b.token }), 404, "NOT_FOUND");
    expectError(await call("GET", "/v1/webhooks/wh_nope/deliveries", { token: a.token }), 404, "NOT_FOUND");
    expectError(await call("GET", "/v1/webhooks/not%20an%20id", { token: a.token }), 404, "NOT_FOUND");
    expect((await call("GET", `/v1/webhooks/${hook.id}`, { token: a.token })).json.enabled).toBe(true);
  });

  it("caps an org at 20 webhooks", async () => {
    const { token } = await createOrg("Hook Cap Co");
    for (let i = 0; i < 20; i++) await createHook(token, { url: `https://hooks.example.test/${i}`, enabled: false });
    expectError(await call("POST", "/v1/webhooks", { token, body: { url: HOOK_URL } }), 403, "PLAN_LIMIT_REACHED");
  });

  it("pages deliveries newest first with a cursor and refuses bad paging parameters", async () => {
    const { org, token } = await createOrg("Hook Paging Co");
    const hook = await createHook(token, { enabled: false });
    await env.DB.batch(
      Array.from({ length: 25 }, (_, i) =>
        env.DB.prepare(
          "INSERT INTO webhook_deliveries (id, org_id, webhook_id, event_id, kind, status, attempts, created_at) VALUES (?, ?, ?, ?, 'kill.on', 'delivered', 1, ?)",
        ).bind(`whd_${String(i).padStart(2, "0")}`, org.id, hook.id, `aud_${i}`, 1_700_000_000_000 + Math.floor(i / 3)),
      ),
    );
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { deliveries: Array<Record<string, any>>; nextCursor: string | null } = await deliveries(
        token,
        hook.id,
        `?limit=10${cursor ? `&cursor=${cursor}` : ""}`,
      );
      ids.push(...page.deliveries.map((d) => d.id as string));
      cursor = page.nextCursor;
    } while (cursor !== null);
    expect(ids).toEqual(Array.from({ length: 25 }, (_, i) => `whd_${String(24 - i).padStart(2, "0")}`));
    expect((await deliveries(token, hook.id)).deliveries).toHaveLength(25);
    for (const q of ["?limit=0", "?limit=201", "?limit=x", "?cursor=%%%", "?cursor=e30"]) {
      expectError(await call("GET", `/v1/webhooks/${hook.id}/deliveries${q}`, { token }), 400, "VALIDATION_FAILED");
    }
  });
});

describe("webhook targets: no loopback, private or link-local addresses (SSRF)", () => {
  // Every spelling the URL parser accepts for a host inside the control plane's network.
  const REFUSED = [
    "http://127.1:1/",
    "http://127.0.0.1:8787/v1/organizations",
    "http://0x7f000001/",
    "http://0x7F.0.0.1/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://127.0.0.1./",
    "http://127.255.255.254/",
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:c0a8:101::1]/",
    "http://[::]/",
    "http://0.0.0.0/",
    "http://0/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://api.localhost/",
    "http://10.0.0.1/",
    "http://10.255.255.255:9200/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://100.127.255.254/",
    "http://[fc00::1]/",
    "http://[fd12:3456:789a::1]/",
    "http://[fe80::1]/",
    "http://intranet/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://printer.local/",
    "http://224.0.0.1/",
  ];
  const ACCEPTED = [
    "https://hooks.example.test/x",
    "http://8.8.8.8/",
    "http://100.128.0.1/",
    "http://172.32.0.1/",
    "http://192.169.0.1/",
    "http://[2606:4700:4700::1111]/",
    "http://[::ffff:8.8.8.8]/",
  ];

  it("refuses each spelling at creation and update with a typed 400 naming url", async () => {
    const { token } = await createOrg("Hook SSRF Co");
    const hook = await createHook(token, { enabled: false });
    for (const url of REFUSED) {
      const created = expectError(await call("POST", "/v1/webhooks", { token, body: { url } }), 400, "VALIDATION_FAILED");
      expect(created.message, url).toMatch(/^url: /);
      expect(created.message, url).toContain("WEBHOOKS_ALLOW_PRIVATE_TARGETS");
      expectError(await call("PATCH", `/v1/webhooks/${hook.id}`, { token, body: { url } }), 400, "VALIDATION_FAILED");
    }
    expect((await call("GET", "/v1/webhooks", { token })).json.webhooks.map((w: { url: string }) => w.url)).toEqual([HOOK_URL]);
    for (const url of ACCEPTED) {
      const res = await call("POST", "/v1/webhooks", { token, body: { url, enabled: false } });
      expect(res.status, `${url}: ${res.text}`).toBe(201);
    }
  }, 60_000);

  it("allows private targets when the operator opts in with WEBHOOKS_ALLOW_PRIVATE_TARGETS=true", async () => {
    const { token } = await createOrg("Hook Opt-in Co");
    const post = (bindings: Record<string, string>) =>
      app.request(
        `${BASE}/v1/webhooks`,
        {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ url: "http://127.1:1/", enabled: false }),
        },
        { ...env, ...bindings },
      );
    expect((await post({ WEBHOOKS_ALLOW_PRIVATE_TARGETS: "false" })).status).toBe(400);
    expect((await post({ WEBHOOKS_ALLOW_PRIVATE_TARGETS: "yes" })).status).toBe(400);
    const allowed = await post({ WEBHOOKS_ALLOW_PRIVATE_TARGETS: "true" });
    expect(allowed.status, await allowed.clone().text()).toBe(201);
    expect(((await allowed.json()) as { url: string }).url).toBe("http://127.0.0.1:1/");
  });

  it("refuses again at delivery time: a private URL already stored is never fetched", async () => {
    const receiver = stubReceiver(() => new Response(null, { status: 200 }));
    const attempted: string[] = [];
    receiver.spy.mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
      attempted.push(new Request(input, init).url);
      return new Response(null, { status: 200 });
    });
    const { org, token } = await createOrg("Hook Stored SSRF Co");
    const hook = await createHook(token, { events: ["tag.*"] });
    // As if written before the check existed, or while the opt-in was on.
    await env.DB.prepare("UPDATE webhooks SET url = 'http://169.254.169.254/latest/meta-data/' WHERE id = ?").bind(hook.id).run();
    await call("POST", "/v1/tags", { token, body: { name: "t" } });
    await runDue(org.id);
    expect(attempted.filter((u) => u.includes("169.254.169.254"))).toEqual([]);
    const [d] = (await deliveries(token, hook.id)).deliveries;
    expect(d).toMatchObject({ status: "failed", attempts: 0, lastStatusCode: null, lastError: "target_refused", nextAttemptAt: null });
  });
});

describe("deliveries", () => {
  it("sends matching events, signed by the documented recipe, and records them", async () => {
    const receiver = stubReceiver(() => new Response("ok", { status: 200 }));
    const { org, token } = await createOrg("Hook Deliver Co");
    const killHook = await createHook(token, { events: ["kill.*"] });
    const offHook = await createHook(token, { events: ["*"], enabled: false });
    await call("POST", "/v1/sites", { token, body: { siteId: "prod" } });
    await call("POST", "/v1/sites/prod/kill", { token, body: { enabled: true } });
    await call("POST", "/v1/tags", { token, body: { name: "free" } });
    await runDue(org.id);

    expect(receiver.sent).toHaveLength(1);
    const [sent] = receiver.sent;
    const body = JSON.parse(sent!.body);
    const audit = (await call("GET", "/v1/audit-log?kind=kill.on", { token })).json.entries[0];
    expect(body).toEqual({
      id: audit.id,
      kind: "kill.on",
      at: audit.at,
      orgId: org.id,
      siteId: "prod",
      actor: audit.actor,
      target: "prod",
      before: audit.before,
      after: audit.after,
      details: audit.details,
    });
    expect(sent!.headers["content-type"]).toBe("application/json");
    expect(sent!.headers["x-waitstate-event"]).toBe("kill.on");
    expect(sent!.headers["x-waitstate-webhook-id"]).toMatch(/^whd_/);
    const timestamp = sent!.headers["x-waitstate-timestamp"]!;
    expect(Math.abs(Number(timestamp) - Date.now())).toBeLessThan(60_000);
    expect(sent!.headers["x-waitstate-signature"]).toBe(await expectedSignature(killHook.secret, timestamp, sent!.body));
    expect(sent!.headers["x-waitstate-signature"]).not.toBe(await expectedSignature(killHook.secret, timestamp, `${sent!.body} `));

    const listed = await deliveries(token, killHook.id);
    expect(listed.deliveries).toEqual([
      {
        id: sent!.headers["x-waitstate-webhook-id"],
        eventId: audit.id,
        kind: "kill.on",
        status: "delivered",
        attempts: 1,
        lastStatusCode: 200,
        lastError: null,
        nextAttemptAt: null,
        deliveredAt: expect.any(Number),
        createdAt: expect.any(Number),
      },
    ]);
    expect((await deliveries(token, offHook.id)).deliveries).toEqual([]);
  });

  it("retries a failing receiver with backoff, and never sends again after a 2xx", async () => {
    const receiver = stubReceiver((_s, n) => new Response("", { status: n < 3 ? 500 : 204 }));
    const { org, token } = await createOrg("Hook Retry Co");
    const hook = await createHook(token, { events: ["tag.created"] });
    await call("POST", "/v1/tags", { token, body: { name: "t" } });
    const before = Date.now();
    await settle(org.id);
    let [d] = (await deliveries(token, hook.id)).deliveries;
    expect(d).toMatchObject({ status: "pending", attempts: 1, lastStatusCode: 500, lastError: "http_5xx" });
    expect(d!.nextAttemptAt).toBeGreaterThanOrEqual(before + retryDelayMs(1));
    expect(d!.nextAttemptAt).toBeLessThan(Date.now() + retryDelayMs(1) + 1000);
    // not due yet: the alarm sends nothing
    await runDurableObjectAlarm(dispatcher(org.id));
    expect(receiver.sent).toHaveLength(1);
    await runDue(org.id);
    [d] = (await deliveries(token, hook.id)).deliveries;
    expect(d).toMatchObject({ status: "pending", attempts: 2, lastStatusCode: 500 });
    expect(d!.nextAttemptAt - Date.now()).toBeGreaterThan(retryDelayMs(2) - 1000);
    await runDue(org.id);
    [d] = (await deliveries(token, hook.id)).deliveries;
    expect(d).toMatchObject({ status: "delivered", attempts: 3, lastStatusCode: 204, lastError: null, nextAttemptAt: null });
    for (let i = 0; i < 3; i++) await runDue(org.id);
    expect(receiver.sent).toHaveLength(3);
    expect(new Set(receiver.sent.map((s) => s.headers["x-waitstate-webhook-id"])).size).toBe(1);
    expect(new Set(receiver.sent.map((s) => s.body)).size).toBe(1); // the same bytes every attempt
  });

  it("gives up after the last attempt, recording why", async () => {
    const receiver = stubReceiver(() => {
      throw new TypeError("connection refused");
    });
    const { org, token } = await createOrg("Hook Fail Co");
    const hook = await createHook(token, { events: ["tag.*"] });
    await call("POST", "/v1/tags", { token, body: { name: "t" } });
    for (let i = 0; i < WEBHOOK_MAX_ATTEMPTS + 2; i++) await runDue(org.id);
    expect(receiver.sent).toHaveLength(WEBHOOK_MAX_ATTEMPTS);
    const [d] = (await deliveries(token, hook.id)).deliveries;
    expect(d).toMatchObject({
      status: "failed",
      attempts: WEBHOOK_MAX_ATTEMPTS,
      lastStatusCode: null,
      nextAttemptAt: null,
      deliveredAt: null,
    });
    expect(d!.lastError).toBe("connection_failed");
  });

  it("drops the pending deliveries of a deleted webhook and fails those of a disabled one", async () => {
    const receiver = stubReceiver(() => new Response("", { status: 503 }));
    const { org, token } = await createOrg("Hook Lifecycle Co");
    const doomed = await createHook(token, { events: ["tag.*"] });
    const paused = await createHook(token, { events: ["tag.*"] });
    await call("POST", "/v1/tags", { token, body: { name: "t" } });
    await settle(org.id);
    expect(receiver.sent).toHaveLength(2);
    await call("DELETE", `/v1/webhooks/${doomed.id}`, { token });
    await call("PATCH", `/v1/webhooks/${paused.id}`, { token, body: { enabled: false } });
    await runDue(org.id);
    expect(receiver.sent).toHaveLength(2);
    const [d] = (await deliveries(token, paused.id)).deliveries;
    expect(d).toMatchObject({ status: "failed", attempts: 1, lastError: "webhook_disabled" });
    const left = await runInDurableObject(
      dispatcher(org.id),
      (_i, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM deliveries WHERE status = 'pending'").one().n,
    );
    expect(left).toBe(0);
  });

  it("queues an entry handed over twice only once per webhook", async () => {
    const { org, token } = await createOrg("Hook Dedupe Co");
    const hook = await createHook(token, { events: ["rule.fired"], enabled: true });
    const entry = {
      id: "aud_twice",
      at: Date.now(),
      siteId: "s",
      actor: { type: "system" as const, id: null, name: null },
      kind: "rule.fired" as const,
      target: "rule_1",
      before: null,
      after: null,
      details: null,
    };
    const first = await dispatcher(org.id).dispatch(org.id, [entry]);
    const again = await dispatcher(org.id).dispatch(org.id, [entry]);
    expect([first.queued, again.queued]).toEqual([1, 0]);
    expect((await deliveries(token, hook.id)).deliveries).toHaveLength(1);
    // kinds the webhook does not want are not queued
    expect((await dispatcher(org.id).dispatch(org.id, [{ ...entry, id: "aud_other", kind: "rule.cleared" }])).queued).toBe(0);
    await settle(org.id);
  });
});

describe("delivery errors are coarse categories", () => {
  it("lists http_4xx, http_5xx, http_3xx, timeout and connection_failed, never the receiver's words", async () => {
    const answers: Array<() => Response> = [
      () => new Response("<h1>Internal admin console: redis 6379 open</h1>", { status: 404, statusText: "Not Found on internal-host-7" }),
      () => new Response("upstream db-primary.internal:5432 refused", { status: 502, statusText: "Bad Gateway db-primary" }),
      () => new Response(null, { status: 302, headers: { location: "http://10.0.0.7/" } }),
      () => {
        throw new DOMException("The operation was aborted due to timeout", "TimeoutError");
      },
      () => {
        throw new TypeError("Network connection lost to 10.1.2.3:6379");
      },
    ];
    const expected = ["http_4xx", "http_5xx", "http_3xx", "timeout", "connection_failed"];
    for (const [i, answer] of answers.entries()) {
      stubReceiver(answer);
      const { org, token } = await createOrg(`Hook Category Co ${i}`);
      const hook = await createHook(token, { events: ["tag.*"] });
      await call("POST", "/v1/tags", { token, body: { name: "t" } });
      await settle(org.id);
      const listed = await call("GET", `/v1/webhooks/${hook.id}/deliveries`, { token });
      expect(listed.json.deliveries[0].lastError, String(i)).toBe(expected[i]);
      for (const secret of ["redis", "db-primary", "internal-host", "10.0.0.7", "10.1.2.3", "Network connection lost", "Bad Gateway"]) {
        expect(listed.text, String(i)).not.toContain(secret);
      }
      vi.restoreAllMocks();
    }
  }, 60_000);
});

describe("signing, matching and the retry schedule", () => {
  it("signs v1= hex HMAC-SHA256 over timestamp.body with the whole secret", async () => {
    const secret = "whsec_test";
    expect(await signWebhook(secret, "1700000000000", '{"a":1}')).toBe(await expectedSignature(secret, "1700000000000", '{"a":1}'));
    // a known vector: printf '1700000000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
    expect(await signWebhook(secret, "1700000000000", '{"a":1}')).toBe(
      "v1=33284ebef248a1f463f81384bfb39351b857cb4897c654b820611536fa084f1e",
    );
  });

  it("matches *, exact kinds and prefixes", () => {
    expect(kindMatches(["*"], "cap_exceeded")).toBe(true);
    expect(kindMatches(["rule.*"], "rule.fired")).toBe(true);
    expect(kindMatches(["rule.*"], "rules.fired")).toBe(false);
    expect(kindMatches(["rule.fired"], "rule.cleared")).toBe(false);
    expect(kindMatches(["kill.on", "tag.*"], "tag.deleted")).toBe(true);
  });

  it("retries for at least an hour with the default base, doubling", () => {
    const delays = Array.from({ length: WEBHOOK_MAX_ATTEMPTS - 1 }, (_, i) => retryDelayMs(i + 1));
    expect(delays.slice(0, 4)).toEqual([60_000, 120_000, 240_000, 480_000]);
    const total = delays.reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(60 * 60_000);
    expect(Math.max(...delays)).toBe(60 * 60_000);
    expect(retryDelayMs(1, 50)).toBe(50);
  });
});

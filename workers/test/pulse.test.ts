import { env } from "cloudflare:workers";
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { PolicySchema } from "@waitstate/protocol";
import { policyKey } from "@waitstate/durable-objects";
import { call, expectError } from "./helpers.js";
import { insertRule, orgWithKey, seedPulse, sendPulse, sign } from "./pulse-helpers.js";

describe("POST /v1/pulse", () => {
  it("answers a documented pulse with the policy, creates the site and its tags", async () => {
    const keys = await orgWithKey("Docs Co");
    const res = await sendPulse(keys, seedPulse());
    expect(res.status, res.text).toBe(200);
    const policy = PolicySchema.parse(res.json);
    expect(policy).toMatchObject({
      version: 1,
      globalMaxWeight: null,
      tagMaxWeights: {},
      killSignal: false,
      status: "ok",
      leaseDurationSeconds: 60,
      pulseInterval: 1000,
    });
    expect(res.headers.get("etag")).toMatch(/^"[0-9a-z]+-1"$/);
    expect(res.headers.get("x-waitstate-counted")).toBe("true");
    // No siteId in the pulse: the site is the org (one aggregator per org when the pulse names no site).
    const site = await env.DB.prepare("SELECT site_id FROM sites WHERE org_id = ?").bind(keys.orgId).all<{ site_id: string }>();
    expect(site.results.map((r) => r.site_id)).toEqual([keys.orgId]);
    const tags = await env.DB.prepare("SELECT name, auto_created, max_weight FROM tags WHERE org_id = ? ORDER BY name")
      .bind(keys.orgId)
      .all();
    expect(tags.results).toEqual([
      { name: "free", auto_created: 1, max_weight: 10 },
      { name: "pro", auto_created: 1, max_weight: 10 },
    ]);
    // Written to KV for GET /v1/policy.
    const cached = await env.POLICIES.get<{ policy: unknown; etag: string }>(policyKey(keys.orgId, keys.orgId), "json");
    expect(cached?.policy).toEqual(res.json);
    expect(cached?.etag).toBe(res.headers.get("etag"));
  });

  it("evaluates the reflex rules with the pulse included", async () => {
    const keys = await orgWithKey("Rules Co");
    await insertRule(keys.orgId, { tagName: "free", metric: "latency", operator: "gt", threshold: 500, action: "block", priority: 1 });
    await insertRule(keys.orgId, {
      tagName: "pro",
      metric: "latency",
      operator: "gt",
      threshold: 500,
      action: "throttle",
      actionValue: 0.5,
      priority: 2,
    });
    const calm = await sendPulse(keys, seedPulse({ siteId: "prod", metrics: { latency: 80, errors: 0 } }));
    expect(calm.json).toMatchObject({ version: 1, tagMaxWeights: {} });
    const slow = await sendPulse(keys, seedPulse({ siteId: "prod", metrics: { latency: 900, errors: 0 }, ts: Date.now() + 1 }));
    expect(slow.status, slow.text).toBe(200);
    // The window now holds 80 ms and 900 ms pulses of 967 calls each: mean 490 ms... so send one more slow one.
    const slower = await sendPulse(keys, seedPulse({ siteId: "prod", metrics: { latency: 2000, errors: 0 }, ts: Date.now() + 2 }));
    expect(slower.json).toMatchObject({ version: 2, tagMaxWeights: { free: 0, pro: 5 } });
  });

  it("acknowledges a replayed pulse with the current policy but does not count it again; an older, different pulse is another process's", async () => {
    const keys = await orgWithKey("Replay Co");
    const body = JSON.stringify(seedPulse({ siteId: "s1" }));
    const timestamp = String(Date.now());
    const first = await sendPulse(keys, body, { timestamp });
    const replay = await sendPulse(keys, body, { timestamp });
    expect(replay.status).toBe(200);
    expect(replay.headers.get("x-waitstate-counted")).toBe("false");
    expect(replay.json).toEqual(first.json);
    // One process's ts only grows: an older pulse that is no re-send comes from another process with the same instanceId.
    const older = await sendPulse(keys, seedPulse({ siteId: "s1", ts: JSON.parse(body).ts - 1000 }));
    expect(older.headers.get("x-waitstate-counted")).toBe("true");
    expect(older.headers.get("x-waitstate-duplicate-instance")).toBe("true");
    const newer = await sendPulse(keys, seedPulse({ siteId: "s1", ts: JSON.parse(body).ts + 1 }));
    expect(newer.headers.get("x-waitstate-counted")).toBe("true");
  });

  it("refuses a wrong, malformed or tampered signature", async () => {
    const keys = await orgWithKey("Sig Co");
    const body = JSON.stringify(seedPulse());
    expectError(await sendPulse(keys, body, { signature: "0".repeat(64) }), 401, "INVALID_SIGNATURE");
    expectError(await sendPulse(keys, body, { signature: "not-hex" }), 401, "INVALID_SIGNATURE");
    expectError(await sendPulse(keys, body.replace('"usageDelta":967', '"usageDelta":1'), { signedBody: body }), 401, "INVALID_SIGNATURE");
    expectError(await sendPulse({ ...keys, secretKey: "ws_sec_wrong" }, body), 401, "INVALID_SIGNATURE");
    // The timestamp is signed too: the same signature under another timestamp fails.
    const ts = String(Date.now());
    const sig = await sign(keys.secretKey, body, ts);
    expectError(await sendPulse(keys, body, { timestamp: String(Number(ts) + 1), signature: sig }), 401, "INVALID_SIGNATURE");
  });

  it("refuses missing headers, skewed or malformed timestamps", async () => {
    const keys = await orgWithKey("Clock Co");
    const res = await exports.default.fetch("http://waitstate.test/v1/pulse", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expectError({ status: res.status, json: await res.json() }, 401, "UNAUTHORIZED");
    expectError(await sendPulse(keys, seedPulse(), { timestamp: String(Date.now() - 6 * 60_000) }), 401, "TIMESTAMP_SKEW");
    expectError(await sendPulse(keys, seedPulse(), { timestamp: String(Date.now() + 6 * 60_000) }), 401, "TIMESTAMP_SKEW");
    expectError(await sendPulse(keys, seedPulse(), { timestamp: "yesterday" }), 401, "TIMESTAMP_SKEW");
    // Within 5 minutes is fine.
    expect((await sendPulse(keys, seedPulse(), { timestamp: String(Date.now() - 4 * 60_000) })).status).toBe(200);
  });

  it("refuses a body over 64 KiB, declared or streamed", async () => {
    const keys = await orgWithKey("Big Co");
    const big = JSON.stringify(seedPulse({ pad: "x".repeat(70_000) }));
    expectError(await sendPulse(keys, big), 413, "PAYLOAD_TOO_LARGE");
    // Without content-length: the body is refused while it streams in.
    const timestamp = String(Date.now());
    const signature = await sign(keys.secretKey, big, timestamp);
    const bytes = new TextEncoder().encode(big);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 8192) controller.enqueue(bytes.slice(i, i + 8192));
        controller.close();
      },
    });
    const res = await exports.default.fetch("http://waitstate.test/v1/pulse", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-waitstate-id": keys.publishKey,
        "x-waitstate-timestamp": timestamp,
        "x-waitstate-signature": signature,
      },
      body: stream,
    });
    expectError({ status: res.status, json: await res.json() }, 413, "PAYLOAD_TOO_LARGE");
  });

  it("refuses unknown and revoked keys", async () => {
    const keys = await orgWithKey("Key Co");
    expectError(await sendPulse(keys, seedPulse(), { publishKey: "ws_pub_nobody" }), 401, "UNKNOWN_KEY");
    expect((await sendPulse(keys, seedPulse())).status).toBe(200);
    const list = await call("GET", "/v1/api-keys", { token: keys.token });
    const id = list.json.apiKeys[0].id as string;
    expect((await call("DELETE", `/v1/api-keys/${id}`, { token: keys.token })).status).toBe(200);
    expectError(await sendPulse(keys, seedPulse()), 401, "KEY_REVOKED");
  });

  it("refuses signed bodies that are not JSON or fail the schema, naming the path", async () => {
    const keys = await orgWithKey("Schema Co");
    expectError(await sendPulse(keys, "{not json"), 400, "INVALID_JSON");
    const bad = expectError(await sendPulse(keys, seedPulse({ usageDelta: -1 })), 400, "VALIDATION_FAILED");
    expect(bad.message).toContain("usageDelta");
    const tags = expectError(await sendPulse(keys, seedPulse({ tagMetrics: [{ tag: "free", count: "many" }] })), 400, "VALIDATION_FAILED");
    expect(tags.message).toContain("tagMetrics[0].count");
    expectError(await sendPulse(keys, seedPulse({ siteId: "../etc" })), 400, "VALIDATION_FAILED");
  });

  it("enforces the plan: hobby has one site, a 300 s lease and 30 s pulses", async () => {
    const keys = await orgWithKey("Hobby Co", "hobby");
    const first = await sendPulse(keys, seedPulse({ siteId: "prod" }));
    expect(first.json).toMatchObject({ leaseDurationSeconds: 300, pulseInterval: 30_000, status: "ok" });
    expectError(await sendPulse(keys, seedPulse({ siteId: "staging" })), 403, "PLAN_LIMIT_REACHED");
    // The existing site keeps working.
    expect((await sendPulse(keys, seedPulse({ siteId: "prod", ts: Date.now() + 5 }))).status).toBe(200);
  });

  it("answers cap_exceeded with 5-minute pulses once the month's calls reach the plan's allowance", async () => {
    const keys = await orgWithKey("Busy Co", "hobby");
    const month = new Date().toISOString().slice(0, 7);
    await env.DB.prepare("INSERT INTO usage_monthly (org_id, month, calls, bounced) VALUES (?, ?, ?, 0)")
      .bind(keys.orgId, month, 999_000)
      .run();
    const under = await sendPulse(keys, seedPulse({ usageDelta: 500, bouncedUnits: 0 }));
    expect(under.json).toMatchObject({ status: "ok" });
    const over = await sendPulse(keys, seedPulse({ usageDelta: 600, bouncedUnits: 0, ts: Date.now() + 1 }));
    expect(over.json).toMatchObject({ status: "cap_exceeded", pulseInterval: 300_000, version: 2 });
  });
});

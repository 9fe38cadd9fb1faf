/** Scoped API keys: environment in the prefix, a site scope, and rotation with a grace period. */
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MAX_ROTATION_GRACE_SECONDS } from "../src/routes/v1_api_keys.js";
import { call, createOrg, expectError } from "./helpers.js";
import { exchangeToken, jwtFor, seedPulse, sendPulse, type Keys } from "./pulse-helpers.js";

async function getPolicy(orgId: string, token: string, query = "") {
  const res = await exports.default.fetch(`http://waitstate.test/v1/policy/${orgId}${query}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

async function newKey(body: Record<string, unknown>, org?: { orgId: string; token: string }) {
  const owner: { orgId: string; token: string } =
    org ?? (await createOrg("Scope Co", "pro").then((o) => ({ orgId: o.org.id, token: o.token })));
  const res = await call("POST", "/v1/api-keys", { token: owner.token, body });
  expect(res.status, res.text).toBe(201);
  const keys: Keys = { publishKey: res.json.publishKey, secretKey: res.json.secretKey, orgId: owner.orgId, token: owner.token };
  return { keys, view: res.json, owner };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("key environment", () => {
  it("shows live or test in both keys' prefixes, live by default", async () => {
    const live = await newKey({ name: "web" });
    expect(live.view).toMatchObject({ environment: "live", siteId: null, expiresAt: null });
    expect(live.view.publishKey).toMatch(/^ws_pub_live_[A-Za-z0-9_-]{20,}$/);
    expect(live.view.secretKey).toMatch(/^ws_sec_live_/);
    const test = await newKey({ name: "ci", environment: "test" }, live.owner);
    expect(test.view.environment).toBe("test");
    expect(test.view.publishKey).toMatch(/^ws_pub_test_/);
    expect(test.view.secretKey).toMatch(/^ws_sec_test_/);
    expect((await sendPulse(test.keys, seedPulse())).status).toBe(200);
    expect((await exchangeToken(test.keys)).json.environment).toBe("test");
    expectError(await call("POST", "/v1/api-keys", { token: live.owner.token, body: { environment: "prod" } }), 400, "VALIDATION_FAILED");
  });

  it("keeps keys made before environments working (a bare ws_pub_ prefix, live)", async () => {
    const { keys, view } = await newKey({ name: "old" });
    const legacy = `ws_pub_${"A".repeat(22)}`;
    await env.DB.prepare("UPDATE api_keys SET publish_key = ? WHERE id = ?").bind(legacy, view.id).run();
    const old = { ...keys, publishKey: legacy };
    expect((await sendPulse(old, seedPulse())).status).toBe(200);
    expect((await exchangeToken(old)).json.environment).toBe("live");
  });
});

describe("site-scoped keys", () => {
  it("pulse and read their own site (the default), and get a typed 403 for another", async () => {
    const { keys, view } = await newKey({ name: "api only", siteId: "api" });
    expect(view.siteId).toBe("api");
    const own = await sendPulse(keys, seedPulse({ siteId: "api" }));
    expect(own.status, own.text).toBe(200);
    // No siteId: the key's site, not the org's default site.
    expect((await sendPulse(keys, seedPulse())).status).toBe(200);
    const sites = await call("GET", "/v1/sites", { token: keys.token });
    expect(sites.json.sites.map((s: { siteId: string }) => s.siteId)).toEqual(["api"]);

    const other = expectError(await sendPulse(keys, seedPulse({ siteId: "checkout" })), 403, "FORBIDDEN");
    expect(other.message).toContain('scoped to site "api"');
    expectError(await sendPulse(keys, seedPulse({ siteId: keys.orgId })), 403, "FORBIDDEN");

    const exchange = await exchangeToken(keys);
    expect(exchange.json.siteId).toBe("api");
    const token = exchange.json.token as string;
    expect((await getPolicy(keys.orgId, token, "?siteId=api")).status).toBe(200);
    expect((await getPolicy(keys.orgId, token)).status).toBe(200);
    expectError(await getPolicy(keys.orgId, token, "?siteId=checkout"), 403, "FORBIDDEN");
  });

  it("leaves an unscoped key free to use every site of the org", async () => {
    const { keys } = await newKey({ name: "all" });
    expect((await sendPulse(keys, seedPulse({ siteId: "api" }))).status).toBe(200);
    expect((await sendPulse(keys, seedPulse({ siteId: "checkout" }))).status).toBe(200);
    expect((await getPolicy(keys.orgId, await jwtFor(keys), "?siteId=checkout")).status).toBe(200);
  });

  it("refuses a malformed site scope", async () => {
    const { owner } = await newKey({ name: "x" });
    expectError(await call("POST", "/v1/api-keys", { token: owner.token, body: { siteId: "../etc" } }), 400, "VALIDATION_FAILED");
    expectError(await call("POST", "/v1/api-keys", { token: owner.token, body: { siteId: "" } }), 400, "VALIDATION_FAILED");
  });
});

describe("rotation with a grace period", () => {
  it("keeps the old key valid and counted during the grace period, and refuses it after", async () => {
    const { keys: old, view } = await newKey({ name: "web", environment: "test", siteId: "api" });
    expect((await sendPulse(old, seedPulse())).status).toBe(200);
    const oldToken = await jwtFor(old);
    const t0 = Date.now();
    const clock = vi.spyOn(Date, "now").mockReturnValue(t0);

    const rotated = await call("POST", `/v1/api-keys/${view.id}/rotate`, { token: old.token, body: { gracePeriodSeconds: 60 } });
    expect(rotated.status, rotated.text).toBe(201);
    expect(rotated.json).toMatchObject({ replaces: view.id, environment: "test", siteId: "api", oldKeyValidUntil: t0 + 60_000 });
    expect(rotated.json.publishKey).toMatch(/^ws_pub_test_/);
    const fresh: Keys = { ...old, publishKey: rotated.json.publishKey, secretKey: rotated.json.secretKey };
    const listed = (await call("GET", "/v1/api-keys", { token: old.token })).json.apiKeys.find((k: { id: string }) => k.id === view.id);
    expect(listed).toMatchObject({ revokedAt: null, expiresAt: t0 + 60_000, rotatedToId: rotated.json.id });

    // Both keys work meanwhile, and the old key's instances are still counted.
    clock.mockReturnValue(t0 + 59_999);
    const during = await sendPulse(old, seedPulse({ ts: t0 + 59_999 }));
    expect(during.status, during.text).toBe(200);
    expect(during.headers.get("x-waitstate-counted")).toBe("true");
    expect((await getPolicy(old.orgId, oldToken)).status).toBe(200);
    expect((await exchangeToken(old)).status).toBe(200);
    expect((await sendPulse(fresh, seedPulse({ ts: t0 + 59_999, instanceId: "web-02" }))).status).toBe(200);

    // The grace period's end is exact, whatever the key cache holds.
    clock.mockReturnValue(t0 + 60_000);
    const after = expectError(await sendPulse(old, seedPulse({ ts: t0 + 60_000 })), 401, "KEY_REVOKED");
    expect(after.message).toMatch(/grace period ended/);
    expectError(await getPolicy(old.orgId, oldToken), 401, "KEY_REVOKED");
    expectError(await exchangeToken(old), 401, "KEY_REVOKED");
    expect((await sendPulse(fresh, seedPulse({ ts: t0 + 60_001, instanceId: "web-02" }))).status).toBe(200);
  });

  it("revokes at once without a grace period (the default), and lets DELETE end a grace period early", async () => {
    const { keys: a, view: va } = await newKey({ name: "a" });
    const now = await call("POST", `/v1/api-keys/${va.id}/rotate`, { token: a.token, body: {} });
    expect(now.json.oldKeyValidUntil).toBeGreaterThan(0);
    expectError(await sendPulse(a, seedPulse()), 401, "KEY_REVOKED");

    const { keys: b, view: vb } = await newKey({ name: "b" }, { orgId: a.orgId, token: a.token });
    expect((await call("POST", `/v1/api-keys/${vb.id}/rotate`, { token: b.token, body: { gracePeriodSeconds: 3600 } })).status).toBe(201);
    expect((await sendPulse(b, seedPulse())).status).toBe(200);
    expectError(await call("POST", `/v1/api-keys/${vb.id}/rotate`, { token: b.token }), 409, "CONFLICT");
    expect((await call("DELETE", `/v1/api-keys/${vb.id}`, { token: b.token })).status).toBe(200);
    expectError(await sendPulse(b, seedPulse()), 401, "KEY_REVOKED");
  });

  it(`refuses a grace period that is negative, fractional or over ${MAX_ROTATION_GRACE_SECONDS} s`, async () => {
    const { keys, view } = await newKey({ name: "g" });
    for (const gracePeriodSeconds of [-1, 1.5, MAX_ROTATION_GRACE_SECONDS + 1, "60", null]) {
      expectError(
        await call("POST", `/v1/api-keys/${view.id}/rotate`, { token: keys.token, body: { gracePeriodSeconds } }),
        400,
        "VALIDATION_FAILED",
      );
    }
    const max = await call("POST", `/v1/api-keys/${view.id}/rotate`, {
      token: keys.token,
      body: { gracePeriodSeconds: MAX_ROTATION_GRACE_SECONDS },
    });
    expect(max.status, max.text).toBe(201);
  });
});

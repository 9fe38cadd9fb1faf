import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { policyKey, type CachedPolicy } from "@waitstate/durable-objects";
import { call, createOrg, expectError } from "./helpers.js";

/** Sites are created by their first pulse; these tests write the row the aggregator would. */
async function seedSite(orgId: string, siteId: string, lastPulseAt: number | null = null) {
  await env.DB.prepare("INSERT INTO sites (org_id, site_id, last_pulse_at) VALUES (?, ?, ?)").bind(orgId, siteId, lastPulseAt).run();
}

async function cachedPolicy(orgId: string, siteId: string) {
  return env.POLICIES.get<CachedPolicy>(policyKey(orgId, siteId), "json");
}

async function count(table: string, orgId: string, siteId: string) {
  const row = await env.DB.prepare(`SELECT count(*) AS n FROM ${table} WHERE org_id = ? AND site_id = ?`)
    .bind(orgId, siteId)
    .first<{ n: number }>();
  return row!.n;
}

describe("GET /v1/sites", () => {
  it("lists the org's sites with kill switch and last pulse, by siteId", async () => {
    const { org, token } = await createOrg();
    await seedSite(org.id, "web-prod", 1_750_000_000_000);
    await seedSite(org.id, "api-prod");
    const list = await call("GET", "/v1/sites", { token });
    expect(list.status).toBe(200);
    expect(list.json.sites).toHaveLength(2);
    expect(list.json.sites[0]).toMatchObject({ siteId: "api-prod", killSwitch: false, lastPulseAt: null });
    expect(list.json.sites[1]).toMatchObject({ siteId: "web-prod", killSwitch: false, lastPulseAt: 1_750_000_000_000 });
    expect(list.json.sites[0].createdAt).toBeGreaterThan(1_700_000_000_000);
  });
});

describe("POST /v1/sites/:id/kill", () => {
  it("raises the kill signal in D1, the policy and KV, and lowers it again", async () => {
    const { org, token } = await createOrg();
    await seedSite(org.id, "web");

    const on = await call("POST", "/v1/sites/web/kill", { token, body: { enabled: true } });
    expect(on.status, on.text).toBe(200);
    expect(on.json).toMatchObject({ siteId: "web", killSwitch: true, policy: { killSignal: true, status: "ok" } });
    expect((await cachedPolicy(org.id, "web"))?.policy).toEqual(on.json.policy);
    const row = await env.DB.prepare("SELECT kill_switch FROM sites WHERE org_id = ? AND site_id = 'web'").bind(org.id).first();
    expect(row).toEqual({ kill_switch: 1 });
    expect((await call("GET", "/v1/sites", { token })).json.sites[0].killSwitch).toBe(true);

    const off = await call("POST", "/v1/sites/web/kill", { token, body: { enabled: false } });
    expect(off.status).toBe(200);
    expect(off.json).toMatchObject({ siteId: "web", killSwitch: false, policy: { killSignal: false } });
    expect(off.json.policy.version).toBeGreaterThan(on.json.policy.version);
    expect((await cachedPolicy(org.id, "web"))?.policy).toEqual(off.json.policy);
    expect((await call("GET", "/v1/sites", { token })).json.sites[0].killSwitch).toBe(false);
  });

  it.each([
    ["no body field", {}],
    ["a string", { enabled: "true" }],
    ["a number", { enabled: 1 }],
  ])("refuses %s: 400 VALIDATION_FAILED, switch unchanged", async (_case, body) => {
    const { org, token } = await createOrg();
    await seedSite(org.id, "web");
    expectError(await call("POST", "/v1/sites/web/kill", { token, body }), 400, "VALIDATION_FAILED");
    expect((await call("GET", "/v1/sites", { token })).json.sites[0].killSwitch).toBe(false);
    expect(await cachedPolicy(org.id, "web")).toBeNull();
  });

  it("refuses a body that is not JSON", async () => {
    const { org, token } = await createOrg();
    await seedSite(org.id, "web");
    expectError(
      await call("POST", "/v1/sites/web/kill", { token, rawBody: "true", contentType: "text/plain" }),
      415,
      "UNSUPPORTED_MEDIA_TYPE",
    );
    expectError(await call("POST", "/v1/sites/web/kill", { token, rawBody: "{enabled" }), 400, "INVALID_JSON");
  });
});

describe("DELETE /v1/sites/:id", () => {
  it("forgets the site: row, rollups, reflex events, cached policy and aggregator state", async () => {
    const { org, token } = await createOrg();
    await seedSite(org.id, "web");
    await seedSite(org.id, "api");
    for (const siteId of ["web", "api"]) {
      await env.DB.prepare("INSERT INTO telemetry_rollups (org_id, site_id, tag, minute, calls) VALUES (?, ?, '__site__', 60000, 5)")
        .bind(org.id, siteId)
        .run();
      await env.DB.prepare(
        "INSERT INTO reflex_events (org_id, site_id, seq, rule_id, kind, at, metric, operator, threshold) VALUES (?, ?, '1-1', 'rule_x', 'fired', 1, 'errors', 'gt', 1)",
      )
        .bind(org.id, siteId)
        .run();
    }
    // The kill switch makes the aggregator adopt the site and publish a policy to KV.
    await call("POST", "/v1/sites/web/kill", { token, body: { enabled: true } });
    expect(await cachedPolicy(org.id, "web")).not.toBeNull();

    const deleted = await call("DELETE", "/v1/sites/web", { token });
    expect(deleted.status).toBe(200);
    expect(deleted.json).toMatchObject({ siteId: "web", killSwitch: true, deleted: true });
    expect((await call("GET", "/v1/sites", { token })).json.sites.map((s: { siteId: string }) => s.siteId)).toEqual(["api"]);
    expect(await count("telemetry_rollups", org.id, "web")).toBe(0);
    expect(await count("reflex_events", org.id, "web")).toBe(0);
    expect(await count("telemetry_rollups", org.id, "api")).toBe(1);
    expect(await count("reflex_events", org.id, "api")).toBe(1);
    expect(await cachedPolicy(org.id, "web")).toBeNull();
    // The aggregator forgot the site: with no identity left, a reload has nothing to evaluate.
    const stub = env.SITE_AGGREGATOR.get(env.SITE_AGGREGATOR.idFromName(`${org.id}:web`));
    expect(await stub.reloadConfig()).toBeNull();
    expect(await stub.policy(org.id, "web")).toMatchObject({ ok: false, code: "NOT_FOUND" });
    expectError(await call("DELETE", "/v1/sites/web", { token }), 404, "NOT_FOUND");
  });
});

describe("sites: auth and tenancy", () => {
  it("needs a management token", async () => {
    const { org } = await createOrg();
    await seedSite(org.id, "web");
    expectError(await call("GET", "/v1/sites"), 401, "UNAUTHORIZED");
    expectError(await call("DELETE", "/v1/sites/web"), 401, "UNAUTHORIZED");
    expectError(await call("POST", "/v1/sites/web/kill", { body: { enabled: true } }), 401, "UNAUTHORIZED");
    expectError(await call("POST", "/v1/sites/web/kill", { token: "ws_mgmt_nope", body: { enabled: true } }), 401, "INVALID_TOKEN");
  });

  it("keeps one org out of another's sites: 404, exactly like an unknown site", async () => {
    const a = await createOrg("A");
    const b = await createOrg("B");
    await seedSite(a.org.id, "web");
    expect((await call("GET", "/v1/sites", { token: b.token })).json.sites).toEqual([]);
    expectError(await call("POST", "/v1/sites/web/kill", { token: b.token, body: { enabled: true } }), 404, "NOT_FOUND");
    expectError(await call("DELETE", "/v1/sites/web", { token: b.token }), 404, "NOT_FOUND");
    expectError(await call("POST", "/v1/sites/nosuchsite/kill", { token: a.token, body: { enabled: true } }), 404, "NOT_FOUND");
    expectError(await call("DELETE", "/v1/sites/'%3B%20DROP%20TABLE%20sites%3B--", { token: a.token }), 404, "NOT_FOUND");
    // A's site is untouched.
    expect((await call("GET", "/v1/sites", { token: a.token })).json.sites[0]).toMatchObject({ siteId: "web", killSwitch: false });
    expect(await cachedPolicy(a.org.id, "web")).toBeNull();
  });
});

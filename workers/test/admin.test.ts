/**
 * The operator's hold on an organization (`/v1/admin/organizations/:id`,
 * Bearer ADMIN_TOKEN): a plan change reaches every site's next policy, a
 * suspension makes it `suspended` (which the gate answers by failing open),
 * resuming makes it normal again; each is audited as the ADMIN_TOKEN holder.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { PLAN_LIMITS, PolicySchema, decide, newGateState } from "@waitstate/protocol";
import { SUSPENSION_RETRY_AFTER_SECONDS, policyKey } from "@waitstate/durable-objects";
import { ADMIN, call, expectError } from "./helpers.js";
import { orgWithKey, seedPulse, sendPulse } from "./pulse-helpers.js";

// Each test makes dozens of requests through workerd: room for a loaded machine (speed is the bench's business).
vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

const patch = (orgId: string, body: unknown, token = ADMIN) => call("PATCH", `/v1/admin/organizations/${orgId}`, { token, body });

/** The policy KV serves to `GET /v1/policy` for the site (what the aggregator published). */
async function published(orgId: string, siteId: string) {
  const cached = await env.POLICIES.get<{ policy: unknown }>(policyKey(orgId, siteId), "json");
  return PolicySchema.parse(cached?.policy);
}

/** The org.* entries after its creation, oldest first. */
async function auditKinds(token: string) {
  const res = await call("GET", "/v1/audit-log?kind=org.*", { token });
  return (res.json.entries as Array<{ kind: string; actor: unknown; before: unknown; after: unknown }>)
    .filter((e) => e.kind !== "org.created")
    .reverse();
}

describe("PATCH /v1/admin/organizations/:id", () => {
  it("needs the ADMIN_TOKEN: none, a wrong one and even an admin management token are refused", async () => {
    const keys = await orgWithKey("Guarded Co");
    expectError(await call("PATCH", `/v1/admin/organizations/${keys.orgId}`, { body: { suspended: true } }), 401, "UNAUTHORIZED");
    expectError(await patch(keys.orgId, { suspended: true }, "not-the-admin-token"), 401, "INVALID_TOKEN");
    expectError(await patch(keys.orgId, { suspended: true }, keys.token), 401, "INVALID_TOKEN");
    expectError(await call("GET", `/v1/admin/organizations/${keys.orgId}`, { token: keys.token }), 401, "INVALID_TOKEN");
    const org = await call("GET", `/v1/admin/organizations/${keys.orgId}`, { token: ADMIN });
    expect(org.json).toMatchObject({ id: keys.orgId, suspended: false, suspendedAt: null });
  });

  it("refuses bad input with a typed error and changes nothing", async () => {
    const keys = await orgWithKey("Bad Input Co", "pro");
    expectError(await patch("org_nope", { plan: "hobby" }), 404, "NOT_FOUND");
    expectError(await patch("nope%00", { plan: "hobby" }), 404, "NOT_FOUND");
    for (const body of [{}, { plan: "gold" }, { suspended: "yes" }, [], null]) {
      expectError(await patch(keys.orgId, body), 400, "VALIDATION_FAILED");
    }
    expect(expectError(await patch(keys.orgId, { plan: "hobby", extra: 1 }), 400, "UNKNOWN_FIELD").message).toContain("extra");
    expectError(await call("PATCH", `/v1/admin/organizations/${keys.orgId}`, { token: ADMIN, rawBody: "{" }), 400, "INVALID_JSON");
    const org = await call("GET", `/v1/admin/organizations/${keys.orgId}`, { token: ADMIN });
    expect(org.json).toMatchObject({ plan: "pro", suspended: false });
    expect(await auditKinds(keys.token)).toEqual([]);
  });

  it("a plan change reaches every site's next policy and the site cap, audited", async () => {
    const keys = await orgWithKey("Upgrade Co", "hobby");
    expect((await sendPulse(keys, seedPulse({ siteId: "prod" }))).json).toMatchObject({ pulseInterval: 30_000, leaseDurationSeconds: 300 });
    expectError(await call("POST", "/v1/sites", { token: keys.token, body: { siteId: "second" } }), 403, "PLAN_LIMIT_REACHED");

    const res = await patch(keys.orgId, { plan: "pro" });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ id: keys.orgId, plan: "pro", suspended: false });
    // published at once, before any pulse
    expect(await published(keys.orgId, "prod")).toMatchObject({
      status: "ok",
      pulseInterval: PLAN_LIMITS.pro.pulseIntervalMs,
      leaseDurationSeconds: PLAN_LIMITS.pro.leaseSeconds,
    });
    expect((await sendPulse(keys, seedPulse({ siteId: "prod", ts: Date.now() + 1 }))).json).toMatchObject({
      pulseInterval: 2000,
      leaseDurationSeconds: 120,
    });
    expect((await call("POST", "/v1/sites", { token: keys.token, body: { siteId: "second" } })).status).toBe(201);

    const entries = await auditKinds(keys.token);
    expect(entries).toEqual(
      [
        {
          kind: "org.plan_changed",
          actor: { type: "admin", id: null, name: "ADMIN_TOKEN", role: null },
          before: { plan: "hobby" },
          after: { plan: "pro" },
        },
      ].map((e) => expect.objectContaining(e)),
    );
    // the same plan again changes nothing and records nothing
    expect((await patch(keys.orgId, { plan: "pro" })).status).toBe(200);
    expect(await auditKinds(keys.token)).toHaveLength(1);
  });

  it("suspension makes every site's policy suspended (the gate fails open), resume makes it normal again", async () => {
    const keys = await orgWithKey("Suspend Co", "enterprise");
    for (const siteId of ["a", "b"]) expect((await sendPulse(keys, seedPulse({ siteId }))).status).toBe(200);
    const ruled = await call("POST", "/v1/reflex-rules", {
      token: keys.token,
      body: { tagName: "free", metric: "rps", operator: "gte", threshold: 0, action: "block", priority: 1, siteId: "a" },
    });
    expect(ruled.status, ruled.text).toBe(201);

    const res = await patch(keys.orgId, { suspended: true });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ suspended: true, suspendedAt: expect.any(Number) });
    for (const siteId of ["a", "b"]) {
      const policy = await published(keys.orgId, siteId);
      expect(policy).toMatchObject({ status: "suspended", retryAfterSeconds: SUSPENSION_RETRY_AFTER_SECONDS });
      // What every SDK's gate does with it: allow, saying why (the free tag's block does not apply).
      const state = newGateState({ lastSyncAt: Date.now() });
      expect(decide(policy, state, Date.now(), "free", 1)).toEqual({ allowed: true, reason: "suspended" });
    }
    // a pulse that still arrives gets the same answer
    expect((await sendPulse(keys, seedPulse({ siteId: "a", ts: Date.now() + 1 }))).json).toMatchObject({
      status: "suspended",
      retryAfterSeconds: 300,
    });
    expect((await call("GET", "/v1/organizations", { token: keys.token })).json.organizations[0]).toMatchObject({ suspended: true });
    // suspending again changes nothing
    expect((await patch(keys.orgId, { suspended: true })).json.suspendedAt).toBe(res.json.suspendedAt);

    const resumed = await patch(keys.orgId, { suspended: false });
    expect(resumed.json).toMatchObject({ suspended: false, suspendedAt: null });
    const after = await published(keys.orgId, "b");
    expect(after.status).toBe("ok");
    expect(after).not.toHaveProperty("retryAfterSeconds");
    const state = newGateState({ lastSyncAt: Date.now() });
    expect(decide(await published(keys.orgId, "a"), state, Date.now(), "free", 1)).toEqual({ allowed: false, reason: "tag_blocked" });

    expect((await auditKinds(keys.token)).map((e) => [e.kind, e.before, e.after])).toEqual([
      ["org.suspended", { suspended: false }, { suspended: true }],
      ["org.resumed", { suspended: true }, { suspended: false }],
    ]);
  });
});

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { policyKey } from "@waitstate/durable-objects";
import { issueSdkToken } from "../src/lib/jwt.js";
import { expectError } from "./helpers.js";
import { jwtFor, orgWithKey, seedPulse, sendPulse, stubFor } from "./pulse-helpers.js";

async function getPolicy(orgId: string, token: string | undefined, query = "", ifNoneMatch?: string) {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (ifNoneMatch !== undefined) headers["if-none-match"] = ifNoneMatch;
  const res = await (await import("cloudflare:workers")).exports.default.fetch(`http://waitstate.test/v1/policy/${orgId}${query}`, {
    headers,
  });
  const text = await res.text();
  return { status: res.status, text, json: text ? JSON.parse(text) : undefined, etag: res.headers.get("etag") };
}

const b64 = (o: unknown) => btoa(JSON.stringify(o)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");

describe("GET /v1/policy/:orgId", () => {
  it("serves the site's policy from KV with an ETag; If-None-Match answers 304 until it changes", async () => {
    const keys = await orgWithKey("Policy Co");
    const pulse = await sendPulse(keys, seedPulse({ siteId: "prod" }));
    const token = await jwtFor(keys);
    const first = await getPolicy(keys.orgId, token, "?siteId=prod");
    expect(first.status, first.text).toBe(200);
    expect(first.json).toEqual(pulse.json);
    expect(first.etag).toBe(pulse.headers.get("etag"));
    const same = await getPolicy(keys.orgId, token, "?siteId=prod", first.etag!);
    expect(same.status).toBe(304);
    expect(same.text).toBe("");

    // The kill switch changes the policy: a new version and ETag.
    await env.DB.prepare("UPDATE sites SET kill_switch = 1 WHERE org_id = ? AND site_id = 'prod'").bind(keys.orgId).run();
    await stubFor(keys.orgId, "prod").setKill(keys.orgId, "prod", true);
    const changed = await getPolicy(keys.orgId, token, "?siteId=prod", first.etag!);
    expect(changed.status).toBe(200);
    expect(changed.json).toMatchObject({ killSignal: true, version: 2 });
    expect(changed.etag).not.toBe(first.etag);
  });

  it("defaults siteId to the org id and falls back to the aggregator when KV has nothing", async () => {
    const keys = await orgWithKey("Fallback Co");
    await sendPulse(keys, seedPulse());
    await env.POLICIES.delete(policyKey(keys.orgId, keys.orgId));
    const res = await getPolicy(keys.orgId, await jwtFor(keys));
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ version: 1, status: "ok" });
    // ... and the aggregator wrote it back.
    expect(await env.POLICIES.get(policyKey(keys.orgId, keys.orgId), "json")).toMatchObject({ policy: { version: 1 } });
  });

  it("answers 404 for a site that never pulsed and 400 for a malformed siteId", async () => {
    const keys = await orgWithKey("Empty Co");
    const token = await jwtFor(keys);
    expectError(await getPolicy(keys.orgId, token, "?siteId=nowhere"), 404, "NOT_FOUND");
    expectError(await getPolicy(keys.orgId, token, "?siteId=%2E%2E%2Fx"), 400, "VALIDATION_FAILED");
  });

  it("refuses another org's token with 403 and bad tokens with 401", async () => {
    const a = await orgWithKey("Tenant A");
    const b = await orgWithKey("Tenant B");
    await sendPulse(a, seedPulse());
    expectError(await getPolicy(a.orgId, await jwtFor(b)), 403, "FORBIDDEN");
    expectError(await getPolicy(a.orgId, undefined), 401, "UNAUTHORIZED");
    expectError(await getPolicy(a.orgId, "not.a.jwt"), 401, "INVALID_TOKEN");
    const none = `${b64({ alg: "none", typ: "JWT" })}.${b64({ iss: "waitstate", aud: "waitstate-sdk", sub: "key_x", org: a.orgId, scope: "policy:read", iat: 1, exp: 4_000_000_000 })}.`;
    expectError(await getPolicy(a.orgId, none), 401, "INVALID_TOKEN");
    const expired = await issueSdkToken(env.ENCRYPTION_KEY, "key_x", a.orgId, Date.now() - 3_600_000);
    expectError(await getPolicy(a.orgId, expired.token), 401, "TOKEN_EXPIRED");
    // A token signed with another key (a forged one) is refused too.
    const forged = await issueSdkToken("AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=", "key_x", a.orgId);
    expectError(await getPolicy(a.orgId, forged.token), 401, "INVALID_TOKEN");
  });
});

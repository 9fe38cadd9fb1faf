import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { verifySdkToken } from "../src/lib/jwt.js";
import { KEY_CACHE_TTL_MS } from "../src/lib/keys.js";
import vectorsText from "../../protocol/vectors/token-exchange.json?raw";
import { call, expectError } from "./helpers.js";
import { exchangeToken, jwtFor, orgWithKey, seedPulse, sendPulse, sign, type Keys } from "./pulse-helpers.js";

function b64url(obj: unknown) {
  return btoa(JSON.stringify(obj)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

async function getPolicy(orgId: string, token: string, query = "") {
  const res = await exports.default.fetch(`http://waitstate.test/v1/policy/${orgId}${query}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

async function keyId(keys: Keys): Promise<string> {
  const list = await call("GET", "/v1/api-keys", { token: keys.token });
  return (list.json.apiKeys as Array<{ id: string; publishKey: string }>).find((k) => k.publishKey === keys.publishKey)!.id;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("POST /v1/auth/token", () => {
  it("exchanges a signed request for a short-lived HS256 JWT scoped to the org; the secret never travels", async () => {
    const keys = await orgWithKey("Token Co");
    const res = await exchangeToken(keys);
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ orgId: keys.orgId, siteId: null, environment: "live" });
    expect(decodeProtectedHeader(res.json.token).alg).toBe("HS256");
    const claims = decodeJwt(res.json.token);
    expect(claims).toMatchObject({ org: keys.orgId, sub: await keyId(keys), scope: "policy:read", iss: "waitstate", aud: "waitstate-sdk" });
    expect(res.json.expiresAt).toBe(claims.exp! * 1000);
    expect(claims.exp! - claims.iat!).toBe(900);
    expect((await verifySdkToken(env.ENCRYPTION_KEY, res.json.token)).org).toBe(keys.orgId);
    // An empty JSON object is an empty body too.
    expect((await exchangeToken(keys, { body: "{}" })).status).toBe(200);
  });

  it("signs exactly as the shared vectors say", async () => {
    const vectors = JSON.parse(vectorsText) as {
      prefix: string;
      cases: Array<{ body: string; timestamp: string; secretKey: string; signed: string; expect: string }>;
    };
    expect(vectors.prefix).toBe("POST\n/v1/auth/token\n");
    for (const c of vectors.cases) {
      expect(c.signed).toBe(`${vectors.prefix}${c.body}.${c.timestamp}`);
      expect(await sign(c.secretKey, `${vectors.prefix}${c.body}`, c.timestamp)).toBe(c.expect);
    }
  });

  it("refuses the old body form carrying the secret, with a typed error that says what to do", async () => {
    const keys = await orgWithKey("Legacy Co");
    const old = expectError(
      await call("POST", "/v1/auth/token", { body: { publishKey: keys.publishKey, secretKey: keys.secretKey } }),
      401,
      "UNSIGNED_TOKEN_EXCHANGE",
    );
    expect(old.message).toMatch(/upgrade the WaitState SDK/);
    expect(old.message).toContain("x-waitstate-signature");
    expect(old.message).toMatch(/rotate the key/);
    // Even correctly signed, a body with the secret in it is refused: the secret travelled.
    const body = JSON.stringify({ publishKey: keys.publishKey, secretKey: keys.secretKey });
    expectError(await exchangeToken(keys, { body }), 401, "UNSIGNED_TOKEN_EXCHANGE");
    expectError(
      await exchangeToken(keys, { body: JSON.stringify({ publishKey: keys.publishKey }), unsigned: true }),
      401,
      "UNSIGNED_TOKEN_EXCHANGE",
    );
  });

  it("refuses a bad signature, a stale timestamp, an unknown key, a revoked key and no signature", async () => {
    const keys = await orgWithKey("Refusal Co");
    expectError(await exchangeToken({ ...keys, secretKey: `${keys.secretKey}x` }), 401, "INVALID_SIGNATURE");
    // A pulse's signature over the same timestamp is not an exchange's.
    const ts = String(Date.now());
    expectError(await exchangeToken(keys, { timestamp: ts, signature: await sign(keys.secretKey, "", ts) }), 401, "INVALID_SIGNATURE");
    expectError(await exchangeToken(keys, { signature: "zz" }), 401, "INVALID_SIGNATURE");
    expectError(await exchangeToken(keys, { timestamp: String(Date.now() - 6 * 60_000) }), 401, "TIMESTAMP_SKEW");
    expectError(await exchangeToken(keys, { timestamp: "soon" }), 401, "TIMESTAMP_SKEW");
    expectError(await exchangeToken(keys, { publishKey: "ws_pub_live_nope" }), 401, "UNKNOWN_KEY");
    expectError(await exchangeToken(keys, { unsigned: true }), 401, "UNAUTHORIZED");
    await call("DELETE", `/v1/api-keys/${await keyId(keys)}`, { token: keys.token });
    expectError(await exchangeToken(keys), 401, "KEY_REVOKED");
  });

  it("answers bad bodies with typed 4xx", async () => {
    const keys = await orgWithKey("Body Co");
    expectError(await exchangeToken(keys, { body: "nope" }), 400, "INVALID_JSON");
    expectError(await exchangeToken(keys, { body: '{"siteId":"x"}' }), 400, "UNKNOWN_FIELD");
    expectError(await exchangeToken(keys, { body: "[]" }), 400, "VALIDATION_FAILED");
    expectError(await exchangeToken(keys, { body: JSON.stringify({ pad: "x".repeat(2000) }) }), 413, "PAYLOAD_TOO_LARGE");
  });
});

describe("revocation that revokes", () => {
  it("refuses a revoked key's JWT, pulses and exchanges at once in the isolate that revoked it", async () => {
    const keys = await orgWithKey("Revoke Co");
    expect((await sendPulse(keys, seedPulse())).status).toBe(200);
    const token = await jwtFor(keys);
    expect((await getPolicy(keys.orgId, token)).status).toBe(200);
    await call("DELETE", `/v1/api-keys/${await keyId(keys)}`, { token: keys.token });
    expectError(await getPolicy(keys.orgId, token), 401, "KEY_REVOKED");
    expectError(await sendPulse(keys, seedPulse()), 401, "KEY_REVOKED");
  });

  it("refuses a rotated key's JWT at once (no grace period)", async () => {
    const keys = await orgWithKey("Rotate Co");
    expect((await sendPulse(keys, seedPulse())).status).toBe(200);
    const token = await jwtFor(keys);
    expect((await getPolicy(keys.orgId, token)).status).toBe(200);
    expect((await call("POST", `/v1/api-keys/${await keyId(keys)}/rotate`, { token: keys.token })).status).toBe(201);
    expectError(await getPolicy(keys.orgId, token), 401, "KEY_REVOKED");
  });

  it(`refuses a key revoked elsewhere on every route within ${KEY_CACHE_TTL_MS} ms, the stated bound`, async () => {
    const keys = await orgWithKey("Elsewhere Co");
    const t0 = Date.now();
    const clock = vi.spyOn(Date, "now").mockReturnValue(t0);
    expect((await sendPulse(keys, seedPulse({ ts: t0 }))).status).toBe(200);
    const token = await jwtFor(keys);
    expect((await getPolicy(keys.orgId, token)).status).toBe(200);

    // Another isolate served the revocation: D1 changed, this isolate's cache has not heard of it.
    await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE publish_key = ?").bind(t0, keys.publishKey).run();
    clock.mockReturnValue(t0 + KEY_CACHE_TTL_MS);
    expect((await getPolicy(keys.orgId, token)).status).toBe(200); // cached, still within the bound

    clock.mockReturnValue(t0 + KEY_CACHE_TTL_MS + 1);
    expectError(await getPolicy(keys.orgId, token), 401, "KEY_REVOKED");
    expectError(await sendPulse(keys, seedPulse({ ts: t0 + KEY_CACHE_TTL_MS + 1 })), 401, "KEY_REVOKED");
    expectError(await exchangeToken(keys), 401, "KEY_REVOKED");
  });

  it("refuses the JWT of a deleted key", async () => {
    const keys = await orgWithKey("Deleted Co");
    const token = await jwtFor(keys);
    const id = await keyId(keys);
    const t0 = Date.now();
    const clock = vi.spyOn(Date, "now").mockReturnValue(t0);
    await env.DB.prepare("DELETE FROM api_keys WHERE id = ?").bind(id).run();
    clock.mockReturnValue(t0 + KEY_CACHE_TTL_MS + 1);
    expectError(await getPolicy(keys.orgId, token), 401, "KEY_REVOKED");
  });
});

describe("SDK JWT verification", () => {
  it("refuses alg none, a tampered payload, a foreign key and an expired token", async () => {
    const keys = await orgWithKey("JWT Co");
    const token = await jwtFor(keys);
    const [header, payload, signature] = token.split(".");
    const claims = decodeJwt(token);

    const none = `${b64url({ alg: "none", typ: "JWT" })}.${payload}.`;
    await expect(verifySdkToken(env.ENCRYPTION_KEY, none)).rejects.toMatchObject({ code: "INVALID_TOKEN" });

    const tampered = `${header}.${b64url({ ...claims, org: "org_someone_else" })}.${signature}`;
    await expect(verifySdkToken(env.ENCRYPTION_KEY, tampered)).rejects.toMatchObject({ code: "INVALID_TOKEN" });

    const otherKey = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    await expect(verifySdkToken(otherKey, token)).rejects.toMatchObject({ code: "INVALID_TOKEN" });

    const { issueSdkToken } = await import("../src/lib/jwt.js");
    const old = await issueSdkToken(env.ENCRYPTION_KEY, String(claims.sub), "org_x", Date.now() - 3600_000);
    await expect(verifySdkToken(env.ENCRYPTION_KEY, old.token)).rejects.toMatchObject({ code: "TOKEN_EXPIRED" });
  });
});

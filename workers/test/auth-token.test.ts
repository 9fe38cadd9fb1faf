import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { verifySdkToken } from "../src/lib/jwt.js";
import { call, createOrg, expectError } from "./helpers.js";

async function keyPair() {
  const { org, token } = await createOrg();
  const { json } = await call("POST", "/v1/api-keys", { token, body: { name: "sdk" } });
  return { org, management: token, key: json as { id: string; publishKey: string; secretKey: string } };
}

function b64url(obj: unknown) {
  return btoa(JSON.stringify(obj)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

describe("POST /v1/auth/token", () => {
  it("exchanges a key pair for a short-lived HS256 JWT scoped to the org", async () => {
    const { org, key } = await keyPair();
    const res = await call("POST", "/v1/auth/token", { body: { publishKey: key.publishKey, secretKey: key.secretKey } });
    expect(res.status).toBe(200);
    expect(res.json.orgId).toBe(org.id);
    expect(decodeProtectedHeader(res.json.token).alg).toBe("HS256");
    const claims = decodeJwt(res.json.token);
    expect(claims).toMatchObject({ org: org.id, sub: key.id, scope: "policy:read", iss: "waitstate", aud: "waitstate-sdk" });
    expect(res.json.expiresAt).toBe(claims.exp! * 1000);
    expect(claims.exp! - claims.iat!).toBe(900);
    expect((await verifySdkToken(env.ENCRYPTION_KEY, res.json.token)).org).toBe(org.id);
  });

  it("refuses a wrong secret, an unknown publishKey and a revoked key", async () => {
    const { key, management } = await keyPair();
    expectError(await call("POST", "/v1/auth/token", { body: { publishKey: key.publishKey, secretKey: key.secretKey + "x" } }), 401, "INVALID_SIGNATURE");
    expectError(await call("POST", "/v1/auth/token", { body: { publishKey: "ws_pub_nope", secretKey: key.secretKey } }), 401, "UNKNOWN_KEY");
    await call("DELETE", `/v1/api-keys/${key.id}`, { token: management });
    expectError(await call("POST", "/v1/auth/token", { body: { publishKey: key.publishKey, secretKey: key.secretKey } }), 401, "KEY_REVOKED");
  });

  it("answers bad input with typed 4xx", async () => {
    expectError(await call("POST", "/v1/auth/token", { rawBody: "nope" }), 400, "INVALID_JSON");
    expectError(await call("POST", "/v1/auth/token", { body: { publishKey: 1 } }), 400, "VALIDATION_FAILED");
  });
});

describe("SDK JWT verification", () => {
  it("refuses alg none, a tampered payload, a foreign key and an expired token", async () => {
    const { key } = await keyPair();
    const { json } = await call("POST", "/v1/auth/token", { body: { publishKey: key.publishKey, secretKey: key.secretKey } });
    const [header, payload, signature] = (json.token as string).split(".");
    const claims = decodeJwt(json.token);

    const none = `${b64url({ alg: "none", typ: "JWT" })}.${payload}.`;
    await expect(verifySdkToken(env.ENCRYPTION_KEY, none)).rejects.toMatchObject({ code: "INVALID_TOKEN" });

    const tampered = `${header}.${b64url({ ...claims, org: "org_someone_else" })}.${signature}`;
    await expect(verifySdkToken(env.ENCRYPTION_KEY, tampered)).rejects.toMatchObject({ code: "INVALID_TOKEN" });

    const otherKey = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    await expect(verifySdkToken(otherKey, json.token)).rejects.toMatchObject({ code: "INVALID_TOKEN" });

    const { issueSdkToken } = await import("../src/lib/jwt.js");
    const old = await issueSdkToken(env.ENCRYPTION_KEY, key.id, "org_x", Date.now() - 3600_000);
    await expect(verifySdkToken(env.ENCRYPTION_KEY, old.token)).rejects.toMatchObject({ code: "TOKEN_EXPIRED" });
  });
});

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { decryptSecret, importEncryptionKey } from "../src/lib/crypto.js";
import { call, createOrg, expectError } from "./helpers.js";

describe("API keys", () => {
  it("creates a key pair, shows the secret once and stores it encrypted", async () => {
    const { token } = await createOrg();
    const created = await call("POST", "/v1/api-keys", { token, body: { name: "web" } });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ name: "web", revokedAt: null });
    expect(created.json.publishKey).toMatch(/^ws_pub_/);
    expect(created.json.secretKey).toMatch(/^ws_sec_/);

    const row = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ?").bind(created.json.id).first<Record<string, string>>();
    expect(JSON.stringify(row)).not.toContain(created.json.secretKey);
    const key = await importEncryptionKey(env.ENCRYPTION_KEY);
    expect(await decryptSecret(key, { ciphertext: row!.secret_key_ciphertext!, iv: row!.secret_key_iv! })).toBe(created.json.secretKey);

    const list = await call("GET", "/v1/api-keys", { token });
    expect(list.json.apiKeys).toHaveLength(1);
    expect(list.json.apiKeys[0]).not.toHaveProperty("secretKey");
  });

  it("revokes a key, idempotently", async () => {
    const { token } = await createOrg();
    const { json: key } = await call("POST", "/v1/api-keys", { token, body: {} });
    const first = await call("DELETE", `/v1/api-keys/${key.id}`, { token });
    expect(first.status).toBe(200);
    expect(first.json.revokedAt).toBeGreaterThan(0);
    const again = await call("DELETE", `/v1/api-keys/${key.id}`, { token });
    expect(again.json.revokedAt).toBe(first.json.revokedAt);
  });

  it("rotates a key: a new pair, the old one revoked and pointing at it", async () => {
    const { token } = await createOrg();
    const { json: old } = await call("POST", "/v1/api-keys", { token, body: { name: "api" } });
    const rotated = await call("POST", `/v1/api-keys/${old.id}/rotate`, { token });
    expect(rotated.status).toBe(201);
    expect(rotated.json).toMatchObject({ name: "api", replaces: old.id });
    expect(rotated.json.publishKey).not.toBe(old.publishKey);
    const list = await call("GET", "/v1/api-keys", { token });
    const before = list.json.apiKeys.find((k: { id: string }) => k.id === old.id);
    expect(before).toMatchObject({ rotatedToId: rotated.json.id });
    expect(before.revokedAt).toBeGreaterThan(0);
    expectError(await call("POST", `/v1/api-keys/${old.id}/rotate`, { token }), 409, "CONFLICT");
  });

  it("keeps one org out of another's keys: 404, exactly like an unknown id", async () => {
    const a = await createOrg("A");
    const b = await createOrg("B");
    const { json: key } = await call("POST", "/v1/api-keys", { token: a.token, body: {} });
    expectError(await call("DELETE", `/v1/api-keys/${key.id}`, { token: b.token }), 404, "NOT_FOUND");
    expectError(await call("POST", `/v1/api-keys/${key.id}/rotate`, { token: b.token }), 404, "NOT_FOUND");
    expect((await call("GET", "/v1/api-keys", { token: b.token })).json.apiKeys).toEqual([]);
    expectError(await call("DELETE", "/v1/api-keys/key_doesnotexist", { token: a.token }), 404, "NOT_FOUND");
    expectError(await call("DELETE", "/v1/api-keys/'; DROP TABLE api_keys;--", { token: a.token }), 404, "NOT_FOUND");
  });

  it("answers bad input with typed 4xx", async () => {
    const { token } = await createOrg();
    expectError(await call("POST", "/v1/api-keys", { token, rawBody: "{" }), 400, "INVALID_JSON");
    expectError(await call("POST", "/v1/api-keys", { token, body: { name: 7 } }), 400, "VALIDATION_FAILED");
    expectError(await call("POST", "/v1/api-keys", { body: {} }), 401, "UNAUTHORIZED");
  });
});

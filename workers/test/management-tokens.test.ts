/**
 * Management tokens: an organization holds several, each shown once at
 * creation, revocable (effective on the very next request), never fewer than
 * one active, capped, audited, and scoped to their own organization.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, createOrg, expectError } from "./helpers.js";

interface TokenView {
  id: string;
  name: string;
  createdAt: number;
  revokedAt: number | null;
  current: boolean;
}

const list = async (token: string) => {
  const res = await call("GET", "/v1/management-tokens", { token });
  expect(res.status, res.text).toBe(200);
  return (res.json as { managementTokens: TokenView[] }).managementTokens;
};

describe("/v1/management-tokens", () => {
  it("creates a second token shown once, which works at once and is listed without its secret", async () => {
    const { org, token } = await createOrg("Tokens Co");
    const [initial] = await list(token);
    expect(initial).toMatchObject({ name: "initial", revokedAt: null, current: true });
    expect(initial!.id).toMatch(/^mt_/);

    const res = await call("POST", "/v1/management-tokens", { token, body: { name: "  ci deploys  ", role: "admin" } });
    expect(res.status, res.text).toBe(201);
    const created = res.json as TokenView & { token: string };
    expect(created).toMatchObject({ name: "ci deploys", revokedAt: null, current: false });
    expect(created.token).toMatch(/^ws_mgmt_[A-Za-z0-9_-]{43}$/);

    // the new token is a full management token of the same org
    const orgs = await call("GET", "/v1/organizations", { token: created.token });
    expect((orgs.json as { organizations: Array<{ id: string }> }).organizations.map((o) => o.id)).toEqual([org.id]);
    const seenByNew = await list(created.token);
    expect(seenByNew.map((t) => [t.name, t.current]).sort()).toEqual([
      ["ci deploys", true],
      ["initial", false],
    ]);
    // neither the token nor its hash is ever listed; D1 holds only the hash
    expect(JSON.stringify(seenByNew)).not.toContain(created.token);
    expect(JSON.stringify(seenByNew)).not.toContain("hash");
    const stored = await env.DB.prepare("SELECT token_hash FROM management_tokens WHERE id = ?")
      .bind(created.id)
      .first<{ token_hash: string }>();
    expect(stored!.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stored!.token_hash).not.toContain(created.token);
  });

  it("revokes a token: refused on its very next request; revoking again changes nothing", async () => {
    const { token } = await createOrg("Revoke Co");
    const leaked = (await call("POST", "/v1/management-tokens", { token, body: { name: "leaked laptop", role: "admin" } }))
      .json as TokenView & { token: string };
    expect((await call("GET", "/v1/sites", { token: leaked.token })).status).toBe(200);

    const res = await call("DELETE", `/v1/management-tokens/${leaked.id}`, { token });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({ id: leaked.id, name: "leaked laptop", revokedAt: expect.any(Number), current: false });
    const refused = expectError(await call("GET", "/v1/sites", { token: leaked.token }), 401, "INVALID_TOKEN");
    expect(refused.message).toContain("revoked");

    const again = await call("DELETE", `/v1/management-tokens/${leaked.id}`, { token });
    expect(again.status).toBe(200);
    expect((again.json as TokenView).revokedAt).toBe((res.json as TokenView).revokedAt);
    const { entries } = (await call("GET", "/v1/audit-log?kind=token.*", { token })).json as {
      entries: Array<{ kind: string; target: string }>;
    };
    // one entry each (revoking an already revoked token records nothing)
    expect(entries.map((e) => [e.kind, e.target]).sort()).toEqual([
      ["token.created", leaked.id],
      ["token.revoked", leaked.id],
    ]);
  });

  it("a token can revoke itself when another is active, but the last active token cannot be revoked", async () => {
    const { token } = await createOrg("Last Token Co");
    const [initial] = await list(token);
    const last = expectError(await call("DELETE", `/v1/management-tokens/${initial!.id}`, { token }), 409, "CONFLICT");
    expect(last.message).toContain("last active admin token");
    expect((await call("GET", "/v1/sites", { token })).status).toBe(200);

    const successor = (await call("POST", "/v1/management-tokens", { token, body: { name: "successor", role: "admin" } }))
      .json as TokenView & { token: string };
    const self = await call("DELETE", `/v1/management-tokens/${initial!.id}`, { token });
    expect(self.status, self.text).toBe(200);
    expect(self.json).toMatchObject({ id: initial!.id, current: true, revokedAt: expect.any(Number) });
    expectError(await call("GET", "/v1/sites", { token }), 401, "INVALID_TOKEN");
    // the audit entry names the token that revoked itself
    const { entries } = (await call("GET", "/v1/audit-log?kind=token.revoked", { token: successor.token })).json as {
      entries: Array<{ actor: { type: string; id: string }; target: string }>;
    };
    expect(entries).toEqual([
      expect.objectContaining({ target: initial!.id, actor: expect.objectContaining({ type: "token", id: initial!.id }) }),
    ]);
    // now the successor is the last one
    const [mine] = (await list(successor.token)).filter((t) => t.revokedAt === null);
    expect(mine).toMatchObject({ id: successor.id, current: true });
    expectError(await call("DELETE", `/v1/management-tokens/${successor.id}`, { token: successor.token }), 409, "CONFLICT");
  });

  it("validates the name, caps active tokens at 25 and counts revoked ones out", async () => {
    const { token } = await createOrg("Cap Co");
    for (const body of [
      {},
      { name: "", role: "admin" },
      { name: "   ", role: "admin" },
      { name: "x".repeat(101), role: "admin" },
      { name: 7, role: "admin" },
    ]) {
      expectError(await call("POST", "/v1/management-tokens", { token, body }), 400, "VALIDATION_FAILED");
    }
    const made: Array<TokenView & { token: string }> = [];
    for (let i = 0; i < 24; i++)
      made.push(
        (await call("POST", "/v1/management-tokens", { token, body: { name: `t${i}`, role: "admin" } })).json as TokenView & {
          token: string;
        },
      );
    const over = expectError(
      await call("POST", "/v1/management-tokens", { token, body: { name: "one too many", role: "admin" } }),
      403,
      "PLAN_LIMIT_REACHED",
    );
    expect(over.message).toContain("25 active management tokens");
    expect((await call("DELETE", `/v1/management-tokens/${made[0]!.id}`, { token })).status).toBe(200);
    expect((await call("POST", "/v1/management-tokens", { token, body: { name: "fits again", role: "admin" } })).status).toBe(201);
    expect((await list(token)).filter((t) => t.revokedAt === null)).toHaveLength(25);
  });

  it("needs a management token; another org's token ids answer 404", async () => {
    const a = await createOrg("Org A Tokens");
    const b = await createOrg("Org B Tokens");
    expectError(await call("GET", "/v1/management-tokens"), 401, "UNAUTHORIZED");
    expectError(
      await call("POST", "/v1/management-tokens", { token: "ws_mgmt_nope", body: { name: "x", role: "admin" } }),
      401,
      "INVALID_TOKEN",
    );
    const [bToken] = await list(b.token);
    expectError(await call("DELETE", `/v1/management-tokens/${bToken!.id}`, { token: a.token }), 404, "NOT_FOUND");
    expectError(await call("DELETE", "/v1/management-tokens/not-an-id", { token: a.token }), 404, "NOT_FOUND");
    expect((await list(a.token)).map((t) => t.id)).not.toContain(bToken!.id);
    expect((await call("GET", "/v1/sites", { token: b.token })).status).toBe(200);
  });
});

import type { Hono } from "hono";
import { and, desc, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { IdentifierSchema } from "@waitstate/protocol";
import { managementTokens } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { audit } from "../lib/audit.js";
import { readJson, validate } from "../lib/body.js";
import { ListQuery, decodeCursor, encodeCursor, olderThan, pageOf } from "../lib/paging.js";
import { randomId, randomToken, sha256Hex } from "../lib/crypto.js";
import { allow, RoleSchema } from "../middleware/access.js";
import { parseSiteIds } from "../middleware/management-auth.js";
import type { AppEnv, Env } from "../env.js";

/** Active (not revoked) management tokens an organization may hold at once. */
export const MAX_MANAGEMENT_TOKENS_PER_ORG = 25;

/** A token's site list: at most this many sites (a longer list is an org-wide token in disguise). */
export const MAX_TOKEN_SITES = 100;

/**
 * `role` is required: a token's power is chosen, never defaulted. Admin tokens
 * manage the organization itself (tokens, keys, webhooks), so they have no site
 * list. Only an admin creates tokens, so no token can mint one more powerful
 * than itself.
 */
const CreateToken = z
  .strictObject({
    name: z.string().trim().min(1).max(100),
    role: RoleSchema,
    siteIds: z
      .array(IdentifierSchema)
      .min(1, "siteIds lists at least one site; leave it out for every site")
      .max(MAX_TOKEN_SITES)
      .transform((ids) => [...new Set(ids)])
      .optional(),
  })
  .refine((body) => body.role !== "admin" || body.siteIds === undefined, {
    path: ["siteIds"],
    message: "admin tokens manage the whole organization and take no siteIds; give a site list to an editor or viewer token",
  });
const TokenId = z.string().regex(/^mt_[A-Za-z0-9_-]{1,64}$/);

type TokenRow = typeof managementTokens.$inferSelect;

/** A token as the API shows it: never the token or its hash; `current` marks the one making this request. */
function tokenView(row: TokenRow, currentId: string | undefined) {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    siteIds: parseSiteIds(row.siteIds),
    createdAt: row.createdAt,
    revokedAt: row.revokedAt,
    current: row.id === currentId,
  };
}

/** Another org's token id answers exactly like an unknown one: 404. */
async function ownToken(env: Env, orgId: string, rawId: string): Promise<TokenRow> {
  const id = TokenId.safeParse(rawId);
  if (!id.success) throw new ApiError("NOT_FOUND", "No such management token");
  const [row] = await drizzle(env.DB)
    .select()
    .from(managementTokens)
    .where(and(eq(managementTokens.id, id.data), eq(managementTokens.orgId, orgId)));
  if (!row) throw new ApiError("NOT_FOUND", "No such management token");
  return row;
}

/**
 * `GET/POST /v1/management-tokens`, `DELETE /v1/management-tokens/:id`: more
 * than one operator credential per organization, and a way to retire a leaked
 * one. A new token is shown once (only its SHA-256 is stored); revoking takes
 * effect on the next request, dashboard sessions included; the last active
 * admin token cannot be revoked, so an organization is never locked out.
 */
export function registerManagementTokens(app: Hono<AppEnv>) {
  app.get("/v1/management-tokens", allow("admin", "org-wide"), async (c) => {
    const { limit, cursor } = validate(ListQuery, c.req.query());
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    const current = c.var.managementToken?.id;
    const t = managementTokens;
    const rows = await drizzle(c.env.DB)
      .select()
      .from(t)
      .where(and(eq(t.orgId, c.var.orgId), olderThan(t.createdAt, t.id, after)))
      .orderBy(desc(t.createdAt), desc(t.id))
      .limit(limit + 1);
    const { page, nextCursor } = pageOf(rows, limit, (last) => encodeCursor({ at: last.createdAt, id: last.id }));
    return c.json({ managementTokens: page.map((row) => tokenView(row, current)), nextCursor });
  });

  app.post("/v1/management-tokens", allow("admin", "org-wide"), async (c) => {
    const body = await readJson(c, CreateToken);
    const orgId = c.var.orgId;
    const token = randomToken("ws_mgmt_");
    const id = randomId("mt_");
    // The cap is checked in the insert itself, so two creations racing for the last slot cannot both land.
    const inserted = await c.env.DB.prepare(
      `INSERT INTO management_tokens (id, org_id, token_hash, name, role, site_ids)
       SELECT ?1, ?2, ?3, ?4, ?6, ?7 WHERE (SELECT count(*) FROM management_tokens WHERE org_id = ?2 AND revoked_at IS NULL) < ?5`,
    )
      .bind(
        id,
        orgId,
        await sha256Hex(token),
        body.name,
        MAX_MANAGEMENT_TOKENS_PER_ORG,
        body.role,
        body.siteIds === undefined ? null : JSON.stringify(body.siteIds),
      )
      .run();
    if (inserted.meta.changes === 0) {
      throw new ApiError(
        "PLAN_LIMIT_REACHED",
        `An organization can have ${MAX_MANAGEMENT_TOKENS_PER_ORG} active management tokens; revoke one first`,
      );
    }
    const [created] = await drizzle(c.env.DB).select().from(managementTokens).where(eq(managementTokens.id, id));
    const view = tokenView(created!, c.var.managementToken?.id);
    await audit(c, { kind: "token.created", target: id, after: view });
    return c.json({ ...view, token }, 201);
  });

  app.delete("/v1/management-tokens/:id", allow("admin", "org-wide"), async (c) => {
    const orgId = c.var.orgId;
    const row = await ownToken(c.env, orgId, c.req.param("id"));
    const current = c.var.managementToken?.id;
    if (row.revokedAt !== null) return c.json(tokenView(row, current)); // already revoked: nothing changes, nothing recorded
    // One statement, so two revocations racing cannot both leave the org without an admin token.
    const revoked = await c.env.DB.prepare(
      `UPDATE management_tokens SET revoked_at = ?1
       WHERE id = ?2 AND org_id = ?3 AND revoked_at IS NULL
         AND (role != 'admin' OR (SELECT count(*) FROM management_tokens WHERE org_id = ?3 AND revoked_at IS NULL AND role = 'admin') > 1)`,
    )
      .bind(Date.now(), row.id, orgId)
      .run();
    const [after] = await drizzle(c.env.DB).select().from(managementTokens).where(eq(managementTokens.id, row.id));
    if (revoked.meta.changes === 0) {
      if (after!.revokedAt !== null) return c.json(tokenView(after!, current)); // revoked meanwhile by another request
      throw new ApiError("CONFLICT", "This is the organization's last active admin token; create another admin token before revoking it");
    }
    const view = tokenView(after!, current);
    await audit(c, { kind: "token.revoked", target: row.id, before: tokenView(row, current), after: view });
    return c.json(view);
  });
}

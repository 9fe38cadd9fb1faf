import type { Hono } from "hono";
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { apiKeys } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { audit } from "../lib/audit.js";
import { readJson, validate } from "../lib/body.js";
import { ListQuery, decodeCursor, encodeCursor, olderThan, pageOf } from "../lib/paging.js";
import { encryptSecret, randomId, randomToken } from "../lib/crypto.js";
import { forgetKey } from "../lib/keys.js";
import { encryptionKey } from "../lib/secrets.js";
import { managementAuth } from "../middleware/management-auth.js";
import type { AppEnv, Env } from "../env.js";

const CreateKey = z.strictObject({ name: z.string().trim().min(1).max(100).default("default") });
const KeyId = z.string().regex(/^key_[A-Za-z0-9_-]{1,64}$/);

type KeyRow = typeof apiKeys.$inferSelect;

function keyView(row: KeyRow) {
  return { id: row.id, name: row.name, publishKey: row.publishKey, createdAt: row.createdAt, revokedAt: row.revokedAt, rotatedToId: row.rotatedToId };
}

/** A new key pair for the org: the secret is encrypted at rest and returned once. */
async function newKey(env: Env, orgId: string, name: string) {
  const secretKey = randomToken("ws_sec_");
  const sealed = await encryptSecret(await encryptionKey(env), secretKey);
  const row = {
    id: randomId("key_"),
    orgId,
    name,
    publishKey: randomToken("ws_pub_", 16),
    secretKeyCiphertext: sealed.ciphertext,
    secretKeyIv: sealed.iv,
  };
  return { row, secretKey };
}

/** Another org's key id answers exactly like an unknown one: 404. */
async function ownKey(env: Env, orgId: string, rawId: string): Promise<KeyRow> {
  const id = KeyId.safeParse(rawId);
  if (!id.success) throw new ApiError("NOT_FOUND", "No such API key");
  const [row] = await drizzle(env.DB).select().from(apiKeys).where(and(eq(apiKeys.id, id.data), eq(apiKeys.orgId, orgId)));
  if (!row) throw new ApiError("NOT_FOUND", "No such API key");
  return row;
}

/** `GET/POST /v1/api-keys`, `DELETE /v1/api-keys/:id`, `POST /v1/api-keys/:id/rotate`. */
export function registerApiKeys(app: Hono<AppEnv>) {
  /** Newest first, in pages of `limit` (default 100); `nextCursor` (null on the last page) fetches the next. */
  app.get("/v1/api-keys", managementAuth, async (c) => {
    const { limit, cursor } = validate(ListQuery, c.req.query());
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    const k = apiKeys;
    const rows = await drizzle(c.env.DB)
      .select()
      .from(k)
      .where(and(eq(k.orgId, c.var.orgId), olderThan(k.createdAt, k.id, after)))
      .orderBy(desc(k.createdAt), desc(k.id))
      .limit(limit + 1);
    const { page, nextCursor } = pageOf(rows, limit, (last) => encodeCursor({ at: last.createdAt, id: last.id }));
    return c.json({ apiKeys: page.map(keyView), nextCursor });
  });

  app.post("/v1/api-keys", managementAuth, async (c) => {
    const body = await readJson(c, CreateKey);
    const { row, secretKey } = await newKey(c.env, c.var.orgId, body.name);
    const db = drizzle(c.env.DB);
    await db.insert(apiKeys).values(row);
    const [created] = await db.select().from(apiKeys).where(eq(apiKeys.id, row.id));
    const view = keyView(created!);
    await audit(c, { kind: "key.created", target: row.id, after: view });
    return c.json({ ...view, secretKey }, 201);
  });

  app.delete("/v1/api-keys/:id", managementAuth, async (c) => {
    const key = await ownKey(c.env, c.var.orgId, c.req.param("id"));
    // Revoking a revoked key changes nothing and records nothing.
    const revoked =
      key.revokedAt === null
        ? await drizzle(c.env.DB)
            .update(apiKeys)
            .set({ revokedAt: Date.now() })
            .where(and(eq(apiKeys.id, key.id), isNull(apiKeys.revokedAt)))
            .returning({ id: apiKeys.id })
        : [];
    forgetKey(key.publishKey);
    const [after] = await drizzle(c.env.DB).select().from(apiKeys).where(eq(apiKeys.id, key.id));
    const view = keyView(after!);
    if (revoked.length > 0) await audit(c, { kind: "key.revoked", target: key.id, before: keyView(key), after: view });
    return c.json(view);
  });

  app.post("/v1/api-keys/:id/rotate", managementAuth, async (c) => {
    const old = await ownKey(c.env, c.var.orgId, c.req.param("id"));
    if (old.revokedAt !== null) throw new ApiError("CONFLICT", "This key is revoked; create a new one instead");
    const { row, secretKey } = await newKey(c.env, c.var.orgId, old.name);
    const db = drizzle(c.env.DB);
    // One transaction that claims the old key only if no rotation did yet: of two racing rotations
    // exactly one claims it; the other's new key is taken back in the same transaction and it answers 409.
    const [, , lost] = await db.batch([
      db
        .update(apiKeys)
        .set({ revokedAt: Date.now(), rotatedToId: row.id })
        .where(and(eq(apiKeys.id, old.id), isNull(apiKeys.revokedAt), isNull(apiKeys.rotatedToId))),
      db.insert(apiKeys).values(row),
      db
        .delete(apiKeys)
        .where(and(eq(apiKeys.id, row.id), sql`NOT EXISTS (SELECT 1 FROM api_keys WHERE id = ${old.id} AND rotated_to_id = ${row.id})`))
        .returning({ id: apiKeys.id }),
    ]);
    if (lost.length > 0) throw new ApiError("CONFLICT", "This key was rotated or revoked meanwhile; list the keys to see its replacement");
    forgetKey(old.publishKey);
    const [created] = await db.select().from(apiKeys).where(eq(apiKeys.id, row.id));
    const view = keyView(created!);
    await audit(c, { kind: "key.rotated", target: old.id, before: keyView(old), after: view, details: { replacedBy: row.id } });
    return c.json({ ...view, secretKey, replaces: old.id }, 201);
  });
}

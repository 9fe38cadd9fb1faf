import type { Hono } from "hono";
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { IdentifierSchema } from "@waitstate/protocol";
import { apiKeys } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { audit } from "../lib/audit.js";
import { readJson, validate } from "../lib/body.js";
import { ListQuery, decodeCursor, encodeCursor, olderThan, pageOf } from "../lib/paging.js";
import { encryptSecret, randomId, randomToken } from "../lib/crypto.js";
import { forgetKey } from "../lib/keys.js";
import { endKeySockets } from "../lib/aggregators.js";
import { encryptionKey } from "../lib/secrets.js";
import { allow } from "../middleware/access.js";
import type { AppEnv, Env } from "../env.js";

/** Rotation keeps the old key valid this long unless the request says otherwise: 0, at once (a rotation is often a leak's answer). */
export const DEFAULT_ROTATION_GRACE_SECONDS = 0;
/** The longest grace period a rotation may give the old key: 7 days. */
export const MAX_ROTATION_GRACE_SECONDS = 7 * 24 * 3600;

const CreateKey = z.strictObject({
  name: z.string().trim().min(1).max(100).default("default"),
  /** A label shown in the key's prefix (`ws_pub_live_…`, `ws_pub_test_…`). */
  environment: z.enum(["live", "test"]).default("live"),
  /** Scope the key to one site: it cannot pulse or read the policy of another. */
  siteId: IdentifierSchema.optional(),
});
const RotateKey = z.strictObject({
  gracePeriodSeconds: z.int().min(0).max(MAX_ROTATION_GRACE_SECONDS).default(DEFAULT_ROTATION_GRACE_SECONDS),
});
const KeyId = z.string().regex(/^key_[A-Za-z0-9_-]{1,64}$/);

type KeyRow = typeof apiKeys.$inferSelect;

function keyView(row: KeyRow) {
  return {
    id: row.id,
    name: row.name,
    publishKey: row.publishKey,
    environment: row.environment,
    siteId: row.siteId,
    createdAt: row.createdAt,
    revokedAt: row.revokedAt,
    rotatedToId: row.rotatedToId,
    expiresAt: row.expiresAt,
  };
}

/** A new key pair for the org: the secret is encrypted at rest and returned once. */
async function newKey(env: Env, orgId: string, scope: { name: string; environment: "live" | "test"; siteId: string | null }) {
  const secretKey = randomToken(`ws_sec_${scope.environment}_`);
  const sealed = await encryptSecret(await encryptionKey(env), secretKey);
  const row = {
    id: randomId("key_"),
    orgId,
    name: scope.name,
    environment: scope.environment,
    siteId: scope.siteId,
    publishKey: randomToken(`ws_pub_${scope.environment}_`, 16),
    secretKeyCiphertext: sealed.ciphertext,
    secretKeyIv: sealed.iv,
  };
  return { row, secretKey };
}

/** Another org's key id answers exactly like an unknown one: 404. */
async function ownKey(env: Env, orgId: string, rawId: string): Promise<KeyRow> {
  const id = KeyId.safeParse(rawId);
  if (!id.success) throw new ApiError("NOT_FOUND", "No such API key");
  const [row] = await drizzle(env.DB)
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.id, id.data), eq(apiKeys.orgId, orgId)));
  if (!row) throw new ApiError("NOT_FOUND", "No such API key");
  return row;
}

/** `GET/POST /v1/api-keys`, `DELETE /v1/api-keys/:id`, `POST /v1/api-keys/:id/rotate`. */
export function registerApiKeys(app: Hono<AppEnv>) {
  /** Newest first, in pages of `limit` (default 100); `nextCursor` (null on the last page) fetches the next. */
  app.get("/v1/api-keys", allow("admin", "org-wide"), async (c) => {
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

  app.post("/v1/api-keys", allow("admin", "org-wide"), async (c) => {
    const body = await readJson(c, CreateKey);
    const { row, secretKey } = await newKey(c.env, c.var.orgId, {
      name: body.name,
      environment: body.environment,
      siteId: body.siteId ?? null,
    });
    const db = drizzle(c.env.DB);
    await db.insert(apiKeys).values(row);
    const [created] = await db.select().from(apiKeys).where(eq(apiKeys.id, row.id));
    const view = keyView(created!);
    await audit(c, { kind: "key.created", target: row.id, after: view });
    return c.json({ ...view, secretKey }, 201);
  });

  app.delete("/v1/api-keys/:id", allow("admin", "org-wide"), async (c) => {
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
    forgetKey(key);
    // Its push sockets close now (4001), not when their tokens expire.
    if (revoked.length > 0) await endKeySockets(c.env, key, Date.now());
    const [after] = await drizzle(c.env.DB).select().from(apiKeys).where(eq(apiKeys.id, key.id));
    const view = keyView(after!);
    if (revoked.length > 0) await audit(c, { kind: "key.revoked", target: key.id, before: keyView(key), after: view });
    return c.json(view);
  });

  app.post("/v1/api-keys/:id/rotate", allow("admin", "org-wide"), async (c) => {
    const old = await ownKey(c.env, c.var.orgId, c.req.param("id"));
    // The body is optional: no body rotates with the default grace period.
    const hasBody = c.req.raw.body !== null && c.req.header("content-length") !== "0";
    const { gracePeriodSeconds } = hasBody ? await readJson(c, RotateKey) : RotateKey.parse({});
    if (old.revokedAt !== null) throw new ApiError("CONFLICT", "This key is revoked; create a new one instead");
    if (old.rotatedToId !== null)
      throw new ApiError("CONFLICT", `This key was already rotated to ${old.rotatedToId}; rotate that one instead`);
    const { row, secretKey } = await newKey(c.env, c.var.orgId, { name: old.name, environment: old.environment, siteId: old.siteId });
    const now = Date.now();
    // Without a grace period the old key is revoked at once, as before; with one it expires then.
    const retire = gracePeriodSeconds === 0 ? { revokedAt: now } : { expiresAt: now + gracePeriodSeconds * 1000 };
    const db = drizzle(c.env.DB);
    // One transaction that claims the old key only if no rotation did yet: of two racing rotations
    // exactly one claims it; the other's new key is taken back in the same transaction and it answers 409.
    const [, , lost] = await db.batch([
      db
        .update(apiKeys)
        .set({ ...retire, rotatedToId: row.id })
        .where(and(eq(apiKeys.id, old.id), isNull(apiKeys.revokedAt), isNull(apiKeys.rotatedToId))),
      db.insert(apiKeys).values(row),
      db
        .delete(apiKeys)
        .where(and(eq(apiKeys.id, row.id), sql`NOT EXISTS (SELECT 1 FROM api_keys WHERE id = ${old.id} AND rotated_to_id = ${row.id})`))
        .returning({ id: apiKeys.id }),
    ]);
    if (lost.length > 0) throw new ApiError("CONFLICT", "This key was rotated or revoked meanwhile; list the keys to see its replacement");
    forgetKey(old);
    const [created] = await db.select().from(apiKeys).where(eq(apiKeys.id, row.id));
    const [retired] = await db.select().from(apiKeys).where(eq(apiKeys.id, old.id));
    await endKeySockets(c.env, old, retired!.expiresAt ?? retired!.revokedAt ?? now);
    const view = keyView(created!);
    await audit(c, {
      kind: "key.rotated",
      target: old.id,
      before: keyView(old),
      after: view,
      details: { replacedBy: row.id, gracePeriodSeconds },
    });
    return c.json({ ...view, secretKey, replaces: old.id, oldKeyValidUntil: retired!.expiresAt ?? retired!.revokedAt }, 201);
  });
}

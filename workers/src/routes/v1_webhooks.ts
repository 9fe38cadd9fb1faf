import type { Hono } from "hono";
import { and, desc, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { deliveryError, dispatcherFor } from "@waitstate/durable-objects";
import { webhookDeliveries, webhooks } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { audit } from "../lib/audit.js";
import { readJson, validate } from "../lib/body.js";
import { encryptSecret, randomId } from "../lib/crypto.js";
import { decodeCursor, encodeCursor, CursorParam, ListQuery, limitParam, olderThan, pageOf } from "../lib/paging.js";
import { encryptionKey } from "../lib/secrets.js";
import { EventsSchema, MAX_WEBHOOKS_PER_ORG, WebhookUrlSchema, assertPublicTarget, newWebhookSecret } from "../lib/webhooks.js";
import { allow } from "../middleware/access.js";
import type { AppEnv, Env } from "../env.js";

const CreateWebhook = z.strictObject({
  url: WebhookUrlSchema,
  events: EventsSchema.default(["*"]),
  enabled: z.boolean().default(true),
});
const UpdateWebhook = z
  .strictObject({ url: WebhookUrlSchema.optional(), events: EventsSchema.optional(), enabled: z.boolean().optional() })
  .refine((patch) => patch.url !== undefined || patch.events !== undefined || patch.enabled !== undefined, {
    message: "send url, events, enabled or several",
  });
const DeliveriesQuery = z.object({ limit: limitParam(50, 200), cursor: CursorParam.optional() });
const WebhookId = z.string().regex(/^wh_[A-Za-z0-9_-]{1,64}$/);

type WebhookRow = typeof webhooks.$inferSelect;
type DeliveryRow = typeof webhookDeliveries.$inferSelect;

function eventsOf(row: WebhookRow): string[] {
  try {
    const value: unknown = JSON.parse(row.events);
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
  } catch {
    return [];
  }
}

/** A webhook as listed: never its secret. */
function webhookView(row: WebhookRow) {
  return { id: row.id, url: row.url, events: eventsOf(row), enabled: row.enabled, createdAt: row.createdAt, updatedAt: row.updatedAt };
}

function deliveryView(row: DeliveryRow) {
  return {
    id: row.id,
    eventId: row.eventId,
    kind: row.kind,
    status: row.status,
    attempts: row.attempts,
    lastStatusCode: row.lastStatusCode,
    lastError: deliveryError(row.lastError),
    nextAttemptAt: row.nextAttemptAt,
    deliveredAt: row.deliveredAt,
    createdAt: row.createdAt,
  };
}

/** Another org's webhook answers exactly like an unknown one: 404. */
async function ownWebhook(env: Env, orgId: string, rawId: string): Promise<WebhookRow> {
  const id = WebhookId.safeParse(rawId);
  if (!id.success) throw new ApiError("NOT_FOUND", "No such webhook");
  const [row] = await drizzle(env.DB)
    .select()
    .from(webhooks)
    .where(and(eq(webhooks.id, id.data), eq(webhooks.orgId, orgId)));
  if (!row) throw new ApiError("NOT_FOUND", "No such webhook");
  return row;
}

/**
 * `GET/POST /v1/webhooks`, `GET/PATCH/DELETE /v1/webhooks/:id`,
 * `GET /v1/webhooks/:id/deliveries`. Every audit entry whose kind matches an
 * enabled webhook's events becomes a signed delivery (docs/audit-and-webhooks.md);
 * the secret is shown once, at creation.
 */
export function registerWebhooks(app: Hono<AppEnv>) {
  /** Newest first, in pages of `limit` (default 100); `nextCursor` (null on the last page) fetches the next. */
  app.get("/v1/webhooks", allow("admin", "org-wide"), async (c) => {
    const { limit, cursor } = validate(ListQuery, c.req.query());
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    const w = webhooks;
    const rows = await drizzle(c.env.DB)
      .select()
      .from(w)
      .where(and(eq(w.orgId, c.var.orgId), olderThan(w.createdAt, w.id, after)))
      .orderBy(desc(w.createdAt), desc(w.id))
      .limit(limit + 1);
    const { page, nextCursor } = pageOf(rows, limit, (last) => encodeCursor({ at: last.createdAt, id: last.id }));
    return c.json({ webhooks: page.map(webhookView), nextCursor });
  });

  app.post("/v1/webhooks", allow("admin", "org-wide"), async (c) => {
    const body = await readJson(c, CreateWebhook);
    assertPublicTarget(c.env, body.url);
    const orgId = c.var.orgId;
    const secret = newWebhookSecret();
    const sealed = await encryptSecret(await encryptionKey(c.env), secret);
    const id = randomId("wh_");
    // The cap is checked in the insert itself, so two creations racing for the last slot cannot both land.
    const inserted = await c.env.DB.prepare(
      `INSERT INTO webhooks (id, org_id, url, events, enabled, secret_ciphertext, secret_iv)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE (SELECT count(*) FROM webhooks WHERE org_id = ?2) < ?8`,
    )
      .bind(id, orgId, body.url, JSON.stringify(body.events), body.enabled ? 1 : 0, sealed.ciphertext, sealed.iv, MAX_WEBHOOKS_PER_ORG)
      .run();
    if (inserted.meta.changes === 0) {
      throw new ApiError("PLAN_LIMIT_REACHED", `An organization can have ${MAX_WEBHOOKS_PER_ORG} webhooks; delete one first`);
    }
    const [created] = await drizzle(c.env.DB).select().from(webhooks).where(eq(webhooks.id, id));
    const view = webhookView(created!);
    await audit(c, { kind: "webhook.created", target: id, after: view });
    return c.json({ ...view, secret }, 201);
  });

  app.get("/v1/webhooks/:id", allow("admin", "org-wide"), async (c) => {
    return c.json(webhookView(await ownWebhook(c.env, c.var.orgId, c.req.param("id"))));
  });

  /** Changes take effect for the next attempt of pending deliveries too (they are sent to the URL of the moment). */
  app.patch("/v1/webhooks/:id", allow("admin", "org-wide"), async (c) => {
    const current = await ownWebhook(c.env, c.var.orgId, c.req.param("id"));
    const patch = await readJson(c, UpdateWebhook);
    if (patch.url !== undefined) assertPublicTarget(c.env, patch.url);
    const [updated] = await drizzle(c.env.DB)
      .update(webhooks)
      .set({
        ...(patch.url === undefined ? {} : { url: patch.url }),
        ...(patch.events === undefined ? {} : { events: JSON.stringify(patch.events) }),
        ...(patch.enabled === undefined ? {} : { enabled: patch.enabled }),
        updatedAt: Date.now(),
      })
      .where(and(eq(webhooks.id, current.id), eq(webhooks.orgId, c.var.orgId)))
      .returning();
    if (!updated) throw new ApiError("NOT_FOUND", "No such webhook");
    const view = webhookView(updated);
    await audit(c, { kind: "webhook.updated", target: current.id, before: webhookView(current), after: view });
    return c.json(view);
  });

  app.delete("/v1/webhooks/:id", allow("admin", "org-wide"), async (c) => {
    const hook = await ownWebhook(c.env, c.var.orgId, c.req.param("id"));
    await drizzle(c.env.DB)
      .delete(webhooks)
      .where(and(eq(webhooks.id, hook.id), eq(webhooks.orgId, c.var.orgId)));
    try {
      await dispatcherFor(c.env.WEBHOOK_DISPATCHER, c.var.orgId).forget(hook.id);
    } catch (error) {
      // The dispatcher drops the webhook's deliveries anyway when it finds the webhook gone.
      console.error(`forgetting the deliveries of ${hook.id} failed`, error);
    }
    const view = webhookView(hook);
    await audit(c, { kind: "webhook.deleted", target: hook.id, before: view });
    return c.json(view);
  });

  /** The webhook's deliveries, newest first, with cursor pagination. */
  app.get("/v1/webhooks/:id/deliveries", allow("admin", "org-wide"), async (c) => {
    const hook = await ownWebhook(c.env, c.var.orgId, c.req.param("id"));
    const { limit, cursor } = validate(DeliveriesQuery, c.req.query());
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    const d = webhookDeliveries;
    const rows = await drizzle(c.env.DB)
      .select()
      .from(d)
      .where(and(eq(d.webhookId, hook.id), eq(d.orgId, c.var.orgId), olderThan(d.createdAt, d.id, after)))
      .orderBy(desc(d.createdAt), desc(d.id))
      .limit(limit + 1);
    const { page, nextCursor } = pageOf(rows, limit, (last) => encodeCursor({ at: last.createdAt, id: last.id }));
    return c.json({ deliveries: page.map(deliveryView), nextCursor });
  });
}

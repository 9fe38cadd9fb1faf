import type { Hono } from "hono";
import { and, asc, eq, gt } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { DEFAULT_TAG_MAX_WEIGHT, PLAN_LIMITS, TagNameSchema } from "@waitstate/protocol";
import { insertTagWithinCap, tagCapMessage } from "@waitstate/durable-objects";
import { organizations, tags } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { reloadSites } from "../lib/aggregators.js";
import { audit } from "../lib/audit.js";
import { readJson, validate } from "../lib/body.js";
import { ListQuery, decodePosition, encodePosition, pageOf } from "../lib/paging.js";
import { randomId } from "../lib/crypto.js";
import { allow } from "../middleware/access.js";
import type { AppEnv, Env } from "../env.js";

/** A throttle multiplies this baseline (docs/design.md#actions-block-and-throttle); JSON has no Infinity, zod refuses NaN. */
const MaxWeight = z.number().nonnegative();
const Priority = z.int();

const CreateTag = z.strictObject({
  name: TagNameSchema,
  maxWeight: MaxWeight.default(DEFAULT_TAG_MAX_WEIGHT),
  priority: Priority.default(0),
});
const UpdateTag = z
  .strictObject({ maxWeight: MaxWeight.optional(), priority: Priority.optional() })
  .refine((patch) => patch.maxWeight !== undefined || patch.priority !== undefined, { message: "send maxWeight, priority or both" });
// The aggregator names the tags it creates `tag_` + hex, randomId `tag_` + base64url.
const TagId = z.string().regex(/^tag_[A-Za-z0-9_-]{1,64}$/);

type TagRow = typeof tags.$inferSelect;

function tagView(row: TagRow) {
  return {
    id: row.id,
    name: row.name,
    maxWeight: row.maxWeight,
    priority: row.priority,
    autoCreated: row.autoCreated,
    createdAt: row.createdAt,
  };
}

/** Another org's tag id answers exactly like an unknown one: 404. */
async function ownTag(env: Env, orgId: string, rawId: string): Promise<TagRow> {
  const id = TagId.safeParse(rawId);
  if (!id.success) throw new ApiError("NOT_FOUND", "No such tag");
  const [row] = await drizzle(env.DB)
    .select()
    .from(tags)
    .where(and(eq(tags.id, id.data), eq(tags.orgId, orgId)));
  if (!row) throw new ApiError("NOT_FOUND", "No such tag");
  return row;
}

/**
 * `GET/POST /v1/tags`, `PATCH/DELETE /v1/tags/:id`. A tag's configuration is
 * the baseline max weight throttles multiply and its triage priority; every
 * change reloads the org's aggregators so the next policy uses it.
 */
export function registerTags(app: Hono<AppEnv>) {
  /** By name, in pages of `limit` (default 100); `nextCursor` (null on the last page) fetches the next. */
  app.get("/v1/tags", allow("viewer", "scoped"), async (c) => {
    const { limit, cursor } = validate(ListQuery, c.req.query());
    const after = cursor === undefined ? undefined : decodePosition(cursor, z.tuple([z.string()]));
    const rows = await drizzle(c.env.DB)
      .select()
      .from(tags)
      .where(and(eq(tags.orgId, c.var.orgId), after === undefined ? undefined : gt(tags.name, after[0])))
      .orderBy(asc(tags.name))
      .limit(limit + 1);
    const { page, nextCursor } = pageOf(rows, limit, (last) => encodePosition([last.name]));
    return c.json({ tags: page.map(tagView), nextCursor });
  });

  app.post("/v1/tags", allow("editor", "org-wide"), async (c) => {
    const body = await readJson(c, CreateTag);
    const db = drizzle(c.env.DB);
    const [org] = await db.select({ plan: organizations.plan }).from(organizations).where(eq(organizations.id, c.var.orgId));
    if (!org) throw new ApiError("NOT_FOUND", "This organization no longer exists");
    const cap = PLAN_LIMITS[org.plan].tags;
    // The unique (org, name) index and the cap decide in the insert, so a tag the aggregator auto-creates at the same moment cannot slip in twice or past the cap.
    const id = randomId("tag_");
    await insertTagWithinCap(c.env.DB, c.var.orgId, { id, ...body, autoCreated: false }, cap).run();
    const [created] = await db
      .select()
      .from(tags)
      .where(and(eq(tags.id, id), eq(tags.orgId, c.var.orgId)));
    if (!created) {
      const [existing] = await db
        .select({ id: tags.id })
        .from(tags)
        .where(and(eq(tags.orgId, c.var.orgId), eq(tags.name, body.name)));
      if (!existing) throw new ApiError("PLAN_LIMIT_REACHED", tagCapMessage(org.plan, cap));
      throw new ApiError("CONFLICT", `A tag named "${body.name}" already exists: PATCH /v1/tags/${existing.id} to change it`);
    }
    await reloadSites(c.env, c.var.orgId);
    await audit(c, { kind: "tag.created", target: created.id, after: tagView(created) });
    return c.json(tagView(created), 201);
  });

  app.patch("/v1/tags/:id", allow("editor", "org-wide"), async (c) => {
    const tag = await ownTag(c.env, c.var.orgId, c.req.param("id"));
    const patch = await readJson(c, UpdateTag);
    const [updated] = await drizzle(c.env.DB)
      .update(tags)
      .set(patch)
      .where(and(eq(tags.id, tag.id), eq(tags.orgId, c.var.orgId)))
      .returning();
    if (!updated) throw new ApiError("NOT_FOUND", "No such tag");
    await reloadSites(c.env, c.var.orgId);
    await audit(c, { kind: "tag.updated", target: tag.id, before: tagView(tag), after: tagView(updated) });
    return c.json(tagView(updated));
  });

  // A deleted tag falls back to the defaults; if pulses still carry it, the aggregator re-creates it as autoCreated.
  app.delete("/v1/tags/:id", allow("editor", "org-wide"), async (c) => {
    const tag = await ownTag(c.env, c.var.orgId, c.req.param("id"));
    await drizzle(c.env.DB)
      .delete(tags)
      .where(and(eq(tags.id, tag.id), eq(tags.orgId, c.var.orgId)));
    await reloadSites(c.env, c.var.orgId);
    await audit(c, { kind: "tag.deleted", target: tag.id, before: tagView(tag) });
    return c.json(tagView(tag));
  });
}

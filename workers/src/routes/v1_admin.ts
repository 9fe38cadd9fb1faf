import type { Hono } from "hono";
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { PlanSchema } from "@waitstate/protocol";
import { organizations } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { reloadSites } from "../lib/aggregators.js";
import { ADMIN_ACTOR, auditAs, type AuditChange } from "../lib/audit.js";
import { readJson } from "../lib/body.js";
import { operatorOnly } from "../middleware/access.js";
import { orgView } from "./v1_organizations.js";
import type { AppEnv, Env } from "../env.js";

const OrgId = z.string().regex(/^org_[A-Za-z0-9_-]{1,64}$/);

const UpdateOrganization = z
  .strictObject({ plan: PlanSchema.optional(), suspended: z.boolean().optional() })
  .refine((body) => body.plan !== undefined || body.suspended !== undefined, { message: "send plan, suspended or both" });

type OrgRow = typeof organizations.$inferSelect;

async function findOrg(env: Env, rawId: string): Promise<OrgRow> {
  const id = OrgId.safeParse(rawId);
  if (!id.success) throw new ApiError("NOT_FOUND", "No such organization");
  const [row] = await drizzle(env.DB).select().from(organizations).where(eq(organizations.id, id.data));
  if (!row) throw new ApiError("NOT_FOUND", "No such organization");
  return row;
}

/**
 * `GET/PATCH /v1/admin/organizations/:id` (Bearer ADMIN_TOKEN): the operator's
 * hold on an organization. `plan` changes its limits (lease, pulse interval,
 * sites, monthly calls, custom metrics) from the next policy of every site;
 * `suspended: true` makes every site's policy `suspended` (the SDKs fail open
 * and stand down for `retryAfterSeconds`), `false` lifts it. Both are audited
 * as the ADMIN_TOKEN holder; a request that changes nothing records nothing.
 */
export function registerAdmin(app: Hono<AppEnv>) {
  app.get("/v1/admin/organizations/:id", operatorOnly(), async (c) => {
    return c.json(orgView(await findOrg(c.env, c.req.param("id"))));
  });

  app.patch("/v1/admin/organizations/:id", operatorOnly(), async (c) => {
    const before = await findOrg(c.env, c.req.param("id"));
    const body = await readJson(c, UpdateOrganization);
    const plan = body.plan ?? before.plan;
    const suspendedAt = body.suspended === undefined ? before.suspendedAt : body.suspended ? (before.suspendedAt ?? Date.now()) : null;
    const changes: AuditChange[] = [];
    if (plan !== before.plan) {
      changes.push({ kind: "org.plan_changed", target: before.id, before: { plan: before.plan }, after: { plan } });
    }
    if ((suspendedAt === null) !== (before.suspendedAt === null)) {
      changes.push({
        kind: suspendedAt === null ? "org.resumed" : "org.suspended",
        target: before.id,
        before: { suspended: before.suspendedAt !== null },
        after: { suspended: suspendedAt !== null },
      });
    }
    if (changes.length === 0) return c.json(orgView(before));
    const [after] = await drizzle(c.env.DB)
      .update(organizations)
      .set({ plan, suspendedAt })
      .where(eq(organizations.id, before.id))
      .returning();
    if (!after) throw new ApiError("NOT_FOUND", "No such organization");
    // Every site's aggregator re-reads the plan and the suspension and publishes its next policy now.
    await reloadSites(c.env, after.id);
    await auditAs(c.env, after.id, ADMIN_ACTOR, changes);
    return c.json(orgView(after));
  });
}

import type { Hono } from "hono";
import { and, asc, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { policyKey } from "@waitstate/durable-objects";
import { IdentifierSchema } from "@waitstate/protocol";
import { reflexEvents, sites, telemetryRollups } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { aggregator } from "../lib/aggregators.js";
import { readJson } from "../lib/body.js";
import { managementAuth } from "../middleware/management-auth.js";
import type { AppEnv, Env } from "../env.js";

const SetKill = z.object({ enabled: z.boolean() });

type SiteRow = typeof sites.$inferSelect;

function siteView(row: SiteRow) {
  return { siteId: row.siteId, killSwitch: row.killSwitch, createdAt: row.createdAt, lastPulseAt: row.lastPulseAt };
}

/** Another org's site answers exactly like an unknown one: 404. */
async function ownSite(env: Env, orgId: string, rawId: string): Promise<SiteRow> {
  const siteId = IdentifierSchema.safeParse(rawId);
  if (!siteId.success) throw new ApiError("NOT_FOUND", "No such site");
  const [row] = await drizzle(env.DB).select().from(sites).where(and(eq(sites.orgId, orgId), eq(sites.siteId, siteId.data)));
  if (!row) throw new ApiError("NOT_FOUND", "No such site");
  return row;
}

/**
 * `GET /v1/sites`, `DELETE /v1/sites/:id`, `POST /v1/sites/:id/kill`. Sites
 * are created by their first pulse; `:id` is the siteId the SDK sends.
 */
export function registerSites(app: Hono<AppEnv>) {
  app.get("/v1/sites", managementAuth, async (c) => {
    const rows = await drizzle(c.env.DB).select().from(sites).where(eq(sites.orgId, c.var.orgId)).orderBy(asc(sites.siteId));
    return c.json({ sites: rows.map(siteView) });
  });

  /**
   * Forgets the site: its row, rollups and reflex events in D1, its aggregator's
   * state and its cached policy. Site-scoped reflex rules are configuration and
   * stay; they apply again if the site comes back. A later pulse re-creates the site.
   */
  app.delete("/v1/sites/:id", managementAuth, async (c) => {
    const site = await ownSite(c.env, c.var.orgId, c.req.param("id"));
    const { orgId, siteId } = site;
    const db = drizzle(c.env.DB);
    await db.batch([
      db.delete(sites).where(and(eq(sites.orgId, orgId), eq(sites.siteId, siteId))),
      db.delete(telemetryRollups).where(and(eq(telemetryRollups.orgId, orgId), eq(telemetryRollups.siteId, siteId))),
      db.delete(reflexEvents).where(and(eq(reflexEvents.orgId, orgId), eq(reflexEvents.siteId, siteId))),
    ]);
    await aggregator(c.env, orgId, siteId).destroy();
    // After destroy(): the aggregator publishes to KV on every policy change, so deleting the key earlier could be undone.
    await c.env.POLICIES.delete(policyKey(orgId, siteId));
    return c.json({ ...siteView(site), deleted: true });
  });

  /** The emergency kill switch: every gate call of the site is denied with `kill_signal` (DESIGN.md). */
  app.post("/v1/sites/:id/kill", managementAuth, async (c) => {
    const site = await ownSite(c.env, c.var.orgId, c.req.param("id"));
    const { enabled } = await readJson(c, SetKill);
    // D1 first: the aggregator re-reads the switch from D1 whenever it reloads its configuration.
    const updated = await drizzle(c.env.DB)
      .update(sites)
      .set({ killSwitch: enabled })
      .where(and(eq(sites.orgId, site.orgId), eq(sites.siteId, site.siteId)))
      .returning({ siteId: sites.siteId });
    if (updated.length === 0) throw new ApiError("NOT_FOUND", "No such site");
    const result = await aggregator(c.env, site.orgId, site.siteId).setKill(site.orgId, site.siteId, enabled);
    if (!result.ok) throw new ApiError(result.code, result.message);
    return c.json({ siteId: site.siteId, killSwitch: enabled, policy: result.policy });
  });
}

/** Talking to the SiteAggregators: one Durable Object per `orgId:siteId`. */
import { and, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { aggregatorName } from "@waitstate/durable-objects";
import { sites } from "../db/schema.js";
import type { Env } from "../env.js";

export function aggregator(env: Env, orgId: string, siteId: string) {
  return env.SITE_AGGREGATOR.get(env.SITE_AGGREGATOR.idFromName(aggregatorName(orgId, siteId)));
}

/**
 * Tells aggregators that configuration changed (rules, tags, plan) so their
 * next policy reflects it at once: one site, or every site of the org. Only
 * sites that exist are asked (a rule may name a site before its first pulse).
 * The change is already committed in D1 when this runs, so a failure here is
 * logged, not answered: the request succeeded, and every aggregator re-reads
 * its configuration within 5 minutes regardless.
 */
export async function reloadSites(env: Env, orgId: string, siteId: string | null = null): Promise<void> {
  const where = siteId === null ? eq(sites.orgId, orgId) : and(eq(sites.orgId, orgId), eq(sites.siteId, siteId));
  const ids = (await drizzle(env.DB).select({ siteId: sites.siteId }).from(sites).where(where)).map((s) => s.siteId);
  const results = await Promise.allSettled(ids.map((id) => aggregator(env, orgId, id).reloadConfig()));
  results.forEach((r, i) => {
    if (r.status === "rejected") console.error(`reloading the aggregator of ${orgId}:${ids[i]} failed`, r.reason);
  });
}

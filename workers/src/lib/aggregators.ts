/** Talking to the SiteAggregators: one Durable Object per `orgId:siteId`. */
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { aggregatorName } from "@waitstate/durable-objects";
import { sites } from "../db/schema.js";
import type { Env } from "../env.js";

export function aggregator(env: Env, orgId: string, siteId: string) {
  return env.SITE_AGGREGATOR.get(env.SITE_AGGREGATOR.idFromName(aggregatorName(orgId, siteId)));
}

/**
 * Tells aggregators that configuration changed (rules, tags, plan) so their
 * next policy reflects it at once: one site, or every site of the org.
 */
export async function reloadSites(env: Env, orgId: string, siteId: string | null = null): Promise<void> {
  const ids =
    siteId !== null
      ? [siteId]
      : (await drizzle(env.DB).select({ siteId: sites.siteId }).from(sites).where(eq(sites.orgId, orgId))).map((s) => s.siteId);
  await Promise.all(ids.map((id) => aggregator(env, orgId, id).reloadConfig()));
}

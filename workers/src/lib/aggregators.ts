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
  await eachSite(env, orgId, siteId, "reloading", (id) => aggregator(env, orgId, id).reloadConfig());
}

/**
 * Tells the aggregators a key ends at `at` (now: revoked or deleted; later: a
 * rotation's grace period), so its push sockets close 4001 then
 * (docs/protocol.md#push): the key's site, or every site of the org for a key
 * without one. Like `reloadSites`, a failure is logged: the socket still
 * closes when its token expires, and its reconnect is refused.
 */
export async function endKeySockets(env: Env, key: { orgId: string; siteId: string | null; id: string }, at: number): Promise<void> {
  await eachSite(env, key.orgId, key.siteId, "closing the push sockets of a key at", (id) =>
    aggregator(env, key.orgId, id).endKey(key.id, at),
  );
}

async function eachSite(env: Env, orgId: string, siteId: string | null, what: string, task: (siteId: string) => Promise<unknown>) {
  const where = siteId === null ? eq(sites.orgId, orgId) : and(eq(sites.orgId, orgId), eq(sites.siteId, siteId));
  const ids = (await drizzle(env.DB).select({ siteId: sites.siteId }).from(sites).where(where)).map((s) => s.siteId);
  const results = await Promise.allSettled(ids.map(task));
  results.forEach((r, i) => {
    if (r.status === "rejected") console.error(`${what} the aggregator of ${orgId}:${ids[i]} failed`, r.reason);
  });
}

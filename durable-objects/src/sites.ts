/**
 * Creating a site within its plan's site cap: shared by the aggregator (a
 * site's first pulse) and the management API (`POST /v1/sites`).
 */
import { NO_TIMING_OVERRIDES, type SiteTimingOverrides } from "@waitstate/protocol";

/**
 * Inserts the site if the org is still under `cap` (null: unlimited) and the
 * site does not exist yet. The cap is checked in the insert itself, so two new
 * sites racing cannot both slip past it. True when a row was inserted.
 */
export async function insertSiteWithinCap(
  db: D1Database,
  orgId: string,
  siteId: string,
  cap: number | null,
  timing: SiteTimingOverrides = NO_TIMING_OVERRIDES,
): Promise<boolean> {
  const inserted = await db
    .prepare(
      `INSERT INTO sites (org_id, site_id, pulse_interval_ms, lease_seconds, window_seconds) SELECT ?1, ?2, ?4, ?5, ?6
       WHERE ?3 IS NULL OR (SELECT count(*) FROM sites WHERE org_id = ?1) < ?3
       ON CONFLICT (org_id, site_id) DO NOTHING`,
    )
    .bind(orgId, siteId, cap, timing.pulseIntervalMs, timing.leaseDurationSeconds, timing.windowSeconds)
    .run();
  return inserted.meta.changes > 0;
}

/** Why a site could not be created: the plan's cap. */
export function siteCapMessage(plan: string, cap: number | null): string {
  return `The ${plan} plan allows ${cap} site${cap === 1 ? "" : "s"}; delete one or upgrade`;
}

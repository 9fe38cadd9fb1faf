import type { Context, Hono } from "hono";
import { and, asc, eq, gt } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { insertSiteWithinCap, policyKey, siteCapMessage } from "@waitstate/durable-objects";
import {
  IdentifierSchema,
  NO_TIMING_OVERRIDES,
  PLAN_LIMITS,
  SiteSettingsSchema,
  siteTiming,
  timingProblem,
  type Plan,
} from "@waitstate/protocol";
import { organizations, reflexEvents, sites, telemetryRollups } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { siteEventStream } from "../lib/events.js";
import { aggregator, reloadSites } from "../lib/aggregators.js";
import { audit } from "../lib/audit.js";
import { readJson, validate } from "../lib/body.js";
import { ListQuery, decodePosition, encodePosition, pageOf } from "../lib/paging.js";
import { allow, canSeeSite, requireSiteInScope } from "../middleware/access.js";
import type { AppEnv, Env } from "../env.js";

const SetKill = z.strictObject({ enabled: z.boolean() });
const CreateSite = SiteSettingsSchema.safeExtend({ siteId: IdentifierSchema });

type SiteRow = typeof sites.$inferSelect;

function overridesOf(row: Pick<SiteRow, "pulseIntervalMs" | "leaseSeconds" | "windowSeconds">) {
  return { pulseIntervalMs: row.pulseIntervalMs, leaseDurationSeconds: row.leaseSeconds, windowSeconds: row.windowSeconds };
}

/** A site as the API shows it: `settings` are the operator's overrides (null: the plan's), `timing` what the site runs with. */
function siteView(row: SiteRow, plan: Plan) {
  const settings = overridesOf(row);
  return {
    siteId: row.siteId,
    killSwitch: row.killSwitch,
    settings,
    timing: siteTiming(plan, settings),
    createdAt: row.createdAt,
    lastPulseAt: row.lastPulseAt,
  };
}

async function planOf(env: Env, orgId: string): Promise<Plan> {
  const [org] = await drizzle(env.DB).select({ plan: organizations.plan }).from(organizations).where(eq(organizations.id, orgId));
  if (!org) throw new ApiError("NOT_FOUND", "This organization no longer exists");
  return org.plan;
}

/** The overrides after applying `patch` (absent: unchanged; null: back to the plan's), or a 400 naming what cannot work. */
function mergeSettings(plan: Plan, current: ReturnType<typeof overridesOf>, patch: z.output<typeof SiteSettingsSchema>) {
  const merged = {
    pulseIntervalMs: patch.pulseIntervalMs === undefined ? current.pulseIntervalMs : patch.pulseIntervalMs,
    leaseDurationSeconds: patch.leaseDurationSeconds === undefined ? current.leaseDurationSeconds : patch.leaseDurationSeconds,
    windowSeconds: patch.windowSeconds === undefined ? current.windowSeconds : patch.windowSeconds,
  };
  const problem = timingProblem(plan, siteTiming(plan, merged));
  if (problem !== null) throw new ApiError("VALIDATION_FAILED", problem);
  return merged;
}

/** Another org's site, or one outside the token's site list, answers exactly like an unknown one: 404. */
async function ownSite(c: Context<AppEnv>, rawId: string): Promise<SiteRow> {
  const { env } = c;
  const orgId = c.var.orgId;
  const siteId = IdentifierSchema.safeParse(rawId);
  if (!siteId.success || !canSeeSite(c, siteId.data)) throw new ApiError("NOT_FOUND", "No such site");
  const [row] = await drizzle(env.DB)
    .select()
    .from(sites)
    .where(and(eq(sites.orgId, orgId), eq(sites.siteId, siteId.data)));
  if (!row) throw new ApiError("NOT_FOUND", "No such site");
  return row;
}

/**
 * `GET/POST /v1/sites`, `GET/PATCH/DELETE /v1/sites/:id`, `GET /v1/sites/:id/status`,
 * `POST /v1/sites/:id/kill`. Sites are created by their first pulse, or ahead
 * of it to set their timing; `:id` is the siteId the SDK sends.
 */
export function registerSites(app: Hono<AppEnv>) {
  /** By siteId, in pages of `limit` (default 100); `nextCursor` (null on the last page) fetches the next. */
  app.get("/v1/sites", allow("viewer", "scoped"), async (c) => {
    const { limit, cursor } = validate(ListQuery, c.req.query());
    const after = cursor === undefined ? undefined : decodePosition(cursor, z.tuple([z.string()]));
    const plan = await planOf(c.env, c.var.orgId);
    const rows = await drizzle(c.env.DB)
      .select()
      .from(sites)
      .where(and(eq(sites.orgId, c.var.orgId), after === undefined ? undefined : gt(sites.siteId, after[0])))
      .orderBy(asc(sites.siteId))
      .limit(limit + 1);
    const { page, nextCursor } = pageOf(rows, limit, (last) => encodePosition([last.siteId]));
    return c.json({ sites: page.filter((row) => canSeeSite(c, row.siteId)).map((row) => siteView(row, plan)), nextCursor });
  });

  /** Creates a site before its first pulse (within the plan's site cap), optionally with its timing. */
  app.post("/v1/sites", allow("editor", "scoped"), async (c) => {
    const orgId = c.var.orgId;
    const { siteId, ...patch } = await readJson(c, CreateSite);
    requireSiteInScope(c, siteId, "create a site");
    const plan = await planOf(c.env, orgId);
    const settings = mergeSettings(plan, NO_TIMING_OVERRIDES, patch);
    const cap = PLAN_LIMITS[plan].sites;
    // The same cap-checked insert as a first pulse's, in the aggregator.
    if (!(await insertSiteWithinCap(c.env.DB, orgId, siteId, cap, settings))) {
      const [existing] = await drizzle(c.env.DB)
        .select({ siteId: sites.siteId })
        .from(sites)
        .where(and(eq(sites.orgId, orgId), eq(sites.siteId, siteId)));
      if (existing) throw new ApiError("CONFLICT", `Site "${siteId}" already exists; PATCH /v1/sites/${siteId} changes its settings`);
      throw new ApiError("PLAN_LIMIT_REACHED", siteCapMessage(plan, cap));
    }
    const view = siteView(await ownSite(c, siteId), plan);
    await audit(c, { kind: "site.created", siteId, target: siteId, after: view, details: { via: "api" } });
    return c.json(view, 201);
  });

  app.get("/v1/sites/:id", allow("viewer", "scoped"), async (c) => {
    const site = await ownSite(c, c.req.param("id"));
    return c.json(siteView(site, await planOf(c.env, site.orgId)));
  });

  /** Changes the site's timing; the aggregator applies it to its next policy at once. */
  app.patch("/v1/sites/:id", allow("editor", "scoped"), async (c) => {
    const site = await ownSite(c, c.req.param("id"));
    const patch = await readJson(c, SiteSettingsSchema);
    const plan = await planOf(c.env, site.orgId);
    const settings = mergeSettings(plan, overridesOf(site), patch);
    const [updated] = await drizzle(c.env.DB)
      .update(sites)
      .set({
        pulseIntervalMs: settings.pulseIntervalMs,
        leaseSeconds: settings.leaseDurationSeconds,
        windowSeconds: settings.windowSeconds,
      })
      .where(and(eq(sites.orgId, site.orgId), eq(sites.siteId, site.siteId)))
      .returning();
    if (!updated) throw new ApiError("NOT_FOUND", "No such site");
    await reloadSites(c.env, site.orgId, site.siteId);
    const view = siteView(updated, plan);
    await audit(c, { kind: "site.updated", siteId: site.siteId, target: site.siteId, before: siteView(site, plan), after: view });
    return c.json(view);
  });

  /** The live view: current policy, timing, the window the rules read (calls, errors, p50/p95/p99 per tag), rule states, recent events. */
  app.get("/v1/sites/:id/status", allow("viewer", "scoped"), async (c) => {
    const site = await ownSite(c, c.req.param("id"));
    const result = await aggregator(c.env, site.orgId, site.siteId).status(site.orgId, site.siteId);
    if (!result.ok) throw new ApiError(result.code, result.message);
    return c.json({ siteId: site.siteId, ...result.status });
  });

  /**
   * The live view as Server-Sent Events (docs/protocol.md#live-site-events):
   * `status` at once and whenever the site changes (at most once a second,
   * every 5 s regardless), `policy` for each new policy version, `rule.fired` /
   * `rule.cleared` as they happen. The stream ends after 15 minutes; clients reconnect.
   */
  app.get("/v1/sites/:id/events", allow("viewer", "scoped"), async (c) => {
    const site = await ownSite(c, c.req.param("id"));
    return siteEventStream(c.env, site.orgId, site.siteId, async (message) => [
      [
        message.type,
        JSON.stringify(
          message.type === "status" ? { ...message, status: { siteId: site.siteId, ...(message.status as object) } } : message,
        ),
      ],
    ]);
  });

  /**
   * Forgets the site: its row, rollups and reflex events in D1, its aggregator's
   * state and its cached policy. The org's usage is not the site's to forget:
   * the aggregator writes the calls it has not rolled up yet to the ledger
   * before it forgets them. Site-scoped reflex rules are configuration and
   * stay; they apply again if the site comes back. A later pulse re-creates the site.
   */
  app.delete("/v1/sites/:id", allow("admin", "org-wide"), async (c) => {
    const site = await ownSite(c, c.req.param("id"));
    const { orgId, siteId } = site;
    // The aggregator first: its final rollup writes usage (and rollups, deleted just after) to D1.
    await aggregator(c.env, orgId, siteId).destroy();
    const db = drizzle(c.env.DB);
    await db.batch([
      db.delete(sites).where(and(eq(sites.orgId, orgId), eq(sites.siteId, siteId))),
      db.delete(telemetryRollups).where(and(eq(telemetryRollups.orgId, orgId), eq(telemetryRollups.siteId, siteId))),
      db.delete(reflexEvents).where(and(eq(reflexEvents.orgId, orgId), eq(reflexEvents.siteId, siteId))),
    ]);
    // After destroy(): the aggregator publishes to KV on every policy change, so deleting the key earlier could be undone.
    await c.env.POLICIES.delete(policyKey(orgId, siteId));
    const view = siteView(site, await planOf(c.env, orgId));
    await audit(c, { kind: "site.deleted", siteId, target: siteId, before: view });
    return c.json({ ...view, deleted: true });
  });

  /** The emergency kill switch: every gate call of the site is denied with `kill_signal` (docs/design.md#decision-order). */
  app.post("/v1/sites/:id/kill", allow("editor", "scoped"), async (c) => {
    const site = await ownSite(c, c.req.param("id"));
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
    await audit(c, {
      kind: enabled ? "kill.on" : "kill.off",
      siteId: site.siteId,
      target: site.siteId,
      before: { killSwitch: site.killSwitch },
      after: { killSwitch: enabled },
      details: { changed: site.killSwitch !== enabled, policyVersion: result.policy.version },
    });
    return c.json({ siteId: site.siteId, killSwitch: enabled, policy: result.policy });
  });
}

import type { Hono } from "hono";
import { and, asc, desc, eq, gte, inArray, lte, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { IdentifierSchema, TagNameSchema } from "@waitstate/protocol";
import { reflexEvents, telemetryRollups } from "../db/schema.js";
import { validate } from "../lib/body.js";
import { allow, siteScope } from "../middleware/access.js";
import type { AppEnv } from "../env.js";

const MINUTE_MS = 60_000;
const DEFAULT_RANGE_MS = 60 * MINUTE_MS;
const MAX_RANGE_MS = 31 * 24 * 60 * MINUTE_MS;

/** A non-negative integer from the query string; "", "1e3", "-1" and "1.5" are refused. */
const intParam = (max: number) =>
  z
    .string()
    .regex(/^\d{1,16}$/, "expected a non-negative integer")
    .transform(Number)
    .pipe(z.int().max(max));

const limitParam = (fallback: number, max: number) => intParam(max).pipe(z.int().min(1)).default(fallback);

const TelemetryQuery = z
  .object({
    siteId: IdentifierSchema.optional(),
    tag: TagNameSchema.optional(),
    /** Epoch ms, both inclusive, of the minutes' starts. */
    from: intParam(Number.MAX_SAFE_INTEGER).optional(),
    to: intParam(Number.MAX_SAFE_INTEGER).optional(),
    limit: limitParam(1000, 10_000),
  })
  .transform((q, ctx) => {
    const to = q.to ?? Date.now();
    const from = q.from ?? Math.max(0, to - DEFAULT_RANGE_MS);
    if (from > to) ctx.addIssue({ code: "custom", path: ["from"], message: "from must not be after to" });
    if (to - from > MAX_RANGE_MS) ctx.addIssue({ code: "custom", path: ["to"], message: "to - from must be at most 31 days" });
    return { ...q, from, to };
  });

const EventsQuery = z.object({
  siteId: IdentifierSchema.optional(),
  limit: limitParam(100, 1000),
});

/** A site-scoped token's reads stop at its sites (undefined: no condition, every site). */
export function siteCondition(scope: readonly string[] | null) {
  return (column: Parameters<typeof inArray>[0]) => (scope === null ? undefined : inArray(column, [...scope]));
}

/**
 * `GET /v1/telemetry`: per-minute rollups (calls, bounced, errors, fleet-wide
 * p50/p95/p99) per site and tag, oldest first; the tag `__site__` carries each
 * site's totals. `GET /v1/reflex-events`: reflex fires and clears, newest first.
 * Both are written by the aggregators' minute alarm.
 */
export function registerTelemetry(app: Hono<AppEnv>) {
  app.get("/v1/telemetry", allow("viewer", "scoped"), async (c) => {
    const { siteId, tag, from, to, limit } = validate(TelemetryQuery, c.req.query());
    const scopeOf = siteCondition(siteScope(c));
    const t = telemetryRollups;
    const rollups = await drizzle(c.env.DB)
      .select({
        siteId: t.siteId,
        tag: t.tag,
        minute: t.minute,
        calls: t.calls,
        bounced: t.bounced,
        errors: t.errors,
        p50: t.p50,
        p95: t.p95,
        p99: t.p99,
      })
      .from(t)
      .where(
        and(
          eq(t.orgId, c.var.orgId),
          siteId === undefined ? undefined : eq(t.siteId, siteId),
          scopeOf(t.siteId),
          tag === undefined ? undefined : eq(t.tag, tag),
          gte(t.minute, from),
          lte(t.minute, to),
        ),
      )
      .orderBy(asc(t.minute), asc(t.siteId), asc(t.tag))
      .limit(limit);
    return c.json({ rollups });
  });

  app.get("/v1/reflex-events", allow("viewer", "scoped"), async (c) => {
    const { siteId, limit } = validate(EventsQuery, c.req.query());
    const scopeOf = siteCondition(siteScope(c));
    const e = reflexEvents;
    const events = await drizzle(c.env.DB)
      .select({
        siteId: e.siteId,
        seq: e.seq,
        ruleId: e.ruleId,
        kind: e.kind,
        at: e.at,
        tagName: e.tagName,
        metric: e.metric,
        metricTag: e.metricTag,
        value: e.value,
        operator: e.operator,
        threshold: e.threshold,
      })
      .from(e)
      .where(and(eq(e.orgId, c.var.orgId), siteId === undefined ? undefined : eq(e.siteId, siteId), scopeOf(e.siteId)))
      // seq is text ("epoch-n") and sorts wrongly as a number; rows of one instant keep their insertion order by rowid.
      .orderBy(desc(e.at), desc(sql`rowid`))
      .limit(limit);
    return c.json({ events });
  });
}

import type { Context, Hono } from "hono";
import { and, asc, countDistinct, eq, ne, not, notInArray, sql, type SQL } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { BUILTIN_METRICS, IdentifierSchema, PLAN_LIMITS, ReflexRuleSchema, type Plan } from "@waitstate/protocol";
import { organizations, reflexRules } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { reloadSites } from "../lib/aggregators.js";
import { audit } from "../lib/audit.js";
import { readJson, validate } from "../lib/body.js";
import { ListQuery, decodePosition, encodePosition, pageOf } from "../lib/paging.js";
import { randomId } from "../lib/crypto.js";
import { allow, canSeeSite, requireSiteInScope } from "../middleware/access.js";
import type { AppEnv, Env } from "../env.js";

/** What an operator may set on a rule: the protocol's rule fields plus its scope. */
/** The fields a rule is made of, in the order forms and error messages show them. */
export const RULE_FIELDS = [
  "siteId",
  "tagName",
  "metric",
  "metricTag",
  "operator",
  "threshold",
  "action",
  "actionValue",
  "enabled",
  "priority",
  "cooldownSeconds",
] as const;

/**
 * A rule as posted: ReflexRuleSchema plus `siteId` (null: every site of the
 * org). Ids are assigned here, so a client-supplied one is refused rather than
 * silently replaced. The product documents write `"actionValue": null` for block rules;
 * that means "none" and is accepted.
 */
const RuleBody = z.preprocess(
  (input) => {
    if (typeof input !== "object" || input === null || !("actionValue" in input) || input.actionValue !== null) return input;
    const { actionValue: _none, ...rest } = input;
    return rest;
  },
  ReflexRuleSchema.safeExtend({
    id: z.never({ error: "ids are assigned by the server; PATCH /v1/reflex-rules/:id changes a rule" }).optional(),
    siteId: IdentifierSchema.nullable().default(null),
  }).strict(),
);
type RuleBody = z.output<typeof RuleBody>;

/** What GET shows beside RULE_FIELDS: accepted in a patch (so a listed rule can be edited and sent back) and ignored. */
const READ_ONLY_FIELDS = ["id", "createdAt", "updatedAt"] as const;

/**
 * A partial rule: any of RULE_FIELDS, each checked when the merged rule is
 * validated as a whole; the read-only fields of a listed rule are ignored;
 * anything else is refused (UNKNOWN_FIELD), never silently dropped.
 */
const RulePatch = z
  .strictObject(
    Object.fromEntries([...RULE_FIELDS, ...READ_ONLY_FIELDS].map((field) => [field, z.unknown().optional()])) as Record<
      (typeof RULE_FIELDS)[number] | (typeof READ_ONLY_FIELDS)[number],
      z.ZodOptional<z.ZodUnknown>
    >,
  )
  .transform(
    (body): Record<string, unknown> =>
      Object.fromEntries(RULE_FIELDS.filter((field) => field in body).map((field) => [field, body[field]])),
  )
  .refine((patch) => Object.keys(patch).length > 0, { message: `send at least one of ${RULE_FIELDS.join(", ")}` });

const RulesQuery = ListQuery.extend({ siteId: IdentifierSchema.optional() });
const RuleId = z.string().regex(/^rule_[A-Za-z0-9_-]{1,64}$/);

type RuleRow = typeof reflexRules.$inferSelect;

/** The same JSON shape a rule is posted in (so a listed rule can be posted again without its id), plus id and timestamps. */
function ruleView(row: RuleRow) {
  return {
    id: row.id,
    siteId: row.siteId,
    tagName: row.tagName,
    metric: row.metric,
    metricTag: row.metricTag,
    operator: row.operator,
    threshold: row.threshold,
    action: row.action,
    actionValue: row.actionValue,
    enabled: row.enabled,
    priority: row.priority,
    cooldownSeconds: row.cooldownSeconds,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** The columns a validated rule body writes. */
function ruleColumns(rule: RuleBody) {
  return {
    siteId: rule.siteId,
    tagName: rule.tagName,
    metric: rule.metric,
    metricTag: rule.metricTag ?? null,
    operator: rule.operator,
    threshold: rule.threshold,
    action: rule.action,
    actionValue: rule.actionValue ?? null,
    enabled: rule.enabled,
    priority: rule.priority,
    cooldownSeconds: rule.cooldownSeconds,
  };
}

/** Whether the request's token may see a rule: every-site rules apply to its sites too, so a site-scoped token sees them. */
const ruleVisible = (c: Context<AppEnv>, row: Pick<RuleRow, "siteId">) => row.siteId === null || canSeeSite(c, row.siteId);

/** Another org's rule id, or a rule of a site outside the token's list, answers exactly like an unknown one: 404. */
async function ownRule(c: Context<AppEnv>, rawId: string): Promise<RuleRow> {
  const id = RuleId.safeParse(rawId);
  if (!id.success) throw new ApiError("NOT_FOUND", "No such reflex rule");
  const [row] = await drizzle(c.env.DB)
    .select()
    .from(reflexRules)
    .where(and(eq(reflexRules.id, id.data), eq(reflexRules.orgId, c.var.orgId)));
  if (!row || !ruleVisible(c, row)) throw new ApiError("NOT_FOUND", "No such reflex rule");
  return row;
}

// ------------------------------------------------------------ rule cap

/**
 * Reflex rules an organization may hold, per plan: every pulse evaluates all
 * of a site's rules and every policy carries their effect, so the count is
 * bounded like tags and sites are.
 */
export const REFLEX_RULE_CAPS: Readonly<Record<Plan, number>> = Object.freeze({ hobby: 10, pro: 100, enterprise: 1000 });

async function planOf(env: Env, orgId: string): Promise<Plan> {
  const [org] = await drizzle(env.DB).select({ plan: organizations.plan }).from(organizations).where(eq(organizations.id, orgId));
  if (!org) throw new ApiError("NOT_FOUND", "This organization no longer exists");
  return org.plan;
}

// ------------------------------------------------------------ custom-metric cap

const isCustomMetric = (metric: string) => !(BUILTIN_METRICS as readonly string[]).includes(metric);

/**
 * The plan's custom-metric allowance (the documented rule: "how many distinct custom metric
 * names can be used in reflex rules", per tag): the org's rules reading
 * `metricTag` (null = site-wide) may use at most `cap` distinct custom names.
 */
interface CapCheck {
  plan: Plan;
  cap: number;
  orgId: string;
  metric: string;
  metricTag: string | null;
  /** The rule being written: its own stored metric does not count against it. */
  ruleId: string;
}

/** The cap that applies to writing `rule`, or null when none does (a built-in metric, or an unlimited plan). */
async function capFor(env: Env, orgId: string, ruleId: string, rule: RuleBody): Promise<CapCheck | null> {
  if (!isCustomMetric(rule.metric)) return null;
  const [org] = await drizzle(env.DB).select({ plan: organizations.plan }).from(organizations).where(eq(organizations.id, orgId));
  const plan = org?.plan ?? "enterprise";
  const cap = PLAN_LIMITS[plan].customMetricsPerTag;
  return cap === null ? null : { plan, cap, orgId, metric: rule.metric, metricTag: rule.metricTag ?? null, ruleId };
}

/** The other custom metric names the org's rules read from the same metricTag (`IS`: null matches null). */
function otherCustomMetrics(check: CapCheck) {
  return and(
    eq(reflexRules.orgId, check.orgId),
    sql`${reflexRules.metricTag} IS ${check.metricTag}`,
    notInArray(reflexRules.metric, [...BUILTIN_METRICS]),
    ne(reflexRules.metric, check.metric),
    ne(reflexRules.id, check.ruleId),
  );
}

/**
 * True when adding `check.metric` would exceed the cap. A SQL condition, so the
 * write itself can carry it: two rules racing for the last slot cannot both land.
 */
function overCap(env: Env, check: CapCheck): SQL {
  const others = drizzle(env.DB)
    .select({ n: countDistinct(reflexRules.metric) })
    .from(reflexRules)
    .where(otherCustomMetrics(check));
  return sql`((${others}) >= ${check.cap})`;
}

async function capError(env: Env, check: CapCheck): Promise<ApiError> {
  if (check.cap === 0) {
    return new ApiError(
      "PLAN_LIMIT_REACHED",
      `The ${check.plan} plan has no custom metrics in reflex rules; use a built-in metric (${BUILTIN_METRICS.join(", ")}) or upgrade`,
    );
  }
  const rows = await drizzle(env.DB)
    .selectDistinct({ metric: reflexRules.metric })
    .from(reflexRules)
    .where(otherCustomMetrics(check))
    .orderBy(asc(reflexRules.metric));
  const where = check.metricTag === null ? "site-wide" : `for metricTag "${check.metricTag}"`;
  return new ApiError(
    "PLAN_LIMIT_REACHED",
    `The ${check.plan} plan allows ${check.cap} distinct custom metrics per tag in reflex rules; ${where} the rules already use ${rows.map((r) => r.metric).join(", ")}`,
  );
}

// ------------------------------------------------------------ routes

/** Config changed for these scopes: a null scope means every site of the org. */
async function reload(env: Env, orgId: string, scopes: Array<string | null>): Promise<void> {
  if (scopes.includes(null)) return reloadSites(env, orgId, null);
  await Promise.all([...new Set(scopes)].map((siteId) => reloadSites(env, orgId, siteId)));
}

/**
 * `GET/POST /v1/reflex-rules`, `PATCH/DELETE /v1/reflex-rules/:id`. A rule
 * applies to one site or (siteId null) to every site of the org; each change
 * reloads the aggregators it concerns so the next policy reflects it.
 */
export function registerReflexRules(app: Hono<AppEnv>) {
  /** In evaluation order (priority, then age), in pages of `limit` (default 100); `nextCursor` (null on the last page) fetches the next. */
  app.get("/v1/reflex-rules", allow("viewer", "scoped"), async (c) => {
    const { siteId, limit, cursor } = validate(RulesQuery, c.req.query());
    const after = cursor === undefined ? undefined : decodePosition(cursor, z.tuple([z.int(), z.int(), z.string()]));
    const r = reflexRules;
    const rows = await drizzle(c.env.DB)
      .select()
      .from(r)
      .where(
        and(
          eq(r.orgId, c.var.orgId),
          siteId === undefined ? undefined : eq(r.siteId, siteId),
          after === undefined ? undefined : sql`(${r.priority}, ${r.createdAt}, ${r.id}) > (${after[0]}, ${after[1]}, ${after[2]})`,
        ),
      )
      .orderBy(asc(r.priority), asc(r.createdAt), asc(r.id))
      .limit(limit + 1);
    const { page, nextCursor } = pageOf(rows, limit, (last) => encodePosition([last.priority, last.createdAt, last.id]));
    return c.json({ reflexRules: page.filter((row) => ruleVisible(c, row)).map(ruleView), nextCursor });
  });

  app.post("/v1/reflex-rules", allow("editor", "scoped"), async (c) => {
    const rule = await readJson(c, RuleBody);
    requireSiteInScope(c, rule.siteId, "create a rule");
    const orgId = c.var.orgId;
    const id = randomId("rule_");
    const db = drizzle(c.env.DB);
    const plan = await planOf(c.env, orgId);
    const ruleCap = REFLEX_RULE_CAPS[plan];
    const cap = await capFor(c.env, orgId, id, rule);
    // One transaction: insert, then take it back if it broke a cap; nobody ever sees the row over a cap,
    // and of creations racing for the last slot only one keeps its row.
    const [, overRules, overMetrics] = await db.batch([
      db.insert(reflexRules).values({ id, orgId, ...ruleColumns(rule) }),
      db
        .delete(reflexRules)
        .where(and(eq(reflexRules.id, id), sql`(SELECT count(*) FROM reflex_rules WHERE org_id = ${orgId}) > ${ruleCap}`))
        .returning({ id: reflexRules.id }),
      db
        .delete(reflexRules)
        .where(and(eq(reflexRules.id, id), cap === null ? sql`0` : overCap(c.env, cap)))
        .returning({ id: reflexRules.id }),
    ]);
    if (overRules.length > 0) {
      throw new ApiError(
        "PLAN_LIMIT_REACHED",
        `The ${plan} plan allows ${ruleCap} reflex rules per organization; delete or edit one instead`,
      );
    }
    if (overMetrics.length > 0 && cap !== null) throw await capError(c.env, cap);
    const [created] = await db.select().from(reflexRules).where(eq(reflexRules.id, id));
    await reload(c.env, orgId, [rule.siteId]);
    const view = ruleView(created!);
    await audit(c, { kind: "rule.created", siteId: view.siteId, target: id, after: view });
    return c.json(view, 201);
  });

  app.patch("/v1/reflex-rules/:id", allow("editor", "scoped"), async (c) => {
    const current = await ownRule(c, c.req.param("id"));
    const patch = await readJson(c, RulePatch);
    const { id: _id, createdAt: _c, updatedAt: _u, ...stored } = ruleView(current);
    const rule = validate(RuleBody, { ...stored, ...patch });
    requireSiteInScope(c, current.siteId, "change a rule");
    requireSiteInScope(c, rule.siteId, "move a rule");
    // Only a change of metric or metricTag can add a name to a tag's set; an org over its cap (after a downgrade) can still edit or disable its rules.
    const addsMetric = rule.metric !== current.metric || (rule.metricTag ?? null) !== current.metricTag;
    const cap = addsMetric ? await capFor(c.env, c.var.orgId, current.id, rule) : null;
    const [updated] = await drizzle(c.env.DB)
      .update(reflexRules)
      .set({ ...ruleColumns(rule), updatedAt: Date.now() })
      .where(and(eq(reflexRules.id, current.id), eq(reflexRules.orgId, c.var.orgId), cap === null ? undefined : not(overCap(c.env, cap))))
      .returning();
    if (!updated) {
      // Deleted meanwhile (ownRule answers 404), or the cap refused it.
      await ownRule(c, current.id);
      throw cap === null ? new ApiError("NOT_FOUND", "No such reflex rule") : await capError(c.env, cap);
    }
    await reload(c.env, c.var.orgId, [current.siteId, updated.siteId]);
    const view = ruleView(updated);
    await audit(c, { kind: "rule.updated", siteId: view.siteId, target: current.id, before: ruleView(current), after: view });
    return c.json(view);
  });

  app.delete("/v1/reflex-rules/:id", allow("editor", "scoped"), async (c) => {
    const rule = await ownRule(c, c.req.param("id"));
    requireSiteInScope(c, rule.siteId, "delete a rule");
    await drizzle(c.env.DB)
      .delete(reflexRules)
      .where(and(eq(reflexRules.id, rule.id), eq(reflexRules.orgId, c.var.orgId)));
    await reload(c.env, c.var.orgId, [rule.siteId]);
    await audit(c, { kind: "rule.deleted", siteId: rule.siteId, target: rule.id, before: ruleView(rule) });
    return c.json(ruleView(rule));
  });
}

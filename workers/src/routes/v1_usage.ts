import type { Hono } from "hono";
import { and, desc, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { PLAN_LIMITS } from "@waitstate/protocol";
import { organizations, usageMonthly } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { validate } from "../lib/body.js";
import { allow } from "../middleware/access.js";
import type { AppEnv } from "../env.js";

/** Months are UTC calendar months, as the ledger keys them. */
const UsageQuery = z.object({
  month: z
    .string()
    .regex(/^\d{4}-(0[1-9]|1[0-2])$/, "month must be YYYY-MM")
    .optional(),
});

/**
 * `GET /v1/usage?month=YYYY-MM`: the org's gate calls per month against its
 * plan's allowance, newest month first. The ledger is written by the
 * aggregators' minute rollups, so the current month lags by about a minute.
 */
export function registerUsage(app: Hono<AppEnv>) {
  app.get("/v1/usage", allow("viewer", "scoped"), async (c) => {
    const { month } = validate(UsageQuery, c.req.query());
    const db = drizzle(c.env.DB);
    const [[org], rows] = await db.batch([
      db.select({ plan: organizations.plan }).from(organizations).where(eq(organizations.id, c.var.orgId)),
      db
        .select({ month: usageMonthly.month, calls: usageMonthly.calls, bounced: usageMonthly.bounced })
        .from(usageMonthly)
        .where(and(eq(usageMonthly.orgId, c.var.orgId), month === undefined ? undefined : eq(usageMonthly.month, month)))
        .orderBy(desc(usageMonthly.month)),
    ]);
    if (!org) throw new ApiError("NOT_FOUND", "This organization no longer exists");
    // A month without a ledger row had no calls; asked for by name, it answers zeros rather than nothing.
    const usage = month !== undefined && rows.length === 0 ? [{ month, calls: 0, bounced: 0 }] : rows;
    return c.json({ plan: org.plan, monthlyCallLimit: PLAN_LIMITS[org.plan].monthlyCalls, usage });
  });
}

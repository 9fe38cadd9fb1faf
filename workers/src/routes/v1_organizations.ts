import type { Hono } from "hono";
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { PlanSchema } from "@waitstate/protocol";
import { managementTokens, organizations } from "../db/schema.js";
import { ADMIN_ACTOR, auditAs } from "../lib/audit.js";
import { readJson } from "../lib/body.js";
import { randomId, randomToken, sha256Hex } from "../lib/crypto.js";
import { allow, operatorOnly } from "../middleware/access.js";
import type { AppEnv } from "../env.js";

const CreateOrganization = z.strictObject({
  name: z.string().trim().min(1).max(100),
  plan: PlanSchema.optional(),
});

/** An organization as the API shows it; `suspended` is set and cleared by the operator (`PATCH /v1/admin/organizations/:id`). */
export function orgView(org: typeof organizations.$inferSelect) {
  return {
    id: org.id,
    name: org.name,
    plan: org.plan,
    suspended: org.suspendedAt !== null,
    suspendedAt: org.suspendedAt,
    createdAt: org.createdAt,
  };
}

/**
 * `POST /v1/organizations` (bootstrap, Bearer ADMIN_TOKEN): creates an
 * organization and its first management token, shown once.
 * `GET /v1/organizations` (Bearer management token): the caller's organization
 * and what the calling token may do (`access`: role and site list).
 */
export function registerOrganizations(app: Hono<AppEnv>) {
  app.post("/v1/organizations", operatorOnly(), async (c) => {
    const body = await readJson(c, CreateOrganization);
    const fallbackPlan = PlanSchema.safeParse(c.env.DEFAULT_PLAN);
    const plan = body.plan ?? (fallbackPlan.success ? fallbackPlan.data : "enterprise");
    const org = { id: randomId("org_"), name: body.name, plan };
    const token = randomToken("ws_mgmt_");
    const db = drizzle(c.env.DB);
    await db.batch([
      db.insert(organizations).values(org),
      db
        .insert(managementTokens)
        .values({ id: randomId("mt_"), orgId: org.id, tokenHash: await sha256Hex(token), name: "initial", role: "admin" }),
    ]);
    const [created] = await db.select().from(organizations).where(eq(organizations.id, org.id));
    const view = orgView(created!);
    await auditAs(c.env, org.id, ADMIN_ACTOR, [{ kind: "org.created", target: org.id, after: view }]);
    return c.json({ organization: view, managementToken: token }, 201);
  });

  app.get("/v1/organizations", allow("viewer", "scoped"), async (c) => {
    const rows = await drizzle(c.env.DB).select().from(organizations).where(eq(organizations.id, c.var.orgId));
    const token = c.var.managementToken!;
    // `access`: what the calling token may do, so a client (the dashboard, the CLI) can offer only that.
    return c.json({
      organizations: rows.map(orgView),
      access: { tokenId: token.id, tokenName: token.name, role: token.role, siteIds: token.siteIds },
    });
  });
}

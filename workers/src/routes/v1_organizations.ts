import type { Hono } from "hono";
import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { PlanSchema } from "@waitstate/protocol";
import { managementTokens, organizations } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { ADMIN_ACTOR, auditAs } from "../lib/audit.js";
import { bearerToken, readJson } from "../lib/body.js";
import { randomId, randomToken, sha256Hex, timingSafeEqual } from "../lib/crypto.js";
import { managementAuth } from "../middleware/management-auth.js";
import type { AppEnv } from "../env.js";

const CreateOrganization = z.strictObject({
  name: z.string().trim().min(1).max(100),
  plan: PlanSchema.optional(),
});

function orgView(org: typeof organizations.$inferSelect) {
  return { id: org.id, name: org.name, plan: org.plan, createdAt: org.createdAt };
}

/**
 * `POST /v1/organizations` (bootstrap, Bearer ADMIN_TOKEN): creates an
 * organization and its first management token, shown once.
 * `GET /v1/organizations` (Bearer management token): the caller's organization.
 */
export function registerOrganizations(app: Hono<AppEnv>) {
  app.post("/v1/organizations", async (c) => {
    const admin = c.env.ADMIN_TOKEN;
    if (!admin) throw new ApiError("NOT_CONFIGURED", "ADMIN_TOKEN is not set: `npm start` writes one to .dev.vars, or run `wrangler secret put ADMIN_TOKEN`");
    if (!timingSafeEqual(bearerToken(c), admin)) throw new ApiError("INVALID_TOKEN", "Creating an organization needs the ADMIN_TOKEN");
    const body = await readJson(c, CreateOrganization);
    const fallbackPlan = PlanSchema.safeParse(c.env.DEFAULT_PLAN);
    const plan = body.plan ?? (fallbackPlan.success ? fallbackPlan.data : "enterprise");
    const org = { id: randomId("org_"), name: body.name, plan };
    const token = randomToken("ws_mgmt_");
    const db = drizzle(c.env.DB);
    await db.batch([
      db.insert(organizations).values(org),
      db.insert(managementTokens).values({ id: randomId("mt_"), orgId: org.id, tokenHash: await sha256Hex(token), name: "initial" }),
    ]);
    const [created] = await db.select().from(organizations).where(eq(organizations.id, org.id));
    const view = orgView(created!);
    await auditAs(c.env, org.id, ADMIN_ACTOR, [{ kind: "org.created", target: org.id, after: view }]);
    return c.json({ organization: view, managementToken: token }, 201);
  });

  app.get("/v1/organizations", managementAuth, async (c) => {
    const rows = await drizzle(c.env.DB).select().from(organizations).where(eq(organizations.id, c.var.orgId));
    return c.json({ organizations: rows.map(orgView) });
  });
}

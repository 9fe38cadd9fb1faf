import { createMiddleware } from "hono/factory";
import { and, eq, isNull } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { IdentifierSchema } from "@waitstate/protocol";
import { managementTokens } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { bearerToken } from "../lib/body.js";
import { sha256Hex } from "../lib/crypto.js";
import type { AppEnv } from "../env.js";

const SiteList = z.array(IdentifierSchema);

/**
 * A token's stored site list: null is every site. A list that does not parse
 * (hand-edited, say) limits the token to no site at all rather than to all.
 */
export function parseSiteIds(raw: string | null): string[] | null {
  if (raw === null) return null;
  try {
    const parsed = SiteList.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : [];
  } catch {
    return [];
  }
}

/**
 * Management bearer auth: the token's SHA-256 is looked up (tokens are stored
 * only as hashes) and the request is scoped to that token's organization; the
 * token's id, name, role and sites are kept for the routes (permission checks,
 * audit actor, `current`). Routes use it through `allow()` (access.ts), which
 * adds the role and site checks.
 */
export const managementAuth = createMiddleware<AppEnv>(async (c, next) => {
  const token = bearerToken(c);
  const hash = await sha256Hex(token);
  const [row] = await drizzle(c.env.DB)
    .select({
      orgId: managementTokens.orgId,
      id: managementTokens.id,
      name: managementTokens.name,
      role: managementTokens.role,
      siteIds: managementTokens.siteIds,
    })
    .from(managementTokens)
    .where(and(eq(managementTokens.tokenHash, hash), isNull(managementTokens.revokedAt)))
    .limit(1);
  if (!row) throw new ApiError("INVALID_TOKEN", "This management token is unknown or revoked");
  c.set("orgId", row.orgId);
  c.set("managementToken", { id: row.id, name: row.name, role: row.role, siteIds: parseSiteIds(row.siteIds) });
  await next();
});

import { createMiddleware } from "hono/factory";
import { and, eq, isNull } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { managementTokens } from "../db/schema.js";
import { ApiError } from "../errors.js";
import { bearerToken } from "../lib/body.js";
import { sha256Hex } from "../lib/crypto.js";
import type { AppEnv } from "../env.js";

/**
 * Management bearer auth: the token's SHA-256 is looked up (tokens are stored
 * only as hashes) and the request is scoped to that token's organization; the
 * token's id and name are kept for the routes (audit actor, `current`).
 */
export const managementAuth = createMiddleware<AppEnv>(async (c, next) => {
  const token = bearerToken(c);
  const hash = await sha256Hex(token);
  const [row] = await drizzle(c.env.DB)
    .select({ orgId: managementTokens.orgId, id: managementTokens.id, name: managementTokens.name })
    .from(managementTokens)
    .where(and(eq(managementTokens.tokenHash, hash), isNull(managementTokens.revokedAt)))
    .limit(1);
  if (!row) throw new ApiError("INVALID_TOKEN", "This management token is unknown or revoked");
  c.set("orgId", row.orgId);
  c.set("managementToken", { id: row.id, name: row.name });
  await next();
});

import type { Hono } from "hono";
import { z } from "zod";
import { IdentifierSchema, PolicySchema } from "@waitstate/protocol";
import { policyKey, type CachedPolicy } from "@waitstate/durable-objects";
import { ApiError } from "../errors.js";
import { aggregator } from "../lib/aggregators.js";
import { openTo } from "../middleware/access.js";
import { bearerToken } from "../lib/body.js";
import { verifySdkToken } from "../lib/jwt.js";
import { keyStatus, siteFor } from "../lib/keys.js";
import { encryptionSecret } from "../lib/secrets.js";
import type { AppEnv, Env } from "../env.js";

const Cached = z.object({ policy: PolicySchema, etag: z.string().min(1) });

/** KV first; on a miss the site's aggregator evaluates (and publishes) it, if the site exists. */
async function currentPolicy(env: Env, orgId: string, siteId: string): Promise<CachedPolicy> {
  const raw = await env.POLICIES.get(policyKey(orgId, siteId), "json").catch(() => null);
  const cached = Cached.safeParse(raw);
  if (cached.success) return cached.data;
  const result = await aggregator(env, orgId, siteId).policy(orgId, siteId);
  if (!result.ok) throw new ApiError(result.code, result.message);
  return { policy: result.policy, etag: result.etag };
}

/**
 * `GET /v1/policy/:orgId?siteId=`: the site's current policy for a bearer JWT
 * from `POST /v1/auth/token`, scoped to its org (another org's → 403). The
 * JWT's key is checked on every read (revoked or past its grace period → 401
 * KEY_REVOKED, within the key cache's bound), and a site-scoped key reads its
 * own site only (403). The `siteId` defaults to the key's site, else the org
 * id (one aggregator per org when SDKs name no site). `ETag` and `If-None-Match` make an
 * unchanged policy a 304 with no body.
 */
export function registerPolicy(app: Hono<AppEnv>) {
  app.get("/v1/policy/:orgId", openTo("sdk-jwt"), async (c) => {
    const claims = await verifySdkToken(encryptionSecret(c.env), bearerToken(c));
    const orgId = c.req.param("orgId");
    if (claims.org !== orgId) throw new ApiError("FORBIDDEN", "This token belongs to another organization");
    const key = await keyStatus(c.env, claims.sub);
    const siteParam = c.req.query("siteId");
    if (siteParam !== undefined) {
      const site = IdentifierSchema.safeParse(siteParam);
      if (!site.success) throw new ApiError("VALIDATION_FAILED", `siteId: ${site.error.issues[0]?.message ?? "invalid"}`);
    }
    const siteId = siteFor(key, siteParam);
    const { policy, etag } = await currentPolicy(c.env, orgId, siteId);
    c.header("etag", etag);
    c.header("cache-control", "no-cache");
    const match = c.req.header("if-none-match");
    if (match?.split(",").some((tag) => tag.trim() === etag || tag.trim() === "*")) {
      return c.body(null, 304);
    }
    return c.json(policy);
  });
}

import { and, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import type { Context, Hono } from "hono";
import { z } from "zod";
import { IdentifierSchema, PolicySchema } from "@waitstate/protocol";
import { SUBSCRIBER_HEADER, SUBSCRIBE_PATH, policyKey, type CachedPolicy, type SubscriberGrant } from "@waitstate/durable-objects";
import { sites } from "../db/schema.js";
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
 * The checks every SDK JWT route makes, in order: the token (401), its org
 * (403), its key (401 KEY_REVOKED), the `siteId` (400) and the key's site
 * scope (403). The `siteId` defaults to the key's site, else the org id (one
 * aggregator per org when SDKs name no site).
 */
async function sdkReader(c: Context<AppEnv>) {
  const claims = await verifySdkToken(encryptionSecret(c.env), bearerToken(c));
  const orgId = c.req.param("orgId")!;
  if (claims.org !== orgId) throw new ApiError("FORBIDDEN", "This token belongs to another organization");
  const key = await keyStatus(c.env, claims.sub);
  const siteParam = c.req.query("siteId");
  if (siteParam !== undefined) {
    const site = IdentifierSchema.safeParse(siteParam);
    if (!site.success) throw new ApiError("VALIDATION_FAILED", `siteId: ${site.error.issues[0]?.message ?? "invalid"}`);
  }
  return { claims, key, orgId, siteId: siteFor(key, siteParam) };
}

/**
 * `GET /v1/policy/:orgId?siteId=`: the site's current policy for a bearer JWT
 * from `POST /v1/auth/token`, scoped to its org (another org's → 403). The
 * JWT's key is checked on every read (revoked or past its grace period → 401
 * KEY_REVOKED, within the key cache's bound), and a site-scoped key reads its
 * own site only (403). `ETag` and `If-None-Match` make an unchanged policy a
 * 304 with no body.
 *
 * `GET /v1/policy/:orgId/subscribe?siteId=` (docs/protocol.md#push): the same
 * token and checks, then a WebSocket on which the site's aggregator pushes
 * every new policy. Everything is decided here, before any Durable Object
 * work: only an authenticated upgrade for a site that exists reaches it.
 */
export function registerPolicy(app: Hono<AppEnv>) {
  app.get("/v1/policy/:orgId", openTo("sdk-jwt"), async (c) => {
    const { orgId, siteId } = await sdkReader(c);
    const { policy, etag } = await currentPolicy(c.env, orgId, siteId);
    c.header("etag", etag);
    c.header("cache-control", "no-cache");
    const match = c.req.header("if-none-match");
    if (match?.split(",").some((tag) => tag.trim() === etag || tag.trim() === "*")) {
      return c.body(null, 304);
    }
    return c.json(policy);
  });

  app.get("/v1/policy/:orgId/subscribe", openTo("sdk-jwt"), async (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw new ApiError("UPGRADE_REQUIRED", "This is a WebSocket endpoint: send `Upgrade: websocket` (docs/protocol.md#push)");
    }
    const { claims, key, orgId, siteId } = await sdkReader(c);
    const [site] = await drizzle(c.env.DB)
      .select({ siteId: sites.siteId })
      .from(sites)
      .where(and(eq(sites.orgId, orgId), eq(sites.siteId, siteId)))
      .limit(1);
    if (!site) throw new ApiError("NOT_FOUND", `No site "${siteId}" in this organization: it is created by its first pulse`);
    const grant: SubscriberGrant = {
      kind: "sdk",
      orgId,
      siteId,
      keyId: key.keyId,
      tokenExpiresAt: claims.exp * 1000,
      keyEndsAt: key.expiresAt,
    };
    return forwardUpgrade(c, SUBSCRIBE_PATH, grant);
  });
}

/** Hands an authenticated upgrade to the site's aggregator, with its grant and without the caller's credentials. */
function forwardUpgrade(c: Context<AppEnv>, path: string, grant: SubscriberGrant): Promise<Response> {
  const headers = new Headers(c.req.raw.headers);
  headers.delete("authorization");
  headers.delete("cookie");
  headers.set(SUBSCRIBER_HEADER, JSON.stringify(grant));
  return aggregator(c.env, grant.orgId, grant.siteId).fetch(new Request(`https://aggregator.internal${path}`, { headers }));
}

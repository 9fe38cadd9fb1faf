/**
 * Who may call each route, declared where the route is registered. Every
 * route's handler list carries exactly one declaration: `allow(role, sites)`
 * for the management API (it authenticates the token and checks its role and
 * site scope before the handler runs) or `openTo(kind)` for the routes that
 * authenticate otherwise (SDK keys, SDK JWTs, the ADMIN_TOKEN) or not at all.
 * A test walks the app's routes and fails for any route without one, and
 * docs/roles.md is checked against the same declarations.
 */
import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import { z } from "zod";
import { ApiError } from "../errors.js";
import { bearerToken } from "../lib/body.js";
import { timingSafeEqual } from "../lib/crypto.js";
import { managementAuth } from "./management-auth.js";
import type { AppEnv } from "../env.js";

/** Management token roles, least powerful first. */
export const ROLES = ["viewer", "editor", "admin"] as const;
export type Role = (typeof ROLES)[number];
export const RoleSchema = z.enum(ROLES);

/** Whether `role` includes everything `needed` may do. */
export function roleCovers(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/**
 * What a route lets a site-scoped token do: `scoped` routes serve it and show
 * only its sites (another site answers 404, like another org's); `org-wide`
 * routes change or reveal the whole organization and refuse it (403).
 */
export type SiteReach = "scoped" | "org-wide";

export type Access =
  | { kind: "management"; role: Role; sites: SiteReach }
  /** The SDK's key pair: an HMAC-signed pulse or token exchange. */
  | { kind: "sdk-key" }
  /** The SDK's JWT from `POST /v1/auth/token`. */
  | { kind: "sdk-jwt" }
  /** The operator's ADMIN_TOKEN (bootstrap, plans, suspension). */
  | { kind: "admin-token" }
  /** No credential (health check). */
  | { kind: "public" };

/** The property a declaring middleware carries; the routes test and the docs table read it. */
export const ACCESS = Symbol.for("waitstate.access");

export type Declared = MiddlewareHandler<AppEnv> & { readonly [ACCESS]: Access };

function declared(access: Access, handler: MiddlewareHandler<AppEnv>): Declared {
  return Object.assign(handler, { [ACCESS]: access }) as Declared;
}

/** The declaration a registered handler carries, if it is a declaring middleware. */
export function accessOf(handler: unknown): Access | undefined {
  if (typeof handler !== "function") return undefined;
  return (handler as Partial<Declared>)[ACCESS];
}

/**
 * Management auth plus the route's requirement: the token's role must cover
 * `role`, and a site-scoped token is refused on `org-wide` routes. Refusals are
 * 403 FORBIDDEN naming what is missing; an unknown token is 401 as before.
 */
export function allow(role: Role, sites: SiteReach): Declared {
  return declared(
    { kind: "management", role, sites },
    createMiddleware<AppEnv>(async (c, next) => {
      await managementAuth(c, async () => {
        const token = c.var.managementToken!;
        const what = `${c.req.method} ${c.req.routePath}`;
        if (!roleCovers(token.role, role)) {
          throw new ApiError("FORBIDDEN", `This ${token.role} token cannot ${what}: that needs the ${role} role (docs/roles.md)`);
        }
        if (sites === "org-wide" && token.siteIds !== null) {
          throw new ApiError(
            "FORBIDDEN",
            `This token is limited to the sites ${token.siteIds.join(", ")}; ${what} concerns the whole organization and needs a token without a site list`,
          );
        }
        await next();
      });
    }),
  );
}

/**
 * The operator's routes (organizations, plans, suspension): Bearer ADMIN_TOKEN,
 * compared in constant time. Without ADMIN_TOKEN configured they answer 503.
 */
export function operatorOnly(): Declared {
  return declared(
    { kind: "admin-token" },
    createMiddleware<AppEnv>(async (c, next) => {
      const admin = c.env.ADMIN_TOKEN;
      if (!admin)
        throw new ApiError(
          "NOT_CONFIGURED",
          "ADMIN_TOKEN is not set: `npm start` writes one to .dev.vars, or run `wrangler secret put ADMIN_TOKEN`",
        );
      if (!timingSafeEqual(bearerToken(c), admin))
        throw new ApiError("INVALID_TOKEN", `${c.req.method} ${c.req.routePath} needs the ADMIN_TOKEN`);
      await next();
    }),
  );
}

/** A route that authenticates by other means (the SDK's key or JWT, checked by its handler) or not at all, declared as such. */
export function openTo(kind: "sdk-key" | "sdk-jwt" | "public"): Declared {
  return declared({ kind } as Access, async (_c, next) => {
    await next();
  });
}

// ------------------------------------------------------------ site scope, for `scoped` routes

/** The sites the request's token is limited to, or null for every site. */
export function siteScope(c: Context<AppEnv>): readonly string[] | null {
  return c.var.managementToken?.siteIds ?? null;
}

/** Whether the request's token may see `siteId` (a site-wide token sees every site). */
export function canSeeSite(c: Context<AppEnv>, siteId: string): boolean {
  const scope = siteScope(c);
  return scope === null || scope.includes(siteId);
}

/**
 * For writes that name a site in the body (a rule's `siteId`, a new site):
 * a site-scoped token may only name its own sites, and never null (every site).
 */
export function requireSiteInScope(c: Context<AppEnv>, siteId: string | null, what: string): void {
  const scope = siteScope(c);
  if (scope === null) return;
  if (siteId === null)
    throw new ApiError(
      "FORBIDDEN",
      `This token is limited to the sites ${scope.join(", ")}; ${what} for every site needs a token without a site list`,
    );
  if (!scope.includes(siteId))
    throw new ApiError("FORBIDDEN", `This token is limited to the sites ${scope.join(", ")}; it cannot ${what} for "${siteId}"`);
}

/**
 * The operator dashboard at `/dashboard`: server-rendered hono/jsx pages over
 * the management API. Sessions are sealed cookies (session.ts), every POST
 * carries a CSRF token, and every read or change goes through the API in
 * process (api.ts), so validation, org scoping and the audit log are shared.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { CookieOptions } from "hono/utils/cookie";
import { ApiError } from "../errors.js";
import { auditAs, type AuditActor } from "../lib/audit.js";
import { randomToken, sha256Hex } from "../lib/crypto.js";
import { encryptionSecret } from "../lib/secrets.js";
import type { AppEnv } from "../env.js";
import { DashboardApi, dashboardActor } from "./api.js";
import type { DashContext, DashEnv } from "./context.js";
import { readForm, text } from "./forms.js";
import { LoginPage, safeNext } from "./pages/login.js";
import { registerAuditPages } from "./pages/audit.js";
import { registerKeyPages } from "./pages/keys.js";
import { registerRulePages } from "./pages/rules.js";
import { render, shell } from "./pages/shared.js";
import { registerSitePages } from "./pages/sites.js";
import { registerTagPages } from "./pages/tags.js";
import { registerUsagePages } from "./pages/usage.js";
import { registerWebhookPages } from "./pages/webhooks.js";
import {
  LOGIN_COOKIE,
  LOGIN_NONCE_TTL_SECONDS,
  SESSION_COOKIE,
  SESSION_TTL_SECONDS,
  csrfMatches,
  csrfToken,
  loginCsrfToken,
  newLoginNonce,
  newSession,
  openSession,
  sealSession,
  sessionKeys,
  type Session,
  type SessionKeys,
} from "./session.js";
import { MessagePage } from "./ui/layout.js";
import type { Access, Organization } from "./types.js";
import { roleCovers, type Role } from "../middleware/access.js";

let cachedKeys: { secret: string; keys: Promise<SessionKeys> } | null = null;

/** The session keys for this ENCRYPTION_KEY, derived once per isolate. A missing key is a 503 page. */
function keysFor(c: DashContext): Promise<SessionKeys> {
  const secret = encryptionSecret(c.env);
  if (cachedKeys?.secret !== secret) {
    const keys = sessionKeys(secret);
    keys.catch(() => (cachedKeys = null));
    cachedKeys = { secret, keys };
  }
  return cachedKeys.keys.catch(() => {
    throw new ApiError("NOT_CONFIGURED", "ENCRYPTION_KEY must be 32 bytes, base64-encoded");
  });
}

/** Cookie attributes: HttpOnly, SameSite=Strict, Path=/dashboard, Secure when the request came over https. */
function cookieOptions(c: DashContext, maxAgeSeconds: number): CookieOptions {
  return {
    path: "/dashboard",
    httpOnly: true,
    sameSite: "Strict",
    secure: new URL(c.req.url).protocol === "https:",
    maxAge: maxAgeSeconds,
  };
}

function clearCookie(c: DashContext, name: string): void {
  deleteCookie(c, name, { path: "/dashboard", secure: new URL(c.req.url).protocol === "https:" });
}

function executionCtxOf(c: DashContext): ExecutionContext | undefined {
  try {
    return c.executionCtx;
  } catch {
    return undefined;
  }
}

/** The management routes a dashboard session calls; its changes are audited as the session's. */
const AUDITED_API_PATHS = [
  "/v1/organizations/*",
  "/v1/sites/*",
  "/v1/reflex-rules/*",
  "/v1/tags/*",
  "/v1/api-keys/*",
  "/v1/webhooks/*",
] as const;

/**
 * The least role a dashboard request needs: keys, webhooks and deleting a site
 * are an admin's; any other change, and the pages that only confirm one, an
 * editor's; reading, a viewer's. Logging out is anyone's.
 */
export function dashboardNeeds(method: string, path: string): Role {
  const rest = path.replace(/^\/dashboard/, "");
  if (/^\/(keys|webhooks)(\/|$)/.test(rest) || /^\/sites\/[^/]+\/delete$/.test(rest)) return "admin";
  if (rest === "/logout") return "viewer";
  if (method !== "GET" && method !== "HEAD") return "editor";
  if (/^\/sites\/[^/]+\/kill$/.test(rest) || /^\/rules\/[^/]+\/edit$/.test(rest)) return "editor";
  return "viewer";
}

function sessionActor(session: Pick<Session, "tokenId" | "tokenName">): AuditActor {
  return { type: "session", id: session.tokenId, name: session.tokenName };
}

/** The id and name of a live management token (for the audit log), looked up once at login. */
async function tokenIdentity(c: DashContext, token: string): Promise<{ id: string; name: string } | null> {
  return c.env.DB.prepare("SELECT id, name FROM management_tokens WHERE token_hash = ? AND revoked_at IS NULL")
    .bind(await sha256Hex(token))
    .first<{ id: string; name: string }>();
}

/** No caching, no framing, no sniffing, and scripts only with this response's nonce. */
const securityHeaders: MiddlewareHandler<DashEnv> = async (c, next) => {
  const nonce = randomToken("", 16);
  c.set("nonce", nonce);
  c.header("cache-control", "no-store");
  c.header("x-content-type-options", "nosniff");
  c.header("x-frame-options", "DENY");
  c.header("referrer-policy", "same-origin");
  c.header(
    "content-security-policy",
    `default-src 'none'; script-src 'nonce-${nonce}'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  );
  await next();
};

/**
 * A cross-site POST is refused whatever it carries: browsers send Origin (and
 * Sec-Fetch-Site) on form posts, and only this origin's pages may post here.
 */
function crossSite(c: DashContext): boolean {
  const origin = c.req.header("origin");
  if (origin !== undefined && origin !== new URL(c.req.url).origin) return true;
  const site = c.req.header("sec-fetch-site");
  return site !== undefined && site !== "same-origin" && site !== "none";
}

function forbidden(c: DashContext, message: string): Promise<Response> {
  const props = c.var.org ? shell(c, "none", "Forbidden") : { title: "Forbidden", nonce: c.var.nonce };
  return render(
    c,
    <MessagePage {...props} heading="Forbidden" message={message} back={{ href: "/dashboard/sites", label: "Back to the dashboard" }} />,
    403,
  );
}

/** To the login page, remembering where the user was going (GET only). */
function toLogin(c: DashContext, reason?: "expired" | "revoked"): Response {
  const params = new URLSearchParams();
  if (reason) params.set("reason", reason);
  const url = new URL(c.req.url);
  const next = safeNext(url.pathname + url.search);
  if (c.req.method === "GET" && next && next !== "/dashboard" && next !== "/dashboard/") params.set("next", next);
  const q = params.toString();
  return c.redirect(`/dashboard/login${q ? `?${q}` : ""}`, 302);
}

/**
 * Registers `/dashboard/*` on the app. The dashboard calls the app's own
 * management routes in process with the session's token.
 *
 * @example
 * const app = new Hono<AppEnv>();
 * registerSites(app); // … the API
 * registerDashboard(app);
 */
export function registerDashboard(app: Hono<AppEnv>) {
  const dash = new Hono<DashEnv>();
  const apiFor = (c: DashContext, token: string, actor: AuditActor) => new DashboardApi(app, c.env, executionCtxOf(c), token, actor);

  // Only the dashboard's own in-process requests are in the map: nothing a client sends can claim to be a session.
  for (const path of AUDITED_API_PATHS) {
    app.use(path, async (c, next) => {
      const actor = dashboardActor(c.req.raw);
      if (actor) c.set("actor", actor);
      await next();
    });
  }

  dash.use("*", securityHeaders);

  dash.onError((err, c) => {
    if (err instanceof ApiError) {
      const title = err.code === "NOT_CONFIGURED" ? "Not configured" : "That did not work";
      const props = c.var.org ? shell(c, "none", title) : { title, nonce: c.var.nonce };
      return render(c, <MessagePage {...props} heading={title} message={err.message} />, err.status);
    }
    console.error("dashboard error", err);
    return render(
      c,
      <MessagePage
        title="Error"
        nonce={c.var.nonce}
        heading="Something went wrong"
        message="The dashboard failed to render this page. Try again."
      />,
      500,
    );
  });

  // ------------------------------------------------------------ login and logout

  dash.get("/login", async (c) => {
    const keys = await keysFor(c);
    let nonce = getCookie(c, LOGIN_COOKIE);
    if (!nonce || !/^[A-Za-z0-9_-]{24}$/.test(nonce)) {
      nonce = newLoginNonce();
      setCookie(c, LOGIN_COOKIE, nonce, cookieOptions(c, LOGIN_NONCE_TTL_SECONDS));
    }
    const props = {
      csrf: await loginCsrfToken(keys, nonce),
      nonce: c.var.nonce,
      next: safeNext(c.req.query("next")),
      reason: c.req.query("reason"),
    };
    return render(c, <LoginPage {...props} />);
  });

  dash.post("/login", async (c) => {
    if (crossSite(c)) return forbidden(c, "Cross-site requests are refused.");
    const keys = await keysFor(c);
    const form = await readForm(c.req.raw);
    const nonce = getCookie(c, LOGIN_COOKIE);
    if (!nonce || !csrfMatches(await loginCsrfToken(keys, nonce), form._csrf)) {
      return forbidden(c, "This login form is missing its CSRF token or has expired. Reload the login page and try again.");
    }
    const next = safeNext(form.next);
    const again = (error: string, status: 400 | 401) =>
      loginCsrfToken(keys, nonce).then((csrf) =>
        render(c, <LoginPage csrf={csrf} nonce={c.var.nonce} next={next} error={error} />, status),
      );
    const token = text(form, "token");
    if (token === null) return again("Enter your management token.", 400);
    if (token.length > 512 || !/^\S+$/.test(token)) return again("That is not a management token.", 401);
    const identity = await tokenIdentity(c, token);
    const actor = sessionActor({ tokenId: identity?.id ?? null, tokenName: identity?.name ?? null });
    const org = await apiFor(c, token, actor).get<{ organizations: Organization[] }>("/v1/organizations");
    if (!org.ok || !identity || !org.data.organizations[0]) {
      if (org.ok || org.status === 401) return again("That token is unknown or revoked.", 401);
      throw new ApiError("INTERNAL_ERROR", org.message);
    }
    setCookie(c, SESSION_COOKIE, await sealSession(keys, newSession(token, identity)), cookieOptions(c, SESSION_TTL_SECONDS));
    await auditAs(c.env, org.data.organizations[0].id, actor, [{ kind: "session.login" }]);
    clearCookie(c, LOGIN_COOKIE);
    return c.redirect(next ?? "/dashboard/sites", 303);
  });

  // ------------------------------------------------------------ every other page needs a session

  dash.use("*", async (c, next) => {
    const keys = await keysFor(c);
    const cookie = getCookie(c, SESSION_COOKIE);
    const session = await openSession(keys, cookie);
    if (!session) {
      if (cookie !== undefined) clearCookie(c, SESSION_COOKIE);
      return toLogin(c, cookie !== undefined ? "expired" : undefined);
    }
    const api = apiFor(c, session.token, sessionActor(session));
    // The token is checked on every request: revoking it ends the session at once.
    const orgs = await api.get<{ organizations: Organization[]; access: Access }>("/v1/organizations");
    if (!orgs.ok || !orgs.data.organizations[0]) {
      if (orgs.ok || orgs.status === 401 || orgs.status === 404) {
        clearCookie(c, SESSION_COOKIE);
        return toLogin(c, "revoked");
      }
      throw new ApiError("INTERNAL_ERROR", orgs.message);
    }
    c.set("keys", keys);
    c.set("session", session);
    c.set("org", orgs.data.organizations[0]);
    c.set("access", orgs.data.access);
    c.set("api", api);
    c.set("csrf", await csrfToken(keys, session));
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      if (crossSite(c)) return forbidden(c, "Cross-site requests are refused.");
      const form = await readForm(c.req.raw);
      if (!csrfMatches(c.var.csrf, form._csrf)) {
        return forbidden(c, "This form is missing its CSRF token or it does not belong to your session. Reload the page and try again.");
      }
      c.set("form", form);
    }
    // The API refuses too; refusing here as well means a forced form post never half-runs a page's work.
    const needed = dashboardNeeds(c.req.method, new URL(c.req.url).pathname);
    if (!roleCovers(c.var.access.role, needed)) {
      return forbidden(c, `Your token's role is ${c.var.access.role}; this needs the ${needed} role. Ask an admin of your organization.`);
    }
    await next();
  });

  dash.post("/logout", async (c) => {
    // The session is stateless, so this entry is the only trace that it was ended on purpose.
    await auditAs(c.env, c.var.org.id, sessionActor(c.var.session), [{ kind: "session.logout" }]);
    clearCookie(c, SESSION_COOKIE);
    return c.redirect("/dashboard/login?reason=logged_out", 303);
  });

  dash.get("/", (c) => c.redirect("/dashboard/sites", 302));

  registerSitePages(dash);
  registerRulePages(dash);
  registerTagPages(dash);
  registerKeyPages(dash);
  registerUsagePages(dash);
  registerAuditPages(dash);
  registerWebhookPages(dash);

  dash.all("*", (c) => {
    // "/dashboard/" (with the slash) is the same front door as "/dashboard".
    if (c.req.method === "GET" && new URL(c.req.url).pathname === "/dashboard/") return c.redirect("/dashboard/sites", 302);
    return render(
      c,
      <MessagePage
        {...shell(c, "none", "Not found")}
        heading="Not found"
        message="There is no dashboard page here."
        back={{ href: "/dashboard/sites", label: "Sites" }}
      />,
      404,
    );
  });

  app.route("/dashboard", dash);
}

/**
 * The dashboard (`/dashboard`) in workerd: sessions, CSRF, tenancy and the
 * pages' changes going through the management API. Browser flows are in
 * e2e/dashboard.browser.test.ts.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { explainPolicy } from "../src/dashboard/explain.js";
import { newSession, sealSession, sessionKeys } from "../src/dashboard/session.js";
import { BASE, call, createOrg } from "./helpers.js";
import { seedPulse, sendPulse } from "./pulse-helpers.js";

// ------------------------------------------------------------ a small browser

interface Page {
  status: number;
  html: string;
  location: string | null;
  setCookies: string[];
  headers: Headers;
}

async function request(
  path: string,
  options: { method?: string; cookie?: string; form?: Record<string, string>; headers?: Record<string, string>; base?: string } = {},
): Promise<Page> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.cookie) headers.cookie = options.cookie;
  let body: string | undefined;
  if (options.form) {
    headers["content-type"] = "application/x-www-form-urlencoded";
    body = new URLSearchParams(options.form).toString();
  }
  const res = await exports.default.fetch(`${options.base ?? BASE}${path}`, {
    method: options.method ?? (options.form ? "POST" : "GET"),
    headers,
    body,
    redirect: "manual",
  });
  return {
    status: res.status,
    html: await res.text(),
    location: res.headers.get("location"),
    setCookies: res.headers.getSetCookie(),
    headers: res.headers,
  };
}

function cookieValue(setCookies: string[], name: string): string | undefined {
  const line = setCookies.find((c) => c.startsWith(`${name}=`));
  return line?.slice(name.length + 1).split(";")[0];
}

function csrfOf(html: string): string {
  const match = /name="_csrf" value="([^"]*)"/.exec(html);
  if (!match) throw new Error("no CSRF field in the page");
  return match[1]!;
}

interface Session {
  cookie: string;
  csrf: string;
  sessionValue: string;
  loginResponse: Page;
}

/** Logs in the way a browser does: the login page (nonce cookie + CSRF field), then the form. */
async function login(token: string, base?: string): Promise<Session> {
  const form = await request("/dashboard/login", base ? { base } : {});
  expect(form.status).toBe(200);
  const nonce = cookieValue(form.setCookies, "ws_login");
  expect(nonce).toBeTruthy();
  const res = await request("/dashboard/login", {
    form: { token, _csrf: csrfOf(form.html) },
    cookie: `ws_login=${nonce}`,
    ...(base ? { base } : {}),
  });
  expect(res.status, res.html).toBe(303);
  const value = cookieValue(res.setCookies, "ws_session");
  expect(value).toBeTruthy();
  const cookie = `ws_session=${value}`;
  const sites = await request("/dashboard/sites", { cookie, ...(base ? { base } : {}) });
  expect(sites.status).toBe(200);
  return { cookie, csrf: csrfOf(sites.html), sessionValue: value!, loginResponse: res };
}

async function tenant(name: string) {
  const { org, token } = await createOrg(name);
  return { org, token, session: await login(token) };
}

function post(s: Session, path: string, form: Record<string, string>, headers?: Record<string, string>) {
  return request(path, { cookie: s.cookie, form: { _csrf: s.csrf, ...form }, ...(headers ? { headers } : {}) });
}

const ruleForm = (over: Record<string, string> = {}) => ({
  metric: "p95_latency",
  operator: "gt",
  threshold: "500",
  metricTag: "",
  action: "block",
  actionValue: "",
  tagName: "free",
  siteId: "",
  priority: "1",
  cooldownSeconds: "30",
  enabled: "on",
  ...over,
});

async function rulesOf(token: string) {
  const res = await call("GET", "/v1/reflex-rules", { token });
  expect(res.status).toBe(200);
  return res.json.reflexRules as Array<Record<string, any>>;
}

async function createSite(token: string, siteId: string) {
  const res = await call("POST", "/v1/sites", { token, body: { siteId } });
  expect(res.status, res.text).toBe(201);
}

// ------------------------------------------------------------ tests

const PAGES = [
  "/dashboard",
  "/dashboard/",
  "/dashboard/sites",
  "/dashboard/sites/prod",
  "/dashboard/sites/prod/kill?on=1",
  "/dashboard/sites/prod/delete",
  "/dashboard/rules",
  "/dashboard/rules/rule_x/edit",
  "/dashboard/tags",
  "/dashboard/keys",
  "/dashboard/keys/key_x/rotate",
  "/dashboard/keys/key_x/revoke",
  "/dashboard/usage",
  "/dashboard/audit",
  "/dashboard/webhooks",
  "/dashboard/webhooks/wh_x",
  "/dashboard/no-such-page",
];

describe("without a session", () => {
  it.each(PAGES)("GET %s redirects to the login page", async (path) => {
    const res = await request(path);
    expect(res.status).toBe(302);
    expect(res.location).toMatch(/^\/dashboard\/login(\?|$)/);
  });

  it("remembers where the user was going, only for dashboard paths", async () => {
    expect((await request("/dashboard/rules?siteId=prod")).location).toBe(
      `/dashboard/login?next=${encodeURIComponent("/dashboard/rules?siteId=prod")}`,
    );
    const form = await request("/dashboard/login?next=https://evil.example/");
    expect(form.html).not.toContain("evil.example");
  });

  it("a POST changes nothing and redirects to the login page", async () => {
    const { token } = await createOrg("No Session Co");
    const res = await request("/dashboard/rules", { form: ruleForm() });
    expect(res.status).toBe(302);
    expect(res.location).toMatch(/^\/dashboard\/login/);
    expect(await rulesOf(token)).toEqual([]);
  });

  it("a tampered, foreign or expired session cookie is refused and cleared", async () => {
    const { token } = await createOrg("Cookie Co");
    const { sessionValue } = await login(token);
    const keys = await sessionKeys(env.ENCRYPTION_KEY);
    const otherKeys = await sessionKeys("AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=");
    // One character of the ciphertext changed (never to itself: that would leave the seal intact).
    const at = sessionValue.length - 2;
    const flipped = sessionValue.slice(0, at) + (sessionValue[at] === "A" ? "B" : "A") + sessionValue.slice(at + 1);
    expect(flipped).not.toBe(sessionValue);
    const expired = await sealSession(keys, newSession(token, null, Date.now() - 13 * 3600_000));
    const foreign = await sealSession(otherKeys, newSession(token, null));
    for (const value of [flipped, expired, foreign, "v1.garbage", token]) {
      const res = await request("/dashboard/sites", { cookie: `ws_session=${value}` });
      expect(res.status, value).toBe(302);
      expect(res.location).toMatch(/^\/dashboard\/login\?reason=expired(&|$)/);
      expect(res.setCookies.join("\n")).toMatch(/ws_session=;.*Max-Age=0/);
    }
    // The same session, sealed properly, works: the refusals above are about the seal and the expiry.
    const fresh = await sealSession(keys, newSession(token, null));
    expect((await request("/dashboard/sites", { cookie: `ws_session=${fresh}` })).status).toBe(200);
  });
});

describe("logging in", () => {
  it("the login page carries a CSRF field bound to a strict, HttpOnly nonce cookie", async () => {
    const res = await request("/dashboard/login");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(res.html).toMatch(/^<!DOCTYPE html>/);
    expect(csrfOf(res.html).length).toBeGreaterThan(20);
    const cookie = res.setCookies.find((c) => c.startsWith("ws_login="))!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\/dashboard(;|$)/);
  });

  it("a wrong token shows an error and sets no session cookie", async () => {
    const form = await request("/dashboard/login");
    const nonce = cookieValue(form.setCookies, "ws_login");
    const res = await request("/dashboard/login", {
      form: { token: "ws_mgmt_not-a-real-token", _csrf: csrfOf(form.html) },
      cookie: `ws_login=${nonce}`,
    });
    expect(res.status).toBe(401);
    expect(res.html).toContain("That token is unknown or revoked.");
    expect(res.html).toContain('data-field-error="token"');
    expect(res.setCookies.some((c) => c.startsWith("ws_session="))).toBe(false);
    expect(res.html).not.toContain("ws_mgmt_not-a-real-token");
  });

  it("an empty token asks for one", async () => {
    const form = await request("/dashboard/login");
    const res = await request("/dashboard/login", {
      form: { token: "  ", _csrf: csrfOf(form.html) },
      cookie: `ws_login=${cookieValue(form.setCookies, "ws_login")}`,
    });
    expect(res.status).toBe(400);
    expect(res.html).toContain("Enter your management token.");
    expect(res.setCookies.some((c) => c.startsWith("ws_session="))).toBe(false);
  });

  it("refuses a login without its CSRF token, with another form's, or from another origin", async () => {
    const { token } = await createOrg("Login CSRF Co");
    const form = await request("/dashboard/login");
    const nonce = cookieValue(form.setCookies, "ws_login");
    const other = await request("/dashboard/login");
    const attempts: Array<{ form: Record<string, string>; cookie?: string; headers?: Record<string, string> }> = [
      { form: { token }, cookie: `ws_login=${nonce}` },
      { form: { token, _csrf: csrfOf(form.html) } },
      { form: { token, _csrf: csrfOf(other.html) }, cookie: `ws_login=${nonce}` },
      { form: { token, _csrf: csrfOf(form.html) }, cookie: `ws_login=${nonce}`, headers: { origin: "https://evil.example" } },
      { form: { token, _csrf: csrfOf(form.html) }, cookie: `ws_login=${nonce}`, headers: { "sec-fetch-site": "cross-site" } },
    ];
    for (const attempt of attempts) {
      const res = await request("/dashboard/login", attempt);
      expect(res.status, JSON.stringify(attempt)).toBe(403);
      expect(res.setCookies.some((c) => c.startsWith("ws_session="))).toBe(false);
    }
  });

  it("the session cookie is HttpOnly, SameSite=Strict, Path=/dashboard, 12 h, and holds no readable token", async () => {
    const { token } = await createOrg("Cookie Flags Co");
    const { loginResponse, sessionValue } = await login(token);
    expect(loginResponse.location).toBe("/dashboard/sites");
    const cookie = loginResponse.setCookies.find((c) => c.startsWith("ws_session="))!;
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Strict/);
    expect(cookie).toMatch(/; Path=\/dashboard(;|$)/);
    expect(cookie).toMatch(/; Max-Age=43200/);
    expect(cookie).not.toMatch(/Secure/);
    expect(sessionValue).not.toContain(token.slice(8));
    expect(
      atob(
        sessionValue.split(".")[2]!.replaceAll("-", "+").replaceAll("_", "/") +
          "==".slice(0, (4 - (sessionValue.split(".")[2]!.length % 4)) % 4),
      ),
    ).not.toContain(token.slice(8));
  });

  it("over https the cookies are Secure", async () => {
    const { token } = await createOrg("Secure Co");
    const { loginResponse } = await login(token, "https://waitstate.test");
    expect(loginResponse.setCookies.find((c) => c.startsWith("ws_session="))).toMatch(/; Secure/);
  });

  it("goes to the page it was sent from, never elsewhere", async () => {
    const { token } = await createOrg("Next Co");
    const form = await request("/dashboard/login?next=/dashboard/keys");
    const nonce = cookieValue(form.setCookies, "ws_login");
    expect(form.html).toContain('name="next" value="/dashboard/keys"');
    const res = await request("/dashboard/login", {
      form: { token, _csrf: csrfOf(form.html), next: "/dashboard/keys" },
      cookie: `ws_login=${nonce}`,
    });
    expect(res.location).toBe("/dashboard/keys");
    for (const next of ["https://evil.example/", "//evil.example/dashboard", "/dashboard//evil.example", "/v1/api-keys"]) {
      const again = await request("/dashboard/login");
      const r = await request("/dashboard/login", {
        form: { token, _csrf: csrfOf(again.html), next },
        cookie: `ws_login=${cookieValue(again.setCookies, "ws_login")}`,
      });
      expect(r.location, next).toBe("/dashboard/sites");
    }
  });

  it("log out clears the cookie (and needs the CSRF token)", async () => {
    const { session } = await tenant("Logout Co");
    const refused = await request("/dashboard/logout", { cookie: session.cookie, form: {} });
    expect(refused.status).toBe(403);
    const res = await post(session, "/dashboard/logout", {});
    expect(res.status).toBe(303);
    expect(res.location).toBe("/dashboard/login?reason=logged_out");
    expect(res.setCookies.join("\n")).toMatch(/ws_session=;.*Max-Age=0.*Path=\/dashboard/);
  });

  it("records session.logout in the audit log, once, with the session as actor", async () => {
    const { token, session } = await tenant("Logout Audit Co");
    const res = await post(session, "/dashboard/logout", {});
    expect(res.status).toBe(303);
    const entries = (await call("GET", "/v1/audit-log?kind=session.*", { token })).json.entries as Array<{
      kind: string;
      actor: { type: string; name: string | null };
    }>;
    expect(entries.map((e) => e.kind)).toEqual(["session.logout", "session.login"]);
    expect(entries[0]!.actor).toMatchObject({ type: "session", name: "initial" });
    // A refused logout (no CSRF token) records nothing.
    await request("/dashboard/logout", { cookie: session.cookie, form: {} });
    expect((await call("GET", "/v1/audit-log?kind=session.logout", { token })).json.entries).toHaveLength(1);
  });

  it("a revoked management token ends its sessions at once", async () => {
    const { org, token, session } = await tenant("Revoked Co");
    await env.DB.prepare("UPDATE management_tokens SET revoked_at = ? WHERE org_id = ?").bind(Date.now(), org.id).run();
    const res = await request("/dashboard/sites", { cookie: session.cookie });
    expect(res.status).toBe(302);
    expect(res.location).toBe(`/dashboard/login?reason=revoked&next=${encodeURIComponent("/dashboard/sites")}`);
    expect(res.setCookies.join("\n")).toMatch(/ws_session=;.*Max-Age=0/);
    const write = await post(session, "/dashboard/keys", { name: "after revocation" });
    expect(write.status).toBe(302);
    const rows = await env.DB.prepare("SELECT count(*) AS n FROM api_keys WHERE org_id = ?").bind(org.id).first<{ n: number }>();
    expect(rows?.n).toBe(0);
    // and logging in with it again is refused
    const form = await request("/dashboard/login");
    const again = await request("/dashboard/login", {
      form: { token, _csrf: csrfOf(form.html) },
      cookie: `ws_login=${cookieValue(form.setCookies, "ws_login")}`,
    });
    expect(again.status).toBe(401);
  });

  it("with a session, /dashboard goes to the sites and an unknown page is an HTML 404", async () => {
    const { session } = await tenant("Paths Co");
    for (const path of ["/dashboard", "/dashboard/"]) {
      const res = await request(path, { cookie: session.cookie });
      expect(res.status, path).toBe(302);
      expect(res.location).toBe("/dashboard/sites");
    }
    const missing = await request("/dashboard/no-such-page", { cookie: session.cookie });
    expect(missing.status).toBe(404);
    expect(missing.html).toContain("There is no dashboard page here.");
  });

  it("every page is no-store, unframeable and scripts need the response's nonce", async () => {
    const { session } = await tenant("Headers Co");
    const res = await request("/dashboard/sites", { cookie: session.cookie });
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    const nonce = /'nonce-([^']+)'/.exec(csp)![1];
    for (const script of res.html.match(/<script[^>]*>/g) ?? []) expect(script).toContain(`nonce="${nonce}"`);
  });
});

describe("CSRF", () => {
  it("a form post without the token, with a wrong one or another session's, or cross-origin is 403 and changes nothing", async () => {
    const a = await tenant("CSRF A");
    const b = await tenant("CSRF B");
    await createSite(a.token, "prod");
    const keyRes = await call("POST", "/v1/api-keys", { token: a.token, body: { name: "web" } });
    const keyId = keyRes.json.id as string;
    const changes: Array<[string, Record<string, string>]> = [
      ["/dashboard/rules", ruleForm()],
      ["/dashboard/sites/prod/kill", { enabled: "true", confirm: "prod" }],
      ["/dashboard/sites/prod/timing", { windowSeconds: "10" }],
      ["/dashboard/keys", { name: "sneaky" }],
      [`/dashboard/keys/${keyId}/rotate`, {}],
      [`/dashboard/keys/${keyId}/revoke`, {}],
      ["/dashboard/tags", { name: "sneaky", maxWeight: "5", priority: "1" }],
      ["/dashboard/sites/prod/delete", { confirm: "prod" }],
    ];
    const wrongs: Array<[string, Record<string, string>, Record<string, string>]> = [
      ["missing", {}, {}],
      ["wrong", { _csrf: "x".repeat(43) }, {}],
      ["another session's", { _csrf: b.session.csrf }, {}],
      ["cross-origin", { _csrf: a.session.csrf }, { origin: "https://evil.example" }],
      ["cross-site fetch", { _csrf: a.session.csrf }, { "sec-fetch-site": "cross-site" }],
    ];
    for (const [path, form] of changes) {
      for (const [what, token, headers] of wrongs) {
        const res = await request(path, { cookie: a.session.cookie, form: { ...form, ...token }, headers });
        expect(res.status, `${what} ${path}`).toBe(403);
        expect(res.html).toContain("Forbidden");
      }
    }
    // nothing changed
    expect(await rulesOf(a.token)).toEqual([]);
    const site = await call("GET", "/v1/sites/prod", { token: a.token });
    expect(site.json).toMatchObject({ killSwitch: false, settings: { windowSeconds: null } });
    const keys = await call("GET", "/v1/api-keys", { token: a.token });
    expect(keys.json.apiKeys).toHaveLength(1);
    expect(keys.json.apiKeys[0]).toMatchObject({ id: keyId, revokedAt: null });
    expect((await call("GET", "/v1/tags", { token: a.token })).json.tags).toEqual([]);
    // and the same posts with the session's own token and no Origin (or its own) work
    const ok = await post(a.session, "/dashboard/tags", { name: "free", maxWeight: "5", priority: "1" }, { origin: BASE });
    expect(ok.status).toBe(303);
  });

  it("a form that is not urlencoded is refused before anything runs", async () => {
    const a = await tenant("CSRF Type");
    const res = await exports.default.fetch(`${BASE}/dashboard/tags`, {
      method: "POST",
      headers: { cookie: a.session.cookie, "content-type": "application/json" },
      body: JSON.stringify({ _csrf: a.session.csrf, name: "x" }),
      redirect: "manual",
    });
    expect(res.status).toBe(415);
    expect((await call("GET", "/v1/tags", { token: a.token })).json.tags).toEqual([]);
  });
});

describe("tenancy: one organization's session never sees or changes another's", () => {
  it("answers 404 for the other org's site, rule, key, tag and webhook, and changes none of them", async () => {
    const a = await tenant("Tenant A");
    const b = await tenant("Tenant B");
    await createSite(b.token, "b-secret-site");
    const rule = (
      await call("POST", "/v1/reflex-rules", {
        token: b.token,
        body: { tagName: "free", metric: "rps", operator: "gt", threshold: 1, action: "block", priority: 1, siteId: "b-secret-site" },
      })
    ).json;
    const key = (await call("POST", "/v1/api-keys", { token: b.token, body: { name: "b-key" } })).json;
    const tag = (await call("POST", "/v1/tags", { token: b.token, body: { name: "b-tag", maxWeight: 7 } })).json;

    const list = await request("/dashboard/sites", { cookie: a.session.cookie });
    expect(list.html).not.toContain("b-secret-site");
    const keys = await request("/dashboard/keys", { cookie: a.session.cookie });
    expect(keys.html).not.toContain(key.publishKey);
    const tags = await request("/dashboard/tags", { cookie: a.session.cookie });
    expect(tags.html).not.toContain("b-tag");
    const rules = await request("/dashboard/rules", { cookie: a.session.cookie });
    expect(rules.html).not.toContain(rule.id);

    for (const path of [
      "/dashboard/sites/b-secret-site",
      "/dashboard/sites/b-secret-site/kill?on=1",
      "/dashboard/sites/b-secret-site/delete",
      `/dashboard/rules/${rule.id}/edit`,
      `/dashboard/keys/${key.id}/rotate`,
      `/dashboard/keys/${key.id}/revoke`,
    ]) {
      const res = await request(path, { cookie: a.session.cookie });
      expect(res.status, path).toBe(404);
      expect(res.html).not.toContain("Current policy");
      expect(res.html).not.toContain(key.publishKey);
    }
    for (const [path, form] of [
      ["/dashboard/sites/b-secret-site/kill", { enabled: "true", confirm: "b-secret-site" }],
      ["/dashboard/sites/b-secret-site/timing", { windowSeconds: "5" }],
      ["/dashboard/sites/b-secret-site/delete", { confirm: "b-secret-site" }],
      [`/dashboard/rules/${rule.id}`, ruleForm({ threshold: "9" })],
      [`/dashboard/rules/${rule.id}/toggle`, { enabled: "false" }],
      [`/dashboard/rules/${rule.id}/move`, { direction: "up" }],
      [`/dashboard/rules/${rule.id}/delete`, {}],
      [`/dashboard/keys/${key.id}/rotate`, {}],
      [`/dashboard/keys/${key.id}/revoke`, {}],
      [`/dashboard/tags/${tag.id}`, { maxWeight: "1", priority: "9" }],
      [`/dashboard/tags/${tag.id}/delete`, {}],
    ] as Array<[string, Record<string, string>]>) {
      const res = await post(a.session, path, form);
      expect(res.status, path).toBe(404);
    }
    const site = await call("GET", "/v1/sites/b-secret-site", { token: b.token });
    expect(site.json).toMatchObject({ killSwitch: false, settings: { windowSeconds: null } });
    expect(await rulesOf(b.token)).toMatchObject([{ id: rule.id, threshold: 1, enabled: true, priority: 1 }]);
    expect((await call("GET", "/v1/api-keys", { token: b.token })).json.apiKeys).toMatchObject([{ id: key.id, revokedAt: null }]);
    expect((await call("GET", "/v1/tags", { token: b.token })).json.tags).toMatchObject([{ id: tag.id, maxWeight: 7, priority: 0 }]);
  });
});

describe("pages change things through the API", () => {
  it("creates a rule from the form, showing the API's validation messages next to the fields", async () => {
    const a = await tenant("Rules Co");
    const bad = await post(a.session, "/dashboard/rules", ruleForm({ threshold: "lots", operator: "about" }));
    expect(bad.status).toBe(400);
    expect(bad.html).toMatch(/data-field-error="threshold">[^<]*expected number/);
    expect(bad.html).toMatch(/data-field-error="operator">[^<]*expected one of/);
    expect(bad.html).toContain('value="lots"'); // what was typed stays
    const throttle = await post(a.session, "/dashboard/rules", ruleForm({ action: "throttle", actionValue: "" }));
    expect(throttle.status).toBe(400);
    expect(throttle.html).toMatch(/data-field-error="actionValue">[^<]*throttle rules need an actionValue/);
    expect(await rulesOf(a.token)).toEqual([]);

    const res = await post(a.session, "/dashboard/rules", ruleForm({ action: "throttle", actionValue: "0.5", threshold: "500" }));
    expect(res.status).toBe(303);
    expect(res.location).toBe("/dashboard/rules?done=rule.created");
    const [rule] = await rulesOf(a.token);
    expect(rule).toMatchObject({
      tagName: "free",
      metric: "p95_latency",
      operator: "gt",
      threshold: 500,
      action: "throttle",
      actionValue: 0.5,
      priority: 1,
      enabled: true,
      siteId: null,
    });
    const page = await request("/dashboard/rules?done=rule.created", { cookie: a.session.cookie });
    expect(page.html).toContain("Rule created.");
    expect(page.html).toContain(`data-rule="${rule!.id}"`);
    expect(page.html).toContain("p95_latency &gt; 500");
  });

  it("edits, disables, enables, reorders and deletes rules", async () => {
    const a = await tenant("Rule Edit Co");
    await post(a.session, "/dashboard/rules", ruleForm({ priority: "1", tagName: "free" }));
    await post(a.session, "/dashboard/rules", ruleForm({ priority: "2", tagName: "pro" }));
    const [first, second] = await rulesOf(a.token);

    const edit = await request(`/dashboard/rules/${first!.id}/edit`, { cookie: a.session.cookie });
    expect(edit.status).toBe(200);
    expect(edit.html).toContain('value="p95_latency"');
    const invalid = await post(a.session, `/dashboard/rules/${first!.id}`, ruleForm({ priority: "-3" }));
    expect(invalid.status).toBe(400);
    expect(invalid.html).toMatch(/data-field-error="priority"/);
    const saved = await post(a.session, `/dashboard/rules/${first!.id}`, ruleForm({ threshold: "750", priority: "1" }));
    expect(saved.status).toBe(303);
    expect((await rulesOf(a.token))[0]).toMatchObject({ id: first!.id, threshold: 750 });

    await post(a.session, `/dashboard/rules/${first!.id}/toggle`, { enabled: "false" });
    expect((await rulesOf(a.token)).find((r) => r.id === first!.id)).toMatchObject({ enabled: false });
    await post(a.session, `/dashboard/rules/${first!.id}/toggle`, { enabled: "true" });
    expect((await rulesOf(a.token)).find((r) => r.id === first!.id)).toMatchObject({ enabled: true });

    const moved = await post(a.session, `/dashboard/rules/${second!.id}/move`, { direction: "up" });
    expect(moved.location).toBe("/dashboard/rules?done=rule.moved");
    expect((await rulesOf(a.token)).map((r) => [r.id, r.priority])).toEqual([
      [second!.id, 1],
      [first!.id, 2],
    ]);

    await post(a.session, `/dashboard/rules/${second!.id}/delete`, {});
    expect((await rulesOf(a.token)).map((r) => r.id)).toEqual([first!.id]);
  });

  it("shows a fired rule as applied, and the policy it made with the reason", async () => {
    const a = await tenant("Fired Co");
    const key = (await call("POST", "/v1/api-keys", { token: a.token, body: { name: "sdk" } })).json as {
      publishKey: string;
      secretKey: string;
    };
    await post(a.session, "/dashboard/rules", ruleForm({ metric: "latency", threshold: "100", siteId: "shop", cooldownSeconds: "0" }));
    const [rule] = await rulesOf(a.token);
    const pulse = await sendPulse(key, seedPulse({ siteId: "shop", metrics: { latency: 900, errors: 0 } }));
    expect(pulse.status, pulse.text).toBe(200);
    expect(pulse.json.tagMaxWeights).toMatchObject({ free: 0 });

    const page = await request("/dashboard/sites/shop", { cookie: a.session.cookie });
    expect(page.status).toBe(200);
    expect(page.html).toMatch(new RegExp(`data-rule="${rule!.id}"[^>]*>.*?fired · applied`, "s"));
    const freeRow = /<tr data-policy-tag="free"[^>]*>(.*?)<\/tr>/s.exec(page.html)?.[1] ?? "";
    expect(freeRow).toContain("0 · blocked");
    expect(freeRow).toContain(`${rule!.id} (priority 1): latency &gt; 100 → block free`);
    const proRow = /<tr data-policy-tag="pro"[^>]*>(.*?)<\/tr>/s.exec(page.html)?.[1] ?? "";
    expect(proRow).toContain("unlimited");
  });

  it("follows the site live: the page's sections arrive re-rendered over its event stream when a rule fires", async () => {
    const a = await tenant("Live Co");
    const b = await tenant("Live Other Co");
    const key = (await call("POST", "/v1/api-keys", { token: a.token, body: { name: "sdk" } })).json as {
      publishKey: string;
      secretKey: string;
    };
    await createSite(a.token, "shop");
    await post(a.session, "/dashboard/rules", ruleForm({ metric: "latency", threshold: "100", siteId: "shop", cooldownSeconds: "0" }));
    const [rule] = await rulesOf(a.token);

    const page = await request("/dashboard/sites/shop", { cookie: a.session.cookie });
    expect(page.html).toContain('new EventSource("/dashboard/sites/shop/live")');
    expect(page.headers.get("content-security-policy")).toContain("connect-src 'self'");
    expect(page.html).not.toContain("location.reload();else");

    const res = await exports.default.fetch(`${BASE}/dashboard/sites/shop/live`, { headers: { cookie: a.session.cookie } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const nextSections = async (): Promise<Record<string, string>> => {
      for (;;) {
        const block = /event: html\ndata: (.*)\n\n/.exec(buffer);
        if (block) {
          buffer = buffer.slice(block.index + block[0].length);
          return JSON.parse(block[1]!) as Record<string, string>;
        }
        const { done, value } = await reader.read();
        if (done) throw new Error("the stream ended");
        buffer += decoder.decode(value, { stream: true });
      }
    };
    const first = await nextSections();
    expect(Object.keys(first).sort()).toEqual(["badge", "events", "kill", "policy", "rules", "stats", "tags"]);
    expect(first.rules).not.toContain("fired · applied");

    const pulse = await sendPulse(key, seedPulse({ siteId: "shop", metrics: { latency: 900, errors: 0 } }));
    expect(pulse.status).toBe(200);
    let sections = await nextSections();
    while (!sections.rules!.includes("fired · applied")) sections = await nextSections();
    expect(sections.rules).toMatch(new RegExp(`data-rule="${rule!.id}"[^>]*>.*?fired · applied`, "s"));
    expect(sections.policy).toContain("0 · blocked");
    await reader.cancel();

    // Another org's session gets no stream of this site.
    const foreign = await exports.default.fetch(`${BASE}/dashboard/sites/shop/live`, { headers: { cookie: b.session.cookie } });
    expect(foreign.status).toBe(404);
    expect(foreign.headers.get("content-type")).not.toMatch(/event-stream/);
    await foreign.body?.cancel();
  });

  it("draws the last hour's rollups as inline SVG charts, with gaps where no minute was rolled up", async () => {
    const a = await tenant("Charts Co");
    await createSite(a.token, "charts");
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    for (const [ago, calls, p95] of [
      [5, 600, 120],
      [4, 1200, 180],
      [2, 900, 640],
    ] as const) {
      await env.DB.prepare(
        "INSERT INTO telemetry_rollups (org_id, site_id, tag, minute, calls, bounced, errors, p50, p95, p99) VALUES (?, 'charts', '__site__', ?, ?, 30, 9, 80, ?, 900)",
      )
        .bind(a.org.id, minute - ago * 60_000, calls, p95)
        .run();
    }
    const page = await request("/dashboard/sites/charts", { cookie: a.session.cookie });
    const latency = /<figure class="chart-box" data-chart="Latency">(.*?)<\/figure>/s.exec(page.html)?.[1] ?? "";
    expect(latency).toContain("<svg");
    const p95 = /<g data-series="p95"><path d="([^"]+)"/.exec(latency)?.[1] ?? "";
    // minutes −5 and −4 joined, −3 missing, −2 alone (a new move-to)
    expect(p95.match(/M/g)).toHaveLength(2);
    expect(latency).toContain("p95: <strong>640 ms</strong>");
    const traffic = /<figure class="chart-box" data-chart="Traffic">(.*?)<\/figure>/s.exec(page.html)?.[1] ?? "";
    // calls/s: a minute without rollup is zero traffic, so the line is continuous
    expect(/<g data-series="calls\/s"><path d="([^"]+)"/.exec(traffic)?.[1]?.match(/M/g)).toHaveLength(1);
    expect(traffic).toContain("calls/s: <strong>0</strong>");
    // the sites list shows the same site with its charts and the hour's bounced count
    const list = await request("/dashboard/sites", { cookie: a.session.cookie });
    expect(list.html).toContain('data-site="charts"');
    expect(list.html).toContain("of 2,700 calls, last hour");
  });

  it("turns the kill switch on only after typing the site id, and off again", async () => {
    const a = await tenant("Kill Co");
    await createSite(a.token, "prod");
    const confirm = await request("/dashboard/sites/prod/kill?on=1", { cookie: a.session.cookie });
    expect(confirm.status).toBe(200);
    expect(confirm.html).toContain("Turn the kill switch ON for prod?");
    const untyped = await post(a.session, "/dashboard/sites/prod/kill", { enabled: "true", confirm: "" });
    expect(untyped.status).toBe(400);
    expect((await call("GET", "/v1/sites/prod", { token: a.token })).json.killSwitch).toBe(false);
    const on = await post(a.session, "/dashboard/sites/prod/kill", { enabled: "true", confirm: "prod" });
    expect(on.location).toBe("/dashboard/sites/prod?done=kill.on");
    expect((await call("GET", "/v1/sites/prod", { token: a.token })).json.killSwitch).toBe(true);
    const page = await request("/dashboard/sites/prod", { cookie: a.session.cookie });
    expect(page.html).toContain("Kill switch ON:");
    const off = await post(a.session, "/dashboard/sites/prod/kill", { enabled: "false" });
    expect(off.location).toBe("/dashboard/sites/prod?done=kill.off");
    expect((await call("GET", "/v1/sites/prod", { token: a.token })).json.killSwitch).toBe(false);
  });

  it("saves a site's timing, with the API's message next to the field it names", async () => {
    const a = await tenant("Timing Co");
    await createSite(a.token, "prod");
    const bad = await post(a.session, "/dashboard/sites/prod/timing", {
      pulseIntervalMs: "1000",
      windowSeconds: "0.5",
      leaseDurationSeconds: "",
    });
    expect(bad.status).toBe(400);
    expect(bad.html).toMatch(/data-field-error="windowSeconds">[^<]*shorter than the pulse interval/);
    const ok = await post(a.session, "/dashboard/sites/prod/timing", {
      pulseIntervalMs: "",
      windowSeconds: "10",
      leaseDurationSeconds: "",
    });
    expect(ok.status).toBe(303);
    expect((await call("GET", "/v1/sites/prod", { token: a.token })).json.settings).toEqual({
      pulseIntervalMs: null,
      leaseDurationSeconds: null,
      windowSeconds: 10,
    });
  });

  it("shows a new key's secret once, in the answer that created it, and rotates with a confirmation", async () => {
    const a = await tenant("Keys Co");
    const created = await post(a.session, "/dashboard/keys", { name: "web" });
    expect(created.status).toBe(201);
    const secret = /data-secret[^>]*>\s*([^<\s]+)/.exec(created.html)?.[1] ?? "";
    expect(secret).toMatch(/^ws_sec_/);
    expect(created.headers.get("cache-control")).toBe("no-store");
    const listed = await request("/dashboard/keys", { cookie: a.session.cookie });
    expect(listed.html).not.toContain(secret);
    expect(listed.html).not.toContain("data-secret");
    const [key] = (await call("GET", "/v1/api-keys", { token: a.token })).json.apiKeys;

    const confirm = await request(`/dashboard/keys/${key.id}/rotate`, { cookie: a.session.cookie });
    expect(confirm.html).toContain("Rotate key “web”?");
    const rotated = await post(a.session, `/dashboard/keys/${key.id}/rotate`, {});
    expect(rotated.status).toBe(201);
    const newSecret = /data-secret[^>]*>\s*([^<\s]+)/.exec(rotated.html)?.[1] ?? "";
    expect(newSecret).toMatch(/^ws_sec_/);
    expect(newSecret).not.toBe(secret);
    expect(rotated.html).toContain(key.id); // "the old pair (key_…) is revoked"
    const after = (await call("GET", "/v1/api-keys", { token: a.token })).json.apiKeys as Array<Record<string, any>>;
    expect(after.find((k) => k.id === key.id)?.revokedAt).not.toBeNull();
    expect((await request("/dashboard/keys", { cookie: a.session.cookie })).html).not.toContain(newSecret);

    const fresh = after.find((k) => k.revokedAt === null)!;
    const revoked = await post(a.session, `/dashboard/keys/${fresh.id}/revoke`, {});
    expect(revoked.location).toBe("/dashboard/keys?done=key.revoked");
    expect(
      (await call("GET", "/v1/api-keys", { token: a.token })).json.apiKeys.every((k: { revokedAt: number | null }) => k.revokedAt !== null),
    ).toBe(true);
  });

  it("creates and edits tags, with a row's error shown in its row", async () => {
    const a = await tenant("Tags Co");
    expect((await post(a.session, "/dashboard/tags", { name: "free", maxWeight: "", priority: "" })).status).toBe(303);
    const [tag] = (await call("GET", "/v1/tags", { token: a.token })).json.tags;
    expect(tag).toMatchObject({ name: "free", maxWeight: 10, priority: 0 });
    const dup = await post(a.session, "/dashboard/tags", { name: "free", maxWeight: "3", priority: "" });
    expect(dup.status).toBe(400);
    expect(dup.html).toContain("already exists");
    const bad = await post(a.session, `/dashboard/tags/${tag.id}`, { maxWeight: "-1", priority: "2" });
    expect(bad.status).toBe(400);
    expect(bad.html).toMatch(/<tr data-tag="free" class="hot">.*maxWeight/s);
    expect((await post(a.session, `/dashboard/tags/${tag.id}`, { maxWeight: "20", priority: "2" })).status).toBe(303);
    expect((await call("GET", "/v1/tags", { token: a.token })).json.tags[0]).toMatchObject({ maxWeight: 20, priority: 2 });
  });

  it("escapes what users typed and never puts the session's token in a page", async () => {
    const a = await tenant("Escape Co");
    await call("POST", "/v1/api-keys", { token: a.token, body: { name: `<img src=x onerror=alert(1)>` } });
    await call("POST", "/v1/tags", { token: a.token, body: { name: `"><script>alert(1)</script>` } });
    const keys = await request("/dashboard/keys", { cookie: a.session.cookie });
    expect(keys.html).toContain("&lt;img src=x onerror=alert(1)&gt;");
    expect(keys.html).not.toContain("<img src=x");
    const tags = await request("/dashboard/tags", { cookie: a.session.cookie });
    expect(tags.html).not.toContain("<script>alert(1)</script>");
    expect(tags.html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    for (const path of [
      "/dashboard/sites",
      "/dashboard/rules",
      "/dashboard/tags",
      "/dashboard/keys",
      "/dashboard/usage",
      "/dashboard/audit",
      "/dashboard/webhooks",
    ]) {
      const page = await request(path, { cookie: a.session.cookie });
      expect(page.status, path).toBe(200);
      expect(page.html, path).not.toContain(a.token);
      expect(page.html, path).not.toContain(a.session.sessionValue);
    }
  });

  it("an empty organization is told how to send its first pulse", async () => {
    const a = await tenant("Empty Co");
    const key = (await call("POST", "/v1/api-keys", { token: a.token, body: { name: "sdk" } })).json;
    const page = await request("/dashboard/sites", { cookie: a.session.cookie });
    expect(page.html).toContain("No sites yet");
    expect(page.html).toContain("Send your first pulse");
    expect(page.html).toContain("new WaitState(");
    expect(page.html).toContain(key.publishKey);
    expect(page.html).not.toContain(key.secretKey);
    expect(page.html).toContain(`baseUrl: &quot;${BASE}&quot;`);
  });

  it("shows usage against the plan", async () => {
    const { token } = await createOrg("Usage Co", "hobby");
    const session = await login(token);
    const page = await request("/dashboard/usage", { cookie: session.cookie });
    expect(page.status).toBe(200);
    expect(page.html).toContain("of 1,000,000");
    expect(page.html).toContain("No calls counted yet");
  });

  it("the audit log shows the session's changes as the session's", async () => {
    const a = await tenant("Audit Co");
    await post(a.session, "/dashboard/tags", { name: "free", maxWeight: "4", priority: "1" });
    const page = await request("/dashboard/audit?kind=tag.*", { cookie: a.session.cookie });
    expect(page.status).toBe(200);
    expect(page.html).toContain('data-audit-kind="tag.created"');
    expect(page.html).toMatch(/session · initial/);
    const logins = await request("/dashboard/audit?kind=session.login", { cookie: a.session.cookie });
    expect(logins.html).toContain('data-audit-kind="session.login"');
    const bad = await request("/dashboard/audit?kind=%20nope%20", { cookie: a.session.cookie });
    expect(bad.status).toBe(400);
  });

  it("creates a webhook, showing its signing secret once", async () => {
    const a = await tenant("Hooks Co");
    const created = await post(a.session, "/dashboard/webhooks", {
      url: "https://example.com/hook",
      events: "rule.fired, kill.*",
      enabled: "on",
    });
    expect(created.status).toBe(201);
    const secret = /data-secret[^>]*>\s*([^<\s]+)/.exec(created.html)?.[1] ?? "";
    expect(secret).toMatch(/^whsec_/);
    const list = await request("/dashboard/webhooks", { cookie: a.session.cookie });
    expect(list.html).toContain("https://example.com/hook");
    expect(list.html).not.toContain(secret);
    const bad = await post(a.session, "/dashboard/webhooks", { url: "not a url", events: "*", enabled: "on" });
    expect(bad.status).toBe(400);
    expect(bad.html).toMatch(/data-field-error="url"/);
  });
});

describe("why the policy says what it says", () => {
  const rule = (over: Record<string, unknown>) => ({
    id: "rule_all",
    tagName: null,
    metric: "error_rate",
    metricTag: null,
    operator: "gt" as const,
    threshold: 0.1,
    action: "block" as const,
    actionValue: null,
    enabled: true,
    priority: 1,
    cooldownSeconds: 30,
    active: true,
    applied: true,
    firedAt: 1,
    value: 0.4,
    ...over,
  });
  const tags = [
    { id: "tag_1", name: "free", maxWeight: 10, priority: 0, autoCreated: false, createdAt: 0 },
    { id: "tag_2", name: "pro", maxWeight: 10, priority: 10, autoCreated: false, createdAt: 0 },
  ];
  const policy = (over: Record<string, unknown>) =>
    ({
      version: 3,
      globalMaxWeight: null,
      tagMaxWeights: {},
      killSignal: false,
      status: "ok",
      pulseInterval: 1000,
      leaseDurationSeconds: 60,
      ...over,
    }) as never;

  it("names the all-traffic rule for the global limit, the tiers it shed and the tiers it has not reached", () => {
    const rows = explainPolicy(
      { policy: policy({ globalMaxWeight: 0, tagMaxWeights: { free: 0, pro: null } }), rules: [rule({})], tags: {} },
      tags,
    );
    expect(rows.map((r) => [r.tag, r.limit, r.ruleId])).toEqual([
      [null, 0, "rule_all"],
      ["free", 0, "rule_all"],
      ["pro", null, "rule_all"],
    ]);
    expect(rows[0]!.why).toBe("rule_all (priority 1): error_rate > 0.1 → block all traffic");
    expect(rows[1]!.why).toMatch(/^shed by rule_all \(all traffic\), lowest priority first/);
    expect(rows[2]!.why).toMatch(/^exempt for now: priority 10 is above the tiers rule_all has shed so far/);
  });

  it("a tag's own rule wins its row; tags without one show the global limit or their baseline", () => {
    const own = rule({ id: "rule_free", tagName: "free", action: "throttle", actionValue: 0.5, priority: 2 });
    const rows = explainPolicy(
      {
        policy: policy({ tagMaxWeights: { free: 5 } }),
        rules: [own, rule({ id: "rule_idle", applied: false, active: false })],
        tags: { enterprise: {} as never },
      },
      tags,
    );
    expect(rows.map((r) => [r.tag, r.limit, r.ruleId, r.tone])).toEqual([
      [null, null, null, "ok"],
      ["enterprise", null, null, "ok"],
      ["free", 5, "rule_free", "warn"],
      ["pro", null, null, "ok"],
    ]);
    expect(rows[2]!.why).toBe("rule_free (priority 2): error_rate > 0.1 → throttle free to 50 %");
    expect(rows[3]!.why).toBe("no active rule (baseline 10, what a throttle multiplies)");
    const capped = explainPolicy({ policy: policy({ globalMaxWeight: 3 }), rules: [], tags: {} }, tags);
    expect(capped[1]!.why).toBe("no rule of its own: the global limit applies");
    expect(capped[1]!.limit).toBe(3);
  });
});

describe("dashboard: roles", () => {
  async function tokenWith(admin: string, body: Record<string, unknown>) {
    const res = await call("POST", "/v1/management-tokens", { token: admin, body });
    expect(res.status, res.text).toBe(201);
    return res.json.token as string;
  }

  it("a viewer sees the pages without forms, sections or buttons it cannot use, and a forced post is 403 with nothing changed", async () => {
    const { token: admin } = await createOrg("Viewer Dash Co");
    await createSite(admin, "prod");
    const viewer = await login(await tokenWith(admin, { name: "wallboard", role: "viewer" }));

    const sites = await request("/dashboard/sites", { cookie: viewer.cookie });
    expect(sites.status).toBe(200);
    expect(sites.html).toContain(">viewer<");
    expect(sites.html).not.toContain('method="post" action="/dashboard/sites"');
    expect(sites.html).not.toContain('href="/dashboard/keys"');
    expect(sites.html).not.toContain('href="/dashboard/webhooks"');
    const site = await request("/dashboard/sites/prod", { cookie: viewer.cookie });
    expect(site.status).toBe(200);
    expect(site.html).not.toContain('data-action="kill"');
    expect(site.html).not.toContain("/dashboard/sites/prod/delete");
    expect(site.html).not.toContain('id="timing"');
    const rules = await request("/dashboard/rules", { cookie: viewer.cookie });
    expect(rules.html).not.toContain('method="post" action="/dashboard/rules"');
    const tags = await request("/dashboard/tags", { cookie: viewer.cookie });
    expect(tags.html).not.toContain('method="post" action="/dashboard/tags"');

    for (const [path, form] of [
      ["/dashboard/sites/prod/kill", { enabled: "true", confirm: "prod" }],
      ["/dashboard/rules", ruleForm()],
      ["/dashboard/tags", { name: "gold" }],
      ["/dashboard/keys", { name: "sneaky" }],
      ["/dashboard/sites/prod/delete", { confirm: "prod" }],
    ] as const) {
      const res = await post(viewer, path, form);
      expect(res.status, `${path}: ${res.html.slice(0, 200)}`).toBe(403);
      expect(res.html).toContain("viewer");
    }
    expect((await request("/dashboard/keys", { cookie: viewer.cookie })).status).toBe(403);
    expect((await request("/dashboard/sites/prod/kill?on=1", { cookie: viewer.cookie })).status).toBe(403);
    expect((await call("GET", "/v1/sites/prod", { token: admin })).json.killSwitch).toBe(false);
    expect(await rulesOf(admin)).toEqual([]);
    expect((await call("GET", "/v1/api-keys", { token: admin })).json.apiKeys).toEqual([]);
  }, 30_000); // many pages and posts: room for a loaded machine

  it("an editor changes rules and the kill switch but not keys; a site-scoped editor sees only its sites", async () => {
    const { token: admin } = await createOrg("Editor Dash Co");
    await createSite(admin, "prod");
    await createSite(admin, "other");
    const editor = await login(await tokenWith(admin, { name: "prod on-call", role: "editor", siteIds: ["prod"] }));
    const sites = await request("/dashboard/sites", { cookie: editor.cookie });
    expect(sites.html).toContain('href="/dashboard/sites/prod"');
    expect(sites.html).not.toContain('href="/dashboard/sites/other"');
    expect(sites.html).not.toContain('href="/dashboard/keys"');
    expect((await request("/dashboard/sites/other", { cookie: editor.cookie })).status).toBe(404);
    const kill = await post(editor, "/dashboard/sites/prod/kill", { enabled: "true", confirm: "prod" });
    expect(kill.status, kill.html.slice(0, 300)).toBe(303);
    expect((await call("GET", "/v1/sites/prod", { token: admin })).json.killSwitch).toBe(true);
    expect((await post(editor, "/dashboard/keys", { name: "sneaky" })).status).toBe(403);
    // tags belong to every site: the scoped editor reads them without the form
    const tags = await request("/dashboard/tags", { cookie: editor.cookie });
    expect(tags.status).toBe(200);
    expect(tags.html).not.toContain('method="post" action="/dashboard/tags"');
  }, 30_000);
});

/**
 * Roles and site scopes of management tokens (docs/roles.md). The route list
 * comes from the app itself: every registered route must declare who may call
 * it, every management route refuses the roles below its own with a typed 403
 * and serves the roles at or above it, site-scoped tokens are refused on
 * organization-wide routes and see only their sites, and the docs table is
 * the one these declarations generate.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it, vi } from "vitest";
import app from "../src/index.js";
import { Hono } from "hono";
import { ROLES, accessOf, allow, roleCovers, type Access, type Role } from "../src/middleware/access.js";
import rolesDoc from "../../docs/roles.md?raw";
import { call, createOrg, expectError } from "./helpers.js";

// Each test makes dozens of requests through workerd: room for a loaded machine (speed is the bench's business).
vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

interface DeclaredRoute {
  method: string;
  path: string;
  access: Access | undefined;
}

/** Every route of the app (middleware registered with `use` left out), with its declaration. */
function declaredRoutes(routes: ReadonlyArray<{ method: string; path: string; handler: unknown }> = app.routes): DeclaredRoute[] {
  const byRoute = new Map<string, DeclaredRoute>();
  for (const r of routes) {
    if (r.method === "ALL" && r.path.endsWith("*")) continue; // `app.use` middleware, not a route
    const key = `${r.method} ${r.path}`;
    const entry = byRoute.get(key) ?? { method: r.method, path: r.path, access: undefined };
    entry.access ??= accessOf(r.handler);
    byRoute.set(key, entry);
  }
  return [...byRoute.values()];
}

/** The API's routes: the dashboard's pages are reachable only with a session and act through these. */
const apiRoutes = () => declaredRoutes().filter((r) => !r.path.startsWith("/dashboard"));
const managementRoutes = () =>
  apiRoutes().flatMap((r) =>
    r.access?.kind === "management" ? [{ method: r.method, path: r.path, role: r.access.role, sites: r.access.sites }] : [],
  );

const METHOD_ORDER = ["GET", "POST", "PATCH", "PUT", "DELETE"];
const CREDENTIAL: Record<Access["kind"], string> = {
  management: "management token",
  "sdk-key": "SDK key pair (signed)",
  "sdk-jwt": "SDK JWT",
  "admin-token": "ADMIN_TOKEN",
  public: "none",
};

/** The table docs/roles.md carries between its markers, generated from the declarations. */
function rolesTable(): string {
  const rows = apiRoutes()
    .sort((a, b) => (a.path === b.path ? METHOD_ORDER.indexOf(a.method) - METHOD_ORDER.indexOf(b.method) : a.path < b.path ? -1 : 1))
    .map((r) => {
      const access = r.access!;
      const role = access.kind === "management" ? access.role : "—";
      const sites = access.kind !== "management" ? "—" : access.sites === "scoped" ? "allowed, within its sites" : "refused (403)";
      return `| ${r.method} | \`${r.path}\` | ${CREDENTIAL[access.kind]} | ${role} | ${sites} |`;
    });
  return ["| method | route | credential | least role | site-scoped token |", "|---|---|---|---|---|", ...rows].join("\n");
}

describe("every route declares who may call it", () => {
  it("no route of the app is registered without a declaration", () => {
    const routes = declaredRoutes();
    expect(routes.length).toBeGreaterThan(30);
    const undeclared = routes.filter((r) => r.access === undefined && !r.path.startsWith("/dashboard")).map((r) => `${r.method} ${r.path}`);
    expect(undeclared, "register these routes with allow(role, sites), operatorOnly() or openTo(kind)").toEqual([]);
  });

  it("a route registered without one is caught", () => {
    const other = new Hono();
    other.use("/v1/*", async (_c, next) => next());
    other.get("/v1/declared", allow("viewer", "scoped"), (c) => c.json({}));
    other.get("/v1/forgotten", (c) => c.json({}));
    const found = declaredRoutes(other.routes);
    expect(found.map((r) => [r.path, r.access?.kind ?? null])).toEqual([
      ["/v1/declared", "management"],
      ["/v1/forgotten", null],
    ]);
  });

  it("docs/roles.md carries the table the code declares", () => {
    const match = /<!-- roles-table:start -->\n([\s\S]*?)\n<!-- roles-table:end -->/.exec(rolesDoc);
    expect(match, "docs/roles.md lacks its <!-- roles-table:start/end --> markers").not.toBeNull();
    expect(match![1], `docs/roles.md is out of date; the table is:\n${rolesTable()}`).toBe(rolesTable());
  });
});

// ------------------------------------------------------------ per route and role

interface Fixture {
  orgId: string;
  admin: string;
  tokens: Record<Role, string>;
  /** Editor and viewer tokens limited to the site "prod". */
  scoped: Record<"editor" | "viewer", string>;
  ruleOther: string;
  ruleEvery: string;
  tagId: string;
}

let fx: Fixture;

async function token(admin: string, body: Record<string, unknown>): Promise<string> {
  const res = await call("POST", "/v1/management-tokens", { token: admin, body });
  expect(res.status, res.text).toBe(201);
  return res.json.token as string;
}

async function created(res: { status: number; json: Record<string, any>; text: string }): Promise<Record<string, any>> {
  expect(res.status, res.text).toBe(201);
  return res.json;
}

beforeAll(async () => {
  const { org, token: admin } = await createOrg("Roles Co", "enterprise");
  for (const siteId of ["prod", "other"]) await created(await call("POST", "/v1/sites", { token: admin, body: { siteId } }));
  const rule = { tagName: "free", metric: "latency", operator: "gt", threshold: 500, action: "block", priority: 1 };
  const ruleOther = await created(await call("POST", "/v1/reflex-rules", { token: admin, body: { ...rule, siteId: "other" } }));
  const ruleEvery = await created(await call("POST", "/v1/reflex-rules", { token: admin, body: { ...rule, priority: 2 } }));
  const tag = await created(await call("POST", "/v1/tags", { token: admin, body: { name: "free" } }));
  fx = {
    orgId: org.id,
    admin,
    tokens: {
      admin,
      editor: await token(admin, { name: "on-call", role: "editor" }),
      viewer: await token(admin, { name: "dashboards", role: "viewer" }),
    },
    scoped: {
      editor: await token(admin, { name: "prod on-call", role: "editor", siteIds: ["prod"] }),
      viewer: await token(admin, { name: "prod watcher", role: "viewer", siteIds: ["prod"] }),
    },
    ruleOther: ruleOther.id,
    ruleEvery: ruleEvery.id,
    tagId: tag.id,
  };
});

/**
 * A request that passes every check but the one under test and changes
 * nothing: ids that do not exist (404) and a body no route accepts (a JSON
 * array, 400), so serving roles can be told from refused ones by status alone.
 */
function probe(route: { method: string; path: string }, token: string) {
  const url = route.path.replace(":orgId", fx.orgId).replace(":id", "nope");
  return call(route.method, url, { token, ...(route.method === "GET" || route.method === "DELETE" ? {} : { rawBody: "[]" }) });
}

describe("roles: each management route refuses the roles below its own and serves the others", () => {
  it("the table covers both reading and changing routes", () => {
    const routes = managementRoutes();
    expect(routes.filter((r) => r.method !== "GET").length).toBeGreaterThan(15);
    expect(
      routes.every((r) => r.method === "GET" || r.role !== "viewer"),
      "no mutating route is open to viewers",
    ).toBe(true);
  });

  for (const role of ROLES) {
    it(`${role}: refused with 403 FORBIDDEN below its role, served at or above it`, async () => {
      for (const route of managementRoutes()) {
        const res = await probe(route, fx.tokens[role]);
        const what = `${role} ${route.method} ${route.path}: ${res.text}`;
        if (roleCovers(role, route.role)) {
          expect([200, 400, 404], what).toContain(res.status);
        } else {
          const error = expectError(res, 403, "FORBIDDEN");
          expect(error.message, what).toContain(`needs the ${route.role} role`);
        }
      }
    });
  }

  for (const role of ["editor", "viewer"] as const) {
    it(`a site-scoped ${role} is refused on every organization-wide route`, async () => {
      for (const route of managementRoutes().filter((r) => r.sites === "org-wide")) {
        expectError(await probe(route, fx.scoped[role]), 403, "FORBIDDEN");
      }
    });
  }

  it("the dashboard's own session check rides on the same refusal: GET /v1/organizations tells the caller its access", async () => {
    const res = await call("GET", "/v1/organizations", { token: fx.scoped.viewer });
    expect(res.status, res.text).toBe(200);
    expect(res.json.access).toMatchObject({ role: "viewer", siteIds: ["prod"], tokenName: "prod watcher" });
  });
});

describe("site-scoped tokens see and change only their sites", () => {
  it("other sites answer 404 like another organization's; its own site works", async () => {
    const editor = fx.scoped.editor;
    const sites = await call("GET", "/v1/sites", { token: editor });
    expect((sites.json.sites as Array<{ siteId: string }>).map((s) => s.siteId)).toEqual(["prod"]);
    expectError(await call("GET", "/v1/sites/other", { token: editor }), 404, "NOT_FOUND");
    expectError(await call("GET", "/v1/sites/other/status", { token: editor }), 404, "NOT_FOUND");
    expectError(await call("PATCH", "/v1/sites/other", { token: editor, body: { leaseDurationSeconds: 90 } }), 404, "NOT_FOUND");
    expectError(await call("POST", "/v1/sites/other/kill", { token: editor, body: { enabled: true } }), 404, "NOT_FOUND");
    const kill = await call("POST", "/v1/sites/prod/kill", { token: editor, body: { enabled: true } });
    expect(kill.status, kill.text).toBe(200);
    expect((await call("POST", "/v1/sites/prod/kill", { token: editor, body: { enabled: false } })).status).toBe(200);
    const other = await call("GET", "/v1/sites/other", { token: fx.admin });
    expect(other.json.killSwitch).toBe(false);
  });

  it("creates sites and rules only within its list; org-wide rules are visible but not its to change", async () => {
    const editor = fx.scoped.editor;
    expectError(await call("POST", "/v1/sites", { token: editor, body: { siteId: "third" } }), 403, "FORBIDDEN");
    const rule = { tagName: "pro", metric: "errors", operator: "gt", threshold: 5, action: "block", priority: 3 };
    expectError(await call("POST", "/v1/reflex-rules", { token: editor, body: { ...rule, siteId: "other" } }), 403, "FORBIDDEN");
    expectError(await call("POST", "/v1/reflex-rules", { token: editor, body: rule }), 403, "FORBIDDEN");
    const own = await created(await call("POST", "/v1/reflex-rules", { token: editor, body: { ...rule, siteId: "prod" } }));

    const listed = await call("GET", "/v1/reflex-rules", { token: editor });
    const ids = (listed.json.reflexRules as Array<{ id: string }>).map((r) => r.id);
    expect(ids).toContain(own.id);
    expect(ids).toContain(fx.ruleEvery);
    expect(ids).not.toContain(fx.ruleOther);
    expect((await call("GET", "/v1/reflex-rules?siteId=other", { token: editor })).json.reflexRules).toEqual([]);

    expectError(await call("PATCH", `/v1/reflex-rules/${fx.ruleOther}`, { token: editor, body: { threshold: 1 } }), 404, "NOT_FOUND");
    expectError(await call("DELETE", `/v1/reflex-rules/${fx.ruleOther}`, { token: editor }), 404, "NOT_FOUND");
    expectError(await call("PATCH", `/v1/reflex-rules/${fx.ruleEvery}`, { token: editor, body: { threshold: 1 } }), 403, "FORBIDDEN");
    expectError(await call("PATCH", `/v1/reflex-rules/${own.id}`, { token: editor, body: { siteId: "other" } }), 403, "FORBIDDEN");
    expect((await call("PATCH", `/v1/reflex-rules/${own.id}`, { token: editor, body: { threshold: 9 } })).status).toBe(200);
    expect((await call("DELETE", `/v1/reflex-rules/${own.id}`, { token: editor })).status).toBe(200);
    // tags apply to every site: read yes, change no
    expect((await call("GET", "/v1/tags", { token: editor })).status).toBe(200);
    expectError(await call("PATCH", `/v1/tags/${fx.tagId}`, { token: editor, body: { maxWeight: 3 } }), 403, "FORBIDDEN");
  });

  it("reads of history stop at its sites: audit log, telemetry, reflex events", async () => {
    const viewer = fx.scoped.viewer;
    const audit = await call("GET", "/v1/audit-log?limit=200", { token: viewer });
    expect(audit.status, audit.text).toBe(200);
    const siteIds = new Set((audit.json.entries as Array<{ siteId: string | null }>).map((e) => e.siteId));
    expect([...siteIds]).toEqual(["prod"]);
    const all = await call("GET", "/v1/audit-log?limit=200", { token: fx.admin });
    expect((all.json.entries as Array<{ siteId: string | null }>).some((e) => e.siteId === "other")).toBe(true);
    expect((await call("GET", "/v1/audit-log?siteId=other", { token: viewer })).json.entries).toEqual([]);
    expect((await call("GET", "/v1/telemetry?siteId=other", { token: viewer })).json.rollups).toEqual([]);
    expect((await call("GET", "/v1/reflex-events?siteId=other", { token: viewer })).json.events).toEqual([]);
  });
});

describe("creating tokens", () => {
  it("takes {name, role, siteIds?}: role required, admin tokens org-wide, ids validated", async () => {
    expectError(await call("POST", "/v1/management-tokens", { token: fx.admin, body: { name: "no role" } }), 400, "VALIDATION_FAILED");
    expectError(
      await call("POST", "/v1/management-tokens", { token: fx.admin, body: { name: "x", role: "owner" } }),
      400,
      "VALIDATION_FAILED",
    );
    const scopedAdmin = expectError(
      await call("POST", "/v1/management-tokens", { token: fx.admin, body: { name: "x", role: "admin", siteIds: ["prod"] } }),
      400,
      "VALIDATION_FAILED",
    );
    expect(scopedAdmin.message).toContain("siteIds");
    expectError(
      await call("POST", "/v1/management-tokens", { token: fx.admin, body: { name: "x", role: "viewer", siteIds: [] } }),
      400,
      "VALIDATION_FAILED",
    );
    expectError(
      await call("POST", "/v1/management-tokens", { token: fx.admin, body: { name: "x", role: "viewer", siteIds: ["../x"] } }),
      400,
      "VALIDATION_FAILED",
    );
    const res = await call("POST", "/v1/management-tokens", {
      token: fx.admin,
      body: { name: "ci", role: "viewer", siteIds: ["prod", "prod", "staging"] },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.json).toMatchObject({ name: "ci", role: "viewer", siteIds: ["prod", "staging"] });
  });

  it("only an admin creates tokens, so none can mint a more powerful one", async () => {
    for (const holder of [fx.tokens.editor, fx.tokens.viewer, fx.scoped.editor]) {
      expectError(
        await call("POST", "/v1/management-tokens", { token: holder, body: { name: "escalate", role: "admin" } }),
        403,
        "FORBIDDEN",
      );
    }
  });

  it("tokens from before roles are admins (the migration's default), the initial token too", async () => {
    const { org, token } = await createOrg("Legacy Co");
    await env.DB.prepare("INSERT INTO management_tokens (id, org_id, token_hash, name) VALUES ('mt_legacy', ?, 'h', 'legacy')")
      .bind(org.id)
      .run();
    const listed = await call("GET", "/v1/management-tokens", { token });
    const roles = Object.fromEntries(
      (listed.json.managementTokens as Array<{ name: string; role: string; siteIds: unknown }>).map((t) => [t.name, [t.role, t.siteIds]]),
    );
    expect(roles).toEqual({ initial: ["admin", null], legacy: ["admin", null] });
  });

  it("the last active admin token cannot be revoked, even with other tokens left", async () => {
    const { token } = await createOrg("Last Admin Co");
    await call("POST", "/v1/management-tokens", { token, body: { name: "viewer", role: "viewer" } });
    const [me] = (
      (await call("GET", "/v1/management-tokens", { token })).json.managementTokens as Array<{ id: string; current: boolean }>
    ).filter((t) => t.current);
    const refused = expectError(await call("DELETE", `/v1/management-tokens/${me!.id}`, { token }), 409, "CONFLICT");
    expect(refused.message).toContain("last active admin token");
  });
});

describe("the audit log records the actor's role", () => {
  it("an editor's change names the editor role; the operator's has none", async () => {
    const res = await call("POST", "/v1/sites/prod/kill", { token: fx.tokens.editor, body: { enabled: false } });
    expect(res.status, res.text).toBe(200);
    const entries = (await call("GET", "/v1/audit-log?kind=kill.*&limit=1", { token: fx.admin })).json.entries as Array<{
      actor: Record<string, unknown>;
    }>;
    expect(entries[0]!.actor).toEqual({ type: "token", id: expect.stringMatching(/^mt_/), name: "on-call", role: "editor" });
    const created = (await call("GET", "/v1/audit-log?kind=org.created", { token: fx.admin })).json.entries as Array<{
      actor: Record<string, unknown>;
    }>;
    expect(created[0]!.actor).toEqual({ type: "admin", id: null, name: "ADMIN_TOKEN", role: null });
  });
});
